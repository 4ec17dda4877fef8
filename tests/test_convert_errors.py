"""Bad input: one test per case of issue 3 point 9; clear errors naming the file, nothing lost."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr

from zarrmux import layout
from zarrmux.conversion import convert
from zarrmux.exceptions import ConversionError, CorpusError
from zarrmux.testing import make_entry


def good(path: Path, rows: int = 300, seed: int = 0, compressed: bool = False, **extra: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compressed else np.savez)(path, **{**make_entry(rows, 8, seed=seed), **extra})
    return path


def n_entries(dest: Path) -> int:
    return layout.read_meta(zarr.open_group(str(dest), mode="r")).n_entries


def expect_error(tmp_path: Path, sources: list, match: str, **kw: object) -> ConversionError:
    dest = tmp_path / "out.zarr"
    with pytest.raises(ConversionError, match=match) as info:
        convert(sources, dest, workers=1, **kw)
    assert not dest.exists(), "a failed run must leave nothing behind"
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    a = good(tmp_path / "a.npz")
    err = expect_error(tmp_path, [a, tmp_path / "nope.npz"], "no such file")
    assert "nope.npz" in str(err)
    expect_error(tmp_path, [str(tmp_path / "*.npy")], "glob pattern matches no files")


def test_not_a_zip_and_not_an_npy(tmp_path: Path) -> None:
    (tmp_path / "text.npz").write_text("hello, I am not a zip file\n")
    err = expect_error(tmp_path, [tmp_path / "text.npz"], "not a valid zip")
    assert "text.npz" in str(err)
    (tmp_path / "junk_X.npy").write_bytes(b"\x00" * 100)
    expect_error(tmp_path, [tmp_path / "junk_X.npy"], "junk_X.npy: not a valid NPY")


def test_truncated_npz_and_npy(tmp_path: Path) -> None:
    a = good(tmp_path / "a.npz", rows=2000)
    data = a.read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    expect_error(tmp_path, [tmp_path / "t.npz"], r"t\.npz: not a valid zip/NPZ archive \(truncated")
    np.save(tmp_path / "s_X.npy", np.zeros((1000, 4), np.float32))
    raw = (tmp_path / "s_X.npy").read_bytes()
    (tmp_path / "s_X.npy").write_bytes(raw[:-100])
    expect_error(tmp_path, [tmp_path / "s_X.npy"], r"s_X\.npy: is truncated")


def test_corrupt_deflated_member_stops_with_nothing_partial(tmp_path: Path) -> None:
    good(tmp_path / "src" / "a.npz", seed=1, compressed=True)
    bad = good(tmp_path / "src" / "b.npz", rows=3000, seed=2, compressed=True)
    raw = bytearray(bad.read_bytes())
    with zipfile.ZipFile(bad) as zf:
        info = zf.getinfo("X.npy")
    mid = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    raw[mid : mid + 64] = bytes(64)  # corrupt the deflate stream in the middle (headers stay valid)
    bad.write_bytes(bytes(raw))
    err = expect_error(tmp_path, [tmp_path / "src"], r"b\.npz:X\.npy: corrupt data")
    assert "X" in str(err)
    # appending to an existing corpus: the corpus is left exactly as it was
    dest = tmp_path / "c.zarr"
    convert([tmp_path / "src" / "a.npz"], dest, workers=1)
    before = dest.joinpath("zarr.json").read_bytes()
    with pytest.raises(ConversionError, match="corrupt"):
        convert([tmp_path / "src"], dest, workers=1)
    assert n_entries(dest) == 1 and dest.joinpath("zarr.json").read_bytes() == before
    assert zarr.open_group(str(dest))["X"].shape[0] == 300  # uncommitted rows trimmed


def test_object_array_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (open, (str(marker), "w"))

    obj = np.empty(3, dtype=object)
    obj[:] = [Evil(), 1, 2]
    np.savez(tmp_path / "evil.npz", X=np.zeros((3, 2)), Y=obj)
    assert pickle.dumps(obj)  # the archive really holds a pickle
    err = expect_error(tmp_path, [tmp_path / "evil.npz"], "object dtype")
    assert "evil.npz:Y.npy" in str(err) and "allow_pickle" in str(err)
    assert not marker.exists()


def test_row_counts_differ_inside_an_entry(tmp_path: Path) -> None:
    np.savez(tmp_path / "r.npz", X=np.zeros((10, 2)), Y=np.zeros(11))
    expect_error(tmp_path, [tmp_path / "r.npz"], r"r\.npz: entry 'r': keys have different row counts \{'X': 10, 'Y': 11\}")


def test_key_missing_from_some_archive(tmp_path: Path) -> None:
    a = good(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", X=np.zeros((10, 8), np.float32))
    expect_error(tmp_path, [a, tmp_path / "b.npz"], r"b\.npz: entry 'b' lacks key\(s\) \['Y'\]")
    expect_error(tmp_path, [a, tmp_path / "b.npz"], r"b\.npz: entry 'b' lacks key\(s\) \['Y'\]", keys="X,Y")


def test_zero_row_array(tmp_path: Path) -> None:
    np.savez(tmp_path / "z.npz", X=np.zeros((0, 8), np.float32), Y=np.zeros(0, np.int64))
    expect_error(tmp_path, [good(tmp_path / "a.npz"), tmp_path / "z.npz"], r"z\.npz:X\.npy: has zero rows")


@pytest.mark.parametrize(
    "name, match",
    [("../x", "escape the store"), ("a/../../x", "escape the store"), ("/abs/x", "absolute path"), ("a b?", "odd characters"), ("", "empty entry name")],
)
def test_entry_name_that_would_escape_or_is_odd(tmp_path: Path, name: str, match: str) -> None:
    a = good(tmp_path / "a.npz")
    err = expect_error(tmp_path, [(name, a)], match)
    assert "a.npz" in str(err)


def test_member_name_that_would_escape(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "k.npz", "w") as zf:
        with zf.open("../evil.npy", "w") as f:
            np.lib.format.write_array(f, np.zeros((4, 2)))
    expect_error(tmp_path, [tmp_path / "k.npz"], r"key '\.\./evil' is not a valid key name")
    assert not (tmp_path / "evil").exists()


def test_names_colliding_exactly_or_by_case(tmp_path: Path) -> None:
    a = good(tmp_path / "d1" / "song.npz")
    b = good(tmp_path / "d2" / "song.npz", seed=1)
    err = expect_error(tmp_path, [a, b], "entry name 'song' collides with")
    assert "d2" in str(err) and "d1" in str(err)
    c = good(tmp_path / "d3" / "Song.npz", seed=2)
    expect_error(tmp_path, [a, c], "differs only by case from 'song'")
    # also against the names already in a corpus
    dest = tmp_path / "c.zarr"
    convert([a], dest, workers=1)
    with pytest.raises(ConversionError, match="differs only by case from 'song' already in"):
        convert([c], dest, workers=1)
    assert n_entries(dest) == 1


def test_dtype_or_trailing_shape_disagrees(tmp_path: Path) -> None:
    a = good(tmp_path / "a.npz")
    np.savez(tmp_path / "f64.npz", X=np.zeros((5, 8)), Y=np.zeros(5, np.int64))
    expect_error(tmp_path, [a, tmp_path / "f64.npz"], r"f64\.npz:X\.npy: key 'X' has dtype float64, the first entry 'a' .* has float32")
    np.savez(tmp_path / "wide.npz", X=np.zeros((5, 9), np.float32), Y=np.zeros(5, np.int64))
    expect_error(tmp_path, [a, tmp_path / "wide.npz"], r"wide\.npz:X\.npy: key 'X' has trailing shape \(9,\)")
    # against an existing corpus
    dest = tmp_path / "c.zarr"
    convert([a], dest, workers=1)
    with pytest.raises(ConversionError, match=r"wide\.npz:X\.npy: key 'X' has trailing shape \(9,\), corpus .* has \(8,\)"):
        convert([tmp_path / "wide.npz"], dest, workers=1)
    assert n_entries(dest) == 1


def test_destination_not_a_corpus(tmp_path: Path) -> None:
    a = good(tmp_path / "a.npz")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    with pytest.raises(CorpusError, match="notes exists and is not a zarrmux corpus"):
        convert([a], notes, workers=1)
    assert (notes / "todo.txt").read_text() == "keep me" and sorted(os.listdir(notes)) == ["todo.txt"]
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w")
    with pytest.raises(CorpusError, match="not a zarrmux corpus"):
        convert([a], plain, workers=1, overwrite=True)
    afile = tmp_path / "file.zarr"
    afile.write_text("x")
    with pytest.raises(CorpusError, match="not a directory"):
        convert([a], afile, workers=1)


def test_on_error_skip_lists_bad_sources_and_converts_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "src"
    a = good(src / "a.npz")
    (src / "b.npz").write_text("not a zip")
    np.savez(src / "c.npz", X=np.zeros((0, 8), np.float32), Y=np.zeros(0, np.int64))
    d = good(src / "d.npz", seed=3, compressed=True)
    raw = bytearray(d.read_bytes())
    with zipfile.ZipFile(d) as zf:
        info = zf.getinfo("X.npy")
    mid = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    raw[mid : mid + 32] = bytes(32)
    d.write_bytes(bytes(raw))
    e = good(src / "e.npz", seed=4)
    report = convert([src, tmp_path / "missing.npz"], tmp_path / "c.zarr", workers=1, on_error="skip")
    assert report.appended == ["a", "e"]
    assert len(report.errors) == 4
    for needle in ("b.npz", "c.npz", "d.npz", "missing.npz"):
        assert any(needle in msg for msg in report.errors), needle
    root = zarr.open_group(str(tmp_path / "c.zarr"))
    idx = layout.read_index(root)
    for name, path in (("a", a), ("e", e)):
        i = list(idx["name"]).index(name)
        s, r = int(idx["start"][i]), int(idx["rows"][i])
        np.testing.assert_array_equal(root["X"][s : s + r], np.load(path)["X"])
    from zarrmux.verify import verify

    assert verify(tmp_path / "c.zarr") == []


def test_bad_option_values_name_the_parameter(tmp_path: Path) -> None:
    a = good(tmp_path / "a.npz")
    for kw, match in (
        ({"codec": "gzip"}, "codec='gzip'"),
        ({"on_error": "ignore"}, "on_error='ignore'"),
        ({"chunk_rows": 0}, "chunk_rows=0"),
        ({"chunk_rows": 96, "shard_rows": 128}, "shard_rows=128 is not a multiple of chunk_rows=96"),
        ({"group": "(?P<entry>x"}, "group="),
    ):
        with pytest.raises(ValueError, match=match.replace("(", r"\(").replace("?", r"\?")):
            convert([a], tmp_path / "o.zarr", workers=1, **kw)
        assert not (tmp_path / "o.zarr").exists()
