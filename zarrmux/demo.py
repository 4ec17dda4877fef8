"""The built-in demo: make archives, convert them, sample them, and say how fast.

``zarrmux demo`` runs :func:`run_demo`.  It writes a small corpus of NPZ
archives shaped like the seed documents' songs (``X (rows, 128)`` float32
features at full precision, like real features, ``Y (rows,)`` int64 labels),
converts them with :func:`zarrmux.convert` (default settings), and draws
16-row windows three ways:

1. the seed recipe: ``StochasticMux(n_active=32, rate=16)`` over
   ``sample_npz`` streams that load whole archives (run on zarrmux's mux);
2. the migration path: ``corpus.streamers(16)`` + the same mux + ``buffer_stream``;
3. the native ``WindowSampler`` with its default settings (background prefetch).

Each method gets the same conditions: it opens its own data (the streamers
and the sampler each open the corpus afresh, so neither starts with chunks
the other decoded), is timed from opening to its last batch, and is asked for
the same number of batches (the sampler with ``max_iter``, so it does not
stop at the end of its epoch).  The figures are the windows each method
actually delivered divided by its time: one short run each, on this machine,
so they are noisy; ``tools/bench_sampler.py`` measures properly.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from .core import Streamer
from .maps import buffer_stream
from .mux import StochasticMux

__all__ = ["DemoResult", "run_demo", "sample_npz"]


def sample_npz(npz_file: str, n: int) -> Iterator[dict[str, np.ndarray]]:
    """The seed recipe's streamer, reading each member once per activation."""
    with np.load(npz_file) as data:
        X, Y = data["X"], data["Y"]
        n_total = len(X)
        while True:
            idx = np.random.randint(n_total - n)
            yield dict(X=X[idx : idx + n], Y=Y[idx : idx + n])


@dataclass
class DemoResult:
    """Figures of one demo run.

    For each sampling method (by name, in the order run): ``batches`` and
    ``windows`` it actually delivered, ``seconds`` from opening its data to its
    last batch, and ``windows_per_s = windows / seconds``.
    """

    workdir: Path
    archives: int = 0
    archive_bytes: int = 0
    convert_summary: str = ""
    batches_asked: int = 0
    batches: dict[str, int] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    windows_per_s: dict[str, float] = field(default_factory=dict)


def _measure(
    open_batches: Callable[[], tuple[Iterator[dict[str, np.ndarray]], Callable[[], Any]]],
    n_batches: int,
    n: int,
) -> tuple[int, int, float]:
    """Open a method's batches and draw up to ``n_batches``: ``(batches, windows, seconds)`` delivered.

    The clock runs from opening to the last batch; closing (joining threads) is not timed.
    """
    t0 = time.perf_counter()
    batches, close = open_batches()
    got = windows = 0
    try:
        for batch in batches:
            x = batch["X"]
            if x.shape[1] != n or len(batch["Y"]) != len(x):
                raise AssertionError(f"demo: a batch of X {x.shape}, Y {batch['Y'].shape}; expected windows of {n} rows")
            got += 1
            windows += len(x)
            if got >= n_batches:
                break
        seconds = time.perf_counter() - t0
    finally:
        close()
    return got, windows, seconds


def _archives(src: Path, archives: int, min_rows: int, max_rows: int, seed: int) -> tuple[list[Path], bool]:
    """The demo archives in ``src``: reused if made with the same settings, else (re)made (``True``)."""
    from .testing import make_npz_archives

    spec = {"archives": archives, "min_rows": min_rows, "max_rows": max_rows, "seed": seed, "quantize": False}
    marker = src.parent / "archives.json"
    paths = sorted(src.glob("*.npz")) if src.is_dir() else []
    try:
        same = json.loads(marker.read_text()) == spec
    except (OSError, ValueError):
        same = False
    if same and len(paths) == archives:
        return paths, False
    for p in paths:
        p.unlink()
    paths = make_npz_archives(src, archives, min_rows=min_rows, max_rows=max_rows, seed=seed, quantize=False)
    marker.write_text(json.dumps(spec))
    return paths, True


