"""Micro-benchmark of the corpus read path: ``Corpus.read_windows`` vs zarr-python slicing.

Workload (issue 4's benchmark corpus): 64 entries of ``X`` float32
``(U[5000, 20000], 128)`` and ``Y`` int64, converted with the default codec
and chunking; batches of 32 random 16-row windows.  Measured, in one run:

* ``zarr``: plain zarr-python ``arr[s:s+n]`` per window and key (the peer);
* ``read_windows cold``: a freshly opened corpus (empty decoded-chunk cache)
  reading fresh random batches;
* ``read_windows warm``: the same batches again (decoded chunks cached);
* ``read_windows 2 threads``: two threads calling ``read_windows`` at once on
  one corpus, fresh batches (the prefetcher's situation).

The machine evicts page cache that sits unread for 10-30 s, so the corpus
files are read right before every timed run (page cache warm for everyone).
Prints the median of ``--runs`` runs of each and the ratios.

Usage::

    python tools/bench_read.py [--dir /tmp/zarrmux_bench] [--entries 64] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zarr  # noqa: E402

from zarrmux.corpus import open_corpus  # noqa: E402


def build(path: Path, entries: int, seed: int = 0) -> None:
    if (path / "zarr.json").exists():
        c = open_corpus(path)
        if len(c) >= entries:
            return
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    npz = path.parent / f"npz_{entries}"
    from zarrmux.testing import make_npz_archives

    t0 = time.perf_counter()
    sources = sorted(npz.glob("*.npz")) if npz.exists() else []
    if len(sources) < entries:
        sources = make_npz_archives(npz, entries, seed=seed)
    try:
        from zarrmux.convert import convert

        convert(sources[:entries], path)
        how = "zarrmux.convert"
    except ImportError:  # converter not available: the fixture writer, same layout
        from zarrmux.testing import write_corpus

        write_corpus(path, {p.stem: dict(np.load(p, allow_pickle=False)) for p in sources[:entries]})
        how = "zarrmux.testing.write_corpus"
    print(f"built {path} with {how} in {time.perf_counter() - t0:.1f} s", flush=True)


def warm_page_cache(path: Path) -> None:
    for dirpath, _, files in os.walk(path):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                while fh.read(1 << 22):
                    pass


def batches(rows: np.ndarray, n: int, batch: int, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        e = rng.integers(0, len(rows), batch)
        s = (rng.random(batch) * (rows[e] - n + 1)).astype(np.int64)
        out.append((e, s))
    return out


def run_zarr(path: Path, bs: list, n: int) -> float:
    c = open_corpus(path)
    root = zarr.open_group(path, mode="r")
    arrays = {k: root[k] for k in c.keys}
    from zarrmux import layout

    starts = np.asarray(layout.read_index(root)["start"], dtype=np.int64)
    t0 = time.perf_counter()
    windows = 0
    for e, s in bs:
        for eb, sb in zip(e.tolist(), s.tolist()):
            g = int(starts[eb]) + sb
            for a in arrays.values():
                a[g : g + n]
            windows += 1
    return windows / (time.perf_counter() - t0)


def run_rw(path: Path, bs: list, n: int, *, repeat: bool, threads: int = 1, cache_bytes: int | None = None) -> float:
    c = open_corpus(path, cache_bytes=cache_bytes)
    if repeat:
        for e, s in bs:
            c.read_windows(e, s, n)
    if threads == 1:
        t0 = time.perf_counter()
        for e, s in bs:
            c.read_windows(e, s, n)
        return sum(len(e) for e, _ in bs) / (time.perf_counter() - t0)
    parts = [bs[i::threads] for i in range(threads)]

    def work(part: list) -> None:
        for e, s in part:
            c.read_windows(e, s, n)

    ts = [threading.Thread(target=work, args=(p,)) for p in parts]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(len(e) for e, _ in bs) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="/tmp/zarrmux_bench")
    ap.add_argument("--entries", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batches", type=int, default=100, help="batches per read_windows run")
    ap.add_argument("--zarr-batches", type=int, default=15, help="batches per zarr-python run")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args(argv)

    path = Path(args.dir) / f"corpus_{args.entries}.zarr"
    path.parent.mkdir(parents=True, exist_ok=True)
    build(path, args.entries)
    c = open_corpus(path)
    rows = c.rows
    r = c._readers[0]
    print(
        f"corpus: {len(c)} entries, {int(rows.sum())} rows, keys {list(c.keys)}, "
        f"X chunk_rows={r.chunk_rows} shard_rows={getattr(r, 'shard_rows', '-')} codec={getattr(r, 'codec', '-')}; "
        f"batches of {args.batch_size} windows of {args.n} rows; {args.runs} runs each",
        flush=True,
    )
    res: dict[str, list[float]] = {k: [] for k in ("zarr", "cold", "warm", "threads2")}
    for run in range(args.runs):
        seed = 1000 + run
        bs = batches(rows, args.n, args.batch_size, args.batches, seed)
        warm_page_cache(path)
        res["zarr"].append(run_zarr(path, bs[: args.zarr_batches], args.n))
        warm_page_cache(path)
        res["cold"].append(run_rw(path, bs, args.n, repeat=False))
        res["warm"].append(run_rw(path, bs, args.n, repeat=True))
        warm_page_cache(path)
        res["threads2"].append(run_rw(path, batches(rows, args.n, args.batch_size, args.batches, seed + 500), args.n, repeat=False, threads=2))
        print(f"run {run}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in res.items()) + " windows/s", flush=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    base = med["zarr"]
    print()
    print(f"{'method':<34}{'windows/s (median)':>20}{'vs zarr':>10}")
    labels = {
        "zarr": "zarr-python arr[s:s+n] per window",
        "cold": "read_windows, cold chunk cache",
        "warm": "read_windows, warm chunk cache",
        "threads2": "read_windows, 2 threads, cold",
    }
    for k, label in labels.items():
        print(f"{label:<34}{med[k]:>20,.0f}{med[k] / base:>9.1f}x")


if __name__ == "__main__":
    main()
