"""Round trips: real NPZ/NPY files -> zarrmux.convert -> every value read back equals the source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

import zarrmux
from zarrmux import layout
from zarrmux.chunking import default_chunk_rows
from zarrmux.conversion import ConversionReport, convert
from zarrmux.convert_units import plan_units
from zarrmux.corpus_arrays import open_parts
from zarrmux.entry_checksum import checksum_arrays
from zarrmux.key_codecs import make_compressors
from zarrmux.testing import make_entry, make_npz_archives
from zarrmux.verify import verify


def read_entries(dest: Path | str) -> dict[str, dict[str, np.ndarray]]:
    """Every committed entry, read with plain zarr-python."""
    root = zarr.open_group(str(dest), mode="r")
    meta = layout.read_meta(root)
    idx = layout.read_index(root)
    out = {}
    for name, start, rows in zip(idx["name"], idx["start"], idx["rows"]):
        out[str(name)] = {k: np.asarray(root[k][int(start) : int(start) + int(rows)]) for k in meta.keys}
    return out


def assert_same(got: dict[str, dict[str, np.ndarray]], want: dict[str, dict[str, np.ndarray]]) -> None:
    assert list(got) == list(want)
    for name in want:
        assert sorted(got[name]) == sorted(want[name]), name
        for k in want[name]:
            assert got[name][k].dtype == want[name][k].dtype, (name, k)
            assert got[name][k].shape == want[name][k].shape, (name, k)
            np.testing.assert_array_equal(got[name][k], want[name][k], err_msg=f"{name}/{k}")


def _arrays(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "f16": rng.standard_normal((rows, 3)).astype(np.float16),
        "f32": rng.standard_normal((rows, 2, 5)).astype(np.float32),
        "f64": rng.standard_normal(rows),
        "i8": rng.integers(-128, 127, (rows, 7), dtype=np.int8),
        "u16": rng.integers(0, 60000, rows, dtype=np.uint16),
        "i64": rng.integers(-(2**40), 2**40, (rows, 1)),
        "b": rng.random((rows, 4)) < 0.3,
    }


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_npz_round_trip_many_dtypes_and_shapes(tmp_path: Path, compressed: bool) -> None:
    save = np.savez_compressed if compressed else np.savez
    want = {}
    for i, rows in enumerate([1, 700, 1500, 333]):
        arrays = _arrays(rows, i)
        save(tmp_path / f"e{i}.npz", **arrays)
        want[f"e{i}"] = arrays
    # small shards and chunks so entries straddle shards and units
    report = convert([tmp_path / f"e{i}.npz" for i in range(4)], tmp_path / "c.zarr", chunk_rows=64, shard_rows=512, workers=1)
    assert isinstance(report, ConversionReport)
    assert report.entries == 4 and report.rows == 1 + 700 + 1500 + 333
    assert report.bytes_read == sum(a.nbytes for e in want.values() for a in e.values())
    assert report.bytes_written > 0 and report.units >= 2
    assert_same(read_entries(tmp_path / "c.zarr"), want)
    # checksums in the index are those of the source data
    root = zarr.open_group(str(tmp_path / "c.zarr"))
    idx = layout.read_index(root)
    assert [str(c) for c in idx["checksum"]] == [checksum_arrays(want[n]) for n in want]
    assert all(str(s).endswith(f"e{i}.npz") for i, s in enumerate(idx["source"]))


def test_npy_groups_suffix_and_dir_rules(tmp_path: Path) -> None:
    want = {}
    (tmp_path / "sfx").mkdir()
    for i in range(3):
        a = _arrays(400 + 50 * i, 10 + i)
        want[f"song{i}"] = {"X": a["f32"], "Y": a["i64"][:, 0]}
        np.save(tmp_path / "sfx" / f"song{i}_X.npy", want[f"song{i}"]["X"])
        np.save(tmp_path / "sfx" / f"song{i}_Y.npy", want[f"song{i}"]["Y"])
    convert([tmp_path / "sfx"], tmp_path / "a.zarr", workers=1)
    assert_same(read_entries(tmp_path / "a.zarr"), want)

    for key in ("X", "Y"):
        (tmp_path / "bydir" / key).mkdir(parents=True)
        for name in want:
            np.save(tmp_path / "bydir" / key / f"{name}.npy", want[name][key])
    convert([str(tmp_path / "bydir" / "*" / "*.npy")], tmp_path / "b.zarr", group="dir", workers=1)
    assert_same(read_entries(tmp_path / "b.zarr"), want)

    # a custom rule: entry and key from a regex
    (tmp_path / "custom").mkdir()
    for name in want:
        for key in ("X", "Y"):
            np.save(tmp_path / "custom" / f"{key}-{name}.npy", want[name][key])
    convert([tmp_path / "custom"], tmp_path / "c.zarr", group=r"(?P<key>[XY])-(?P<entry>\w+)\.npy$", workers=1)
    assert_same(read_entries(tmp_path / "c.zarr"), want)


def test_keys_selection_and_defaults(tmp_path: Path) -> None:
    paths = make_npz_archives(tmp_path / "src", 3, min_rows=1000, max_rows=2000, features=8)
    convert(paths, tmp_path / "c.zarr", keys="X", workers=1)
    root = zarr.open_group(str(tmp_path / "c.zarr"))
    meta = layout.read_meta(root)
    assert list(meta.keys) == ["X"]
    # default chunking: ~32 KiB inner chunks, shards a multiple of every chunk
    assert meta.keys["X"].chunk_rows == default_chunk_rows(8 * 4)
    assert meta.shard_rows % meta.keys["X"].chunk_rows == 0
    assert root["X"].chunks == (meta.keys["X"].chunk_rows, 8)
    assert root["X"].shards == (meta.shard_rows, 8)
    got = read_entries(tmp_path / "c.zarr")
    for p in paths:
        np.testing.assert_array_equal(got[p.stem]["X"], np.load(p)["X"])


def test_readable_by_dask_and_xarray(tmp_path: Path) -> None:
    import dask.array as da
    import xarray as xr

    paths = make_npz_archives(tmp_path / "src", 2, min_rows=500, max_rows=900, features=4)
    convert(paths, tmp_path / "c.zarr", workers=1)
    want = np.concatenate([np.load(p)["X"] for p in paths])
    root = zarr.open_group(str(tmp_path / "c.zarr"))
    idx = layout.read_index(root)
    x = da.from_zarr(str(tmp_path / "c.zarr"), component="X")
    got = np.concatenate([x[int(s) : int(s) + int(r)].compute() for s, r in zip(idx["start"], idx["rows"])])
    np.testing.assert_array_equal(got, want)
    ds = xr.open_zarr(str(tmp_path / "c.zarr"), consolidated=False)
    assert ds["X"].dims == ("row", "X_1") and ds["Y"].dims == ("row",)
    s, r = int(idx["start"][1]), int(idx["rows"][1])
    np.testing.assert_array_equal(ds["Y"].isel(row=slice(s, s + r)).values, np.load(paths[1])["Y"])


def test_lazy_export_and_codecs(tmp_path: Path) -> None:
    paths = make_npz_archives(tmp_path / "src", 2, min_rows=300, max_rows=400, features=4)
    # the lazy export is the function, also after the module zarrmux.conversion is imported
    report = zarrmux.convert(paths, tmp_path / "lazy.zarr", workers=1)
    assert isinstance(report, zarrmux.ConversionReport) and report.entries == 2
    for codec in ("zstd", "none"):
        convert(paths, tmp_path / f"{codec}.zarr", codec=codec, level=1 if codec == "zstd" else None, workers=1)
        meta = layout.read_meta(zarr.open_group(str(tmp_path / f"{codec}.zarr")))
        assert meta.codec == codec
        got = read_entries(tmp_path / f"{codec}.zarr")
        np.testing.assert_array_equal(got[paths[0].stem]["X"], np.load(paths[0])["X"])


def test_plan_is_prefix_stable_and_shard_aligned(tmp_path: Path) -> None:
    from zarrmux.sources import Member, SourceEntry

    def entry(i: int, rows: int) -> SourceEntry:
        return SourceEntry(f"e{i}", (f"e{i}.npz",), {"X": Member("X", f"e{i}.npz", "X.npy", "<f4", (rows, 2))})

    es = [entry(i, r) for i, r in enumerate([100, 900, 30, 1200, 5, 5, 700])]
    plan = plan_units(es, 0, 256)
    for s, e, items in plan:
        assert s % 256 == 0
        assert items[0][1] == s and sum(x.rows for x, _ in items) == e - s
    # resuming after the first unit plans the rest exactly as before
    done = len(plan[0][2])
    again = plan_units(es[done:], plan[0][1], 256)
    assert [(s, e, [x.name for x, _ in it]) for s, e, it in again] == [(s, e, [x.name for x, _ in it]) for s, e, it in plan[1:]]


def test_progress_callable_reaches_totals(tmp_path: Path) -> None:
    paths = make_npz_archives(tmp_path / "src", 3, min_rows=200, max_rows=300, features=4)
    calls = []
    convert(paths, tmp_path / "c.zarr", workers=1, progress=lambda *a: calls.append(a))
    assert len(calls) == 3
    assert calls[-1][0] == calls[-1][1] == 3 and calls[-1][2] == calls[-1][3] > 0


@pytest.mark.parametrize("codec", ["lz4", "zstd", "none"])
@pytest.mark.parametrize("dtype, trailing", [("f4", (6,)), ("i2", (2, 3)), ("?", ())])
def test_fast_shard_encoder_is_byte_identical_to_zarr(tmp_path: Path, codec: str, dtype: str, trailing: tuple) -> None:
    """convert encodes shards itself (zarr-python is ~1 ms per inner chunk); the bytes must equal zarr's."""
    from zarrmux.shard_format import encode_shard, shard_encoder

    rng = np.random.default_rng(1)
    data = (rng.standard_normal((1000, *trailing)) * 4).round().astype(dtype) + np.ones((), dtype)
    g = zarr.open_group(str(tmp_path / "eq.zarr"), mode="w")
    a = g.create_array(
        "X", shape=(2048, *trailing), dtype=dtype, chunks=(64, *trailing), shards=(512, *trailing),
        compressors=make_compressors(codec, None, np.dtype(dtype).itemsize),
    )
    a[512:1000] = data[512:1000]  # a partial shard with a partial edge chunk
    fast = shard_encoder(a, trailing)
    assert fast is not None and fast[0] == 64
    key = "/".join(["c", "1"] + ["0"] * len(trailing))
    assert fast[2]  # zarrmux corpora store a crc32c per inner chunk
    assert encode_shard(data[512:1000], 64, 512, fast[1], fast[2]) == (tmp_path / "eq.zarr" / "X" / key).read_bytes()


