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

With ``--random-access`` it measures the global stream instead
(:mod:`zarrmux.global_stream`, seed workload, one epoch of
``--epoch-batches`` batches, default 100,000):

* iterating the epoch through ``GlobalStream.blocks_from`` (what one reader
  plans) against ``WindowPlan.next_block``;
* a rank's iteration for world sizes 1, 2, 4, 8: every rank plans the whole
  stream, so its planning cost per batch it yields grows with the world size;
* ``block(e, g)`` for ``g = 0, 1, 2, ...`` (sequential access by index);
* ``block(e, g)`` for a random ``g``: the first, on a fresh stream (it plans
  from the epoch's start to ``g``: at most one pass), then warm (from the
  nearest kept state, at most ``CHECKPOINT_EVERY`` batches back), medians and
  maxima of ``--lookups`` random ``g`` once the epoch has been accessed to its end;
* the size of a saved position (``WindowSampler.state_dict()``), as JSON and pickled.

Usage::

    python tools/bench_plan.py [--batches 20000] [--runs 5] [--check 300]
    python tools/bench_plan.py --random-access [--epoch-batches 100000] [--runs 3] [--lookups 300]
"""

from __future__ import annotations

import argparse
import itertools
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


def random_access(args: argparse.Namespace) -> None:
    import json
    import pickle

    from zarrmux.global_stream import CHECKPOINT_EVERY, GlobalStream, RankStream, position_state, SAMPLER_FORMAT

    rows = make_rows()
    G = args.epoch_batches

    def plan(seed: int) -> WindowPlan:
        return WindowPlan(rows, 16, batch_size=32, n_active=32, rate=16, seed=seed, epoch_batches=G)

    it_plan, it_stream, by_index, cold, warm_med, warm_max = [], [], [], [], [], []
    rank_cost: dict[int, list[float]] = {R: [] for R in (1, 2, 4, 8)}
    rng = np.random.default_rng(0)
    sub = min(G, 20_000)
    for r in range(args.runs):
        p = plan(r)
        t0 = time.perf_counter()
        for _ in range(sub):
            p.next_block()
        it_plan.append((time.perf_counter() - t0) / sub * 1e6)
        gs = GlobalStream(plan(r))
        t0 = time.perf_counter()
        for _ in itertools.islice(gs.blocks_from(0, 0), sub):
            pass
        it_stream.append((time.perf_counter() - t0) / sub * 1e6)
        gs = GlobalStream(plan(r))
        t0 = time.perf_counter()
        for g in range(sub):
            gs.block(0, g)
        by_index.append((time.perf_counter() - t0) / sub * 1e6)
        for R in rank_cost:
            rs = RankStream(GlobalStream(plan(r)), R - 1, R)
            k = max(1, sub // R)
            t0 = time.perf_counter()
            for _ in rs.steps(0, 0, max_steps=k):
                pass
            rank_cost[R].append((time.perf_counter() - t0) / k * 1e6)
        gs = GlobalStream(plan(r))
        g = int(rng.integers(G // 2, G))
        t0 = time.perf_counter()
        gs.block(0, g)
        cold.append((time.perf_counter() - t0) * 1e3)
        gs.block(0, G - 1)  # (the rest of the epoch once, so every g has a state near it)
        times = []
        for g in rng.integers(0, G, args.lookups).tolist():
            t0 = time.perf_counter()
            gs.block(0, g)
            times.append((time.perf_counter() - t0) * 1e3)
        warm_med.append(statistics.median(times))
        warm_max.append(max(times))
    med = statistics.median
    print(f"global stream, seed workload (with_replacement, binomial), epoch of {G} batches; "
          f"{args.runs} runs, medians; a state kept every {CHECKPOINT_EVERY} batches")
    print(f"  iterate:  WindowPlan.next_block {med(it_plan):.1f} us/batch, GlobalStream.blocks_from "
          f"{med(it_stream):.1f} us/batch ({med(it_stream) / med(it_plan):.2f}x)")
    print(f"  block(0, g) for g = 0, 1, 2, ... (sequential access by index): {med(by_index):.1f} us/batch "
          f"({med(by_index) / med(it_stream):.2f}x iterating)")
    for R, ts in rank_cost.items():
        print(f"  rank {R - 1} of {R}: {med(ts):.1f} us of planning per batch it yields")
    print(f"  block(0, g), fresh stream, g in [{G // 2}, {G}): {med(cold):.0f} ms (plans up to g once)")
    print(f"  block(0, g), random g after one pass: median {med(warm_med):.2f} ms, max {med(warm_max):.2f} ms "
          f"({args.lookups} lookups per run)")
    p = plan(0)
    for _ in range(37):
        p.next_block()
    st = position_state(SAMPLER_FORMAT, p.state_dict(), rank=0, world_size=1)
    print(f"  a saved position (n_active=32): {len(json.dumps(st))} bytes as JSON, "
          f"{len(pickle.dumps(st))} bytes pickled")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=20_000, help="batches per timed run of the current plan")
    ap.add_argument("--old-batches", type=int, default=4_000, help="batches per timed run of the first version")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--check", type=int, default=300, help="batches compared with the first version first")
    ap.add_argument("--modes", nargs="*", default=list(MODES))
    ap.add_argument("--dists", nargs="*", default=list(DISTRIBUTIONS))
    ap.add_argument("--random-access", action="store_true", help="measure the global stream instead (see above)")
    ap.add_argument("--epoch-batches", type=int, default=100_000)
    ap.add_argument("--lookups", type=int, default=300)
    args = ap.parse_args()
    if args.random_access:
        random_access(args)
        return

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
