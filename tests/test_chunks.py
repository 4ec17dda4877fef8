"""The chunk reader: plain Zarr data in every mode, corrupt data, the cache."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import zarr

from zarrmux.array_reader import ArrayReader
from zarrmux.chunk_cache import ChunkCache
from zarrmux.shard_format import EMPTY as MAX_UINT_64
from zarrmux.corpus import open_corpus
from zarrmux.exceptions import CorpusError, DataError
from zarrmux.testing import make_entry, write_corpus


def _check_all_windows(c, truth: dict, n: int, step: int = 1) -> None:  # type: ignore[no-untyped-def]
    ents, starts = [], []
    for e, _name in enumerate(c.names):
        for s in range(0, int(c.rows[e]) - n + 1, step):
            ents.append(e)
            starts.append(s)
    out = c.read_windows(ents, starts, n)
    for k in c.keys:
        for b, (e, s) in enumerate(zip(ents, starts)):
            np.testing.assert_array_equal(out[k][b], truth[c.names[e]][k][s : s + n], err_msg=f"{k} {e} {s}")


# ----------------------------------------------------------------------------- cache


def test_cache_lru_by_bytes() -> None:
    cache = ChunkCache(100)
    a = {i: np.full(10, i, dtype=np.int32) for i in range(5)}  # 40 bytes each
    cache.put("a", a[0])
    cache.put("b", a[1])
    assert cache.get("a") is a[0]  # a is now most recent
    cache.put("c", a[2])  # 120 bytes > 100: evicts b (least recent)
    assert cache.get("b") is None and cache.get("a") is a[0] and cache.get("c") is a[2]
    assert cache.nbytes == 80 and len(cache) == 2
    cache.put("big", np.zeros(200, np.uint8))  # larger than the budget: not stored
    assert cache.get("big") is None and cache.nbytes == 80
    cache.put("a", a[3])  # replace
    assert cache.get("a") is a[3] and cache.nbytes == 80
    assert cache.hits >= 4 and cache.misses >= 2
    cache.clear()
    assert cache.nbytes == 0 and cache.get("a") is None
    with pytest.raises(ValueError):
        ChunkCache(-1)
    zero = ChunkCache(0)
    zero.put("x", np.zeros(1))
    assert zero.get("x") is None


# ----------------------------------------------------------------------------- modes


def test_zarrmux_arrays_use_the_shard_path(tmp_path: Path) -> None:
    truth = {f"e{i}": make_entry(200 + 50 * i, 3, seed=i) for i in range(3)}
    write_corpus(tmp_path / "c.zarr", truth, chunk_rows=16, shard_rows=64)
    c = open_corpus(tmp_path / "c.zarr")
    assert all(r.mode == "shard" and r.codecs.compressor == "blosc" for r in c._readers)
    assert c._readers[0].chunks_per_shard == 4 and c._readers[0].index_at_end
    _check_all_windows(c, truth, 16, step=5)


def test_codec_none_and_zstd(tmp_path: Path) -> None:
    truth = {f"e{i}": make_entry(150 + 7 * i, 3, seed=i) for i in range(3)}
    for codec in ("none", "zstd"):
        write_corpus(tmp_path / f"{codec}.zarr", truth, chunk_rows=16, shard_rows=32, codec=codec)
        c = open_corpus(tmp_path / f"{codec}.zarr")
        assert {r.codecs.compressor for r in c._readers} == {"none" if codec == "none" else "blosc"}
        _check_all_windows(c, truth, 9, step=3)


def _plain_group(path: Path, entries: dict, *, zarr_format: int = 3, chunks: int = 40, **kw) -> None:  # type: ignore[no-untyped-def]
    root = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    for name, arrays in entries.items():
        g = root.create_group(name) if name else root
        for k, a in arrays.items():
            g.create_array(k, shape=a.shape, dtype=a.dtype, chunks=(chunks, *a.shape[1:]), **kw)[...] = a


def test_plain_v3_group_is_one_entry(tmp_path: Path) -> None:
    e = make_entry(333, 5, seed=3)
    _plain_group(tmp_path / "song.zarr", {"": e})
    zarr.open_group(tmp_path / "song.zarr", mode="a").create_array("scalar", shape=(), dtype="f8")
    zarr.open_group(tmp_path / "song.zarr", mode="a").create_array("other", shape=(5, 2), dtype="f8")
    c = open_corpus(tmp_path / "song.zarr")
    assert c.names == ["song"] and c.keys == ("X", "Y") and list(c.rows) == [333]
    assert {r.mode for r in c._readers} == {"chunk"}  # zstd, one object per chunk
    _check_all_windows(c, {"song": e}, 17, step=4)
    np.testing.assert_array_equal(c[0]["X"][:], e["X"])


def test_plain_group_of_groups_v2_and_v3(tmp_path: Path) -> None:
    truth = {f"s{i}": make_entry(100 + 41 * i, 4, seed=i) for i in range(4)}
    for fmt, mode in ((2, "zarr"), (3, "chunk")):
        _plain_group(tmp_path / f"v{fmt}.zarr", truth, zarr_format=fmt, chunks=30)
        c = open_corpus(tmp_path / f"v{fmt}.zarr")
        assert c.names == list(truth) and c.keys == ("X", "Y")
        np.testing.assert_array_equal(c.rows, [len(t["Y"]) for t in truth.values()])
        assert {r.mode for r in c._readers} == {mode}
        _check_all_windows(c, truth, 13, step=7)
        with pytest.raises(KeyError, match="'W'"):
            open_corpus(tmp_path / f"v{fmt}.zarr", keys=["W"])


def test_plain_unusual_layouts_fall_back_to_zarr(tmp_path: Path) -> None:
    e = make_entry(250, 6, seed=9)
    root = zarr.open_group(tmp_path / "odd.zarr", mode="w")
    # trailing axis split into chunks, and a transpose codec: zarr-python reads them
    root.create_array("X", shape=e["X"].shape, dtype="f4", chunks=(32, 3))[...] = e["X"]
    root.create_array("Y", shape=e["Y"].shape, dtype="i8", chunks=(64,), compressors=None)[...] = e["Y"]
    root.create_array(
        "T", shape=e["X"].shape, dtype="f4", chunks=(16, 6), shards=(64, 6),
        compressors=zarr.codecs.GzipCodec(),
    )[...] = e["X"]
    e["T"] = e["X"]
    c = open_corpus(tmp_path / "odd.zarr")
    modes = {k: c._readers[int(c._rid[k][0])].mode for k in c.keys}
    assert modes == {"X": "zarr", "Y": "chunk", "T": "shard"}
    _check_all_windows(c, {"odd": e}, 21, step=3)


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
def test_xarray_dataset(tmp_path: Path) -> None:
    import xarray as xr
    truth = {}
    root = tmp_path / "xr.zarr"
    for i, rows in enumerate((120, 75)):
        e = make_entry(rows, 4, seed=i)
        ds = xr.Dataset(
            {"X": (("time", "feature"), e["X"]), "Y": (("time",), e["Y"])},
            coords={"time": np.arange(rows, dtype=np.float64) * 0.01, "feature": np.arange(4)},
        )
        ds.to_zarr(root, group=f"take{i}", mode="w")
        e["time"] = np.arange(rows, dtype=np.float64) * 0.01
        truth[f"take{i}"] = e
    c = open_corpus(root)
    assert c.names == ["take0", "take1"] and set(c.keys) == {"X", "Y", "time"}
    _check_all_windows(c, truth, 8, step=5)
    single = open_corpus(root / "take1", keys=["X"])
    assert single.names == ["take1"]
    np.testing.assert_array_equal(single[0]["X"][3:9], truth["take1"]["X"][3:9])


def test_fill_chunk_and_missing_shard(tmp_path: Path) -> None:
    root = zarr.open_group(tmp_path / "f.zarr", mode="w")
    a = root.create_array("X", shape=(200, 2), dtype="i4", chunks=(10, 2), shards=(50, 2), fill_value=-7)
    a[60:70] = 1  # only one inner chunk of one shard is stored
    r = ArrayReader(a, "X")
    assert r.mode == "shard"
    c = open_corpus(tmp_path / "f.zarr")
    out = c.read_windows([0, 0, 0], [0, 55, 150], 20)["X"]
    np.testing.assert_array_equal(out[0], -7)
    np.testing.assert_array_equal(out[1][:5], -7)
    np.testing.assert_array_equal(out[1][5:15], 1)
    np.testing.assert_array_equal(out[1][15:], -7)
    np.testing.assert_array_equal(out[2], -7)


# ----------------------------------------------------------------------------- corrupt data


def _corpus(tmp_path: Path) -> tuple[Path, dict]:
    truth = {f"song{i}": make_entry(128, 8, seed=i) for i in range(3)}
    path = tmp_path / "c.zarr"
    write_corpus(path, truth, chunk_rows=16, shard_rows=64)  # entry i: shards 2i, 2i+1
    return path, truth


def _index(shard: Path, cps: int = 4) -> np.ndarray:
    raw = shard.read_bytes()
    return np.frombuffer(raw[-(16 * cps + 4) : -4], dtype="<u8").reshape(cps, 2)


def test_corrupt_shard_index(tmp_path: Path) -> None:
    path, truth = _corpus(tmp_path)
    shard = path / "X" / "c" / "3" / "0"  # song1, rows 64:128
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF
    shard.write_bytes(bytes(raw))
    c = open_corpus(path)
    # other entries still read fine
    np.testing.assert_array_equal(c.read_windows([0, 2], [3, 100], 20)["X"][1], truth["song2"]["X"][100:120])
    with pytest.raises(DataError, match=r"entry 'song1', key 'X', chunk X/c/3/0.*crc32c"):
        c.read_windows([0, 1], [0, 70], 16)
    # the lazy-array path says the same
    with pytest.raises(DataError, match=r"song1.*X/c/3/0"):
        c["song1"]["X"][:]


def test_corrupt_blosc_chunk(tmp_path: Path) -> None:
    path, truth = _corpus(tmp_path)
    shard = path / "X" / "c" / "4" / "0"  # song2, rows 0:64
    off, nb = (int(v) for v in _index(shard)[1])  # inner chunk 1: rows 16:32
    assert off != MAX_UINT_64
    raw = bytearray(shard.read_bytes())
    raw[off + 4 : off + 8] = struct.pack("<I", 999_999)  # decoded size in the blosc header
    shard.write_bytes(bytes(raw))
    c = open_corpus(path)
    np.testing.assert_array_equal(c.read_windows([2], [0], 16)["X"][0], truth["song2"]["X"][:16])
    with pytest.raises(DataError, match=r"entry 'song2', key 'X', chunk X/c/4/0 \(inner chunk 1.*chunk crc32c mismatch"):
        c.read_windows([2], [10], 16)


def test_garbage_chunk_payload(tmp_path: Path) -> None:
    path, truth = _corpus(tmp_path)
    shard = path / "X" / "c" / "0" / "0"  # song0
    off, nb = (int(v) for v in _index(shard)[2])
    raw = bytearray(shard.read_bytes())
    raw[off + 16 : off + nb] = np.random.default_rng(0).integers(0, 256, nb - 16, dtype=np.uint8).tobytes()
    shard.write_bytes(bytes(raw))
    c = open_corpus(path)
    # blosc-lz4 has no checksum of its own: the chunk's crc32c refuses the garbage
    with pytest.raises(DataError, match=r"entry 'song0', key 'X', chunk X/c/0/0 \(inner chunk 2.*chunk crc32c mismatch"):
        c.read_windows([0], [32], 16)
    np.testing.assert_array_equal(c.read_windows([0], [0], 16)["X"][0], truth["song0"]["X"][:16])
    with pytest.raises(DataError, match="song0"):
        c.verify("song0")
    c.verify("song1")  # intact


def test_truncated_shard(tmp_path: Path) -> None:
    path, _ = _corpus(tmp_path)
    shard = path / "Y" / "c" / "1"  # Y is 1-D: key Y/c/1 (song0 rows 64:128)
    raw = shard.read_bytes()
    shard.write_bytes(raw[: len(raw) // 2])
    c = open_corpus(path)
    with pytest.raises(DataError, match=r"entry 'song0', key 'Y', chunk Y/c/1"):
        c.read_windows([0], [60], 16)


def test_chunk_bytes_beyond_the_end(tmp_path: Path) -> None:
    path, _ = _corpus(tmp_path)
    # rewrite a shard so its index (valid crc) points past the end of the object
    import google_crc32c

    shard = path / "X" / "c" / "5" / "0"
    raw = shard.read_bytes()
    idx = _index(shard).copy()
    idx[3, 0] = len(raw) + 100
    body = idx.astype("<u8").tobytes()
    shard.write_bytes(raw[: -(len(body) + 4)] + body + struct.pack("<I", google_crc32c.value(body)))
    c = open_corpus(path)
    with pytest.raises(DataError, match=r"song2.*X/c/5/0 \(inner chunk 3.*truncated"):
        c.read_windows([2], [112], 16)


def test_corrupt_plain_chunk(tmp_path: Path) -> None:
    e = make_entry(100, 4, seed=1)
    _plain_group(tmp_path / "p.zarr", {"a": e, "b": e}, chunks=25)
    (tmp_path / "p.zarr" / "b" / "X" / "c" / "2" / "0").write_bytes(b"\x28\xb5\x2f\xfd garbage garbage")
    c = open_corpus(tmp_path / "p.zarr")
    with pytest.raises(DataError, match=r"entry 'b', key 'X', chunk b/X/c/2/0.*zstd"):
        c.read_windows([0, 1], [40, 45], 10)
    np.testing.assert_array_equal(c.read_windows([0], [40], 10)["X"][0], e["X"][40:50])


def test_not_a_corpus_metadata(tmp_path: Path) -> None:
    path, _ = _corpus(tmp_path)
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["zarrmux"] = {"nokeys": 1}
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(CorpusError, match="c.zarr"):
        open_corpus(path)


def test_recycled_buffers_never_overwrite_held_chunks(tmp_path: Path) -> None:
    from zarrmux.chunk_loader import load_chunks

    truth = {f"e{i}": make_entry(512, 4, seed=i) for i in range(4)}
    write_corpus(tmp_path / "r.zarr", truth, chunk_rows=16, shard_rows=64)
    c = open_corpus(tmp_path / "r.zarr", keys=["X"], cache_bytes=16 * 256)  # 16 chunks of 256 bytes (16 rows x 4 float32)
    reader = c._readers[0]
    held = load_chunks([(reader, 0)], c.cache)[(reader.uid, 0)]  # kept by us while it is evicted
    snapshot = held.copy()
    for cc in range(1, reader.n_chunks):  # stream every chunk through the tiny cache
        load_chunks([(reader, cc)], c.cache)
    assert c.cache.get((reader.uid, 0)) is None  # evicted long ago
    assert sum(len(v) for v in c.cache._free.values()) > 0  # and buffers were recycled
    np.testing.assert_array_equal(held, snapshot)  # but not the one we hold
    assert not held.flags.writeable
    rng = np.random.default_rng(0)
    ents = rng.integers(0, 4, 200)
    starts = rng.integers(0, 512 - 20, 200)
    out = c.read_windows(ents, starts, 20)["X"]
    for b in range(200):
        np.testing.assert_array_equal(out[b], truth[f"e{ents[b]}"]["X"][starts[b] : starts[b] + 20])


@pytest.mark.parametrize("crc", [True, False], ids=["crc32c", "no-crc"])
def test_inner_chunk_crc_optional(tmp_path: Path, crc: bool) -> None:
    """Shards with and without a per-chunk crc32c (corpora written before it) both take the fast path."""
    from zarr.codecs import BloscCodec, Crc32cCodec

    e = make_entry(300, 4, seed=3)
    g = zarr.open_group(tmp_path / "g.zarr", mode="w")
    comp = (BloscCodec(cname="lz4"), Crc32cCodec()) if crc else (BloscCodec(cname="lz4"),)
    for k, a in e.items():
        g.create_array(k, shape=a.shape, dtype=a.dtype, chunks=(16, *a.shape[1:]), shards=(64, *a.shape[1:]), compressors=comp)[...] = a
    c = open_corpus(tmp_path / "g.zarr")
    assert {(r.mode, r.codecs.crc) for r in c._readers} == {("shard", crc)}
    out = c.read_windows([0, 0], [0, 250], 40)
    np.testing.assert_array_equal(out["X"][1], e["X"][250:290])
    np.testing.assert_array_equal(out["Y"][0], e["Y"][:40])
