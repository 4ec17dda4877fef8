"""Benchmark of issue 4, point 8: window sampling vs the seed's recipes, warm and cold, with peak RSS.

Workload: ``--entries`` (default 64) entries of ``X`` float32 ``(U[5000, 20000], 128)``
and ``Y`` int64 (:func:`zarrmux.testing.make_npz_archives`), as NPZ archives,
as an NPY directory (for the memory-mapped recipe) and as a Zarr corpus
written by :func:`zarrmux.convert` (default codec and chunking).  Windows of
16 rows, 32 active entries, rate 16, batches of 32.

Variants, each run in its own subprocess (its peak RSS is read from
``getrusage`` at the end):

a ``seed-as-written``: pescador ``StochasticMux`` over the seed's ``sample_npz``,
  which indexes the ``NpzFile`` per window (re-reading the whole member each time);
b ``seed-member-once``: the same, reading each member once per activation
  (the baseline of the targets);
c ``seed-npy-mmap``: pescador over the seed's ``sample_npy_mmap``;
d ``ported-streamers``: ``zarrmux.streamers.streamers(corpus, 16)`` (what
  ``corpus.streamers(16)`` returns) + ``zarrmux.StochasticMux`` + ``zarrmux.buffer_stream``;
e ``window-sampler``: ``zarrmux.WindowSampler`` with its default prefetch.

Warm: every file of the variant's data is read right before its timed run
(this machine evicts page cache idle for 10-30 s).  Cold: as root,
``sync; echo 3 > /proc/sys/vm/drop_caches`` right before the run (skipped
with a note when not root).  Medians of ``--runs`` runs.  The memory check
runs (e) on a corpus ``--big`` times larger (the same archives converted
``--big`` times under other names) and compares peak RSS.

Usage::

    python tools/bench_sampler.py [--dir /tmp/zarrmux_bench_sampler] [--runs 3] [--big 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N = 16
N_ACTIVE = 32
RATE = 16
BATCH = 32
#: windows per timed run (the seed as written is slow: fewer windows)
WINDOWS = {"a": 1024, "b": 16384, "c": 32768, "d": 32768, "e": 65536}
BIG = 10
NAMES = {
    "a": "seed-as-written (npz, member re-read per window)",
    "b": "seed-member-once (npz, baseline)",
    "c": "seed-npy-mmap",
    "d": "ported: streamers + StochasticMux + buffer_stream",
    "e": "WindowSampler (default prefetch)",
}


# ---------------------------------------------------------------------- the seed's recipes
def sample_npz_as_written(npz_file: str, n: int) -> Iterator[dict[str, np.ndarray]]:
    with np.load(npz_file) as data:
        n_total = len(data["X"])
        while True:
            idx = np.random.randint(n_total - n)
            yield dict(X=data["X"][idx : idx + n], Y=data["Y"][idx : idx + n])


#: the baseline: the seed's recipe reading each member once per activation
from zarrmux.demo import sample_npz as sample_npz_member_once  # noqa: E402


def sample_npy_mmap(npy_x: str, npy_y: str, n: int) -> Iterator[dict[str, np.ndarray]]:
    X = np.load(npy_x, mmap_mode="c")
    Y = np.load(npy_y, mmap_mode="c")
    n_total = len(X)
    while True:
        idx = np.random.randint(n_total - n)
        yield dict(X=X[idx : idx + n], Y=Y[idx : idx + n])


# ---------------------------------------------------------------------- data
def prepare(root: Path, entries: int, big: int) -> dict[str, Path]:
    import zarrmux
    from zarrmux.testing import make_npz_archives

    npz = root / "npz"
    npy = root / "npy"
    corpus = root / "corpus.zarr"
    big_corpus = root / f"corpus_x{big}.zarr"
    if not (npz / "done").exists():
        t = time.perf_counter()
        make_npz_archives(npz, entries, features=128, seed=0)
        (npz / "done").write_text("ok")
        print(f"  wrote {entries} NPZ archives in {time.perf_counter() - t:.1f} s", flush=True)
    archives = sorted(npz.glob("*.npz"))
    if not (npy / "done").exists():
        npy.mkdir(parents=True, exist_ok=True)
        for p in archives:
            with np.load(p) as d:
                np.save(npy / f"{p.stem}_X.npy", d["X"])
                np.save(npy / f"{p.stem}_Y.npy", d["Y"])
        (npy / "done").write_text("ok")
    if not (root / "corpus.done").exists():
        t = time.perf_counter()
        zarrmux.convert([str(p) for p in archives], str(corpus), overwrite=True, progress=False)
        (root / "corpus.done").write_text("ok")
        print(f"  converted to {corpus} in {time.perf_counter() - t:.1f} s", flush=True)
    if big > 1 and not (root / f"corpus_x{big}.done").exists():
        # the same archives ``big`` times under other names: hard links (the converter
        # skips a file it has already seen, by real path, so plain repeats would not do)
        t = time.perf_counter()
        src = root / f"npz_x{big}"
        src.mkdir(exist_ok=True)
        for k in range(big):
            for p in archives:
                link = src / f"r{k}_{p.name}"
                if not link.exists():
                    os.link(p, link)
        zarrmux.convert([str(src)], str(big_corpus), overwrite=True, progress=False)
        n_big = len(zarrmux.open_corpus(str(big_corpus)))
        if n_big != big * len(archives):
            raise SystemExit(f"the x{big} corpus has {n_big} entries, expected {big * len(archives)}")
        (root / f"corpus_x{big}.done").write_text("ok")
        print(f"  converted {n_big} entries to {big_corpus} in {time.perf_counter() - t:.1f} s", flush=True)
    return {"npz": npz, "npy": npy, "corpus": corpus, "big": big_corpus}


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def warm(path: Path) -> None:
    buf = bytearray(1 << 20)
    for f in sorted(path.rglob("*")):
        if f.is_file():
            with open(f, "rb", buffering=0) as fh:
                while fh.readinto(buf):
                    pass


def drop_caches() -> bool:
    if os.geteuid() != 0:
        return False
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as fh:
        fh.write("3\n")
    return True


# ---------------------------------------------------------------------- one run (in a subprocess)
def run_variant(variant: str, paths: dict[str, Path], windows: int, corpus_key: str) -> dict[str, float]:
    np.random.seed(0)
    batches = windows // BATCH
    if variant in "abc":
        import pescador

        if variant == "c":
            xs = sorted(paths["npy"].glob("*_X.npy"))
            streams = [pescador.Streamer(sample_npy_mmap, str(x), str(x).replace("_X.npy", "_Y.npy"), N) for x in xs]
        else:
            fn = sample_npz_as_written if variant == "a" else sample_npz_member_once
            streams = [pescador.Streamer(fn, str(p), N) for p in sorted(paths["npz"].glob("*.npz"))]
        mux = pescador.StochasticMux(streams, n_active=N_ACTIVE, rate=RATE, random_state=0)
        it = pescador.buffer_stream(mux, BATCH)
    elif variant == "d":
        import zarrmux
        from zarrmux.streamers import streamers

        corpus = zarrmux.open_corpus(str(paths[corpus_key]))
        mux = zarrmux.StochasticMux(streamers(corpus, N), n_active=N_ACTIVE, rate=RATE, random_state=0)
        it = zarrmux.buffer_stream(mux, BATCH)
    else:
        import zarrmux

        sampler = zarrmux.WindowSampler(
            str(paths[corpus_key]), N, batch_size=BATCH, n_active=N_ACTIVE, rate=RATE, seed=0, max_iter=batches
        )
        it = iter(sampler)
    t0 = time.perf_counter()
    k = 0
    for batch in it:
        assert batch["X"].shape == (BATCH, N, 128)
        k += 1
        if k >= batches:
            break
    dt = time.perf_counter() - t0
    return {"windows_per_s": k * BATCH / dt, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def spawn(variant: str, root: Path, cold: bool, corpus_key: str = "corpus", windows: int | None = None) -> dict[str, float]:
    windows = windows or WINDOWS[variant]
    cmd = [sys.executable, __file__, "--child", variant, "--dir", str(root), "--windows", str(windows), "--corpus", corpus_key,
           "--big", str(BIG)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def data_of(variant: str, paths: dict[str, Path], corpus_key: str) -> Path:
    return {"a": paths["npz"], "b": paths["npz"], "c": paths["npy"]}.get(variant, paths[corpus_key])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/tmp/zarrmux_bench_sampler")
    ap.add_argument("--entries", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cold-runs", type=int, default=None, help="runs with the page cache dropped (default --runs)")
    ap.add_argument("--big", type=int, default=10, help="size factor of the corpus of the memory check (1: skip)")
    ap.add_argument("--variants", default="abcde")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--windows", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--corpus", default="corpus", help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = Path(args.dir)
    global BIG
    BIG = args.big

    if args.child:
        paths = {"npz": root / "npz", "npy": root / "npy", "corpus": root / "corpus.zarr", "big": root / f"corpus_x{args.big}.zarr"}
        print(json.dumps(run_variant(args.child, paths, args.windows, args.corpus)))
        return 0

    root.mkdir(parents=True, exist_ok=True)
    print(f"setting up {args.entries} entries in {root} ...", flush=True)
    paths = prepare(root, args.entries, args.big)
    print(
        f"  data: npz {du(paths['npz']) / 2**20:.0f} MiB, npy {du(paths['npy']) / 2**20:.0f} MiB, "
        f"zarr {du(paths['corpus']) / 2**20:.0f} MiB" + (f", x{args.big} zarr {du(paths['big']) / 2**20:.0f} MiB" if args.big > 1 else "")
    )
    print(f"workload: windows of {N} rows, n_active={N_ACTIVE}, rate={RATE}, batches of {BATCH}; {os.cpu_count()} cpus")
    cold_runs = args.runs if args.cold_runs is None else args.cold_runs
    can_drop = os.geteuid() == 0
    results: dict[str, dict[str, list[dict[str, float]]]] = {"warm": {}, "cold": {}}
    for r in range(max(args.runs, cold_runs)):
        for v in args.variants:
            if r < args.runs:
                warm(data_of(v, paths, "corpus"))
                results["warm"].setdefault(v, []).append(spawn(v, root, False))
            if r < cold_runs and can_drop:
                drop_caches()
                results["cold"].setdefault(v, []).append(spawn(v, root, True))
        print(f"  round {r + 1} done", flush=True)

    def med(lst: list[dict[str, float]], key: str) -> float:
        return statistics.median(x[key] for x in lst)

    def spread(lst: list[dict[str, float]], key: str) -> str:
        vals = [x[key] for x in lst]
        m = statistics.median(vals)
        return f"{(max(vals) - min(vals)) / m * 100:.0f}%" if m else "-"

    for phase in ("warm", "cold"):
        res = results[phase]
        if not res:
            print(f"\n{phase}: skipped (--cold-runs 0, or not root so the page cache cannot be dropped)")
            continue
        print(f"\n{phase} page cache (median of {len(next(iter(res.values())))} runs; spread = (max-min)/median)")
        print(f"  {'variant':<52} {'windows/s':>10} {'spread':>7} {'vs (b)':>7} {'vs (c)':>7} {'peak RSS':>10}")
        for v, lst in res.items():
            w = med(lst, "windows_per_s")
            vb = w / med(res["b"], "windows_per_s") if "b" in res else float("nan")
            vc = w / med(res["c"], "windows_per_s") if "c" in res else float("nan")
            print(
                f"  ({v}) {NAMES[v]:<48} {w:>10.0f} {spread(lst, 'windows_per_s'):>7} {vb:>6.2f}x {vc:>6.2f}x "
                f"{med(lst, 'peak_rss_mib'):>7.0f} MiB"
            )

    checks: list[tuple[str, bool, str]] = []
    W, C = results["warm"], results["cold"]
    if {"b", "c", "d", "e"} <= set(W):
        wb, wc, wd, we = (med(W[v], "windows_per_s") for v in "bcde")
        checks.append(("(e) >= 10x (b) warm", we >= 10 * wb, f"{we / wb:.2f}x"))
        checks.append(("(e) >= 1.0x (c) warm", we >= wc, f"{we / wc:.2f}x"))
        checks.append(("(d) >= 3x (b) warm", wd >= 3 * wb, f"{wd / wb:.2f}x"))
        rb, re_ = med(W["b"], "peak_rss_mib"), med(W["e"], "peak_rss_mib")
        checks.append(("(e) peak RSS <= half of (b)'s", re_ <= rb / 2, f"{re_:.0f} vs {rb:.0f} MiB"))
    if {"b", "e"} <= set(C):
        cb, ce = med(C["b"], "windows_per_s"), med(C["e"], "windows_per_s")
        checks.append(("(e) >= 5x (b) cold", ce >= 5 * cb, f"{ce / cb:.2f}x"))
    if args.big > 1 and "e" in args.variants:
        big_runs = []
        for _ in range(args.runs):
            big_runs.append(spawn("e", root, False, corpus_key="big"))
        small = med(W["e"], "peak_rss_mib")
        large = med(big_runs, "peak_rss_mib")
        print(
            f"\nmemory check: (e) on the x{args.big} corpus: {med(big_runs, 'windows_per_s'):.0f} windows/s, "
            f"peak RSS {large:.0f} MiB vs {small:.0f} MiB on the base corpus ({(large / small - 1) * 100:+.1f}%)"
        )
        checks.append((f"(e) peak RSS on x{args.big} corpus within 20%", abs(large / small - 1) <= 0.2, f"{(large / small - 1) * 100:+.1f}%"))
    print("\ntargets:")
    for name, ok, fig in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {fig}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
