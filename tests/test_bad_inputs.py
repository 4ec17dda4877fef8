"""Issue 11 point 5: every failure is one clear message with its documented exit code, never a traceback.

Each case runs the real command line (``zarrmux._cli.main``, or the console
module in a subprocess where a resource limit is needed) and checks the exit
code, that the message names the file and the problem, and that the
destination is left valid (or absent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr

import zarrmux
from zarrmux import layout
from zarrmux._cli import main
from zarrmux.conversion import convert
from zarrmux.exit_codes import EXIT_CODES
from zarrmux.testing import make_entry, make_npz_archives
from zarrmux.verify import verify

REPO = Path(zarrmux.__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}


def good(path: Path, rows: int = 300, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **make_entry(rows, 8, seed=seed))
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return code, cap.out + cap.err


def convert_cli(capsys: pytest.CaptureFixture[str], dest: Path, *sources: Path, extra: tuple[str, ...] = ()) -> tuple[int, str]:
    return run_cli(capsys, "convert", *map(str, sources), "-o", str(dest), "--workers", "1", "-q", *extra)


def test_npz_with_the_encrypted_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Was a RuntimeError traceback ('password required for extraction')."""
    path = good(tmp_path / "enc.npz")
    raw = bytearray(path.read_bytes())
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local headers and central directory
        i = raw.find(sig)
        while i >= 0:
            raw[i + flag_at] |= 0x01
            i = raw.find(sig, i + 4)
    path.write_bytes(bytes(raw))
    code, msg = convert_cli(capsys, tmp_path / "c.zarr", path)
    assert code == 3 and "enc.npz:" in msg and "encrypted" in msg
    assert not (tmp_path / "c.zarr").exists()


