"""The demo's figures are honest: windows actually delivered, per second, each method under the same conditions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import zarrmux
from zarrmux.demo import run_demo
from zarrmux.testing import make_npz_archives

SMALL = dict(archives=2, min_rows=500, max_rows=800, batch_size=4)
#: the method lines: "   <name>   <windows> windows in <seconds> s = <rate> windows/s  <ratio>x"
LINE = re.compile(r"^\s+(?P<name>.+?)\s+(?P<windows>[\d,]+) windows in\s+(?P<seconds>[\d.]+) s =\s+(?P<rate>[\d,]+) windows/s")


def epoch_batches(corpus: Path, batch_size: int) -> int:
    """Batches of the WindowSampler's default epoch on ``corpus`` (planned, not read)."""
    with zarrmux.WindowSampler(str(corpus), 16, batch_size=batch_size, n_active=32, rate=16, seed=0) as s:
        return sum(1 for _ in s.windows())


def test_every_method_delivers_the_batches_asked_and_its_rate_is_delivered_over_time(tmp_path: Path) -> None:
    lines: list[str] = []
    batches = 40
    result = run_demo(tmp_path, batches=batches, out=lines.append, **SMALL)  # type: ignore[arg-type]
    # the sampler's epoch on this corpus is shorter than the batches asked: a sampler left to
    # end its epoch would deliver fewer windows than a rate of batches * batch_size / time claims
    assert epoch_batches(tmp_path / "corpus.zarr", 4) < batches
    assert result.batches_asked == batches
    assert len(result.windows_per_s) == 3
    printed = {m["name"]: m for m in map(LINE.match, lines) if m}
    assert set(printed) == set(result.windows_per_s)
    for name, rate in result.windows_per_s.items():
        assert result.batches[name] == batches, name
        assert result.windows[name] == batches * 4, name
        assert result.seconds[name] > 0
        assert rate == result.windows[name] / result.seconds[name]
        m = printed[name]
        assert int(m["windows"].replace(",", "")) == result.windows[name]
        assert int(m["rate"].replace(",", "")) == round(rate)
        assert abs(float(m["seconds"]) - result.seconds[name]) <= 0.0005
    assert any(line.strip().startswith("figures: windows actually delivered per second") for line in lines)


def test_measure_counts_what_a_short_stream_delivers(tmp_path: Path) -> None:
    from zarrmux.demo import _measure

    closed: list[bool] = []

    def three_batches() -> tuple[Iterator[dict[str, np.ndarray]], object]:
        batches = iter([{"X": np.zeros((5, 16, 2)), "Y": np.zeros((5, 16))} for _ in range(3)])
        return batches, lambda: closed.append(True)

    got, windows, seconds = _measure(three_batches, 10, 16)  # type: ignore[arg-type]
    assert (got, windows) == (3, 15) and seconds > 0 and closed == [True]


def test_measure_of_a_sampler_that_ends_its_epoch_reports_the_epoch(tmp_path: Path) -> None:
    from zarrmux.demo import _measure

    make_npz_archives(tmp_path / "a", 2, min_rows=300, max_rows=400, seed=1, quantize=False)
    zarrmux.convert([str(tmp_path / "a")], str(tmp_path / "c.zarr"), progress=False)
    epoch = epoch_batches(tmp_path / "c.zarr", 4)

    def sampler() -> tuple[Iterator[dict[str, np.ndarray]], object]:
        s = zarrmux.WindowSampler(str(tmp_path / "c.zarr"), 16, batch_size=4, n_active=32, rate=16, seed=0)
        return iter(s), s.close

    got, windows, _ = _measure(sampler, epoch + 50, 16)  # type: ignore[arg-type]
    assert got == epoch and windows == 4 * epoch


def test_demo_data_is_full_precision_and_old_archives_are_remade(tmp_path: Path) -> None:
    # archives left by an older demo (quantised features, no settings file) are remade
    make_npz_archives(tmp_path / "archives", 2, min_rows=500, max_rows=800, seed=0, quantize=True)
    result = run_demo(tmp_path, batches=2, out=lambda line: None, **SMALL)  # type: ignore[arg-type]
    assert result.archives == 2
    for p in sorted((tmp_path / "archives").glob("*.npz")):
        with np.load(p) as d:
            x = d["X"]
        assert x.dtype == np.float32 and np.any(x * 64 != np.round(x * 64)), f"{p.name} holds quantised features"
    corpus = zarrmux.open_corpus(str(tmp_path / "corpus.zarr"))
    with np.load(tmp_path / "archives" / "song00000.npz") as d:
        np.testing.assert_array_equal(corpus.read_rows(0, "X", 0, 10), d["X"][:10])
    assert "converted 2 entries" in result.convert_summary


def test_the_demo_command_says_where_its_files_are(tmp_path: Path) -> None:
    import subprocess
    import sys

    def demo(*args: str) -> str:
        cmd = [sys.executable, "-m", "zarrmux", "demo", "--archives", "2", "--batches", "2", *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    kept = demo("--dir", str(tmp_path))
    assert kept.startswith(f"files kept in {tmp_path}")
    assert (tmp_path / "corpus.zarr").is_dir() and list((tmp_path / "archives").glob("*.npz"))
    gone = demo()
    m = re.match(r"files were in (\S+) and are deleted", gone)
    assert m and not Path(m.group(1)).exists()
