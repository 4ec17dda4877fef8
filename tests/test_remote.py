"""Remote reads against real loopback servers in their own processes: servers that ignore Range,
flaky servers (5xx, connections cut mid-body), hanging servers (timeout, prompt close)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from zarrmux import remote_settings
from zarrmux.byte_requests import ByteRequest
from zarrmux.corpus import open_corpus
from zarrmux.exceptions import CorpusError
from zarrmux.sampler import WindowSampler
from zarrmux.testing import COUNTS_PATH, make_entry, write_corpus

pytestmark = pytest.mark.parametrize("backend", ["obstore", "fsspec"])

N = 16


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("remote")
    truth = {f"song{i}": make_entry(150 + 61 * i, 4, seed=i) for i in range(4)}
    write_corpus(root / "c.zarr", truth, chunk_rows=16, shard_rows=64)
    return root, truth


class Server:
    """``python -m zarrmux.testing ROOT 0 --server stdlib ...`` in its own process."""

    def __init__(self, root: Path, *flags: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zarrmux.testing", str(root), "0", "--server", "stdlib", *flags], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.base = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def counts(self) -> dict[str, list[int]]:
        with urllib.request.urlopen(self.base + COUNTS_PATH) as r:
            return json.loads(r.read())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def server(corpus_dir: tuple[Path, dict], request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = Server(corpus_dir[0], *request.param)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def settings() -> Iterator[None]:
    yield
    remote_settings.configure(timeout=None, retries=None, backoff=None, whole_cache_dir=None, whole_cache_bytes=None)


def _windows(c, seed: int, k: int = 40) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    ents = rng.integers(0, len(c), k)
    return ents, np.array([rng.integers(0, c.rows[e] - N + 1) for e in ents])


def _check(c, truth: dict, seed: int) -> None:  # type: ignore[no-untyped-def]
    ents, starts = _windows(c, seed)
    out = c.read_windows(ents, starts, N)
    for k in c.keys:
        for b, (e, s) in enumerate(zip(ents, starts)):
            np.testing.assert_array_equal(out[k][b], truth[c.names[e]][k][s : s + N])


def _batches(c, prefetch: int | None) -> list[dict[str, np.ndarray]]:  # type: ignore[no-untyped-def]
    kw = {} if prefetch is None else {"prefetch": prefetch}
    with WindowSampler(c, N, batch_size=8, n_active=4, rate=4, seed=3, max_iter=12, **kw) as s:
        return [b for b in s]


def _same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b) == 12
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


@pytest.mark.parametrize("server", [("--no-range",)], indirect=True)
def test_server_without_range_each_object_fetched_once(
    server: Server, corpus_dir: tuple[Path, dict], backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, truth = corpus_dir
    with caplog.at_level(logging.WARNING, logger="zarrmux"):
        c = open_corpus(f"{server.base}/c.zarr", backend=backend, cache_bytes=0)
        for seed in range(3):
            _check(c, truth, seed)
        fast = _batches(c, None)  # prefetch threads on the same whole objects
        _same(fast, _batches(c, 0))
        again = open_corpus(f"{server.base}/c.zarr", backend=backend, cache_bytes=0)  # the cache is per process
        _check(again, truth, 7)
    warned = [r for r in caplog.records if r.name == "zarrmux" and "ignores HTTP Range" in r.getMessage()]
    assert len(warned) == 1 and server.base in warned[0].getMessage()
    counts = server.counts()
    # the keys' shards (what the byte reader fetches; opening the corpus reads its small index arrays through zarr)
    chunks = {p: v for p, v in counts.items() if p.startswith(("/c.zarr/X/c/", "/c.zarr/Y/c/"))}
    n_objects = sum(1 for k in "XY" for p in Path(corpus_dir[0], "c.zarr", k, "c").rglob("*") if p.is_file())
    chunks = {p: v for p, v in chunks.items() if v[2]}  # absent objects (404) aside
    assert len(chunks) == n_objects, sorted(counts.items())  # every object was needed ...
    assert all(v[0] == 1 for v in chunks.values()), {p: v for p, v in chunks.items() if v[0] != 1}  # ... once
    assert c._io.stats["whole_objects"] == n_objects and again._io.stats["whole_objects"] == 0


@pytest.mark.parametrize("server", [("--no-range",), ()], indirect=True)
def test_default_prefetch_reads_ahead_while_requests_are_sent_then_inline(
    server: Server, corpus_dir: tuple[Path, dict], backend: str, settings: None
) -> None:
    # the reads send requests until every object they need is held: a server without Range sends
    # each whole object once, and a corpus this small fits in the chunk cache once read
    c = open_corpus(f"{server.base}/c.zarr", backend=backend)
    with WindowSampler(c, N, batch_size=8, n_active=4, rate=4, seed=3, max_iter=400) as s:
        assert s.prefetch == 32
        got = [b for b in s]
        st = s.prefetch_stats
    assert st is not None and st.batches_ahead >= 1  # the first reads fetch: read ahead
    assert st.batches_inline >= 200 and not st.ahead and not st.fetching  # then nothing to wait for: inline
    requests = c.io_counters()["requests"]
    with WindowSampler(c, N, batch_size=8, n_active=4, rate=4, seed=3, max_iter=400, prefetch=0) as s0:
        ref = [b for b in s0]
    assert c.io_counters()["requests"] == requests  # the second pass was served from what was held
    assert len(got) == len(ref) == 400
    for x, y in zip(got, ref):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


@pytest.mark.parametrize("server", [("--no-range",)], indirect=True)
def test_server_without_range_cache_in_a_directory_is_bounded(
    server: Server, corpus_dir: tuple[Path, dict], backend: str, settings: None, tmp_path: Path
) -> None:
    _, truth = corpus_dir
    shard = max(p.stat().st_size for p in Path(corpus_dir[0], "c.zarr", "X", "c").rglob("*") if p.is_file())
    budget = 3 * shard
    remote_settings.configure(whole_cache_dir=str(tmp_path / "cache"), whole_cache_bytes=budget)
    c = open_corpus(f"{server.base}/c.zarr", backend=backend, cache_bytes=0)
    for seed in range(3):
        _check(c, truth, seed)
        (sub,) = (tmp_path / "cache").iterdir()  # a private directory of this process
        files = [p for p in sub.iterdir() if not p.name.endswith(".tmp")]
        assert files and sum(p.stat().st_size for p in files) <= budget


@pytest.mark.parametrize("server", [("--flaky", "3", "--flaky-paths", "^/c.zarr/[XY]/c/")], indirect=True)
def test_flaky_server_is_retried_same_batches(
    server: Server, corpus_dir: tuple[Path, dict], backend: str, settings: None, caplog: pytest.LogCaptureFixture
) -> None:
    _, truth = corpus_dir
    remote_settings.configure(backoff=0.01)
    healthy_root = corpus_dir[0]
    with caplog.at_level(logging.INFO, logger="zarrmux"):
        c = open_corpus(f"{server.base}/c.zarr", backend=backend, cache_bytes=0)
        for seed in range(3):
            _check(c, truth, seed)
        flaky = _batches(c, None)
    local = open_corpus(str(healthy_root / "c.zarr"), cache_bytes=0)
    _same(flaky, _batches(local, 0))
    failed = sum(v[0] for p, v in server.counts().items() if p.endswith("(failed)"))
    assert failed >= 4  # 503s and connections cut mid-body, in turn
    retries = c._io.stats["retries"]
    assert 0 < retries <= failed  # an obstore call of several ranges retries them together
    assert sum("retrying" in r.getMessage() for r in caplog.records if r.name == "zarrmux") == retries
    # a missing object is not retried, and reads as absent (None), as before
    before = c._io.stats["retries"]
    assert c._io.read_many([ByteRequest("X/c/99/0", "range", 0, 10)]) == [None]
    assert c._io.stats["retries"] == before
    assert server.counts()["/c.zarr/X/c/99/0"][0] == 1


@pytest.mark.parametrize("server", [("--hang", "/X/c/")], indirect=True)
def test_hanging_server_times_out_naming_url_and_close_is_prompt(
    server: Server, corpus_dir: tuple[Path, dict], backend: str, settings: None
) -> None:
    remote_settings.configure(timeout=2.0)  # far beyond an answer from the loopback server, even on a loaded machine
    c = open_corpus(f"{server.base}/c.zarr", backend=backend)
    with pytest.raises(CorpusError, match=rf"{server.base}/c\.zarr/X/c/\d+/0 within 2(\.0)? s") as e:
        c.read_windows([0], [0], N, keys=["X"])
    assert "timeout" in str(e.value)
    assert c._io.stats["timeouts"] == 1 and c._io.stats["retries"] == 0
    # readers waiting on a long timeout: interrupt() and close() end their waits at once
    remote_settings.configure(timeout=600)
    c2 = open_corpus(f"{server.base}/c.zarr", backend=backend)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            c2.read_windows([1], [0], N)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def blocked_reader() -> threading.Thread:
        sent = c2._io.stats["requests"]
        t = threading.Thread(target=read)
        t.start()
        while c2._io.stats["requests"] == sent and t.is_alive():
            t.join(0.01)
        return t

    t = blocked_reader()
    assert c2._io.interrupt({t.ident}) == 1  # this thread's reads only; the reader stays open
    t.join(30)  # a bound for a broken interrupt(), far beyond what it takes
    assert not t.is_alive() and isinstance(errors.pop(), CorpusError)
    np.testing.assert_array_equal(c2.read_windows([1], [3], N, keys=["Y"])["Y"][0], corpus_dir[1]["song1"]["Y"][3 : 3 + N])
    t = blocked_reader()
    c2.close()
    t.join(30)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], CorpusError) and "closed" in str(errors[0])


@pytest.mark.parametrize("server", [("--hang", "/X/c/")], indirect=True)
def test_a_sampler_reading_ahead_from_a_hanging_server_closes_promptly(
    server: Server, corpus_dir: tuple[Path, dict], backend: str, settings: None
) -> None:
    remote_settings.configure(timeout=600)
    corpus = open_corpus(f"{server.base}/c.zarr", backend=backend)
    sampler = WindowSampler(corpus, N, batch_size=4, n_active=2, seed=0, prefetch=4, close_corpus=True)
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            next(iter(sampler))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=consume)
    t.start()
    t.join(0.5)  # its reading threads now wait for the hanging server
    assert t.is_alive()
    closer = threading.Thread(target=sampler.close)
    closer.start()
    closer.join(30)  # a bound for a broken close(), far beyond what it takes (the timeout is 600 s)
    t.join(30)
    assert not closer.is_alive() and not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], CorpusError)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A corpus whose X is stored uncompressed (exact windows), several shards per entry."""
    root = tmp_path_factory.mktemp("raw")
    truth = {f"song{i}": make_entry(150 + 61 * i, 4, seed=i, quantize=False) for i in range(4)}
    write_corpus(root / "c.zarr", truth, chunk_rows=16, shard_rows=64, codec="none")
    return root, truth


