"""The read path: exact windows of uncompressed keys, chunk arenas of compressed keys, shared by threads."""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from zarrmux import shard_format as fmt
from zarrmux.conversion import convert
from zarrmux.corpus import open_corpus
from zarrmux.exceptions import DataError
from zarrmux.testing import make_entry, write_corpus

N = 16


def _truth(k: int = 5, rows: int = 700, features: int = 8) -> dict[str, dict[str, np.ndarray]]:
    return {f"e{i}": make_entry(rows + 37 * i, features, seed=i, quantize=False) for i in range(k)}


def _windows(c: Any, n: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ents = rng.integers(0, len(c), count)
    starts = np.array([rng.integers(0, int(c.rows[e]) - n + 1) for e in ents])
    return ents, starts


def _check(c: Any, truth: dict, ents: np.ndarray, starts: np.ndarray, n: int) -> None:
    out = c.read_windows(ents, starts, n)
    for k in c.keys:
        for b, (e, s) in enumerate(zip(ents.tolist(), starts.tolist())):
            np.testing.assert_array_equal(out[k][b], truth[c.names[e]][k][s : s + n], err_msg=f"{k} entry {e} start {s}")


def _converted(tmp_path: Path, truth: dict, codec: str, chunk_rows: int, shard_rows: int, name: str = "c.zarr") -> Path:
    """``truth`` written as NPZ archives and converted by the real converter."""
    src = tmp_path / f"src_{name}"
    src.mkdir()
    for entry, arrays in truth.items():
        np.savez(src / f"{entry}.npz", **arrays)
    path = tmp_path / name
    convert([str(src)], str(path), codec=codec, chunk_rows=chunk_rows, shard_rows=shard_rows, workers=1, progress=False)
    return path


@pytest.fixture
def plain(tmp_path: Path) -> tuple[Path, dict]:
    """Uncompressed X and Y, crc32c per chunk, small chunks and shards (windows cross both)."""
    truth = _truth()
    return _converted(tmp_path, truth, "none", 32, 256), truth


def _x_shard(path: Path, shard: int) -> Path:
    return path / "X" / "c" / str(shard) / "0"


# ----------------------------------------------------------------------------- exact windows


def test_uncompressed_keys_are_read_as_exact_windows(plain: tuple[Path, dict]) -> None:
    path, truth = plain
    c = open_corpus(path)
    assert set(c._exact) == {"X", "Y"} and not c._arena
    for n in (1, 16, 33, 100):  # inside a chunk, across chunks, across shards
        ents, starts = _windows(c, n, 200, seed=n)
        _check(c, truth, ents, starts, n)
    assert all(e.enabled for e in c._exact.values())


def test_a_corrupt_uncompressed_chunk_fails_only_the_windows_that_need_it(plain: tuple[Path, dict]) -> None:
    path, truth = plain
    f = _x_shard(path, 1)  # rows 256..511 of X
    data = bytearray(f.read_bytes())
    stride = 32 * 8 * 4 + 4
    data[3 * stride + 100] ^= 0x01  # inner chunk 3 of shard 1: rows 352..383
    f.write_bytes(bytes(data))
    c = open_corpus(path)
    # an entry at rows 0.. of shard 0 reads; so do the chunks of shard 1 around the bad one
    e0 = c.names.index("e0")
    _check(c, truth, np.array([e0]), np.array([10]), N)
    bad_entry = next(i for i, nm in enumerate(c.names) if c._off["X"][i] <= 360 < c._off["X"][i] + c.rows[i])
    lo = 360 - int(c._off["X"][bad_entry])
    with pytest.raises(DataError) as err:
        c.read_windows([bad_entry], [lo], N)
    msg = str(err.value)
    assert repr(c.names[bad_entry]) in msg and "'X'" in msg and "inner chunk 3" in msg and "crc32c" in msg
    # the same process keeps refusing it (the chunk is never marked as checked)
    with pytest.raises(DataError):
        c.read_windows([bad_entry], [lo], N, keys=["X"])
    before = lo - 40 if lo >= 40 else lo + 40
    _check(c, truth, np.array([bad_entry]), np.array([before]), 8)  # the entry's other chunks still read


def test_a_truncated_uncompressed_shard_is_a_data_error(plain: tuple[Path, dict]) -> None:
    path, _ = plain
    f = _x_shard(path, 0)
    data = f.read_bytes()
    index_nbytes = 16 * 8 + 4
    f.write_bytes(data[: 2 * (32 * 32 + 4)] + data[-index_nbytes:])  # two chunks of data, the whole index
    c = open_corpus(path)
    with pytest.raises(DataError, match=r"truncated|outside"):
        c.read_windows([0], [0], N)


def test_a_shard_not_laid_out_contiguously_goes_through_the_chunk_path(tmp_path: Path) -> None:
    """Uncompressed data written by zarr-python with a different inner-chunk order still reads right."""
    truth = _truth(3)
    path = _converted(tmp_path, truth, "none", 32, 256)
    # rewrite shard 0 of X with its first two inner chunks swapped (the index says where each is)
    f = _x_shard(path, 0)
    data = f.read_bytes()
    cps = 8
    index = np.frombuffer(data[-(16 * cps + 4) : -4], dtype="<u8").reshape(cps, 2).copy()
    chunks = [data[int(o) : int(o) + int(nb)] for o, nb in index if o != fmt.EMPTY]
    order = [1, 0] + list(range(2, len(chunks)))
    body, offset = b"", 0
    for i in order:
        index[i] = (offset, len(chunks[i]))
        body += chunks[i]
        offset += len(chunks[i])
    ib = index.tobytes()
    f.write_bytes(body + ib + struct.pack("<I", fmt.crc32c(ib)))
    c = open_corpus(path)
    ents, starts = _windows(c, N, 100, seed=1)
    _check(c, truth, ents, starts, N)
    assert not c._exact["X"].enabled  # found out, and read the general way
    # zarr-python leaves all-fill chunks out of a shard (labels start with zeros): also the general way
    other = tmp_path / "zarr_python.zarr"
    write_corpus(other, truth, chunk_rows=32, shard_rows=256, codec="none")
    c = open_corpus(other)
    _check(c, truth, *_windows(c, N, 100, seed=2), N)


def test_exact_windows_agree_with_zarr_python(plain: tuple[Path, dict]) -> None:
    path, _ = plain
    c = open_corpus(path)
    X = zarr.open_array(str(path / "X"), mode="r")
    g = np.array([0, 31, 32, 255, 256, 300])
    g = g[g + N <= X.shape[0]]
    out = c._exact["X"].read(g, N)
    assert out is not None
    for b, s in enumerate(g.tolist()):
        np.testing.assert_array_equal(out[b], X[s : s + N])


# ----------------------------------------------------------------------------- arenas


@pytest.mark.parametrize("cache_bytes", [0, 40 * 1024, None], ids=["minimal", "small", "default"])
def test_compressed_keys_through_the_arena(tmp_path: Path, cache_bytes: int | None) -> None:
    truth = _truth()
    path = tmp_path / "lz4.zarr"
    write_corpus(path, truth, chunk_rows=32, shard_rows=256, codec="lz4")
    c = open_corpus(path, cache_bytes=cache_bytes)
    assert set(c._arena) == {"X", "Y"} and not c._exact
    for n in (1, 16, 40):
        ents, starts = _windows(c, n, 150, seed=n)
        _check(c, truth, ents, starts, n)
    if cache_bytes is None:
        assert c._arena["Y"].resident  # labels fit whole
        assert c._arena["Y"].hits > 0


def test_threads_share_an_arena_and_exact_windows(tmp_path: Path) -> None:
    """Many threads reading at once through a small arena (slots reused under contention) get the right rows."""
    truth = _truth(6, rows=900)
    lz4 = _converted(tmp_path, truth, "lz4", 16, 128, "lz4.zarr")
    none = _converted(tmp_path, truth, "none", 16, 128, "none.zarr")
    errors: list[BaseException] = []
    for path in (lz4, none):
        c = open_corpus(path, cache_bytes=0)  # the fewest slots: reused all the time
        work = [_windows(c, N, 20, seed=s) for s in range(48)]

        def run(items: list[tuple[np.ndarray, np.ndarray]]) -> None:
            try:
                for ents, starts in items:
                    _check(c, truth, ents, starts, N)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(work[i::6],)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[0]
        if path == none:
            assert c._exact["X"].enabled
        else:  # slots were reused while other threads read
            arena = c._arena["X"]
            assert arena.n_slots < arena.reader.n_chunks and arena.misses > arena.n_slots


def test_a_corrupt_compressed_chunk_is_a_data_error_and_frees_its_slot(tmp_path: Path) -> None:
    truth = _truth(2)
    path = tmp_path / "lz4.zarr"
    write_corpus(path, truth, chunk_rows=32, shard_rows=256, codec="lz4")
    f = _x_shard(path, 0)
    data = bytearray(f.read_bytes())
    index = np.frombuffer(bytes(data[-(16 * 8 + 4) : -4]), dtype="<u8").reshape(8, 2)
    off, nb = (int(v) for v in index[2])
    data[off + nb // 2] ^= 0xFF  # inner chunk 2: rows 64..95
    f.write_bytes(bytes(data))
    c = open_corpus(path)
    for _ in range(2):  # the failed load leaves no half-filled slot behind
        with pytest.raises(DataError, match=r"'e0'.*'X'.*inner chunk 2"):
            c.read_windows([0], [70], N)
    _check(c, truth, np.array([0, 0]), np.array([0, 120]), N)


# ----------------------------------------------------------------------------- format


def test_shard_format_round_trip_and_errors() -> None:
    index = np.array([[0, 10], [10, 10], [fmt.EMPTY, fmt.EMPTY]], dtype="<u8")
    raw = index.tobytes() + struct.pack("<I", fmt.crc32c(index.tobytes()))
    np.testing.assert_array_equal(fmt.parse_index(raw, 3, True), index)
    assert fmt.is_contiguous(index, 10)
    assert not fmt.is_contiguous(index, 12)
    with pytest.raises(fmt.FormatError, match="crc32c mismatch"):
        fmt.parse_index(raw[:-1] + bytes([raw[-1] ^ 1]), 3, True)
    with pytest.raises(fmt.FormatError, match="too short"):
        fmt.parse_index(raw[:-5], 3, True)
    body = os.urandom(100)
    assert fmt.split_crc(body + struct.pack("<I", fmt.crc32c(body))) == body
    with pytest.raises(fmt.FormatError, match="crc32c mismatch"):
        fmt.split_crc(body + b"\0\0\0\0")


def test_blocks_intact_checks_a_run_of_chunks_in_one_sum() -> None:
    rng = np.random.default_rng(5)
    stride, lead = 4 + 1000, 17
    for count in (1, 2, 9):
        buf = bytearray(lead + count * stride)
        for i in range(count):
            at = lead + i * stride
            body = rng.integers(0, 256, stride - 4, dtype=np.uint8).tobytes()
            buf[at : at + stride] = body + struct.pack("<I", fmt.crc32c(body))
        assert fmt.blocks_intact(buf, lead, count, stride)
        assert not fmt.blocks_intact(buf, lead, count + 1, stride)  # past the end
        assert not fmt.blocks_intact(buf, lead - 1, count, stride)  # misaligned
        for byte in rng.integers(lead, len(buf), 20).tolist():  # any flipped bit, data or crc, in any block
            bad = bytearray(buf)
            bad[byte] ^= 1 << int(rng.integers(0, 8))
            assert not fmt.blocks_intact(bad, lead, count, stride)