def test_npy_with_a_garbage_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Was a tokenize.TokenError traceback."""
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, "
    header += b" " * (64 - 10 - len(header) - 1) + b"\n"
    path = tmp_path / "g_X.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(64))
    code, msg = convert_cli(capsys, tmp_path / "c.zarr", path)
    assert code == 3 and "g_X.npy: not a valid NPY array (bad header" in msg
    assert not (tmp_path / "c.zarr").exists()


@pytest.mark.parametrize("member", ["zarr.json", "ZARR.JSON", "index"])
def test_member_named_like_zarr_metadata(tmp_path: Path, capsys: pytest.CaptureFixture[str], member: str) -> None:
    """A member 'zarr.json.npy' raised FileExistsError and left a store that broke every later run."""
    src = tmp_path / "src"
    good(src / "a.npz")
    with zipfile.ZipFile(src / "b.npz", "w") as zf:
        for name, arr in (*make_entry(50, 8, seed=2).items(), (member, np.zeros(50, np.int8))):
            with zf.open(f"{name}.npy", "w") as f:
                np.lib.format.write_array(f, arr)
    dest = tmp_path / "c.zarr"
    code, msg = convert_cli(capsys, dest, src / "b.npz")
    assert code == 3 and f"b.npz:{member}.npy: key {member!r} is a name the corpus uses itself" in msg
    assert not dest.exists()
    # with --on-error skip the bad archive is left out and the store stays usable
    code, msg = convert_cli(capsys, dest, src, extra=("--on-error", "skip"))
    assert code == 5 and "b.npz" in msg
    assert verify(dest, [src / "a.npz"]) == [] and run_cli(capsys, "info", str(dest))[0] == 0
    assert json.loads((dest / "zarr.json").read_text())["node_type"] == "group"


def test_header_shape_that_would_overflow_the_size_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """(2**62, 4) float32 overflowed int64 to 0 bytes; with --on-error skip the next entry went to row 2**62."""
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "aaa_X.npy", "wb") as f:  # 2**62 * 8 * 4 bytes: np.prod wrapped to 0, the check passed
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2**62, 8)})
        f.write(bytes(256))
    good(src / "b.npz")
    dest = tmp_path / "c.zarr"
    code, msg = convert_cli(capsys, dest, src, extra=("--keys", "X"))
    assert code == 3 and "aaa_X.npy: is truncated: 384 bytes, the header promises 1475739525896764" in msg
    assert not dest.exists()
    code, msg = convert_cli(capsys, dest, src, extra=("--keys", "X", "--on-error", "skip"))
    assert code == 5
    idx = layout.read_index(zarr.open_group(str(dest), mode="r"))
    assert [str(n) for n in idx["name"]] == ["b"] and int(idx["start"][0]) == 0
    assert zarr.open_group(str(dest), mode="r")["X"].shape[0] == 300
    assert verify(dest, [src / "b.npz"]) == []


FSIZE_SCRIPT = textwrap.dedent(
    """
    import resource, signal, sys
    from zarrmux._cli import main

    if __name__ == "__main__":
        # Python ignores SIGXFSZ (so do its worker processes): a write past the limit fails with EFBIG,
        # as one on a full disk fails with ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = int(sys.argv[1])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        sys.exit(main(sys.argv[2:]))
    """
)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_out_of_space_is_a_clear_error_and_the_store_stays_valid(tmp_path: Path, workers: str) -> None:
    """A full disk was an OSError traceback with exit 1; simulated with RLIMIT_FSIZE (EFBIG)."""
    src = tmp_path / "src"
    paths = make_npz_archives(src, 6, min_rows=600, max_rows=900, features=8, quantize=False)  # 2, then 2 units of 2
    dest = tmp_path / "c.zarr"
    opts = ["--chunk-rows", "128", "--shard-rows", "512", "-q"]
    assert main(["convert", *map(str, paths[:2]), "-o", str(dest), *opts]) == 0
    before = layout.read_meta(zarr.open_group(str(dest), mode="r")).n_entries
    script = tmp_path / "fsize.py"
    script.write_text(FSIZE_SCRIPT)
    # 8 KiB: metadata documents and index chunks fit, a 16 KiB shard of X does not
    out = subprocess.run([sys.executable, str(script), "8192", "convert", str(src), "-o", str(dest), *opts,
                          "--workers", workers], capture_output=True, text=True, timeout=120, env=ENV)
    assert out.returncode == 8, out.stderr
    assert "Traceback" not in out.stderr and "rerun the same command to resume" in out.stderr
    assert "I/O error writing the corpus" in out.stderr and "File too large" in out.stderr
    assert layout.read_meta(zarr.open_group(str(dest), mode="r")).n_entries == before
    assert verify(dest) == []  # still valid
    assert main(["convert", str(src), "-o", str(dest), *opts]) == 0  # space back: the rerun completes
    assert verify(dest, [src]) == []


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    make_npz_archives(src, 5, min_rows=100, max_rows=300, features=4)
    dest = tmp_path / "c.zarr"
    convert([src], dest, workers=1)
    return dest


def test_corrupt_index_chunks_under_verify(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Corrupt index chunks gave tracebacks in 14 of 20 cases; now a mismatch naming the index."""
    rng = np.random.default_rng(0)
    for field in ("start", "name"):
        chunk = corpus / "index" / field / "c" / "0"
        orig = chunk.read_bytes()
        damaged = [orig[: len(orig) // 2], bytes(len(orig)), b"garbage" * 5]
        for _ in range(2):
            raw = bytearray(orig)
            for i in rng.integers(0, len(raw), 3):
                raw[int(i)] ^= 0xFF
            damaged.append(bytes(raw))
        for j, bad in enumerate(damaged):
            chunk.write_bytes(bad)
            code, msg = run_cli(capsys, "verify", str(corpus))
            assert code in (0, 1), msg  # no traceback, no usage error
            if j < 3 and field == "start":  # undecodable: named
                assert code == 1 and "MISMATCH index" in msg and f"index/{field}" in msg, msg
            if j == 0:
                code, msg = run_cli(capsys, "info", str(corpus))
                assert code in (0, 4), msg
        chunk.write_bytes(orig)
    assert run_cli(capsys, "verify", str(corpus))[0] == 0


@pytest.mark.parametrize("doc", ["zarr.json", "X/zarr.json", "index/name/zarr.json"])
def test_bad_json_in_metadata_names_the_file(corpus: Path, capsys: pytest.CaptureFixture[str], doc: str) -> None:
    """Bad JSON in a zarr.json under verify was exit 2 'usage error' without the file named."""
    (corpus / doc).write_text('{"zarr_format": 3, "node_type": ')
    for cmd in ("verify", "info"):
        code, msg = run_cli(capsys, cmd, str(corpus))
        assert code == 4 and doc in msg, msg


def test_exit_codes_are_documented_in_the_readme_and_help() -> None:
    from zarrmux._cli_convert import _EPILOG  # made from zarrmux.exit_codes

    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("Exit codes:") :].split("\n\n")[0]
    for code, meaning in EXIT_CODES.items():
        assert f"{code} " in block, (code, meaning)
        assert f"{code} " in _EPILOG.replace("\n", " "), code
    assert "6 " in block and "scheduler" in block.lower()