def test_remote_exact_windows_fetch_what_the_windows_need(raw_dir: tuple[Path, dict], backend: str) -> None:
    root, truth = raw_dir
    srv = Server(root)
    try:
        c = open_corpus(f"{srv.base}/c.zarr", backend=backend, keys=["X"], exact_remote=True)
        assert type(c._exact["X"]).__name__ == "RemoteWindows"
        reader = c._exact["X"].reader
        for n in (16, 5, 40, 64):  # within a chunk, across chunks (crc32c between), across shards
            rng = np.random.default_rng(n)
            ents = rng.integers(0, len(c), 30)
            starts = np.array([rng.integers(0, c.rows[e] - n + 1) for e in ents])
            before = dict(c._io.stats)
            out = c.read_windows(ents, starts, n)["X"]
            for b, (e, s) in enumerate(zip(ents, starts)):
                np.testing.assert_array_equal(out[b], truth[c.names[e]]["X"][s : s + n])
            fetched = c._io.stats["bytes"] - before["bytes"]
            shards = len(set(((c._off["X"][ents] + starts) // reader.shard_rows).tolist()) | set(((c._off["X"][ents] + starts + n - 1) // reader.shard_rows).tolist()))
            need = len(ents) * n * reader.row_bytes  # the windows' rows (a shared row counts once per window)
            assert fetched <= 1.5 * need + shards * (reader.index_nbytes + 4 * n)  # + indexes (once) and crc32c bytes
        assert c._io.stats["requests"] > 0 and "X" not in c._arena
        # shard indexes are read once: reading the batch again costs at most one request per window
        before = c._io.stats["requests"]
        c.read_windows(ents, starts, n)
        assert 0 < c._io.stats["requests"] - before <= 2 * len(ents)  # a window crossing shards: two
    finally:
        srv.close()


@pytest.mark.parametrize("server", [()], indirect=True)
def test_bytes_fetched_within_1_5x_of_the_chunks_needed(server: Server, corpus_dir: tuple[Path, dict], backend: str) -> None:
    """Compressed keys: a batch fetches its chunks (nearby ranges merged, at most 1.5x) plus each shard index once."""
    _, truth = corpus_dir
    c = open_corpus(f"{server.base}/c.zarr", backend=backend, cache_bytes=0)
    ents, starts = _windows(c, 11, 24)
    before = c._io.stats["bytes"]
    out = c.read_windows(ents, starts, N)
    fetched = c._io.stats["bytes"] - before
    need = index_bytes = 0
    for k in c.keys:
        reader = c._single[k]
        g = c._off[k][ents] + starts
        chunks = np.unique(np.concatenate([g // reader.chunk_rows, (g + N - 1) // reader.chunk_rows]))
        for sh in np.unique(chunks // reader.chunks_per_shard).tolist():  # an all-fill shard is not stored at all
            index_bytes += reader.index_nbytes if (reader.cached_index(sh)[:, 1] != 2**64 - 1).any() else 0
        for ch in chunks.tolist():
            nbytes = int(reader.cached_index(ch // reader.chunks_per_shard)[ch % reader.chunks_per_shard, 1])
            need += 0 if nbytes == 2**64 - 1 else nbytes  # zarr-python leaves all-fill chunks out
        np.testing.assert_array_equal(out[k][0], truth[c.names[ents[0]]][k][starts[0] : starts[0] + N])
    assert need <= fetched - index_bytes <= 1.5 * need
    again = c._io.stats["bytes"]
    c.read_windows(ents, starts, N)  # the indexes are not read again
    assert c._io.stats["bytes"] - again <= 1.5 * need


def test_gate_grows_while_answers_are_fast_and_backs_off_when_they_slow(backend: str) -> None:
    from zarrmux.remote_io import Gate

    async def run() -> None:
        gate = Gate(4, 40)
        for _ in range(4):
            await gate.enter(1)
        waiting = [asyncio.ensure_future(gate.enter(1)) for _ in range(10)]  # demand beyond the limit
        await asyncio.sleep(0)
        for _ in range(3):  # fast answers while requests wait: one more in flight each time
            await asyncio.sleep(Gate.GROW_EVERY * 1.5)
            gate.leave(1, True, 0.02)
            await asyncio.sleep(0)
        assert gate.limit == 7 and gate.busy == 7 and gate.fastest == 0.02
        gate.leave(1, True, 0.02 + Gate.SLOW + 0.5)  # much slower than the fastest answer: the server is overrun
        assert gate.limit == 5 and gate.drops == 1
        gate.leave(1, True, 5.0)  # held: one drop per HOLD, not a collapse
        await asyncio.sleep(Gate.GROW_EVERY * 1.5)
        gate.leave(1, True, 0.02)  # and no growth while held
        assert gate.limit == 5 and gate.drops == 1
        for f in waiting:
            f.cancel()

    asyncio.run(run())
