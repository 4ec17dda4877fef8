"""Micro-benchmark of the corpus read path: ``Corpus.read_windows`` vs zarr-python slicing.

Workload (the corpus of ``tools/bench_sampler.py``): 64 entries of ``X`` float32
``(U[5000, 20000], 128)`` and ``Y`` int64, converted with the default codec
and chunking; batches of 32 random 16-row windows.  Measured, in one run:

* ``zarr``: plain zarr-python ``arr[s:s+n]`` per window and key (the peer);
* ``empty chunk cache``: a freshly opened corpus (default ``cache_bytes``)
  reading random batches;
* ``full cache, new windows``: the same corpus, its cache now full, reading
  new random batches (the steady state of a long sampling run);
* ``all chunks cached``: batches read a second time with a 1 GiB cache
  (the cost of the hit path alone);
* ``2 threads, full cache``: two threads calling ``read_windows`` at once on
  one corpus, new batches (the prefetcher's situation).

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

from zarrmux.corpus import DEFAULT_CACHE_BYTES, open_corpus  # noqa: E402


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
        from zarrmux.conversion import convert

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


def timed(c, bs: list, n: int, threads: int = 1) -> float:  # type: ignore[no-untyped-def]
    """Windows/s of ``c.read_windows`` over the batches ``bs`` split across ``threads`` threads."""
    parts = [bs[i::threads] for i in range(threads)]

    def work(part: list) -> None:
        for e, s in part:
            c.read_windows(e, s, n)

    t0 = time.perf_counter()
    if threads == 1:
        work(bs)
    else:
        ts = [threading.Thread(target=work, args=(p,)) for p in parts]
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
    labels = {
        "zarr": "zarr-python arr[s:s+n] per window",
        "cold": "read_windows, empty chunk cache",
        "steady": "read_windows, full cache, new windows",
        "warm": "read_windows, all chunks cached",
        "threads2": "read_windows, 2 threads, full cache",
    }
    res: dict[str, list[float]] = {k: [] for k in labels}
    for run in range(args.runs):
        seed = 1000 + 10 * run
        bs = batches(rows, args.n, args.batch_size, args.batches, seed)
        warm_page_cache(path)
        res["zarr"].append(run_zarr(path, bs[: args.zarr_batches], args.n))
        warm_page_cache(path)
        c = open_corpus(path)  # default cache_bytes
        res["cold"].append(timed(c, bs, args.n))
        res["steady"].append(timed(c, batches(rows, args.n, args.batch_size, args.batches, seed + 1), args.n))
        res["threads2"].append(timed(c, batches(rows, args.n, args.batch_size, args.batches, seed + 2), args.n, threads=2))
        big = open_corpus(path, cache_bytes=1 << 30)
        timed(big, bs, args.n)
        res["warm"].append(timed(big, bs, args.n))
        big.close()
        c.close()
        print(f"run {run}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in res.items()) + " windows/s", flush=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    base = med["zarr"]
    print()
    print(f"{'method':<40}{'windows/s (median)':>20}{'vs zarr':>10}")
    for k, label in labels.items():
        print(f"{label:<40}{med[k]:>20,.0f}{med[k] / base:>9.1f}x")
    print(f"(default cache_bytes = {DEFAULT_CACHE_BYTES >> 20} MiB; 'all chunks cached' uses 1 GiB)")


if __name__ == "__main__":
    main()
