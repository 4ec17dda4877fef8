"""``codec='auto'``: the codec of every key chosen from a sample, recorded per key, kept on append.

Full-precision float features (``quantize=False``) save ~5 % with lz4, so ``X``
is stored uncompressed; int64 labels compress ~50-180x, so beside 16 features
(11 % of the bytes) ``Y`` keeps lz4, while beside 128 (1.5 %) compressing
them would save under 2 % of the corpus and they are stored uncompressed too;
quantised features (2.2x) keep lz4.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import zarr

from zarrmux import _cli_convert, convert, key_codecs, key_specs, layout, open_corpus, shard_format
from zarrmux._cli import main
from zarrmux.exceptions import CorpusError, DataError
from zarrmux.source_discovery import discover
from zarrmux.source_headers import scan
from zarrmux.testing import make_npz_archives, write_corpus

ROWS = dict(min_rows=600, max_rows=1100, features=16)


@pytest.fixture(scope="module")
def full_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("full")
    make_npz_archives(d, 3, quantize=False, seed=1, **ROWS)
    return d


@pytest.fixture(scope="module")
def quant_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("quant")
    make_npz_archives(d, 2, quantize=True, seed=2, prefix="q", **ROWS)
    return d


@pytest.fixture(scope="module")
def auto_corpus(full_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Full-precision archives converted with the default codec (read-only for the tests using it)."""
    dest = tmp_path_factory.mktemp("auto") / "c.zarr"
    report = convert(full_src, dest, workers=1)
    assert report.codecs == {"X": "none", "Y": "lz4"}
    return dest


