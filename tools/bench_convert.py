"""Benchmark ``zarrmux convert`` against a plain ``np.load`` + ``np.save`` copy, in the same run.

Prints (medians of ``--runs`` runs, interleaved):

* MB/s of converting a benchmark-like corpus (64 archives of ``X`` float32
  ``(U[5000, 20000], 128)`` and ``Y`` int64) with default options and
  ``--workers`` workers, beside a plain copy of the same arrays, and the ratio
  (target: convert >= 0.5x the copy);
* peak RSS of converting one NPZ whose single member is ``--big-gib`` GiB
  (measured in a subprocess with ``resource.getrusage``; target < 300 MiB);
* compression ratio and encode/decode speed of lz4, zstd and none on the
  corpus's ``X`` data, per inner-chunk size (the default-chunking rule).

Usage::

    python tools/bench_convert.py [--data DIR] [--archives 64] [--runs 3] [--workers 2] [--big-gib 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from zarrmux.key_codecs import DEFAULT_LEVEL
from zarrmux.testing import make_entry, make_npz_archives


def build_corpus(data: Path, n: int) -> list[Path]:
    src = data / f"npz{n}"
    marker = src / "DONE"
    if not marker.exists():
        shutil.rmtree(src, ignore_errors=True)
        make_npz_archives(src, n, seed=0)
        marker.write_text("ok")
    return sorted(src.glob("*.npz"))


def array_bytes(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        with np.load(p) as d:
            for k in d.files:
                total += d[k].nbytes
    return total


def plain_copy(paths: list[Path], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t = time.perf_counter()
    for p in paths:
        with np.load(p) as d:
            for k in d.files:
                np.save(out / f"{p.stem}_{k}.npy", d[k])
    os.sync()
    return time.perf_counter() - t


def run_convert(paths: list[Path], dest: Path, workers: int) -> float:
    from zarrmux.conversion import convert

    shutil.rmtree(dest, ignore_errors=True)
    t = time.perf_counter()
    convert(paths, dest, workers=workers)
    os.sync()
    return time.perf_counter() - t


def build_big(data: Path, gib: float) -> Path:
    """One stored NPZ with a single ``X`` member of ``gib`` GiB, written in blocks (never whole in memory)."""
    rows = int(gib * 2**30) // (128 * 4)
    path = data / f"big{gib:g}.npz"
    if path.exists() and path.stat().st_size > rows * 512:
        return path
    header = {"descr": "<f4", "fortran_order": False, "shape": (rows, 128)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("X.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(f, header)
            block = make_entry(65536, 128, seed=7)["X"]
            done = 0
            while done < rows:
                n = min(len(block), rows - done)
                f.write(block[:n].tobytes())
                done += n
    return path


PEAK_SCRIPT = """
import resource, sys, time
from zarrmux.conversion import convert
t = time.perf_counter()
r = convert([sys.argv[1]], sys.argv[2], workers=1)
print(r.bytes_read, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss(big: Path, dest: Path) -> tuple[float, float, float]:
    shutil.rmtree(dest, ignore_errors=True)
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(big), str(dest)], capture_output=True, text=True, check=True)
    nbytes, secs, maxrss_kib = out.stdout.split()
    shutil.rmtree(dest, ignore_errors=True)
    return int(nbytes) / 2**30, float(secs), int(maxrss_kib) / 1024