# ---------------------------------------------------------------- issue 11 point 2: values, not bytes


def test_big_endian_sources_are_stored_as_their_values(tmp_path: Path) -> None:
    """Issue 11 why-2: '>f4' NPZ members and NPY files were stored byte-swapped (4.6e-41 ...)."""
    from zarrmux.corpus import open_corpus
    from zarrmux.member_reader import source_checksum
    from zarrmux.source_discovery import discover
    from zarrmux.source_headers import scan

    x = np.arange(8, dtype=">f4").reshape(4, 2) + 0.5
    y = np.arange(4, dtype=">i8") - 2
    np.savez(tmp_path / "be.npz", X=x, Y=y)
    np.save(tmp_path / "npy_X.npy", (x * 3).astype(">f4"))
    np.save(tmp_path / "npy_Y.npy", y.astype(">i8"))
    np.savez(tmp_path / "le.npz", X=(x * 5).astype("<f4"), Y=y.astype("<i8"))  # little-endian, appended
    dest = tmp_path / "be.zarr"
    convert([tmp_path / "be.npz", tmp_path / "npy_X.npy", tmp_path / "npy_Y.npy"], dest, workers=1)
    convert([tmp_path / "le.npz"], dest, workers=1)  # the same values in the other byte order: the same key dtype
    root = zarr.open_group(str(dest), mode="r")
    meta = layout.read_meta(root)
    assert meta.keys["X"].dtype == "<f4" and meta.keys["Y"].dtype == "<i8"
    corpus = open_corpus(dest)
    want = {"be": (x, y), "npy": (x * 3, y), "le": (x * 5, y)}
    for i, name in enumerate(corpus.names):
        np.testing.assert_array_equal(corpus.read_rows(i, "X", 0, 4), want[name][0])
        np.testing.assert_array_equal(corpus.read_rows(i, "Y", 0, 4), want[name][1])
    corpus.close()
    assert verify(dest, [tmp_path]) == []
    # the checksum covers values: a big-endian source and its little-endian copy agree
    (tmp_path / "copy").mkdir()
    np.savez(tmp_path / "copy" / "be.npz", X=x.astype("<f4"), Y=y.astype("<i8"))
    (be,), _ = scan(discover([tmp_path / "be.npz"])[0])
    (le,), _ = scan(discover([tmp_path / "copy" / "be.npz"])[0])
    assert source_checksum(be) == source_checksum(le)


def test_verify_proves_values_dtype_and_shape(tmp_path: Path) -> None:
    """Issue 11 why-2: editing data_type float32 -> int32 in X/zarr.json read garbage and verify said ok."""
    import json

    from zarrmux._cli import main

    np.savez(tmp_path / "a.npz", **make_entry(300, 8, seed=1))
    dest = tmp_path / "c.zarr"
    convert([tmp_path / "a.npz"], dest, workers=1)
    assert verify(dest, [tmp_path / "a.npz"]) == []
    doc = dest / "X" / "zarr.json"
    meta = json.loads(doc.read_text())
    assert meta["data_type"] == "float32"
    meta["data_type"] = "int32"
    doc.write_text(json.dumps(meta))
    problems = [str(m) for m in verify(dest)]
    assert any(p.startswith("X/zarr.json: the array's data type is int32, the corpus metadata says float32") for p in problems)
    assert any(p.startswith("a: stored data does not match its checksum") for p in problems)
    assert main(["verify", str(dest)]) == 1
    from zarrmux.exceptions import CorpusError

    with pytest.raises(CorpusError, match=r"X/zarr\.json: the array's data type is int32"):
        open_parts(zarr.open_group(str(dest), mode="r"))
