"""The built-in demo: make archives, convert them, sample them, and say how fast.

``zarrmux demo`` runs :func:`run_demo`.  It writes a small corpus of NPZ
archives shaped like the seed documents' songs (``X (rows, 128)`` float32
features, ``Y (rows,)`` int64 labels), converts them with
:func:`zarrmux.convert`, and draws 16-row windows three ways:

1. the seed recipe: ``StochasticMux(n_active=32, rate=16)`` over
   ``sample_npz`` streams that load whole archives (run on zarrmux's mux);
2. the migration path: ``corpus.streamers(16)`` + the same mux + ``buffer_stream``;
3. the native ``WindowSampler`` with background prefetch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    """Figures of one demo run."""

    workdir: Path
    archives: int = 0
    archive_bytes: int = 0
    convert_summary: str = ""
    windows_per_s: dict[str, float] = field(default_factory=dict)


def _rate(batches: Iterator[dict[str, np.ndarray]], n_batches: int, batch_size: int) -> float:
    t0 = time.perf_counter()
    for i, batch in enumerate(batches):
        assert batch["X"].shape[:2] == (batch_size, 16)
        if i + 1 >= n_batches:
            break
    return n_batches * batch_size / (time.perf_counter() - t0)


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

    workdir = Path(workdir)
    result = DemoResult(workdir=workdir)
    src = workdir / "archives"
    t0 = time.perf_counter()
    from .testing import make_npz_archives

    paths = sorted(src.glob("*.npz")) if src.is_dir() else []
    if len(paths) != archives:
        paths = make_npz_archives(src, archives, min_rows=min_rows, max_rows=max_rows, seed=seed)
    result.archives = len(paths)
    result.archive_bytes = sum(p.stat().st_size for p in paths)
    out(f"1. archives: {len(paths)} NPZ files, {result.archive_bytes / 1e6:.1f} MB in {src} "
        f"({time.perf_counter() - t0:.1f} s)")

    dest = workdir / "corpus.zarr"
    report = zarrmux.convert([str(src)], str(dest), progress=False)
    result.convert_summary = report.summary()
    out(f"2. zarrmux convert: {result.convert_summary}")

    windows: dict[str, float] = {}
    np.random.seed(seed)
    streams = [Streamer(sample_npz, str(p), 16) for p in paths]
    mux = StochasticMux(streams, n_active=32, rate=16, random_state=seed)
    windows["seed recipe (NPZ, whole archives)"] = _rate(buffer_stream(mux(), batch_size), batches, batch_size)

    corpus = zarrmux.open_corpus(str(dest))
    mux = StochasticMux(corpus.streamers(16), n_active=32, rate=16, random_state=seed)
    windows["corpus.streamers + StochasticMux"] = _rate(buffer_stream(mux(), batch_size), batches, batch_size)

    with zarrmux.WindowSampler(corpus, 16, batch_size=batch_size, n_active=32, rate=16, seed=seed) as sampler:
        windows["WindowSampler (prefetch)"] = _rate(iter(sampler), batches, batch_size)
    result.windows_per_s = windows

    base = next(iter(windows.values()))
    out(f"3. sampling {batches} batches of {batch_size} windows x 16 rows, 32 active, rate 16:")
    for name, rate in windows.items():
        out(f"   {name:<38} {rate:>10,.0f} windows/s  {rate / base:5.1f}x")
    return result
