"""The command line tells the user what happened: Ctrl-C, verify's count, info --entries, logging, exit codes."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from zarrmux._cli import log_to_stderr, main
from zarrmux.conversion import convert
from zarrmux.conversion_report import ConversionInterrupted
from zarrmux.exit_codes import EXIT_CODES
from zarrmux.testing import make_npz_archives
from zarrmux.verify import verify

README = Path(__file__).resolve().parents[1] / "README.md"


def zarrmux_exe() -> str:
    exe = shutil.which("zarrmux")
    assert exe, "the zarrmux console script is not installed"
    return exe


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([zarrmux_exe(), *args], capture_output=True, text=True, timeout=120)


def committed(dest: Path) -> int:
    """Committed entries, read as any reader would (the root attributes), 0 while there is no corpus."""
    try:
        return int(json.loads((dest / "zarr.json").read_text())["attributes"]["zarrmux"]["n_entries"])
    except (OSError, ValueError, KeyError):
        return 0


INTERRUPTED = re.compile(
    r"zarrmux: interrupted: (\d+) of the (\d+) entries to convert were committed; (.+) holds (\d+) entries, "
    r"each complete; rerun the same command to resume"
)


def test_ctrl_c_during_convert_says_what_was_kept_and_rerun_resumes(tmp_path: Path) -> None:
    """A real ``zarrmux convert`` gets SIGINT (as a terminal's Ctrl-C: the whole process group) after its first commit.

    zstd level 9 makes the run CPU-bound for a few seconds, while the first
    commit comes about a second in (commits are at most every second): on a
    loaded machine the run only gets slower, so the interrupt lands mid-run.
    """
    n = 24
    src = tmp_path / "src"
    make_npz_archives(src, n, min_rows=3000, max_rows=3000, features=64, quantize=False)
    dest = tmp_path / "c.zarr"
    cmd = [zarrmux_exe(), "convert", str(src), "-o", str(dest), "--workers", "1", "--codec", "zstd", "--level", "9",
           "--shard-rows", "4096"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while committed(dest) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:  # it exited meanwhile: the returncode check below says so
                pass
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, f"exit {proc.returncode} (0: finished before the interrupt); stderr: {err}"
    assert out == "" and "Traceback" not in err
    m = INTERRUPTED.search(err)
    assert m, err
    kept = committed(dest)
    assert int(m.group(1)) == int(m.group(4)) == kept and int(m.group(2)) == n and m.group(3) == str(dest)
    assert 1 <= kept < n
    # what it kept is whole: verify checks exactly those entries
    v = run("verify", str(dest))
    assert v.returncode == 0 and v.stdout.startswith(f"{dest}: ok, {kept} entries checked (")
    # and rerunning the same command resumes: the kept entries are skipped, the rest converted
    again = subprocess.run(cmd + ["-q"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"converted {n - kept} entries,") and f"; {kept} unchanged skipped" in again.stdout
    assert committed(dest) == n and verify(dest, [src]) == []


def test_interrupt_in_python_is_a_keyboard_interrupt_that_says_what_was_kept(tmp_path: Path) -> None:
    """A progress callback raising KeyboardInterrupt interrupts at a known entry, like Ctrl-C there."""
    src = tmp_path / "src"
    make_npz_archives(src, 8, min_rows=200, max_rows=200, features=4)
    dest = tmp_path / "c.zarr"

    def progress(done: int, total: int, nbytes: int, total_bytes: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(ConversionInterrupted) as exc:
        convert([src], dest, workers=1, shard_rows=256, unit_rows=256, commit_every=0, progress=progress)
    e = exc.value
    assert isinstance(e, KeyboardInterrupt)
    # units of 2 entries (400 rows >= 256): the first two units committed, the fifth entry's unit dropped
    assert (e.converted, e.planned, e.committed) == (4, 8, 4) == (4, 8, committed(dest))
    assert str(e) == (
        f"interrupted: 4 of the 8 entries to convert were committed; {dest} holds 4 entries, each complete; "
        "rerun the same command to resume (entries already converted are skipped)"
    )
    report = convert([src], dest, workers=1, shard_rows=256, unit_rows=256)
    assert report.entries == 4 and len(report.skipped) == 4 and verify(dest, [src]) == []

    # interrupted before the first commit of a new corpus: nothing is left, and the message says so
    fresh = tmp_path / "fresh.zarr"

    def at_once(*_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(ConversionInterrupted, match=rf"interrupted: 0 of the 8 entries .*nothing was written to {re.escape(str(fresh))}"):
        convert([src], fresh, workers=1, progress=at_once)
    assert not fresh.exists()


def test_verify_says_how_many_entries_it_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    make_npz_archives(src, 3, min_rows=100, max_rows=100, features=4)
    dest = tmp_path / "c.zarr"
    convert([src], dest, workers=1)
    report = verify(dest)
    assert report == [] and (report.entries, report.rows, report.sources) == (3, 300, 0)
    assert main(["verify", str(dest)]) == 0
    assert capsys.readouterr().out == f"{dest}: ok, 3 entries checked (300 rows)\n"
    arrays = dict(np.load(src / "song00002.npz"))
    arrays["X"][0, 0] += 1
    np.savez(src / "song00002.npz", **arrays)
    assert main(["verify", str(dest), str(src)]) == 1
    cap = capsys.readouterr()
    assert cap.out.startswith("MISMATCH song00002: source")
    assert cap.err == f"{dest}: 1 mismatch(es); 3 entries checked (300 rows), 3 source entries compared\n"


def test_info_lists_entries_as_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    paths = make_npz_archives(src, 3, min_rows=50, max_rows=90, features=4)
    dest = tmp_path / "c.zarr"
    convert([src], dest, workers=1)
    rows = [len(np.load(p)["Y"]) for p in paths]
    assert main(["info", str(dest)]) == 0
    assert "source" not in capsys.readouterr().out  # only with --entries
    assert main(["info", str(dest), "--entries"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = lines[lines.index(next(line for line in lines if line.split() == ["name", "rows", "source"])) + 1 :]
    assert [line.split() for line in table] == [[p.stem, str(r), str(p)] for p, r in zip(paths, rows)]
    out = run("info", str(dest), "--entries", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["entries"] == 3 and d["entry_list"] == [
        {"name": p.stem, "rows": r, "start": s, "source": str(p)}
        for p, r, s in zip(paths, rows, [e["start"] for e in d["entry_list"]])
    ]
    assert [e["start"] for e in d["entry_list"]] == sorted(e["start"] for e in d["entry_list"])
    assert "entry_list" not in json.loads(run("info", str(dest), "--json").stdout)


def test_codec_auto_choice_is_logged_and_shown_with_verbose(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "src"
    make_npz_archives(src, 2, min_rows=300, max_rows=300, features=16, quantize=False)
    with caplog.at_level(logging.INFO, logger="zarrmux"):
        report = convert([src], tmp_path / "py.zarr", workers=1)
    logged = {r.getMessage().split("'")[1]: r for r in caplog.records if r.getMessage().startswith("codec auto: key")}
    assert sorted(logged) == ["X", "Y"] and all(r.levelno == logging.INFO and r.name == "zarrmux" for r in logged.values())
    for k, r in logged.items():
        assert f"-> {report.codecs[k]} (blosc-lz4 ratio {report.lz4_ratios[k]:.2f}" in r.getMessage()
    # the command line shows it on stderr with -v, not without
    dest = tmp_path / "cli.zarr"
    out = run("convert", str(src), "-o", str(dest), "-q", "--workers", "1", "-v")
    assert out.returncode == 0, out.stderr
    assert re.search(r"^zarrmux: info: codec auto: key 'X' -> none \(blosc-lz4 ratio 1\.\d\d on a \d+-byte sample", out.stderr, re.MULTILINE)
    assert re.search(r"^zarrmux: info: codec auto: key 'Y' -> lz4 \(blosc-lz4 ratio [\d.]+ ", out.stderr, re.MULTILINE)
    quiet = run("convert", str(src), "-o", str(tmp_path / "q.zarr"), "-q", "--workers", "1")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_cli_log_handler_shows_warnings_always_and_info_with_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("zarrmux")
    before = (log.level, list(log.handlers))
    for verbose, shown in ((0, ["warning: w0"]), (1, ["info: i1", "warning: w1"])):
        restore = log_to_stderr(verbose)
        try:
            log.info(f"i{verbose}")
            log.warning(f"w{verbose}")
        finally:
            restore()
        assert capsys.readouterr().err.splitlines() == [f"zarrmux: {s}" for s in shown]
    assert (log.level, list(log.handlers)) == before  # nothing left behind after a command
    log.warning("after")
    assert "zarrmux: warning: after" not in capsys.readouterr().err


def test_readme_lists_every_exit_code() -> None:
    text = README.read_text()
    para = text[text.index("Exit codes: 0 ok") :]
    para = para[: para.index("\n\n")]
    for code in EXIT_CODES:
        assert re.search(rf"(^|[ ,]){code} ", para), f"exit code {code} is not in the README's exit codes"
    assert "6 the Dask" in para and "130 interrupted" in para
