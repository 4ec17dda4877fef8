"""The command line as a user runs it: the console script, --help everywhere, the demo."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import zarrmux
from zarrmux._cli import build_parser
from zarrmux.demo import run_demo

COMMANDS = ["demo", "convert", "info", "verify"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("zarrmux")
    assert exe, "the zarrmux console script is not installed"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_command() -> None:
    out = run("--help")
    assert out.returncode == 0
    for cmd in COMMANDS:
        assert cmd in out.stdout


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help(cmd: str) -> None:
    out = run(cmd, "--help")
    assert out.returncode == 0 and f"usage: zarrmux {cmd}" in out.stdout


def test_parser_knows_the_commands() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(COMMANDS) <= set(sub.choices)  # type: ignore[arg-type]


def test_version_and_python_dash_m() -> None:
    out = subprocess.run([sys.executable, "-m", "zarrmux", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"zarrmux {zarrmux.__version__}"


def test_demo_command_converts_and_samples(tmp_path: Path) -> None:
    out = run("demo", "--dir", str(tmp_path), "--archives", "3", "--batches", "5")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("1. archives: 3 NPZ files")
    assert "converted 3 entries" in lines[1]
    assert "asked for 5 batches of 32 windows" in lines[2]
    method_lines = [line for line in lines if "windows/s" in line]
    assert len(method_lines) == 3
    assert all(" 160 windows in " in line for line in method_lines)  # 5 batches of 32 delivered by each
    assert lines[-2].strip().startswith("figures: windows actually delivered per second")
    assert lines[-1] == f"files kept in {tmp_path}: the archives in archives/, the corpus in corpus.zarr"
    assert (tmp_path / "corpus.zarr" / "zarr.json").exists()
    assert len(zarrmux.open_corpus(str(tmp_path / "corpus.zarr"))) == 3


def test_demo_rejects_bad_counts(tmp_path: Path) -> None:
    out = run("demo", "--dir", str(tmp_path), "--archives", "0")
    assert out.returncode != 0 and "--archives" in out.stderr


def test_run_demo_reports_figures(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(tmp_path, archives=2, min_rows=500, max_rows=800, batches=3, batch_size=4, out=lines.append)
    assert result.archives == 2 and result.archive_bytes > 0
    assert len(result.windows_per_s) == 3 and all(v > 0 for v in result.windows_per_s.values())
    assert result.batches == {name: 3 for name in result.windows_per_s}
    assert result.windows == {name: 12 for name in result.windows_per_s}
    assert all(result.windows_per_s[k] == result.windows[k] / result.seconds[k] for k in result.windows)
    assert "converted 2 entries" in result.convert_summary
    # a second run reuses the archives and skips the unchanged entries
    again = run_demo(tmp_path, archives=2, min_rows=500, max_rows=800, batches=3, batch_size=4, out=lines.append)
    assert "2 unchanged skipped" in again.convert_summary
