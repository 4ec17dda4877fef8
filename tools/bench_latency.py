"""Benchmark of remote reading: latency hiding with both remote readers against real
servers, servers without Range, and Dask LocalCluster vs in-process threads.

Part 0, the remote matrix: a corpus of 64 entries of ``X`` float32
``(U[5000, 20000], 32)`` (full precision, so ``--codec auto`` stores it
uncompressed) and ``Y`` int64, served over loopback by a server in another
process that waits ``--delay`` (20 ms) before every answer:

* ``stdlib``: a plain ``ThreadingHTTPServer`` (a thread per connection,
  HTTP/1.1 keep-alive, Range, the standard library's listen backlog of 5;
  ``python -m zarrmux.testing ROOT DELAY --server stdlib``);
* ``aiohttp``: an asynchronous aiohttp server (``python -m zarrmux.testing ROOT DELAY``);
* ``stdlib, no Range``: the stdlib server ignoring Range headers (``--no-range``),
  like ``python -m http.server``.

Each reader (obstore, the default when installed; fsspec, ``backend="fsspec"``)
runs ``WindowSampler`` with ``prefetch=0`` and with its defaults (32 batches
ahead, 16 threads), ``--seconds`` per run, and the table gives windows/s
(median of ``--runs``), the ratio, and per window of the default run: requests
sent, KiB fetched (the reader's ``io.stats``), and the server's CPU per
request.  Rows "exact" read the uncompressed ``X`` as remote exact windows
(:mod:`zarrmux.remote_windows`, ``open_corpus(url, exact_remote=True)``: one byte range per
window) instead of whole chunks.  ``--remote-only`` runs this part only, ``--skip-remote`` the others.

Workload (the standard one): 64 entries of ``X`` float32 ``(U[5000, 20000], 128)``
and ``Y`` int64 (:func:`zarrmux.testing.make_npz_archives`), converted with
:func:`zarrmux.convert` (default codec and chunking).  Windows of 16 rows,
32 active entries, rate 16, batches of 32.

Part 1, latency (``--delay``, default 20 ms, added to every read), three
stand-ins for an object store:

* ``store``: :func:`zarrmux.testing.latency_store`, a zarr ``LatencyStore``
  around the local directory, in process (no server);
* ``delay-fs``: the URL ``zarrmux-delay:///...`` (:mod:`zarrmux._delayfs`, an
  fsspec filesystem that sleeps ``delay`` per read, then reads the file), which
  Dask workers open by themselves like any URL (no server);
* ``http``: a loopback aiohttp server in another process that sleeps
  ``delay`` before each answer (``python -m zarrmux.testing``), read with
  obstore (the default for ``http://`` when installed).  The server runs on
  the same 2 cores as the reader, and its CPU per batch (printed) caps what
  prefetching can reach here; a real object store's CPU is not the reader's.

For each: ``WindowSampler`` with ``prefetch=0`` (reads in the consumer's
thread) vs its defaults for a remote store (32 batches ahead, 16 threads),
and, for the URLs, ``scheduler=`` a LocalCluster of 2 worker processes.

Part 2, no added latency, local corpus: in-process thread prefetch (the
defaults) vs Dask LocalCluster (2 worker processes, 1 thread each) for
several ``batches_per_task``.

Figures are windows/s, medians of ``--runs`` runs, and ratios within this run.

Usage::

    python tools/bench_latency.py [--dir /tmp/zarrmux_bench_latency] [--runs 3] [--delay 0.02] [--seconds 5] [--remote-only]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zarrmux  # noqa: E402
from zarrmux.sampler import WindowSampler  # noqa: E402
from zarrmux.testing import latency_store, make_npz_archives  # noqa: E402

N, N_ACTIVE, RATE, BATCH = 16, 32, 16, 32


def build(root: Path, entries: int) -> Path:
    corpus = root / "corpus.zarr"
    if (corpus / "zarr.json").exists():
        return corpus
    t = time.perf_counter()
    archives = make_npz_archives(root / "npz", entries, features=128, seed=0)
    zarrmux.convert([str(p) for p in archives], str(corpus), overwrite=True, progress=False)
    print(f"  built {corpus} in {time.perf_counter() - t:.1f} s", flush=True)
    return corpus


def rate(corpus: Any, batches: int, seed: int, **kw: Any) -> float:
    """Windows/s of one run of ``batches`` batches (sampler construction not timed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = WindowSampler(corpus, N, batch_size=BATCH, n_active=N_ACTIVE, rate=RATE, seed=seed, max_iter=batches, **kw)
    try:
        t = time.perf_counter()
        got = 0
        for b in s:
            got += len(b["Y"])
        dt = time.perf_counter() - t
    finally:
        s.close()
    assert got == batches * BATCH
    return got / dt


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(runs: int, fn: Any) -> float:
    vals = [fn(i) for i in range(runs)]
    return statistics.median(vals)


# ---------------------------------------------------------------------------- part 0: the remote matrix
def build_x32(root: Path, entries: int) -> Path:
    corpus = root / "x32" / "corpus.zarr"
    if (corpus / "zarr.json").exists():
        return corpus
    t = time.perf_counter()
    archives = make_npz_archives(root / "x32" / "npz", entries, features=32, seed=0, quantize=False)
    zarrmux.convert([str(p) for p in archives], str(corpus), overwrite=True, progress=False)
    print(f"  built {corpus} in {time.perf_counter() - t:.1f} s", flush=True)
    return corpus


def listen_overflows() -> int:
    """Connection attempts the kernel dropped because a listen queue was full (Linux ``TcpExt``, all sockets)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split()[1:], values.split()[1:])).get("ListenOverflows", 0))
    return 0


class Served:
    """``python -m zarrmux.testing ROOT DELAY ...`` in its own process."""

    def __init__(self, root: Path, delay: float, *flags: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zarrmux.testing", str(root), str(delay), *flags],
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(Path(__file__).resolve().parents[1]),
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def timed(url: str, backend: str, seconds: float, seed: int, exact: bool, **kw: Any) -> dict[str, float]:
    """One run: windows/s over ``seconds`` (after the sampler's construction), and per window: requests, bytes."""
    from zarrmux import range_cache

    range_cache.WHOLE_OBJECTS.clear()  # every run starts cold (servers without Range: downloads included)
    corpus = zarrmux.open_corpus(url, backend=backend, exact_remote=exact)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = WindowSampler(corpus, N, batch_size=BATCH, n_active=N_ACTIVE, rate=RATE, seed=seed, epochs=None, **kw)  # runs ``seconds``
    io = corpus._io
    r0, b0 = io.stats["requests"], io.stats["bytes"]
    try:
        t = time.perf_counter()
        got = 0
        for b in s:
            got += len(b["Y"])
            if time.perf_counter() - t >= seconds:
                break
        dt = time.perf_counter() - t
    finally:
        s.close()
        corpus.close()
    return {
        "rate": got / dt,
        "req": (io.stats["requests"] - r0) / got,
        "kib": (io.stats["bytes"] - b0) / got / 1024,
        "requests": io.stats["requests"] - r0,
        "retries": io.stats["retries"],
        "whole": io.stats["whole_objects"],
    }


def remote_matrix(args: Any, root: Path) -> None:
    import logging

    logging.getLogger("zarrmux").setLevel(logging.ERROR)  # the no-Range warning, once per server, is expected here
    corpus = build_x32(root, args.entries)
    stored = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file())
    print(f"part 0: remote matrix, corpus {corpus} ({stored / 2**20:.0f} MiB), delay {args.delay * 1000:.0f} ms per request,"
          f" {args.seconds:g} s per run, medians of {args.runs} runs", flush=True)
    servers = [("stdlib", ("--server", "stdlib")), ("aiohttp", ()), ("stdlib, no Range", ("--server", "stdlib", "--no-range"))]
    rows = []
    for sname, flags in servers:
        srv = Served(corpus.parent, args.delay, *flags)
        try:
            url = f"http://127.0.0.1:{srv.port}/{corpus.name}"
            for backend in ("obstore", "fsspec"):
                for exact in ((False, True) if sname == "stdlib" else (False,)):
                    zero = [timed(url, backend, args.seconds, 100 + i, exact, prefetch=0) for i in range(args.runs)]
                    cpu0, drops = cpu_seconds(srv.proc.pid), listen_overflows()
                    dflt = [timed(url, backend, args.seconds, 200 + i, exact) for i in range(args.runs)]
                    drops = listen_overflows() - drops
                    cpu_req = (cpu_seconds(srv.proc.pid) - cpu0) / max(1, sum(d["requests"] for d in dflt))
                    z = statistics.median(d["rate"] for d in zero)
                    d = statistics.median(x["rate"] for x in dflt)
                    mid = sorted(dflt, key=lambda x: x["rate"])[len(dflt) // 2]
                    zmid = sorted(zero, key=lambda x: x["rate"])[len(zero) // 2]
                    rows.append((sname, backend + (" exact" if exact else ""), z, d, d / z, zmid, mid, cpu_req * 1e6,
                                 [round(x["rate"]) for x in zero], [round(x["rate"]) for x in dflt]))
                    print(f"  {sname:<17} {backend + (' exact' if exact else ''):<14} prefetch=0 {z:6.0f}  default {d:6.0f}"
                          f"  {d / z:5.1f}x  runs {rows[-1][8]} / {rows[-1][9]}  listen overflows (default runs) {drops}", flush=True)
        finally:
            srv.close()
    print()
    print("| server | reader | prefetch=0 | default | ratio | requests / window | KiB / window | server CPU / request |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for sname, reader, z, d, ratio, zmid, mid, cpu_us, _, _ in rows:
        extra = f" ({mid['whole']} whole objects)" if "no Range" in sname else ""
        print(f"| {sname} | {reader} | {z:,.0f} | {d:,.0f} | {ratio:.1f}x | {zmid['req']:.2f} / {mid['req']:.2f} |"
              f" {zmid['kib']:.1f} / {mid['kib']:.1f}{extra} | {cpu_us:.0f} us |")
    print("(requests and KiB per window: prefetch=0 run / default run, medians' runs; windows of 16 rows of 32 float32 = 2 KiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/tmp/zarrmux_bench_latency")
    ap.add_argument("--entries", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--delay", type=float, default=0.02)
    ap.add_argument("--seconds", type=float, default=5.0, help="part 0: seconds per run")
    ap.add_argument("--remote-only", action="store_true", help="run part 0 only")
    ap.add_argument("--skip-remote", action="store_true", help="skip part 0")
    args = ap.parse_args()
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    if not args.skip_remote:
        remote_matrix(args, root)
    if args.remote_only:
        return
    corpus = build(root, args.entries)
    from distributed import Client, LocalCluster

    results: dict[str, float] = {}
    print(f"delay {args.delay * 1000:.0f} ms per read; windows of {N}, batches of {BATCH}; medians of {args.runs} runs")
    server = subprocess.Popen([sys.executable, "-m", "zarrmux.testing", str(root), str(args.delay)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/{corpus.name}"
        delay_url = f"zarrmux-delay://{corpus.resolve()}"
        dfs = zarrmux.open_corpus(delay_url, storage_options={"delay": args.delay})
        # ------------------------------------------------------------ part 1a: latency, threads (no cluster running)
        store = latency_store(corpus, args.delay)
        results["store prefetch=0"] = median(args.runs, lambda i: rate(store, 32, 100 + i, prefetch=0))
        results["store prefetch (threads, defaults)"] = median(args.runs, lambda i: rate(store, 256, 200 + i))
        for th in (8, 32):  # the default is 16 threads (zarrmux.sampler.DEFAULT_REMOTE_THREADS)
            results[f"store prefetch (threads={th})"] = median(args.runs, lambda i: rate(store, 256, 200 + i, threads=th))
        results["delay-fs prefetch=0"] = median(args.runs, lambda i: rate(dfs, 32, 110 + i, prefetch=0))
        results["delay-fs prefetch (threads, defaults)"] = median(args.runs, lambda i: rate(dfs, 256, 210 + i))
        results["http prefetch=0"] = median(args.runs, lambda i: rate(url, 32, 300 + i, prefetch=0))
        cpu0 = cpu_seconds(server.pid)
        results["http prefetch (threads, defaults)"] = median(args.runs, lambda i: rate(url, 256, 400 + i))
        server_ms_per_batch = (cpu_seconds(server.pid) - cpu0) / (args.runs * 256) * 1000
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cl, Client(cl) as client:
            client.wait_for_workers(2)
            # -------------------------------------------------------- part 1b: latency, Dask
            rate(dfs, 16, 1, scheduler=client)  # warm-up: workers open the URL
            results["delay-fs Dask 2 procs (defaults)"] = median(args.runs, lambda i: rate(dfs, 256, 510 + i, scheduler=client))
            rate(url, 16, 1, scheduler=client)
            results["http Dask 2 procs (defaults)"] = median(args.runs, lambda i: rate(url, 256, 500 + i, scheduler=client))
            # -------------------------------------------------------- part 2: local, no added latency
            rate(str(corpus), 64, 2, scheduler=client)  # warm-up
            results["local threads (defaults)"] = median(args.runs, lambda i: rate(str(corpus), 512, 600 + i))
            for bpt in (1, 4, 8, 16):
                results[f"local Dask 2 procs bpt={bpt}"] = median(
                    args.runs, lambda i: rate(str(corpus), 512, 700 + i, scheduler=client, batches_per_task=bpt)
                )
    finally:
        server.terminate()
        server.wait()
    w = max(len(k) for k in results)
    for k, v in results.items():
        print(f"  {k:<{w}}  {v:9.0f} windows/s")
    r = results
    print(f"  http server CPU per batch of {BATCH} windows (threads runs): {server_ms_per_batch:.1f} ms")
    print("ratios:")
    print(f"  store: threads / prefetch=0     = {r['store prefetch (threads, defaults)'] / r['store prefetch=0']:.1f}x (target >= 10)")
    for th in (8, 32):
        print(f"  store: threads={th:<2} / default 16  = {r[f'store prefetch (threads={th})'] / r['store prefetch (threads, defaults)']:.2f}x")
    print(f"  delay-fs: threads / prefetch=0  = {r['delay-fs prefetch (threads, defaults)'] / r['delay-fs prefetch=0']:.1f}x (target >= 10)")
    print(f"  delay-fs: Dask / prefetch=0     = {r['delay-fs Dask 2 procs (defaults)'] / r['delay-fs prefetch=0']:.1f}x (target >= 10)")
    print(f"  http:  threads / prefetch=0     = {r['http prefetch (threads, defaults)'] / r['http prefetch=0']:.1f}x (target >= 10; server-bound here)")
    print(f"  http:  Dask / prefetch=0        = {r['http Dask 2 procs (defaults)'] / r['http prefetch=0']:.1f}x (target >= 10; server-bound here)")
    for bpt in (1, 4, 8, 16):
        print(f"  local: Dask bpt={bpt:<2} / threads   = {r[f'local Dask 2 procs bpt={bpt}'] / r['local threads (defaults)']:.2f}x")


if __name__ == "__main__":
    main()
