"""Is the default prefetch ever slower than ``prefetch=0``?  A paired A/B in one process, with a control.

``tools/bench_sampler.py`` runs each variant in its own process, where the
spread between runs (10-25% on a shared 2-core machine) hides differences of
a few percent.  Here both settings read the same corpus in the same process,
in pairs whose order alternates (the first of a pair is not favoured), and
the same is done for ``prefetch=0`` against itself: the control shows how
far apart two identical settings land with this method.

Usage::

    python tools/bench_prefetch.py CORPUS [CORPUS ...] [--pairs 12] [--batches 1024]

with corpora written by ``tools/bench_sampler.py`` (for example its default
and ``--codec lz4`` corpora).  Windows of 16 rows, 32 active, rate 16,
batches of 32, as there.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import zarrmux


def rate(path: str, batches: int, **options: Any) -> float:
    """Windows per second of one pass of ``batches`` batches."""
    with zarrmux.WindowSampler(path, 16, batch_size=32, n_active=32, rate=16, seed=0, max_iter=batches, **options) as s:
        n = 0
        t0 = time.perf_counter()
        for batch in s:
            n += len(batch["X"])
        return n / (time.perf_counter() - t0)


def paired(path: str, pairs: int, batches: int, a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float, list[float]]:
    """Medians of ``a`` and ``b`` and the ratios a/b of each pair, the pair's order alternating."""
    ra, rb = [], []
    for i in range(pairs):
        if i % 2:
            ra.append(rate(path, batches, **a))
            rb.append(rate(path, batches, **b))
        else:
            rb.append(rate(path, batches, **b))
            ra.append(rate(path, batches, **a))
    return statistics.median(ra), statistics.median(rb), [x / y for x, y in zip(ra, rb)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpora", nargs="+")
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--batches", type=int, default=1024)
    args = ap.parse_args()
    print(f"{args.pairs} pairs of {args.batches} batches of 32 windows, order alternating; medians")
    for path in args.corpora:
        rate(path, args.batches)  # warm: page cache, shard maps, checked chunks
        for label, a in (("defaults vs prefetch=0", {}), ("control: prefetch=0 vs prefetch=0", {"prefetch": 0})):
            ma, mb, ratios = paired(path, args.pairs, args.batches, a, {"prefetch": 0})
            print(
                f"  {path}: {label:<36} {ma:10,.0f} vs {mb:10,.0f} windows/s: ratio of medians {ma / mb:.3f}, "
                f"median of paired ratios {statistics.median(ratios):.3f} [{min(ratios):.2f} .. {max(ratios):.2f}]"
            )


if __name__ == "__main__":
    main()