def run_demo(
    workdir: str | Path,
    *,
    archives: int = 24,
    min_rows: int = 2000,
    max_rows: int = 8000,
    batches: int = 300,
    batch_size: int = 32,
    seed: int = 0,
    out: Callable[[str], Any] = print,
) -> DemoResult:
    """Run the demo in ``workdir`` and report with ``out``.

    Parameters
    ----------
    workdir : path
        Where the archives and the corpus go (created; reused if present).
    archives : int > 0
        Number of NPZ archives to make.
    min_rows, max_rows : int > 16
        Range of rows per archive.
    batches : int > 0
        Batches drawn by each sampling method.
    batch_size : int > 0
        Windows per batch.
    seed : int
        Seed of the data and of the samplers.
    out : callable
        Receives each line of the report.
    """
    import zarrmux

    n = 16
    workdir = Path(workdir)
    result = DemoResult(workdir=workdir, batches_asked=batches)
    src = workdir / "archives"
    t0 = time.perf_counter()
    paths, remade = _archives(src, archives, min_rows, max_rows, seed)
    dest = workdir / "corpus.zarr"
    if remade and dest.exists():
        shutil.rmtree(dest)  # made from other archives: convert the new ones afresh
    result.archives = len(paths)
    result.archive_bytes = sum(p.stat().st_size for p in paths)
    out(f"1. archives: {len(paths)} NPZ files, {result.archive_bytes / 1e6:.1f} MB in {src} "
        f"({time.perf_counter() - t0:.1f} s)")

    report = zarrmux.convert([str(src)], str(dest), progress=False)
    result.convert_summary = report.summary()
    out(f"2. zarrmux convert: {result.convert_summary}")

    def seed_recipe() -> tuple[Iterator[dict[str, np.ndarray]], Callable[[], Any]]:
        np.random.seed(seed)
        streams = [Streamer(sample_npz, str(p), n) for p in paths]
        mux = StochasticMux(streams, n_active=32, rate=16, random_state=seed)
        it = cast(Generator[dict[str, np.ndarray], None, None], buffer_stream(mux(), batch_size))
        return it, it.close

    def migration() -> tuple[Iterator[dict[str, np.ndarray]], Callable[[], Any]]:
        corpus = zarrmux.open_corpus(str(dest))
        mux = StochasticMux(corpus.streamers(n), n_active=32, rate=16, random_state=seed)
        it = cast(Generator[dict[str, np.ndarray], None, None], buffer_stream(mux(), batch_size))

        def close() -> None:
            it.close()
            corpus.close()

        return it, close

    def sampler() -> tuple[Iterator[dict[str, np.ndarray]], Callable[[], Any]]:
        s = zarrmux.WindowSampler(str(dest), n, batch_size=batch_size, n_active=32, rate=16, seed=seed, max_iter=batches)
        return iter(s), s.close

    methods = {
        "seed recipe (NPZ, whole archives)": seed_recipe,
        "corpus.streamers + StochasticMux": migration,
        "WindowSampler (default settings)": sampler,
    }
    for name, open_batches in methods.items():
        got, windows, seconds = _measure(open_batches, batches, n)
        result.batches[name] = got
        result.windows[name] = windows
        result.seconds[name] = seconds
        result.windows_per_s[name] = windows / seconds

    rates = result.windows_per_s
    base = next(iter(rates.values()))
    out(f"3. sampling: each method asked for {batches} batches of {batch_size} windows x {n} rows, 32 active, rate 16:")
    for name, rate in rates.items():
        short = "" if result.batches[name] == batches else f"  (only {result.batches[name]} batches delivered)"
        out(f"   {name:<36} {result.windows[name]:>8,} windows in {result.seconds[name]:7.3f} s "
            f"= {rate:>10,.0f} windows/s  {rate / base:5.1f}x{short}")
    out("   figures: windows actually delivered per second, from opening the data to the last batch; "
        "one short run of each method on this machine, so noisy (tools/bench_sampler.py measures properly)")
    return result
