"""What the sampler's statistics cost: the same batches with and without the counting layer.

``WindowSampler`` counts what it delivers (``sampler.stats()``) in a thin
layer around its batch stream: a few clock reads per batch.  This runs the
seed workload (windows of 16 rows, 32 active, rate 16, batches of 32,
``prefetch=0`` so reading and counting share one thread) on a corpus made by
``zarrmux.convert`` from :func:`zarrmux.testing.make_npz_archives`, and
times the sampler's iteration against its batch stream without the
delivery counting (``sampler._batches()``, the stream ``__iter__`` wraps;
the reads' own timing stays in both), interleaved, in one process, and
prints the medians and the cost in percent.

Usage: ``python tools/bench_stats.py [--dir DIR] [--entries 64] [--batches 3000] [--runs 5]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import zarrmux
from zarrmux.testing import make_npz_archives


def corpus(directory: Path, entries: int) -> Path:
    dest = directory / "corpus.zarr"
    if not (directory / "corpus.done").exists():
        sources = make_npz_archives(directory / "npz", entries, quantize=False, seed=0)
        zarrmux.convert(sources, dest, progress=False)
        (directory / "corpus.done").touch()
    return dest


def windows_per_second(path: Path, batches: int, counted: bool) -> float:
    with zarrmux.WindowSampler(str(path), 16, batch_size=32, n_active=32, rate=16, seed=0, prefetch=0, max_iter=batches) as s:
        it = iter(s) if counted else s._batches()
        t0 = time.perf_counter()
        n = sum(len(b["X"]) for b in it)
        return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="/tmp/zarrmux_bench_stats")
    ap.add_argument("--entries", type=int, default=64)
    ap.add_argument("--batches", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    path = corpus(Path(args.dir), args.entries)
    windows_per_second(path, args.batches, True)  # warm the page cache
    got: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.runs):
        for counted in (True, False):
            got[counted].append(windows_per_second(path, args.batches, counted))
    med = {k: sorted(v)[len(v) // 2] for k, v in got.items()}
    print(f"seed workload, prefetch=0, {args.batches} batches x {args.runs} runs, medians:")
    print(f"  with statistics     {med[True]:>10,.0f} windows/s")
    print(f"  without the counting{med[False]:>10,.0f} windows/s")
    print(f"  cost of statistics  {100 * (1 - med[True] / med[False]):.1f}%")


if __name__ == "__main__":
    main()