def sources(src: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for p in sorted(src.glob("*.npz")):
        with np.load(p) as z:
            out[p.stem] = {k: z[k] for k in z.files}
    return out


def entry_rows(dest: Path) -> dict[str, tuple[int, int]]:
    idx = layout.read_index(zarr.open_group(str(dest), mode="r"))
    return {str(n): (int(s), int(r)) for n, s, r in zip(idx["name"], idx["start"], idx["rows"])}


def inner_codecs(arr: zarr.Array) -> list[str]:
    """The names of the inner-chunk codecs of a sharded array (blosc with its cname)."""
    sc = arr.metadata.codecs[0]
    return [f"blosc-{c.cname.name}" if type(c).__name__ == "BloscCodec" else type(c).__name__ for c in sc.codecs]


# ---------------------------------------------------------------- the rule


def test_threshold_rule_and_cli_constant() -> None:
    assert key_codecs.AUTO_MIN_SAVING == 0.25
    assert layout.AUTO_MIN_SAVING == key_codecs.AUTO_MIN_SAVING  # README names it zarrmux.layout.AUTO_MIN_SAVING
    assert _cli_convert.AUTO_MIN_SAVING == key_codecs.AUTO_MIN_SAVING  # the help text quotes the same threshold
    # saving = 1 - 1 / ratio: 1.30 saves 23 % (< 25 %), 1.40 saves 29 %
    assert [key_codecs.auto_codec(r) for r in (1.0, 1.05, 1.30, 1.40, 2.2, 180.0)] == ["none", "none", "none", "lz4", "lz4", "lz4"]
    assert key_codecs.auto_codec(None) == "lz4"  # nothing measured: the old default
    # a key that is a small share of the corpus: what lz4 saves of the corpus decides
    assert key_codecs.AUTO_MIN_CORPUS_SAVING == _cli_convert.AUTO_MIN_CORPUS_SAVING == 0.02
    assert [key_codecs.auto_codec(180.0, share) for share in (1.0, 0.11, 0.021, 0.015)] == ["lz4", "lz4", "lz4", "none"]
    assert key_codecs.auto_codec(1.40, 0.5) == "lz4" and key_codecs.auto_codec(1.40, 0.05) == "none"


def test_labels_beside_wide_features_are_stored_uncompressed(tmp_path: Path) -> None:
    """128 float32 features and int64 labels: lz4 would save under 2 % of the corpus on the labels."""
    src = tmp_path / "wide"
    make_npz_archives(src, 2, quantize=False, seed=3, min_rows=600, max_rows=900, features=128)
    report = convert(src, tmp_path / "c.zarr", workers=1)
    assert report.codecs == {"X": "none", "Y": "none"}
    assert report.lz4_ratios["Y"] > 10  # labels do compress: the share of the corpus decided
    root = zarr.open_group(str(tmp_path / "c.zarr"), mode="r")
    assert inner_codecs(root["Y"]) == ["BytesCodec", "Crc32cCodec"]
    with open_corpus(tmp_path / "c.zarr") as c:
        got = c.read_windows([0, 1], [3, 100], 16)
        with np.load(src / f"{c.names[1]}.npz") as z:
            np.testing.assert_array_equal(got["Y"][1], z["Y"][100:116])


def test_measured_ratio_is_what_zarr_stores_with_lz4(tmp_path: Path) -> None:
    """measure_lz4_ratio encodes like make_compressors('lz4'): same bytes as a zarr-written shard's chunks."""
    rng = np.random.default_rng(0)
    data = (np.round(rng.standard_normal((256, 32)) * 16) / 16).astype("<f4")
    arr = zarr.create_array(
        str(tmp_path / "a.zarr"), shape=data.shape, dtype=data.dtype, chunks=(64, 32), shards=(256, 32),
        compressors=key_codecs.make_compressors("lz4", None, 4),
    )
    arr[:] = data  # zarr's own encoder, not zarrmux's
    raw = (tmp_path / "a.zarr" / "c" / "0" / "0").read_bytes()
    index = np.frombuffer(raw[-(4 * 16 + 4) : -4], dtype="<u8").reshape(4, 2)
    stored = int(index[:, 1].sum()) - 4 * 4  # minus each chunk's crc32c
    got = key_codecs.measure_lz4_ratio([data], 64 * 32 * 4)
    assert got == pytest.approx(data.nbytes / stored, rel=1e-12)
    assert 1.5 < got < 4  # quantised floats: lz4 saves a lot, but not everything
    assert key_codecs.measure_lz4_ratio([np.empty(0, "<f4")], 1024) is None


def test_sample_is_bounded_and_from_the_first_entries(tmp_path: Path) -> None:
    make_npz_archives(tmp_path / "s", 6, min_rows=700, max_rows=700, quantize=False)
    grouped, _ = discover(tmp_path / "s")
    entries, _ = scan(grouped)
    sample = key_specs.sample_key(entries, "X")
    assert len(sample) == key_specs.SAMPLE_ENTRIES == 4
    assert sum(s.nbytes for s in sample) == 4 * key_specs.SAMPLE_BLOCK_BYTES == 1 << 20
    for s, e in zip(sample, entries):  # the starts of the first entries, byte for byte
        with np.load(e.paths[0]) as z:
            np.testing.assert_array_equal(s, z["X"].reshape(-1)[: s.size])
    one = key_specs.sample_key(entries[:1], "Y")  # a small member: all of it, never more
    assert len(one) == 1 and one[0].nbytes == 700 * 8


# ---------------------------------------------------------------- conversion


def test_auto_picks_per_key(auto_corpus: Path, full_src: Path, quant_src: Path, tmp_path: Path) -> None:
    root = zarr.open_group(str(auto_corpus), mode="r")
    meta = layout.read_meta(root)
    assert meta.codec == "auto"
    x, y = meta.keys["X"], meta.keys["Y"]
    assert (x.codec, y.codec) == ("none", "lz4")
    assert x.lz4_ratio is not None and 1.0 < x.lz4_ratio < 1 / (1 - key_codecs.AUTO_MIN_SAVING)
    assert y.lz4_ratio is not None and y.lz4_ratio > 10
    assert inner_codecs(root["X"]) == ["BytesCodec", "Crc32cCodec"]
    assert inner_codecs(root["Y"]) == ["BytesCodec", "blosc-lz4", "Crc32cCodec"]
    # the converter's own shard encoder wrote both keys (blosc=None: uncompressed chunks, with crc32c)
    assert shard_format.shard_encoder(root["X"], (ROWS["features"],)) == (x.chunk_rows, None, True)
    assert shard_format.shard_encoder(root["Y"], ())[1] is not None
    from zarrmux.verify import verify

    assert verify(auto_corpus, [full_src]) == []

    report = convert(quant_src, tmp_path / "q.zarr", workers=1)
    assert report.codecs == {"X": "lz4", "Y": "lz4"}
    assert 1.8 < report.lz4_ratios["X"] < 3.0


@pytest.mark.parametrize("codec", ["lz4", "zstd", "none"])
def test_forced_codec_for_every_key(codec: str, full_src: Path, tmp_path: Path) -> None:
    dest = tmp_path / "c.zarr"
    report = convert(full_src, dest, codec=codec, workers=1)
    assert report.codecs == {"X": codec, "Y": codec} and report.lz4_ratios == {}
    root = zarr.open_group(str(dest), mode="r")
    meta = layout.read_meta(root)
    assert meta.codec == codec
    assert {k: (s.codec, s.lz4_ratio) for k, s in meta.keys.items()} == {"X": (codec, None), "Y": (codec, None)}
    want = ["BytesCodec", "Crc32cCodec"] if codec == "none" else ["BytesCodec", f"blosc-{codec}", "Crc32cCodec"]
    assert inner_codecs(root["X"]) == inner_codecs(root["Y"]) == want
    truth = sources(full_src)
    s, r = entry_rows(dest)["song00002"]
    np.testing.assert_array_equal(root["X"][s : s + r], truth["song00002"]["X"])


def test_append_keeps_codecs_and_forced_disagreement_is_an_error(auto_corpus: Path, quant_src: Path, tmp_path: Path) -> None:
    dest = tmp_path / "c.zarr"
    shutil.copytree(auto_corpus, dest)
    before = zarr.open_group(str(dest), mode="r")["X"].metadata.to_dict()
    # quantised X would get lz4 in a new corpus; appended, it keeps the corpus' uncompressed X
    report = convert(quant_src, dest, workers=1)
    assert report.appended == ["q00000", "q00001"] and report.codecs == {"X": "none", "Y": "lz4"}
    assert report.lz4_ratios == {}  # nothing measured when appending
    root = zarr.open_group(str(dest), mode="r")
    assert root["X"].metadata.to_dict()["codecs"] == before["codecs"]
    meta = layout.read_meta(root)
    assert meta.codec == "auto" and meta.n_entries == 5 and meta.keys["X"].codec == "none"
    rows = entry_rows(dest)
    for name, arrays in sources(quant_src).items():
        s, r = rows[name]
        for k in ("X", "Y"):
            np.testing.assert_array_equal(root[k][s : s + r], arrays[k])
    # an explicitly forced codec is compared key by key
    for codec, key, have in (("lz4", "X", "none"), ("none", "Y", "lz4"), ("zstd", "X", "none")):
        with pytest.raises(CorpusError, match=rf"codec='{codec}' disagrees with the existing corpus .*c\.zarr: key '{key}' is stored with codec='{have}' \(chosen by codec='auto', measured lz4 ratio [\d.]+\).*--codec auto"):
            convert(quant_src, dest, codec=codec, workers=1)
    assert layout.read_meta(zarr.open_group(str(dest), mode="r")).n_entries == 5  # nothing written


def test_older_corpus_without_key_codecs(full_src: Path, tmp_path: Path) -> None:
    """A corpus whose KeySpecs carry no codec (written before per-key codecs) uses the corpus codec."""
    dest = tmp_path / "old.zarr"
    write_corpus(dest, {"a": {"X": np.ones((50, ROWS["features"]), "<f4"), "Y": np.zeros(50, "<i8")}}, codec="zstd")
    d = zarr.open_group(str(dest), mode="r").attrs["zarrmux"]
    assert "codec" not in d["keys"]["X"] and "lz4_ratio" not in d["keys"]["X"]  # the old JSON form, unchanged
    meta = layout.CorpusMeta.from_json(d)
    assert meta.keys["X"].codec is None and meta.key_codec("X") == "zstd" and meta.key_level("X") == 3
    with pytest.raises(CorpusError, match=r"key 'X' is stored with codec='zstd' \(the corpus codec is 'zstd'\)"):
        convert(full_src, dest, codec="lz4", workers=1)
    report = convert(full_src, dest, workers=1)  # auto agrees with it
    assert report.codecs == {"X": "zstd", "Y": "zstd"} and len(report.appended) == 3
    report = convert(full_src, dest, codec="zstd", workers=1)  # forced and equal: fine (all unchanged)
    assert len(report.skipped) == 3
    root = zarr.open_group(str(dest), mode="r")
    assert inner_codecs(root["X"]) == ["BytesCodec", "blosc-zstd", "Crc32cCodec"]
    s, r = entry_rows(dest)["song00000"]
    np.testing.assert_array_equal(root["X"][s : s + r], sources(full_src)["song00000"]["X"])


def test_keyspec_json_round_trip() -> None:
    spec = layout.KeySpec("<f4", (128,), 64, codec="none", lz4_ratio=1.0523)
    d = spec.to_json()
    assert d == {"dtype": "<f4", "trailing_shape": [128], "chunk_rows": 64, "codec": "none", "lz4_ratio": 1.0523}
    assert layout.KeySpec.from_json(json.loads(json.dumps(d))) == spec
    with pytest.raises(ValueError, match="key 'X' has no codec"):
        layout.create_corpus({}, {"X": layout.KeySpec("<f4", (2,), 16)}, shard_rows=32, codec="auto")
    with pytest.raises(ValueError, match="key 'X': codec='auto'"):
        layout.create_corpus({}, {"X": layout.KeySpec("<f4", (2,), 16, codec="auto")}, shard_rows=32)


# ---------------------------------------------------------------- info


def test_info_shows_codec_and_ratios_per_key(auto_corpus: Path, full_src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = layout.read_meta(zarr.open_group(str(auto_corpus), mode="r"))
    assert main(["info", str(auto_corpus)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert ": 3 entries, " in out[0]
    assert "codec auto: X none, Y lz4 level 5" in out[0] and "(blosc" not in out[0]
    xline = next(line for line in out if line.strip().startswith("X:"))
    yline = next(line for line in out if line.strip().startswith("Y:"))
    assert f"codec none (lz4 ratio {meta.keys['X'].lz4_ratio:.2f} measured at conversion)" in xline
    assert f"codec lz4 level 5 (lz4 ratio {meta.keys['Y'].lz4_ratio:.2f} measured at conversion)" in yline
    assert re.search(r"stored [0-9.]+ MB, ratio 0\.[0-9]+,", xline)  # stored: the raw bytes plus crc32c and shard index

    assert main(["info", "--json", str(auto_corpus)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["codec"] == "auto" and d["codecs"] == {"X": "none", "Y": "lz4"}
    assert (d["keys"]["X"]["codec"], d["keys"]["X"]["level"]) == ("none", None)
    assert (d["keys"]["Y"]["codec"], d["keys"]["Y"]["level"]) == ("lz4", 5)
    assert d["keys"]["X"]["lz4_ratio"] == pytest.approx(meta.keys["X"].lz4_ratio, abs=1e-3)
    assert d["keys"]["Y"]["ratio"] > 5 and 0.7 < d["keys"]["X"]["ratio"] <= 1.0  # X: raw bytes, plus crc32c and index

    # the CLI's default is auto too, and says what it chose unless --quiet
    dest = tmp_path / "cli.zarr"
    assert main(["convert", str(full_src), "-o", str(dest), "--workers", "1"]) == 0
    cap = capsys.readouterr()
    assert "codec auto chose: X none (lz4 ratio 1.0" in cap.err and "Y lz4 (lz4 ratio" in cap.err
    assert cap.out.startswith("converted 3 entries")
    # a forced codec: one codec on the top line, no measured ratio
    forced = tmp_path / "forced.zarr"
    assert main(["convert", str(full_src), "-o", str(forced), "-q", "--workers", "1", "--codec", "none"]) == 0
    capsys.readouterr()
    assert main(["info", str(forced)]) == 0
    out = capsys.readouterr().out
    assert "rows, codec none (uncompressed)" in out and "measured" not in out
    assert main(["info", "--json", str(forced)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["codec"] == "none" and d["keys"]["X"]["lz4_ratio"] is None and d["keys"]["Y"]["codec"] == "none"
    assert main(["convert", str(full_src), "-o", str(forced), "-q", "--workers", "1", "--codec", "lz4"]) == 4
    assert "key 'X' is stored with codec='none'" in capsys.readouterr().err


# ---------------------------------------------------------------- reading the uncompressed corpus


def test_xarray_dask_and_read_windows_give_the_source_values(auto_corpus: Path, full_src: Path) -> None:
    import dask.array as da
    import xarray as xr

    truth = sources(full_src)
    rows = entry_rows(auto_corpus)
    ds = xr.open_zarr(str(auto_corpus), consolidated=False, chunks={"row": 4096})
    dx = da.from_zarr(str(auto_corpus), component="X")
    for name, arrays in truth.items():
        s, r = rows[name]
        np.testing.assert_array_equal(ds["X"].isel(row=slice(s, s + r)).values, arrays["X"])
        np.testing.assert_array_equal(ds["Y"].isel(row=slice(s, s + r)).values, arrays["Y"])
        np.testing.assert_array_equal(dx[s : s + r].compute(), arrays["X"])
    c = open_corpus(auto_corpus)
    names = c.names
    rng = np.random.default_rng(0)
    ent = rng.integers(0, len(names), 24)
    starts = np.array([rng.integers(0, len(truth[names[e]]["Y"]) - 70) for e in ent])
    got = c.read_windows(ent, starts, 70)
    for b, (e, s) in enumerate(zip(ent, starts)):
        np.testing.assert_array_equal(got["X"][b], truth[names[e]]["X"][s : s + 70])
        np.testing.assert_array_equal(got["Y"][b], truth[names[e]]["Y"][s : s + 70])


def test_uncompressed_chunks_are_contiguous_and_a_flipped_byte_is_a_data_error(auto_corpus: Path, full_src: Path, tmp_path: Path) -> None:
    import google_crc32c

    dest = tmp_path / "c.zarr"
    shutil.copytree(auto_corpus, dest)
    meta = layout.read_meta(zarr.open_group(str(dest), mode="r"))
    spec = meta.keys["X"]
    chunk_bytes = spec.chunk_rows * spec.row_bytes
    shard = dest / "X" / "c" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    n_chunks = meta.shard_rows // spec.chunk_rows
    body, crc = bytes(raw[-(16 * n_chunks + 4) : -4]), bytes(raw[-4:])
    assert struct.pack("<I", google_crc32c.value(body)) == crc
    index = np.frombuffer(body, dtype="<u8").reshape(n_chunks, 2)
    rows = entry_rows(dest)
    used = -(-max(s + r for s, r in rows.values()) // spec.chunk_rows)
    # in order, back to back, each the raw chunk plus its 4-byte crc32c; the rest empty
    assert index[0, 0] == 0
    np.testing.assert_array_equal(index[:used, 1], chunk_bytes + 4)
    np.testing.assert_array_equal(index[1:used, 0], index[:used - 1, 0] + index[:used - 1, 1])
    assert (index[used:] == np.uint64(2**64 - 1)).all()
    assert len(raw) == int(index[used - 1, 0] + index[used - 1, 1]) + 16 * n_chunks + 4
    truth = sources(full_src)
    s, r = rows["song00001"]
    c = s // spec.chunk_rows + 1  # the second chunk holding song00001's rows
    off = int(index[c, 0])
    stored = np.frombuffer(bytes(raw[off : off + chunk_bytes]), dtype="<f4").reshape(spec.chunk_rows, ROWS["features"])
    lo = c * spec.chunk_rows - s  # entry row of the chunk's first row
    assert 8 <= lo and lo + 11 <= r
    n = min(spec.chunk_rows, r - lo)  # the chunk's rows that are song00001's
    np.testing.assert_array_equal(stored[:n], truth["song00001"]["X"][lo : lo + n])

    raw[off + 100] ^= 0x01
    shard.write_bytes(bytes(raw))
    corpus = open_corpus(dest)
    e = corpus.names.index("song00001")
    with pytest.raises(DataError, match=r"entry 'song00001'.*key 'X'.*chunk.*X/c/0/0.*crc32c"):
        corpus.read_windows([e], [lo + 3], 8)
    # the neighbouring chunk and the other key are intact
    np.testing.assert_array_equal(corpus.read_windows([e], [lo - 8], 8)["X"][0], truth["song00001"]["X"][lo - 8 : lo])
    np.testing.assert_array_equal(corpus.read_windows([e], [lo + 3], 8, keys=["Y"])["Y"][0], truth["song00001"]["Y"][lo + 3 : lo + 11])
