"""open_corpus / Corpus / Entry on real stores on disk, checked against numpy ground truth."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr

from zarrmux import layout
from zarrmux.corpus import Corpus, Entry, UnknownKeyError, open_corpus
from zarrmux.exceptions import CorpusError, DataError
from zarrmux.index_commit import commit_entries
from zarrmux.testing import make_entry, write_corpus

ROWS = [700, 1000, 333, 64, 1290]


def _entries() -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for i, r in enumerate(ROWS):
        e = make_entry(r, 6, seed=i + 1)
        e["Z"] = (np.arange(r * 2, dtype=np.int16).reshape(r, 2) + i * 1000).astype(np.int16)
        out[f"song{i}"] = e
    return out


@pytest.fixture(scope="module")
def truth() -> dict[str, dict[str, np.ndarray]]:
    return _entries()


@pytest.fixture(scope="module")
def corpus_path(tmp_path_factory: pytest.TempPathFactory, truth: dict) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "c.zarr"
    # small chunks and shards: many chunk and shard boundaries, holes between units
    write_corpus(path, truth, chunk_rows=32, shard_rows=128)
    return path


def _random_windows(rows: np.ndarray, n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ok = np.flatnonzero(rows >= n)
    ents = rng.choice(ok, size=size)
    starts = np.array([rng.integers(0, rows[e] - n + 1) for e in ents], dtype=np.int64)
    return ents, starts


def _check(corpus: Corpus, truth: dict, ents: np.ndarray, starts: np.ndarray, n: int, out: dict) -> None:
    names = corpus.names
    for k, arr in out.items():
        assert arr.shape[:2] == (len(ents), n)
        for b, (e, s) in enumerate(zip(ents.tolist(), starts.tolist())):
            np.testing.assert_array_equal(arr[b], truth[names[e]][k][s : s + n], err_msg=f"{k} {names[e]} {s}")
            assert arr.dtype == truth[names[e]][k].dtype


def test_open_metadata(corpus_path: Path, truth: dict) -> None:
    c = open_corpus(corpus_path)
    assert len(c) == len(ROWS)
    assert c.names == list(truth)
    assert c.keys == ("X", "Y", "Z")
    assert c.rows.dtype == np.int64
    np.testing.assert_array_equal(c.rows, ROWS)
    assert c.path == str(corpus_path)
    assert [e.name for e in c] == list(truth)
    assert c["song2"].rows == 333 and c[2].name == "song2" and c[-1].name == "song4"
    with pytest.raises(IndexError):
        c[5]
    with pytest.raises(KeyError):
        c["nope"]


@pytest.mark.parametrize("n", [1, 16, 31, 32, 33, 64, 129, 300])
def test_read_windows_matches_numpy(corpus_path: Path, truth: dict, n: int) -> None:
    c = open_corpus(corpus_path)
    ents, starts = _random_windows(c.rows, n, 64, seed=n)
    out = c.read_windows(ents, starts, n)
    assert set(out) == {"X", "Y", "Z"}
    _check(c, truth, ents, starts, n, out)
    # again, now from the cache
    _check(c, truth, ents, starts, n, c.read_windows(ents, starts, n))


def test_windows_on_every_boundary(corpus_path: Path, truth: dict) -> None:
    c = open_corpus(corpus_path)
    n = 16
    ents, starts = [], []
    for e, r in enumerate(ROWS):
        for s in sorted({0, r - n, *range(32 - n + 1, r - n + 1, 32), *range(128 - 8, r - n + 1, 128)}):
            ents.append(e)
            starts.append(s)
    ents_a, starts_a = np.array(ents), np.array(starts)
    _check(c, truth, ents_a, starts_a, n, c.read_windows(ents_a, starts_a, n))
    # a whole entry as one window
    for e, r in enumerate(ROWS):
        _check(c, truth, np.array([e]), np.array([0]), r, c.read_windows([e], [0], r))


def test_keys_subset_and_tiny_cache(corpus_path: Path, truth: dict) -> None:
    for cache_bytes in (0, 3000, 50_000):
        c = open_corpus(corpus_path, keys=["Y", "X"], cache_bytes=cache_bytes)
        assert c.keys == ("Y", "X")
        ents, starts = _random_windows(c.rows, 40, 100, seed=cache_bytes)
        out = c.read_windows(ents, starts, 40)
        assert set(out) == {"X", "Y"}
        _check(c, truth, ents, starts, 40, out)
        assert c.cache.nbytes <= cache_bytes
        out2 = c.read_windows(ents, starts, 40, keys=["Y"])
        assert list(out2) == ["Y"]
        np.testing.assert_array_equal(out2["Y"], out["Y"])


def test_empty_batch(corpus_path: Path) -> None:
    c = open_corpus(corpus_path)
    out = c.read_windows(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 8)
    assert out["X"].shape == (0, 8, 6) and out["Y"].shape == (0, 8) and out["X"].dtype == np.float32


def test_entry_lazy_arrays(corpus_path: Path, truth: dict) -> None:
    c = open_corpus(corpus_path)
    e = c["song1"]
    assert isinstance(e, Entry)
    assert e.keys() == ("X", "Y", "Z") and e.rows == 1000 and len(e) == 1000
    x = e["X"]
    assert x.shape == (1000, 6) and x.dtype == np.float32 and len(x) == 1000 and x.ndim == 2
    t = truth["song1"]["X"]
    np.testing.assert_array_equal(x[100:116], t[100:116])
    np.testing.assert_array_equal(x[:], t)
    np.testing.assert_array_equal(x[5], t[5])
    np.testing.assert_array_equal(x[-1], t[-1])
    np.testing.assert_array_equal(x[990:2000], t[990:])
    np.testing.assert_array_equal(x[10:100:7], t[10:100:7])
    np.testing.assert_array_equal(x[100:10:-3], t[100:10:-3])
    np.testing.assert_array_equal(x[40:60, 2], t[40:60, 2])
    np.testing.assert_array_equal(x[3, 1:4], t[3, 1:4])
    np.testing.assert_array_equal(np.asarray(x), t)
    assert x[50:50].shape == (0, 6)
    np.testing.assert_array_equal(c[3]["Y"][:], truth["song3"]["Y"])
    with pytest.raises(IndexError):
        x[1000]
    with pytest.raises(KeyError):
        e["W"]


def test_bounds_are_checked(corpus_path: Path) -> None:
    c = open_corpus(corpus_path)
    with pytest.raises(IndexError, match="song2"):
        c.read_windows([0, 2], [0, 333 - 15], 16)
    with pytest.raises(IndexError, match="song0"):
        c.read_windows([0], [-1], 16)
    with pytest.raises(IndexError, match="position 5"):
        c.read_windows([5], [0], 16)
    with pytest.raises(ValueError, match="n=0"):
        c.read_windows([0], [0], 0)
    with pytest.raises(ValueError, match="same length"):
        c.read_windows([0, 1], [0], 4)


def test_unknown_keys(corpus_path: Path) -> None:
    with pytest.raises(KeyError, match="'W'.*available keys.*'X', 'Y', 'Z'"):
        open_corpus(corpus_path, keys=["X", "W"])
    with pytest.raises(CorpusError, match="'W'"):
        open_corpus(corpus_path, keys=["W"])
    c = open_corpus(corpus_path, keys=["X"])
    with pytest.raises(UnknownKeyError, match="'Y'.*available keys.*'X'"):
        c.read_windows([0], [0], 4, keys=["Y"])


def test_missing_and_not_a_corpus(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.zarr"
    with pytest.raises(CorpusError, match="nowhere.zarr"):
        open_corpus(missing)
    with pytest.raises(CorpusError, match="nowhere.zarr"):
        open_corpus(f"file://{missing}")
    (tmp_path / "notzarr").mkdir()
    (tmp_path / "notzarr" / "hello.txt").write_text("hi")
    with pytest.raises(CorpusError, match="notzarr"):
        open_corpus(tmp_path / "notzarr")
    (tmp_path / "afile").write_text("hi")
    with pytest.raises(CorpusError, match="afile"):
        open_corpus(tmp_path / "afile")
    zarr.open_group(tmp_path / "empty.zarr", mode="w")
    with pytest.raises(CorpusError, match="empty.zarr.*not a corpus"):
        open_corpus(tmp_path / "empty.zarr")


def test_unreadable_metadata(tmp_path: Path, truth: dict) -> None:
    path = tmp_path / "c.zarr"
    write_corpus(path, {"a": truth["song0"]}, chunk_rows=32, shard_rows=128)
    (path / "zarr.json").write_bytes(b"{ this is not json")
    with pytest.raises(CorpusError, match="c.zarr"):
        open_corpus(path)


def test_file_url(corpus_path: Path, truth: dict) -> None:
    c = open_corpus(f"file://{corpus_path}")
    ents, starts = _random_windows(c.rows, 20, 30, seed=7)
    _check(c, truth, ents, starts, 20, c.read_windows(ents, starts, 20))


def test_pickle_reopens_lazily(corpus_path: Path, truth: dict) -> None:
    c = open_corpus(corpus_path, keys=["X"], cache_bytes=12345)
    blob = pickle.dumps(c)
    assert len(blob) < 1000  # path and options, no data
    c2 = pickle.loads(blob)
    assert not c2._loaded
    assert c2.keys == ("X",) and c2.cache_bytes == 12345 and c2.names == c.names
    ents, starts = _random_windows(c2.rows, 16, 20, seed=3)
    _check(c2, truth, ents, starts, 16, c2.read_windows(ents, starts, 16))
    e = pickle.loads(pickle.dumps(c["song4"]))
    assert e.name == "song4"
    np.testing.assert_array_equal(e["X"][7:9], truth["song4"]["X"][7:9])


def test_close(corpus_path: Path) -> None:
    c = open_corpus(corpus_path)
    c.read_windows([0], [0], 4)
    c.close()
    c.close()
    with pytest.raises(ValueError, match="closed"):
        c.read_windows([0], [0], 4)
    with open_corpus(corpus_path) as c2:
        assert len(c2) == len(ROWS)
    with pytest.raises(ValueError):
        len(c2)


def test_concurrent_reads_identical(corpus_path: Path, truth: dict) -> None:
    c = open_corpus(corpus_path, cache_bytes=40_000)  # small: constant eviction under contention
    n = 24
    batches = [_random_windows(c.rows, n, 32, seed=s) for s in range(12)]
    expected = [open_corpus(corpus_path, cache_bytes=0).read_windows(e, s, n) for e, s in batches]
    errors: list[BaseException] = []
    results: dict[tuple[int, int], dict] = {}

    def work(t: int) -> None:
        try:
            for i in range(len(batches)):
                j = (i * 7 + t) % len(batches)
                results[(t, j)] = c.read_windows(*batches[j], n)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 4 * len(batches)
    for (_t, j), out in results.items():
        for k in ("X", "Y", "Z"):
            np.testing.assert_array_equal(out[k], expected[j][k])
    _check(c, truth, *batches[0], n, expected[0])


def test_zero_rows_are_stored_as_empty_chunks(tmp_path: Path) -> None:
    # all-zero data: zarr writes no inner chunks (fill value); we must return zeros, not fail
    e = {"X": np.zeros((300, 4), np.float32), "Y": np.arange(300, dtype=np.int64)}
    e["X"][200:210] = 5.0
    write_corpus(tmp_path / "z.zarr", {"a": e}, chunk_rows=32, shard_rows=64)
    c = open_corpus(tmp_path / "z.zarr")
    out = c.read_windows([0, 0, 0], [0, 190, 280], 20)
    np.testing.assert_array_equal(out["X"][1], e["X"][190:210])
    np.testing.assert_array_equal(out["X"][0], 0)
    np.testing.assert_array_equal(out["Y"][2], e["Y"][280:300])


def test_constant_metadata_reads(tmp_path: Path) -> None:
    """Opening reads the same number of objects for 2 and 6 entries (no per-entry reads)."""
    from zarr.storage import LocalStore

    class CountingStore(LocalStore):
        count = 0

        async def get(self, key, prototype, byte_range=None):  # type: ignore[no-untyped-def]
            type(self).count += 1
            return await super().get(key, prototype, byte_range)

    counts = []
    for k in (2, 6):
        path = tmp_path / f"c{k}.zarr"
        write_corpus(path, {f"e{i}": make_entry(40, 2, seed=i) for i in range(k)}, chunk_rows=16, shard_rows=32)
        CountingStore.count = 0
        c = open_corpus(CountingStore(path, read_only=True))
        assert len(c) == k
        counts.append(CountingStore.count)
    assert counts[0] == counts[1]


def test_index_inconsistent_with_arrays(tmp_path: Path) -> None:
    path = tmp_path / "bad.zarr"
    root = write_corpus(path, {"a": make_entry(100, 2)}, chunk_rows=16, shard_rows=32)
    commit_entries(root, [layout.EntryRecord("ghost", 5000, 10)], rows_allocated=5010)
    with pytest.raises(CorpusError, match="ghost"):
        open_corpus(path)


def test_reads_what_the_converter_writes(tmp_path: Path) -> None:
    from zarrmux.conversion import convert
    from zarrmux.testing import make_npz_archives

    paths = make_npz_archives(tmp_path / "npz", 4, min_rows=300, max_rows=900, features=8, seed=4)
    convert(paths, tmp_path / "conv.zarr", chunk_rows=32, shard_rows=128, workers=1)
    c = open_corpus(tmp_path / "conv.zarr")
    assert len(c) == 4 and set(c.keys) == {"X", "Y"}
    assert {r.mode for r in c._readers} == {"shard"}
    truth = {}
    for name, p in zip(c.names, paths):
        with np.load(p, allow_pickle=False) as z:
            truth[name] = {k: z[k] for k in z.files}
    ents, starts = _random_windows(c.rows, 40, 60, seed=11)
    _check(c, truth, ents, starts, 40, c.read_windows(ents, starts, 40))
    for e in c:
        np.testing.assert_array_equal(e["X"][:], truth[e.name]["X"])
        c.verify(e.name)


def test_empty_corpus(tmp_path: Path) -> None:
    layout.create_corpus(tmp_path / "e.zarr", {"X": layout.KeySpec("<f4", (3,), 16)}, shard_rows=32)
    c = open_corpus(tmp_path / "e.zarr")
    assert len(c) == 0 and c.names == [] and c.rows.shape == (0,) and c.keys == ("X",)
    assert c.read_windows([], [], 4)["X"].shape == (0, 4, 3)


def test_fork_while_another_thread_holds_the_cache_lock(corpus_path: Path, truth: dict) -> None:
    """A DataLoader-style fork must not inherit a locked cache."""
    import multiprocessing as mp

    c = open_corpus(corpus_path)
    c.read_windows([0], [0], 8)
    with c.cache._lock:  # as if a prefetch thread were inside the cache at fork time
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=_child_read, args=(c, q))
        p.start()
    p.join(60)
    if p.is_alive():  # deadlocked: the failure this test is about
        p.kill()
        p.join()
    assert p.exitcode == 0
    got = q.get(timeout=10)
    np.testing.assert_array_equal(got, truth["song1"]["X"][10:26])


def _child_read(c: Corpus, q: object) -> None:
    q.put(c.read_windows([1], [10], 16)["X"][0])  # type: ignore[attr-defined]


def test_streamers_one_per_long_enough_entry(corpus_path: Path, truth: dict) -> None:
    c = open_corpus(corpus_path)
    with pytest.warns(UserWarning, match="1 of 5 entries"):
        streams = c.streamers(100, random_state=0)  # song3 has 64 rows
    assert len(streams) == 4
    window = next(iter(streams[0].iterate(max_iter=1)))
    x = window["X"]
    assert x.shape == (100, 6)
    t = truth["song0"]["X"]
    starts = [s for s in range(len(t) - 99) if np.array_equal(t[s : s + 100], x)]
    assert starts  # the window is a contiguous run of song0's rows


def test_truncated_shard_is_a_data_error_not_garbage(tmp_path: Path) -> None:
    """A shard whose last inner chunk runs into its index (bytes cut before the index) raises, never decodes garbage."""
    from zarrmux.testing import latency_store

    truth = {f"song{i}": make_entry(150 + 61 * i, 4, seed=i) for i in range(2)}
    write_corpus(tmp_path / "c.zarr", truth, chunk_rows=16, shard_rows=64)
    shard = tmp_path / "c.zarr" / "X" / "c" / "0" / "0"
    raw = shard.read_bytes()
    index = 16 * 4 + 4
    shard.write_bytes(raw[: -index - 40] + raw[-index:])
    for target in (tmp_path / "c.zarr", latency_store(tmp_path / "c.zarr", 0.0)):
        c = open_corpus(target)
        np.testing.assert_array_equal(c.read_windows([0], [16], 16)["X"][0], truth["song0"]["X"][16:32])
        with pytest.raises(DataError, match=r"entry 'song0', key 'X', chunk X/c/0/0 \(inner chunk 3.*outside the shard's chunk data"):
            c.read_windows([0], [48], 16)


def test_concurrent_cold_reads_share_each_shard_index_read(tmp_path: Path) -> None:
    """Threads starting together on a slow store read each shard index once and agree on the data."""
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    from zarrmux.testing import latency_store

    truth = {f"song{i}": make_entry(200, 4, seed=i) for i in range(2)}
    write_corpus(tmp_path / "c.zarr", truth, chunk_rows=16, shard_rows=64)
    c = open_corpus(latency_store(tmp_path / "c.zarr", 0.05))
    seen: Counter = Counter()
    for r in c._readers:
        orig = r.decode_index

        def counting(raw, shard, _orig=orig, _r=r):  # type: ignore[no-untyped-def]
            seen[(_r.label, shard)] += 1
            return _orig(raw, shard)

        r.decode_index = counting  # type: ignore[method-assign]
    starts = [0, 20, 40, 100, 130, 150, 170, 180]
    with ThreadPoolExecutor(8) as ex:
        outs = list(ex.map(lambda s: c.read_windows([1], [s], 16), starts))
    for s, out in zip(starts, outs):
        np.testing.assert_array_equal(out["X"][0], truth["song1"]["X"][s : s + 16])
        np.testing.assert_array_equal(out["Y"][0], truth["song1"]["Y"][s : s + 16])
    assert seen and max(seen.values()) == 1, seen
