"""How fast a corpus reads with given sampling parameters: :func:`bench_corpus`.

The library side of ``zarrmux bench``: it runs a
:class:`~zarrmux.sampler.WindowSampler` as a training loop would (with no
training step, so the consumer takes batches as fast as they come) for a
time or a number of batches, and returns the sampler's statistics
(:class:`~zarrmux.stats.LoaderStats`) with the windows delivered over time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from .stats import LoaderStats, batch_windows

__all__ = ["BenchResult", "bench_corpus", "plot_timeline"]


@dataclasses.dataclass
class BenchResult:
    """What :func:`bench_corpus` measured."""

    params: dict[str, Any]  #: the sampling parameters used
    stats: LoaderStats  #: the sampler's statistics over the run
    timeline: list[tuple[float, int]]  #: (seconds since start, windows delivered so far), about every ``interval``

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``params``, ``stats`` (with derived figures) and ``timeline``."""
        return {"params": dict(self.params), "stats": self.stats.as_dict(), "timeline": [list(p) for p in self.timeline]}


def bench_corpus(
    target: Any,
    *,
    n: int,
    batch_size: int,
    n_active: int | None,
    rate: float | None = 16.0,
    threads: int | None = None,
    prefetch: int | None = None,
    keys: Any = None,
    seed: int = 0,
    seconds: float | None = 10.0,
    batches: int | None = None,
    interval: float = 0.25,
    progress: Callable[[int], None] | None = None,
) -> BenchResult:
    """Read batches from ``target`` for ``seconds`` (or ``batches`` batches, whichever comes first).

    Parameters
    ----------
    target : path, URL or zarrmux.Corpus
        The corpus.
    n, batch_size, n_active, rate, threads, prefetch, keys, seed
        As for :class:`~zarrmux.sampler.WindowSampler`.
    seconds : float > 0 or None
        Stop after this long (``None``: only ``batches`` counts).
    batches : int > 0 or None
        Stop after this many batches.  One of ``seconds`` and ``batches`` is required.
    interval : float > 0
        Seconds between points of the timeline.
    progress : callable, optional
        Called with the number of windows of each batch received (a progress bar's ``update``).
    """
    from .exceptions import ConfigError
    from .params import check_int, check_number
    from .sampler import WindowSampler

    if seconds is None and batches is None:
        raise ConfigError("bench_corpus needs seconds or batches")
    seconds = check_number("seconds", seconds, positive=True, none=True)
    batches = check_int("batches", batches, minimum=1, none=True)
    params = dict(n=n, batch_size=batch_size, n_active=n_active, rate=rate, threads=threads, prefetch=prefetch, seed=seed)
    sampler = WindowSampler(
        target, n, batch_size=batch_size, n_active=n_active, rate=rate, threads=threads,
        prefetch=prefetch, keys=keys, seed=seed, max_iter=batches if batches is not None else 2**62,
    )
    params.update(threads=sampler.threads, prefetch=sampler.prefetch)
    timeline: list[tuple[float, int]] = [(0.0, 0)]
    with sampler:
        sampler.reset_stats()
        t0 = time.perf_counter()
        mark = t0 + interval
        windows = 0
        for batch in sampler:
            k = batch_windows(batch)
            windows += k
            if progress is not None:
                progress(k)
            now = time.perf_counter()
            if now >= mark:
                timeline.append((now - t0, windows))
                mark = now + interval
            if seconds is not None and now - t0 >= seconds:
                break
        timeline.append((time.perf_counter() - t0, windows))
        stats = sampler.stats()
    return BenchResult(params, stats, timeline)


def plot_timeline(result: BenchResult, path: str) -> None:
    """Draw windows/s over time to ``path`` (PNG); needs matplotlib (``pip install 'zarrmux[plot]'``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("zarrmux bench --plot needs matplotlib: pip install 'zarrmux[plot]'") from exc
    pts = result.timeline
    xs = [(a[0] + b[0]) / 2 for a, b in zip(pts, pts[1:])]
    ys = [(b[1] - a[1]) / (b[0] - a[0]) if b[0] > a[0] else 0.0 for a, b in zip(pts, pts[1:])]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(xs, ys, marker=".")
    ax.axhline(result.stats.windows_per_second, linestyle="--", color="grey", label=f"mean {result.stats.windows_per_second:,.0f}")
    ax.set_xlabel("seconds")
    ax.set_ylabel("windows/s")
    p = result.params
    ax.set_title(f"zarrmux bench: n={p['n']} batch_size={p['batch_size']} n_active={p['n_active']} prefetch={p['prefetch']}")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