def codec_table(paths: list[Path]) -> list[dict]:
    from numcodecs import Blosc

    X = np.concatenate([np.load(p)["X"] for p in paths[:4]])
    rows_total = len(X)
    out = []
    for chunk_kib in (8, 32, 128):
        chunk_rows = max(1, chunk_kib * 1024 // X[0].nbytes)
        blocks = [np.ascontiguousarray(X[i : i + chunk_rows]) for i in range(0, rows_total - chunk_rows + 1, chunk_rows)]
        raw = sum(b.nbytes for b in blocks)
        for cname in ("lz4", "zstd", "none"):
            if cname == "none":
                out.append({"chunk_KiB": chunk_kib, "codec": "none", "ratio": 1.0, "enc_MBps": None, "dec_MBps": None})
                continue
            codec = Blosc(cname=cname, clevel=DEFAULT_LEVEL[cname], shuffle=Blosc.SHUFFLE, typesize=4)
            t = time.perf_counter()
            enc = [codec.encode(b) for b in blocks]
            te = time.perf_counter() - t
            t = time.perf_counter()
            for e in enc:
                codec.decode(e)
            td = time.perf_counter() - t
            out.append({
                "chunk_KiB": chunk_kib, "codec": cname, "ratio": round(raw / sum(len(e) for e in enc), 3),
                "enc_MBps": round(raw / 1e6 / te), "dec_MBps": round(raw / 1e6 / td),
            })
    return out


def window_read(dest: Path, n: int = 300) -> float:
    """Median seconds to read one random 16-row window of X with plain zarr (decode cost of one chunk)."""
    import zarr

    arr = zarr.open_group(str(dest), mode="r")["X"]
    rng = np.random.default_rng(0)
    ts = []
    for s in rng.integers(0, arr.shape[0] - 16, n):
        t = time.perf_counter()
        arr[int(s) : int(s) + 16]
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "zarrmux-bench", help="where to build/reuse the inputs")
    ap.add_argument("--archives", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--big-gib", type=float, default=2.0, help="size of the single-member NPZ for the peak-RSS case (0: skip)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)

    paths = build_corpus(args.data, args.archives)
    nbytes = array_bytes(paths)
    print(f"corpus: {len(paths)} archives, {nbytes / 1e6:.0f} MB of arrays ({args.data})")
    copy_t, conv_t = [], []
    for _ in range(args.runs):
        copy_t.append(plain_copy(paths, args.data / "copy"))
        conv_t.append(run_convert(paths, args.data / "out.zarr", args.workers))
    copy_mbps = nbytes / 1e6 / statistics.median(copy_t)
    conv_mbps = nbytes / 1e6 / statistics.median(conv_t)
    print(f"np.load+np.save copy : {copy_mbps:8.1f} MB/s  (median of {args.runs}: {statistics.median(copy_t):.2f} s; runs {[round(t, 2) for t in copy_t]})")
    print(f"zarrmux convert w={args.workers}: {conv_mbps:8.1f} MB/s  (median of {args.runs}: {statistics.median(conv_t):.2f} s; runs {[round(t, 2) for t in conv_t]})")
    print(f"ratio convert/copy   : {conv_mbps / copy_mbps:8.2f}x  (target >= 0.5x)")
    from zarrmux.verify import info

    d = info(args.data / "out.zarr")
    print(f"stored {d['stored_bytes'] / 1e6:.0f} MB, ratio {d['ratio']}, X chunk {d['keys']['X']['chunk_rows']} rows, shard {d['shard_rows']} rows")
    print(f"16-row window read of X via plain zarr: median {window_read(args.data / 'out.zarr') * 1e3:.2f} ms")

    print("codec comparison on X (blosc, byte shuffle, default levels), per inner chunk size:")
    table = codec_table(paths)
    for row in table:
        print(f"  chunk {row['chunk_KiB']:>3} KiB  {row['codec']:<5} ratio {row['ratio']:6.3f}  encode {row['enc_MBps'] or '-':>6} MB/s  decode {row['dec_MBps'] or '-':>6} MB/s")

    result = {"copy_MBps": copy_mbps, "convert_MBps": conv_mbps, "ratio": conv_mbps / copy_mbps, "codecs": table}
    if args.big_gib > 0:
        big = build_big(args.data, args.big_gib)
        gib, secs, rss = peak_rss(big, args.data / "big.zarr")
        print(f"single {gib:.2f} GiB member NPZ: peak RSS {rss:.0f} MiB (target < 300 MiB), {gib * 1024 / secs:.0f} MiB/s, workers=1")
        result.update(big_gib=gib, big_peak_rss_MiB=rss)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
