"""``zarrmux convert / info / verify`` on the command line: output, exit codes, progress."""

from __future__ import annotations

import fcntl
import json
import time
import os
import pty
import struct
import termios
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from zarrmux import layout
from zarrmux._cli import main
from zarrmux.testing import make_npz_archives

SUMMARY = re.compile(r"^converted (\d+) entries, (\d+) rows, [\d.]+ MB in, [\d.]+ MB out, [\d.]+ s, [\d.]+ MB/s")


@pytest.fixture()
def src(tmp_path: Path) -> Path:
    make_npz_archives(tmp_path / "src", 3, min_rows=300, max_rows=600, features=8)
    return tmp_path / "src"


@pytest.mark.parametrize("cmd", ["convert", "info", "verify"])
def test_help(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: zarrmux {cmd}" in out and "exit codes" in out


def test_convert_quiet_info_verify(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "c.zarr"
    assert main(["convert", str(src), "-o", str(dest), "--quiet", "--workers", "1", "--codec", "zstd", "--level", "2"]) == 0
    cap = capsys.readouterr()
    lines = cap.out.strip().splitlines()
    assert len(lines) == 1 and SUMMARY.match(lines[0]) and cap.err == ""
    m = SUMMARY.match(lines[0])
    assert m and int(m.group(1)) == 3
    total_rows = sum(len(np.load(p)["Y"]) for p in sorted(src.glob("*.npz")))
    assert int(m.group(2)) == total_rows

    assert main(["info", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "3 entries" in out and f"{total_rows} rows" in out and "codec zstd level 2" in out
    assert re.search(r"X: float32 \(rows, 8\)\s+chunk 1024 rows \(32 KiB\)", out)
    assert main(["info", "--json", str(dest)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["entries"] == 3 and d["rows"] == total_rows and d["codec"] == "zstd"
    assert d["keys"]["Y"]["dtype"] == "int64" and d["keys"]["X"]["trailing_shape"] == [8]
    assert d["stored_bytes"] > 0 and d["ratio"] > 1

    assert main(["verify", str(dest), str(src)]) == 0
    assert capsys.readouterr().out.strip() == (
        f"{dest}: ok, 3 entries checked ({total_rows:,} rows), 3 source entries compared"
    )


def test_verify_finds_corrupt_source_and_corrupt_stored_chunk(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "c.zarr"
    assert main(["convert", str(src), "-o", str(dest), "-q", "--workers", "1"]) == 0
    # a source that changed since conversion
    arrays = dict(np.load(src / "song00001.npz"))
    arrays["X"][5, 3] += 1
    np.savez(src / "song00001.npz", **arrays)
    capsys.readouterr()
    assert main(["verify", str(dest), str(src)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH song00001: source" in out and "differs" in out and "song00000" not in out
    # flip bytes in a stored shard on disk
    shard = dest / "X" / "c" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    for i in range(200, 260):
        raw[i] ^= 0xFF
    shard.write_bytes(bytes(raw))
    assert main(["verify", str(dest)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH song00000: stored data" in out


def test_exit_codes_for_bad_input_bad_store_and_skip(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.npz").write_text("nope")
    assert main(["convert", str(src), str(tmp_path / "bad.npz"), "-o", str(tmp_path / "a.zarr"), "--workers", "1"]) == 3
    assert "bad.npz: not a valid zip" in capsys.readouterr().err
    assert not (tmp_path / "a.zarr").exists()

    assert main(["convert", str(src), str(tmp_path / "bad.npz"), "-o", str(tmp_path / "a.zarr"), "--workers", "1", "--on-error", "skip", "-q"]) == 5
    cap = capsys.readouterr()
    assert "skipped: " in cap.err and "bad.npz" in cap.err and SUMMARY.match(cap.out)

    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("x")
    assert main(["convert", str(src), "-o", str(other), "--workers", "1"]) == 4
    assert "not a zarrmux corpus" in capsys.readouterr().err
    assert main(["info", str(other)]) == 4
    assert main(["verify", str(tmp_path / "missing.zarr")]) == 4
    assert main(["convert", str(src), "-o", str(tmp_path / "b.zarr"), "--chunk-rows", "96", "--shard-rows", "128"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["convert", str(src), "-o", str(tmp_path / "b.zarr"), "--workers", "0"])
    assert exc.value.code == 2


def test_overwrite_flag(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "c.zarr"
    assert main(["convert", str(src), "-o", str(dest), "-q", "--workers", "1"]) == 0
    np.savez(src / "song00002.npz", X=np.ones((50, 8), np.float32), Y=np.zeros(50, np.int64))
    assert main(["convert", str(src), "-o", str(dest), "-q", "--workers", "1"]) == 3
    assert "already exists" in capsys.readouterr().err
    assert main(["convert", str(src), "-o", str(dest), "-q", "--workers", "1", "--overwrite"]) == 0
    root = zarr.open_group(str(dest))
    idx = layout.read_index(root)
    s, r = int(idx["start"][2]), int(idx["rows"][2])
    np.testing.assert_array_equal(root["X"][s : s + r], np.ones((50, 8), np.float32))


def test_progress_bar_on_a_terminal_and_console_script(src: Path, tmp_path: Path) -> None:
    """The real console script with stderr on a pseudo-terminal draws a tqdm bar."""
    exe = Path(sys.executable).with_name("zarrmux")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "zarrmux._cli"]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    try:
        proc = subprocess.run(
            [*cmd, "convert", str(src), "-o", str(tmp_path / "c.zarr"), "--workers", "1"],
            stdout=subprocess.PIPE, stderr=slave, timeout=120, env={**os.environ, "COLUMNS": "120"},
        )
        os.close(slave)
        err = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0
    text = err.decode(errors="replace")
    assert "convert" in text and "entries 3/3" in text and "MB/s" in text
    summary = proc.stdout.decode()
    assert SUMMARY.match(summary)
    # the bar and the summary count the same units: entries, and source bytes in decimal MB
    last = re.findall(r"([\d.]+)/([\d.]+) MB \[[^]]*MB/s, entries (\d+)/(\d+)\]", text)[-1]
    mb_in = re.search(r"entries, \d+ rows, ([\d.]+) MB in", summary)
    n_entries = SUMMARY.match(summary).group(1)  # type: ignore[union-attr]
    assert mb_in and last[0] == last[1] == mb_in.group(1) and last[2] == last[3] == n_entries


def test_unreachable_scheduler_is_a_clear_error(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    code = main(["convert", str(src), "-o", str(tmp_path / "s.zarr"), "--scheduler", "tcp://127.0.0.1:1",
                 "--connect-timeout", "1.5", "-q"])
    err = capsys.readouterr().err
    assert code == 6
    assert "tcp://127.0.0.1:1" in err and "within 1.5 s" in err and "Traceback" not in err
    assert time.monotonic() - t0 < 8  # the timeout given, not the default 10 s
    assert not (tmp_path / "s.zarr" / "index").exists()  # nothing partial left
