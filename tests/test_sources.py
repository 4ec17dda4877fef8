"""Source discovery, naming rules, header scans and streaming readers."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from zarrmux import layout
from zarrmux.entry_names import check_entry_name, check_key_name
from zarrmux.member_reader import iter_blocks, source_checksum
from zarrmux.source_discovery import discover
from zarrmux.source_headers import scan
from zarrmux.sources import SourceError


def test_discover_files_dirs_globs_in_order(tmp_path: Path) -> None:
    for name in ("b.npz", "a.npz", "sub/c.npz"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp_path / name, X=np.zeros((2, 2)))
    grouped, errors = discover([tmp_path / "b.npz", tmp_path, str(tmp_path / "**" / "*.npz")])
    assert errors == []
    # b first (given first), then the directory's files sorted, duplicates once
    assert [n for n, _ in grouped] == ["b", "a", "c"]


@pytest.mark.parametrize("name", ["song1", "a/b", "x.y-z_1", "_t"])
def test_good_entry_names(name: str) -> None:
    assert check_entry_name(name) == name


@pytest.mark.parametrize("name", ["../x", "a/../b", "/etc/passwd", "C:\\x", "a//b", "a b", "é", ".hidden", "a/", "x" * 300])
def test_bad_entry_names(name: str) -> None:
    with pytest.raises(SourceError, match="where.npz"):
        check_entry_name(name, "where.npz")


@pytest.mark.parametrize("key", ["index", "a/b", "..", "", "x y"])
def test_bad_key_names(key: str) -> None:
    with pytest.raises(SourceError):
        check_key_name(key)


def test_npy_grouping_rules(tmp_path: Path) -> None:
    for f in ("s1_X.npy", "s1_Y.npy", "s2_X.npy", "long_name_X.npy"):
        np.save(tmp_path / f, np.zeros(3))
    grouped, _ = discover([tmp_path])
    assert dict(grouped) == {
        "long_name": [("X", str(tmp_path / "long_name_X.npy"))],
        "s1": [("X", str(tmp_path / "s1_X.npy")), ("Y", str(tmp_path / "s1_Y.npy"))],
        "s2": [("X", str(tmp_path / "s2_X.npy"))],
    }
    (tmp_path / "nomatch.npy").write_bytes(b"")
    with pytest.raises(SourceError, match="does not match the grouping rule"):
        discover([tmp_path / "nomatch.npy"])
    with pytest.raises(ValueError, match="named groups 'entry' and 'key'"):
        discover([tmp_path], group=r"(?P<entry>.*)\.npy")


def test_scan_reads_headers_only_and_streams_blocks(tmp_path: Path) -> None:
    X = np.arange(5000 * 3, dtype=np.float32).reshape(5000, 3)
    np.savez_compressed(tmp_path / "a.npz", X=X, Y=np.arange(5000))
    entries, _ = scan(discover([tmp_path / "a.npz"])[0])
    (e,) = entries
    assert e.name == "a" and e.rows == 5000 and sorted(e.members) == ["X", "Y"]
    assert e.members["X"].dtype == "<f4" and e.members["X"].shape == (5000, 3)
    assert e.nbytes == X.nbytes + 5000 * 8
    blocks = list(iter_blocks(e.members["X"], block_bytes=4096))
    assert len(blocks) > 10 and all(len(b) <= 4096 // 12 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), X)
    assert source_checksum(e) == layout.checksum_arrays({"X": X, "Y": np.arange(5000)})


def test_crc_mismatch_in_stored_member_is_detected(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", X=np.zeros((200_000, 4), np.float32))
    raw = bytearray((tmp_path / "a.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "a.npz") as zf:
        info = zf.getinfo("X.npy")
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + 3_000_000
    raw[at] ^= 0x55  # a stored member: the header parses, only the CRC can tell
    (tmp_path / "a.npz").write_bytes(bytes(raw))
    entries, _ = scan(discover([tmp_path / "a.npz"])[0])
    with pytest.raises(SourceError, match=r"a\.npz:X\.npy: corrupt data .*CRC"):
        list(iter_blocks(entries[0].members["X"], block_bytes=1 << 16))
    # a small member is read whole with its header: the scan already reports it
    np.savez(tmp_path / "b.npz", X=np.zeros((100, 4), np.float32))
    raw = bytearray((tmp_path / "b.npz").read_bytes())
    raw[info.header_offset + 30 + len(info.filename) + len(info.extra) + 300] ^= 0x55
    (tmp_path / "b.npz").write_bytes(bytes(raw))
    with pytest.raises(SourceError, match=r"b\.npz:X\.npy: corrupt data: Bad CRC"):
        scan(discover([tmp_path / "b.npz"])[0])


def test_fortran_order_and_unsupported_dtypes(tmp_path: Path) -> None:
    np.save(tmp_path / "f_X.npy", np.asfortranarray(np.zeros((4, 3))))
    with pytest.raises(SourceError, match="Fortran order"):
        scan(discover([tmp_path / "f_X.npy"])[0])
    np.save(tmp_path / "s_X.npy", np.array(["a", "b"]))
    with pytest.raises(SourceError, match="not supported"):
        scan(discover([tmp_path / "s_X.npy"])[0])
    np.save(tmp_path / "z_X.npy", np.float32(3))
    with pytest.raises(SourceError, match="0-d scalar"):
        scan(discover([tmp_path / "z_X.npy"])[0])


def test_reserved_key_names_agree_with_the_layout() -> None:
    """entry_names (no zarr import) keeps its own copy of the names a key can never have."""
    from zarrmux import entry_names

    assert entry_names.RESERVED_KEYS == layout.RESERVED_NAMES
    for name in ("zarr.json", "Zarr.JSON", "index", ".zattrs"):
        with pytest.raises(SourceError, match="is a name the corpus uses itself|is not a valid key name"):
            check_key_name(name, "a.npz")
