"""Missing objects, 404s, misplaced shards and a damaged index: errors naming entry, key and object, never the fill value.

The corpus is written by the real converter (which stores every chunk of its
entries' rows), with small chunks and shards:
X (random floats) is stored uncompressed and read locally as exact windows,
Y (labels) with lz4 through the chunk arena.  Entries: 300 rows at 0, 337 at
384, 374 at 768 (each unit starts on a shard boundary).  Shards of 128 rows,
inner chunks of 32: shard 2 holds only entry 0's rows 256:300 (2 chunks),
shards 0, 1, 3, 4 are full.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr

from zarrmux.conversion import convert
from zarrmux.corpus import open_corpus
from zarrmux.exceptions import CorpusError, DataError
from zarrmux.testing import make_entry, write_corpus

N = 16
ROWS = {"e0": 300, "e1": 337, "e2": 374}
STARTS = {"e0": 0, "e1": 384, "e2": 768}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("missing")
    truth = {name: make_entry(rows, 8, seed=i, quantize=False) for i, (name, rows) in enumerate(ROWS.items())}
    src = base / "src"
    src.mkdir()
    for name, arrays in truth.items():
        np.savez(src / f"{name}.npz", **arrays)
    path = base / "c.zarr"
    convert([str(src)], str(path), chunk_rows=32, shard_rows=128, workers=1, progress=False)
    c = open_corpus(path)
    assert c.names == list(ROWS) and [int(c._off["X"][i]) for i in range(3)] == list(STARTS.values())
    assert "X" in c._exact and "Y" in c._arena  # both readers are exercised
    assert all(r.complete for r in c._readers)
    return path, truth


@pytest.fixture
def corpus(made: tuple[Path, dict], tmp_path: Path) -> tuple[Path, dict]:
    """A fresh copy to damage."""
    path, truth = made
    shutil.copytree(path, tmp_path / "c.zarr")
    return tmp_path / "c.zarr", truth


def _shard(path: Path, key: str, s: int) -> Path:
    return path / key / "c" / str(s) / "0" if key == "X" else path / key / "c" / str(s)


def _read(c, name: str, start: int, n: int = N, keys: tuple[str, ...] | None = None) -> dict:  # type: ignore[no-untyped-def]
    return c.read_windows([c.names.index(name)], [start], n, keys=keys)


def _same(c, truth: dict, name: str, start: int, n: int = N) -> None:  # type: ignore[no-untyped-def]
    out = _read(c, name, start, n)
    for k in ("X", "Y"):
        np.testing.assert_array_equal(out[k][0], truth[name][k][start : start + n])


def _names_all(msg: str, *parts: str) -> None:
    for p in parts:
        assert p in msg, f"{p!r} not in {msg!r}"


# ----------------------------------------------------------------------------- local


@pytest.mark.parametrize("key", ["X", "Y"])
def test_a_deleted_shard_is_a_data_error_naming_entry_key_and_object(corpus: tuple[Path, dict], key: str) -> None:
    path, truth = corpus
    _shard(path, key, 3).unlink()  # rows 384:512: entry e1's first 128 rows
    obj = f"{key}/c/3/0" if key == "X" else f"{key}/c/3"
    c = open_corpus(path)
    for _ in range(2):  # never cached as fill: the second read fails the same way
        with pytest.raises(DataError) as err:
            _read(c, "e1", 20, keys=(key,))
        _names_all(str(err.value), "missing data", "'e1'", f"key {key!r}", f"object {obj}", "404")
    with pytest.raises(DataError, match=f"'e1'.*object {obj}"):
        c["e1"][key][:]  # the lazy array too
    _same(c, truth, "e1", 200)  # the entry's other shards read
    _same(c, truth, "e0", 10)
    with pytest.raises(DataError, match=f"object {obj}"):
        c.verify("e1")


def test_a_shard_placed_where_a_longer_one_belongs_is_refused(corpus: tuple[Path, dict]) -> None:
    """Shard 2 (entry e0's last 44 rows: 2 chunks) swapped with shard 1 (4 chunks), for both keys."""
    path, truth = corpus
    for key in ("X", "Y"):
        a, b = _shard(path, key, 1), _shard(path, key, 2)
        tmp = a.with_name("swap")
        a.rename(tmp), b.rename(a), tmp.rename(b)
    c = open_corpus(path)
    for key in ("X", "Y"):
        with pytest.raises(DataError) as err:
            _read(c, "e0", 140, keys=(key,))  # rows 140:156, in shard 1
        obj = f"{key}/c/1/0" if key == "X" else f"{key}/c/1"
        _names_all(str(err.value), "'e0'", f"key {key!r}", obj, "inner chunk 2 is absent", "misplaced, swapped or damaged")
    _same(c, truth, "e1", 0)
    # the longer shard now at position 2 holds every chunk that position needs: reads cannot tell
    # (its extra chunks could be rows of a failed or overwritten entry); verify reads shard 1 and refuses
    out = _read(c, "e0", 260)
    assert not np.array_equal(out["X"][0], truth["e0"]["X"][260:276])
    with pytest.raises(DataError, match="'e0'.*X/c/1/0"):
        c.verify("e0")
    c.verify("e1")


def test_swapped_full_shards_are_seen_by_verify_only(corpus: tuple[Path, dict]) -> None:
    """Two full shards (same size, each internally valid) swapped: nothing binds a shard to its position
    but the entry's sha256, so reads cannot tell; ``verify`` does."""
    path, truth = corpus
    a, b = _shard(path, "X", 0), _shard(path, "X", 3)  # e0 rows 0:128 <-> e1 rows 0:128
    tmp = a.with_name("swap")
    a.rename(tmp), b.rename(a), tmp.rename(b)
    c = open_corpus(path)
    out = _read(c, "e0", 0)
    np.testing.assert_array_equal(out["X"][0], truth["e1"]["X"][:N])  # wrong rows, silently
    for name in ("e0", "e1"):
        with pytest.raises(DataError, match=f"{name!r}.*fails its checksum"):
            c.verify(name)
    c.verify("e2")


def test_a_shard_with_bytes_added_or_cut_is_refused(corpus: tuple[Path, dict]) -> None:
    path, truth = corpus
    x = _shard(path, "X", 0)
    raw = x.read_bytes()
    index = 4 * 16 + 4
    x.write_bytes(raw[:-index] + b"\0" * 36 + raw[-index:])  # padding between the chunks and the index
    y = _shard(path, "Y", 4)
    raw = y.read_bytes()
    y.write_bytes(raw[: -index - 1] + raw[-index:])  # one byte of the last chunk cut
    c = open_corpus(path)
    with pytest.raises(DataError, match=r"'e0', key 'X'.*X/c/0/0.*holds \d+ bytes of chunk data"):
        _read(c, "e0", 5, keys=("X",))
    with pytest.raises(DataError, match=r"'e1', key 'Y'.*Y/c/4"):
        _read(c, "e1", 130, keys=("Y",))
    _same(c, truth, "e2", 100)


def test_all_zero_rows_written_by_the_converter_read_as_zeros(tmp_path: Path) -> None:
    """The converter writes every chunk, zeros included: a complete corpus never mistakes data for a gap."""
    e = make_entry(200, 4, seed=3)
    e["X"][:100] = 0
    e["Y"][:150] = 0
    src = tmp_path / "src"
    src.mkdir()
    np.savez(src / "z.npz", **e)
    convert([str(src)], str(tmp_path / "z.zarr"), codec="lz4", chunk_rows=16, shard_rows=64, workers=1, progress=False)
    c = open_corpus(tmp_path / "z.zarr")
    assert all(r.complete for r in c._readers)
    out = c.read_windows([0, 0], [0, 90], 40)
    for k in ("X", "Y"):
        np.testing.assert_array_equal(out[k][0], e[k][:40])
        np.testing.assert_array_equal(out[k][1], e[k][90:130])
    c.verify("z")


# ----------------------------------------------------------------------------- the entry index


@pytest.mark.parametrize("field", ["start", "rows", "name"])
def test_a_deleted_index_chunk_is_refused_on_open(corpus: tuple[Path, dict], field: str) -> None:
    path, _ = corpus
    (path / "index" / field / "c" / "0").unlink()
    with pytest.raises(CorpusError, match=f"index object 'index/{field}/c/0' is missing|'index/{field}/c/0' \\(that object is missing"):
        open_corpus(path)


def test_a_deleted_checksum_chunk_fails_verify(corpus: tuple[Path, dict]) -> None:
    path, truth = corpus
    (path / "index" / "checksum" / "c" / "0").unlink()
    c = open_corpus(path)  # reading does not need the checksums
    _same(c, truth, "e2", 3)
    with pytest.raises(DataError, match="'e1'.*index object 'index/checksum/c/0'.*missing"):
        c.verify("e1")


def test_a_single_entry_corpus_has_no_start_chunk_and_opens(tmp_path: Path) -> None:
    """zarr leaves an all-zero index chunk out: one entry at row 0 has no ``index/start`` object, legitimately."""
    e = make_entry(100, 4, seed=1)
    src = tmp_path / "src"
    src.mkdir()
    np.savez(src / "only.npz", **e)
    convert([str(src)], str(tmp_path / "one.zarr"), chunk_rows=16, shard_rows=64, workers=1, progress=False)
    assert not (tmp_path / "one.zarr" / "index" / "start" / "c" / "0").exists()
    c = open_corpus(tmp_path / "one.zarr")
    np.testing.assert_array_equal(c["only"]["X"][:], e["X"])


# ----------------------------------------------------------------------------- plain Zarr data: absent is fill


def test_plain_zarr_data_still_reads_absent_chunks_as_fill(tmp_path: Path) -> None:
    """Data zarr-python wrote (write_corpus fixtures, any plain Zarr group) leaves all-fill chunks out:
    an absent chunk or shard there is the fill value, as in any Zarr array."""
    e = {"X": np.zeros((300, 4), np.float32), "Y": np.arange(300, dtype=np.int64)}
    e["X"][200:210] = 5.0
    write_corpus(tmp_path / "w.zarr", {"a": e}, chunk_rows=32, shard_rows=64)
    assert not (tmp_path / "w.zarr" / "X" / "c" / "0" / "0").exists()  # all zeros: never written
    c = open_corpus(tmp_path / "w.zarr")
    assert not any(r.complete for r in c._readers)
    out = c.read_windows([0, 0], [0, 195], 20)
    np.testing.assert_array_equal(out["X"][0], 0)
    np.testing.assert_array_equal(out["X"][1], e["X"][195:215])
    # plain Zarr (no zarrmux index): one entry per group, the chunk loader path
    g = zarr.open_group(tmp_path / "p.zarr", mode="w")
    a = g.create_array("X", shape=(200, 2), dtype="i4", chunks=(10, 2), shards=(50, 2), fill_value=-7)
    a[60:70] = 1
    p = open_corpus(tmp_path / "p.zarr")
    out = p.read_windows([0, 0], [0, 55], 20)["X"]
    np.testing.assert_array_equal(out[0], -7)
    np.testing.assert_array_equal(out[1][5:15], 1)
    np.testing.assert_array_equal(out[1][15:], -7)


# ----------------------------------------------------------------------------- remote: 404


@pytest.fixture(scope="module")
def served(made: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    """A loopback HTTP server in its own process (``python -m zarrmux.testing ROOT 0``) serving a partly
    uploaded corpus (two shards answer 404) and one whose ``index/start`` chunk answers 404."""
    path, truth = made
    root = tmp_path_factory.mktemp("srv")
    shutil.copytree(path, root / "partial.zarr")
    _shard(root / "partial.zarr", "X", 3).unlink()
    _shard(root / "partial.zarr", "Y", 6).unlink()  # rows 768:896, entry e2
    shutil.copytree(path, root / "noindex.zarr")
    (root / "noindex.zarr" / "index" / "start" / "c" / "0").unlink()
    proc = subprocess.Popen([sys.executable, "-m", "zarrmux.testing", str(root), "0"], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}", truth
    finally:
        proc.terminate()
        proc.wait()


@pytest.mark.parametrize("backend", ["obstore", "fsspec"])
def test_a_404_is_a_data_error_with_both_backends(served: tuple[str, dict], backend: str) -> None:
    url, truth = served
    c = open_corpus(f"{url}/partial.zarr", backend=backend, cache_bytes=0)
    assert all(r.complete for r in c._readers)
    _same(c, truth, "e0", 100)
    with pytest.raises(DataError) as err:
        _read(c, "e1", 50)
    _names_all(str(err.value), "missing data", url, "'e1'", "key 'X'", "object X/c/3/0", "404")
    with pytest.raises(DataError) as err:
        _read(c, "e2", 10, keys=("Y",))
    _names_all(str(err.value), "'e2'", "key 'Y'", "object Y/c/6", "404")
    _same(c, truth, "e1", 300)
    with pytest.raises(CorpusError, match="index object 'index/start/c/0' is missing"):
        open_corpus(f"{url}/noindex.zarr", backend=backend)
