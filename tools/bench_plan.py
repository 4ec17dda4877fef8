"""Window planning cost: ``WindowPlan`` against its first version, in one process.

Workload (the seed workload): 64 entries of ``U[5000, 20000]`` rows, windows
of ``n=16`` rows, ``batch_size=32``, ``n_active=32``, ``rate=16``; every mode
('with_replacement', 'single_active', 'exhaustive', 'sequential'; the last
ignores ``dist``) and every quota distribution.  Planning only: no data is read.

Measured, microseconds per batch (one ``Block`` of 32 windows), median of
``--runs`` runs, crossing epochs as a long run does:

* ``next_block``: a loop calling ``WindowPlan.next_block()``;
* ``blocks()``: iterating ``WindowPlan.blocks(N, epoch_end=False)``;
* ``first version``: ``blocks()`` of the plan as it was before planning was
  made cheap (``tests/plan_reference.py``, kept by the tests as the
  specification of the sequence), over fewer batches (it is slower).

The target is at most 50 us per batch for ``next_block`` on the seed
workload ('with_replacement', 'binomial'); PASS/FAIL is printed for every
row against it.  Before timing, each configuration checks that both versions
plan the same blocks (entries, starts and states) for the first batches.

Usage::

    python tools/bench_plan.py [--batches 20000] [--runs 5] [--check 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import plan_reference  # noqa: E402

from zarrmux.plan import DISTRIBUTIONS, MODES, WindowPlan  # noqa: E402

TARGET_US = 50.0
SEED_CONFIG = ("with_replacement", "binomial")


def make_rows(entries: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(5000, 20001, entries)


def make(cls: Any, rows: np.ndarray, mode: str, dist: str, seed: int) -> Any:
    return cls(rows, 16, batch_size=32, n_active=32, rate=16, mode=mode, dist=dist, seed=seed)


def check_same(rows: np.ndarray, mode: str, dist: str, batches: int) -> None:
    new = make(WindowPlan, rows, mode, dist, seed=12345).blocks(batches, epoch_end=False)
    old = make(plan_reference.WindowPlan, rows, mode, dist, seed=12345).blocks(batches, epoch_end=False)
    for i, (a, b) in enumerate(zip(new, old)):
        same = (
            np.array_equal(a.entries, b.entries)
            and np.array_equal(a.starts, b.starts)
            and a.state_after == b.state_after
            and (a.epoch, a.index, a.last_in_epoch) == (b.epoch, b.index, b.last_in_epoch)
        )
        if not same:
            raise SystemExit(f"{mode}/{dist}: block {i} differs from the first version's")


def time_next_block(plan: WindowPlan, batches: int) -> float:
    next_block = plan.next_block
    t0 = time.perf_counter()
    for _ in range(batches):
        next_block()
    return (time.perf_counter() - t0) / batches * 1e6


def time_blocks(plan: Any, batches: int) -> float:
    t0 = time.perf_counter()
    for _ in plan.blocks(batches, epoch_end=False):
        pass
    return (time.perf_counter() - t0) / batches * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=20_000, help="batches per timed run of the current plan")
    ap.add_argument("--old-batches", type=int, default=4_000, help="batches per timed run of the first version")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--check", type=int, default=300, help="batches compared with the first version first")
    ap.add_argument("--modes", nargs="*", default=list(MODES))
    ap.add_argument("--dists", nargs="*", default=list(DISTRIBUTIONS))
    args = ap.parse_args()

    rows = make_rows()
    configs = [(m, d) for m in args.modes for d in args.dists]
    for mode, dist in configs:
        check_same(rows, mode, dist, args.check)
    print(f"workload: 64 entries of U[5000, 20000] rows, n=16, batch_size=32, n_active=32, rate=16; "
          f"{args.batches} batches ({args.old_batches} for the first version) x {args.runs} runs, medians; "
          f"same blocks as the first version: checked ({args.check} batches per configuration)")
    print(f"{'mode':17s} {'dist':9s} {'next_block':>11s} {'blocks()':>9s} {'first version':>14s} "
          f"{'speed-up':>9s}  target {TARGET_US:.0f} us")
    verdict = None
    for mode, dist in configs:
        t_next, t_blocks, t_old = [], [], []
        for r in range(args.runs):  # interleaved, so that the machine's noise hits all alike
            t_next.append(time_next_block(make(WindowPlan, rows, mode, dist, seed=r), args.batches))
            t_blocks.append(time_blocks(make(WindowPlan, rows, mode, dist, seed=r), args.batches))
            t_old.append(time_blocks(make(plan_reference.WindowPlan, rows, mode, dist, seed=r), args.old_batches))
        nb, bl, old = (statistics.median(t) for t in (t_next, t_blocks, t_old))
        ok = nb <= TARGET_US
        if (mode, dist) == SEED_CONFIG:
            verdict = ok
        print(f"{mode:17s} {dist:9s} {nb:8.1f} us {bl:6.1f} us {old:11.1f} us {old / nb:8.1f}x  "
              f"{'PASS' if ok else 'FAIL'}" + ("  <- seed workload" if (mode, dist) == SEED_CONFIG else ""))
    if verdict is not None:
        print(f"seed workload (with_replacement, binomial): {'PASS' if verdict else 'FAIL'} "
              f"(next_block <= {TARGET_US:.0f} us per batch of 32 windows)")


if __name__ == "__main__":
    main()
