"""Benchmark of window sampling: the seed's recipes, the ported streamers, WindowSampler, and the in-memory limit.

Workload: ``--entries`` (default 64) entries of ``X`` float32
``(U[5000, 20000], 128)`` and ``Y`` int64, made by
:func:`zarrmux.testing.make_npz_archives` with ``quantize=False``: full-precision
float features, which lz4 barely shrinks (about 1.07x), like real audio /
sensor features.  (The quantised features of the first version of this
benchmark compressed 2.3x, unlike real features.)  The same rows are stored
four ways: NPZ archives, an NPY directory (for the memory-mapped recipe), a
Zarr corpus written by the default conversion ``zarrmux.convert(sources,
dest)`` (default codec, whatever it is; its name is printed), and a Zarr
corpus converted with ``codec='lz4'`` (forced).  The stored size of each and
of the arrays is printed.  Windows of 16 rows, 32 active entries, rate 16,
batches of 32.

Variants (``--variants``, comma separated), each run in its own subprocess:

a   seed as written: pescador ``StochasticMux`` over the seed's ``sample_npz``,
    which indexes the ``NpzFile`` per window (re-reading the whole member each
    time).  Slow: leave it out with ``--variants b,c,d,e,e0,es,g,g0,f``;
b   the baseline: the same, reading each member once per activation;
c   pescador over the seed's ``sample_npy_mmap`` (NPY files, memory-mapped);
d   ported: ``corpus.streamers(16)`` + ``zarrmux.StochasticMux`` + ``zarrmux.buffer_stream``
    (default corpus);
e   ``zarrmux.WindowSampler``, default settings, default corpus;
e0  the same with ``prefetch=0`` (reads in the consumer's thread);
es  the same as (e), timed after one untimed pass of as many windows in the same
    process: the steady state of a long run (every shard mapped and its chunks
    checked, every label chunk decoded), where (e) includes that first pass;
g   ``zarrmux.WindowSampler``, default settings, the lz4 corpus;
g0  the same with ``prefetch=0``;
f   the limit: the whole corpus (every ``X`` and ``Y`` row, concatenated)
    already in memory as numpy arrays (loaded before timing), and per batch
    the SAME windows (e) draws, from
    ``WindowSampler(corpus, 16, batch_size=32, n_active=32, rate=16, seed=0, max_iter=...).windows()``
    (which plans without reading), gathered with one numpy fancy index per key
    per batch (``X_all[rowidx]``, ``rowidx`` of shape ``(32, 16)``).  The
    timed loop iterates ``windows()``, so it pays for planning as (e) does.

(e), (e0), (g), (g0) and (f) deliver exactly the same windows (same seed,
same ``max_iter``).  Only public API is used (``zarrmux.convert``,
``open_corpus``, ``WindowSampler``, ``.windows()``, ``corpus.streamers``,
``corpus.read_rows``).

Figures: windows per second = windows actually delivered to the loop /
seconds of the loop (the loop stops after the requested number of batches;
a variant that delivers fewer is flagged).  Memory, per variant: peak RSS
(``VmHWM``) and peak anonymous memory (``RssAnon`` from
``/proc/self/status``, sampled about 64 times in the timed loop, evenly
spaced in batches, and at its end; the sampling time is measured and printed,
and stays well under 1% of the loop).
Pages of memory-mapped files and of the page cache mapped into the process
count in RSS but not in ``RssAnon``: (c)'s memory-mapped NPY files inflate its
RSS, not its anonymous memory, which is the memory the process really holds.
``VmHWM`` also includes what a variant loads before timing ((f)'s corpus).

Warm: every file of the variant's data is read right before its timed run
(this machine evicts page cache idle for 10-30 s).  Cold: as root,
``sync; echo 3 > /proc/sys/vm/drop_caches`` right before the run (skipped
with a note when that is not possible).  (f) loads its arrays before timing,
so its figure is the same warm and cold.  Medians of ``--runs`` runs, with
their spread; ratios against (b), (c) and the limit (f).  The memory check
runs (e) on a corpus ``--big`` times larger (the same archives converted
``--big`` times under other names, default conversion, not warmed) and
compares its peak anonymous memory with (e)'s on the base corpus.

Usage::

    python tools/bench_sampler.py [--dir /tmp/zarrmux_bench_sampler2] [--entries 64] [--runs 3] [--big 10]
                                  [--variants a,b,c,d,e,e0,es,g,g0,f]

Quick end-to-end check (slow figures, small data)::

    python tools/bench_sampler.py --dir /tmp/zarrmux_bench_sampler_small --entries 8 --runs 1 --big 1
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shlex
import shutil
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
FEATURES = 128
#: RssAnon is sampled about PROBE_SAMPLES times in a timed loop (every ``batches // PROBE_SAMPLES`` batches) and at its end
PROBE_SAMPLES = 64
#: id -> (description, data it reads, windows per timed run); the seed as written is slow: fewer windows
VARIANTS: dict[str, tuple[str, str, int]] = {
    "a": ("seed as written (npz, member re-read per window)", "npz", 1024),
    "b": ("seed, member read once (npz, baseline)", "npz", 16384),
    "c": ("seed, npy mmap", "npy", 32768),
    "d": ("ported: corpus.streamers + StochasticMux + buffer", "corpus", 32768),
    "e": ("WindowSampler, default settings, default corpus", "corpus", 65536),
    "e0": ("WindowSampler prefetch=0, default corpus", "corpus", 65536),
    "es": ("WindowSampler, default, after one untimed pass", "corpus", 65536),
    "g": ("WindowSampler, default settings, lz4 corpus", "lz4", 65536),
    "g0": ("WindowSampler prefetch=0, lz4 corpus", "lz4", 65536),
    "f": ("limit: in memory, same windows as (e), numpy gather", "corpus", 65536),
}
DEFAULT_VARIANTS = "a,b,c,d,e,e0,es,g,g0,f"


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
def paths_of(root: Path, big: int) -> dict[str, Path]:
    return {
        "npz": root / "npz",
        "npy": root / "npy",
        "corpus": root / "corpus.zarr",
        "lz4": root / "corpus_lz4.zarr",
        "big": root / f"corpus_x{big}.zarr",
    }


def default_codec() -> str:
    """The default of ``zarrmux.convert``'s ``codec`` parameter (recorded with the corpus made with it)."""
    import zarrmux

    return str(inspect.signature(zarrmux.convert).parameters["codec"].default)


def _marker_ok(marker: Path, want: dict[str, Any]) -> bool:
    try:
        return json.loads(marker.read_text()) == want
    except (OSError, ValueError):
        return False


def _convert(sources: list[str], dest: Path, marker: Path, want: dict[str, Any], **kwargs: Any) -> None:
    """Convert ``sources`` to a new corpus ``dest`` unless ``marker`` says it was made alike."""
    import zarrmux

    if _marker_ok(marker, want):
        return
    shutil.rmtree(dest, ignore_errors=True)  # the codec applies to a new corpus only
    t = time.perf_counter()
    report = zarrmux.convert(sources, str(dest), progress=False, **kwargs)
    marker.write_text(json.dumps(want))
    print(f"  converted {report.total_entries} entries to {dest} ({want}) in {time.perf_counter() - t:.1f} s", flush=True)


def prepare(root: Path, entries: int, big: int) -> dict[str, Path]:
    from zarrmux.testing import make_npz_archives

    paths = paths_of(root, big)
    npz, npy = paths["npz"], paths["npy"]
    data_spec = {"entries": entries, "features": FEATURES, "seed": 0, "quantize": False}
    if not _marker_ok(root / "npz.done", data_spec):
        for p in (npz, npy):
            shutil.rmtree(p, ignore_errors=True)
        for marker in root.glob("*.done"):
            marker.unlink()
        t = time.perf_counter()
        make_npz_archives(npz, entries, features=FEATURES, seed=0, quantize=False)
        (root / "npz.done").write_text(json.dumps(data_spec))
        print(f"  wrote {entries} NPZ archives (quantize=False) in {time.perf_counter() - t:.1f} s", flush=True)
    archives = sorted(npz.glob("*.npz"))
    if not (root / "npy.done").exists():
        npy.mkdir(parents=True, exist_ok=True)
        for p in archives:
            with np.load(p) as d:
                np.save(npy / f"{p.stem}_X.npy", d["X"])
                np.save(npy / f"{p.stem}_Y.npy", d["Y"])
        (root / "npy.done").write_text("ok")
    sources = [str(p) for p in archives]
    dflt = default_codec()
    # the default conversion: no codec argument (the marker records the default it was made with)
    _convert(sources, paths["corpus"], root / "corpus.done", {"codec": f"default ({dflt})"})
    _convert(sources, paths["lz4"], root / "corpus_lz4.done", {"codec": "lz4"}, codec="lz4")
    if big > 1:
        # the same archives ``big`` times under other names: hard links (the converter
        # skips a file it has already seen, by real path, so plain repeats would not do)
        src = root / f"npz_x{big}"
        src.mkdir(exist_ok=True)
        for k in range(big):
            for p in archives:
                link = src / f"r{k}_{p.name}"
                if not link.exists():
                    os.link(p, link)
        _convert([str(src)], paths["big"], root / f"corpus_x{big}.done", {"codec": f"default ({dflt})", "big": big})
        import zarrmux

        n_big = len(zarrmux.open_corpus(str(paths["big"])))
        if n_big != big * len(archives):
            raise SystemExit(f"the x{big} corpus {paths['big']} has {n_big} entries, expected {big * len(archives)}")
    return paths


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def stored_codec(corpus: Path, key: str) -> str:
    """The bytes codec recorded in ``<corpus>/<key>/zarr.json`` (best effort: 'blosc-lz4', 'none', '?')."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("name") == "blosc":
                found.append(f"blosc-{node.get('configuration', {}).get('cname', '?')}")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    try:
        walk(json.loads((corpus / key / "zarr.json").read_text()))
    except (OSError, ValueError):
        return "?"
    return ",".join(sorted(set(found))) or "none"


def print_sizes(paths: dict[str, Path], big: int) -> None:
    import zarrmux

    mib = 2**20
    c = zarrmux.open_corpus(str(paths["corpus"]))
    total_rows = int(np.sum(c.rows))
    raw = {"X": total_rows * FEATURES * 4, "Y": total_rows * 8}
    print(
        f"  arrays in memory: {len(c)} entries, {total_rows} rows: X {raw['X'] / mib:.1f} MiB (float32, full precision), "
        f"Y {raw['Y'] / mib:.1f} MiB (int64), total {sum(raw.values()) / mib:.1f} MiB"
    )
    print(f"  stored: npz {du(paths['npz']) / mib:.1f} MiB, npy {du(paths['npy']) / mib:.1f} MiB")
    for label, key in (("default conversion", "corpus"), ("codec='lz4'", "lz4")):
        p = paths[key]
        parts = ", ".join(
            f"{k} {du(p / k) / mib:.1f} MiB [{stored_codec(p, k)}, {raw[k] / max(1, du(p / k)):.2f}x]" for k in ("X", "Y")
        )
        print(f"  stored: corpus {label} ({p.name}): {du(p) / mib:.1f} MiB: {parts}")
    if big > 1:
        print(f"  stored: x{big} corpus, default conversion: {du(paths['big']) / mib:.1f} MiB")


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
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------- one run (in a subprocess)
class MemProbe:
    """Peak ``RssAnon`` of this process, from ``/proc/self/status`` (one ``pread`` per sample)."""

    def __init__(self) -> None:
        self.fd = os.open("/proc/self/status", os.O_RDONLY)
        self.peak_anon_kib = 0
        self.samples = 0
        self.seconds = 0.0

    def field_kib(self, name: bytes) -> int:
        data = os.pread(self.fd, 8192, 0)
        i = data.index(name + b":")
        return int(data[i + len(name) + 1 : data.index(b"kB", i)])

    def sample(self) -> None:
        t = time.perf_counter()
        anon = self.field_kib(b"RssAnon")
        if anon > self.peak_anon_kib:
            self.peak_anon_kib = anon
        self.samples += 1
        self.seconds += time.perf_counter() - t


def in_memory_batches(path: Path, batches: int) -> Iterator[dict[str, np.ndarray]]:
    """(f): load the whole corpus into numpy arrays, then gather (e)'s windows with one fancy index per key."""
    import zarrmux

    with zarrmux.open_corpus(str(path)) as corpus:
        rows = np.asarray(corpus.rows, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(np.int64)
        arrays: dict[str, np.ndarray] = {}
        for key in corpus.keys:
            first = corpus.read_rows(0, key, 0, 1)
            arr = np.empty((int(rows.sum()), *first.shape[1:]), dtype=first.dtype)
            for i, (o, r) in enumerate(zip(offsets.tolist(), rows.tolist())):
                arr[o : o + r] = corpus.read_rows(i, key, 0, r)
            arrays[key] = arr
    # planning only: the sampler opens the corpus (metadata), windows() reads no data
    sampler = zarrmux.WindowSampler(
        str(path), N, batch_size=BATCH, n_active=N_ACTIVE, rate=RATE, seed=0, max_iter=batches
    )
    ar = np.arange(N, dtype=np.int64)

    def gen() -> Iterator[dict[str, np.ndarray]]:
        try:
            for entries, starts in sampler.windows():
                rowidx = (offsets[entries] + starts)[:, None] + ar  # (batch, N)
                yield {k: a[rowidx] for k, a in arrays.items()}
        finally:
            sampler.close()

    return gen()


def run_variant(variant: str, paths: dict[str, Path], windows: int, corpus_key: str) -> dict[str, float]:
    np.random.seed(0)
    batches = windows // BATCH
    closer: Any = None
    if variant in ("a", "b", "c"):
        import pescador

        if variant == "c":
            xs = sorted(paths["npy"].glob("*_X.npy"))
            streams = [pescador.Streamer(sample_npy_mmap, str(x), str(x).replace("_X.npy", "_Y.npy"), N) for x in xs]
        else:
            fn = sample_npz_as_written if variant == "a" else sample_npz_member_once
            streams = [pescador.Streamer(fn, str(p), N) for p in sorted(paths["npz"].glob("*.npz"))]
        mux = pescador.StochasticMux(streams, n_active=N_ACTIVE, rate=RATE, random_state=0)
        it: Iterator[dict[str, np.ndarray]] = pescador.buffer_stream(mux, BATCH)
    elif variant == "d":
        import zarrmux

        corpus = zarrmux.open_corpus(str(paths[corpus_key]))
        mux = zarrmux.StochasticMux(corpus.streamers(N), n_active=N_ACTIVE, rate=RATE, random_state=0)
        it = zarrmux.buffer_stream(mux, BATCH)
        closer = corpus
    elif variant == "f":
        it = in_memory_batches(paths[corpus_key], batches)
    else:
        import zarrmux

        kw: dict[str, Any] = {"prefetch": 0} if variant.endswith("0") else {}
        sampler = zarrmux.WindowSampler(
            str(paths[corpus_key]), N, batch_size=BATCH, n_active=N_ACTIVE, rate=RATE, seed=0, max_iter=batches, **kw
        )
        if variant == "es":  # the steady state: shards mapped and checked, labels decoded
            for _ in sampler:
                pass
        it = iter(sampler)
        closer = sampler
    probe = MemProbe()
    probe.sample()
    every = max(1, batches // PROBE_SAMPLES)
    t0 = time.perf_counter()
    k = 0
    delivered = 0
    for batch in it:
        x = batch["X"]
        if x.shape[1:] != (N, FEATURES) or len(batch["Y"]) != len(x):
            raise SystemExit(f"variant {variant}: batch of shape X {x.shape}, Y {batch['Y'].shape}")
        delivered += len(x)
        k += 1
        if k % every == 0:
            probe.sample()
        if k >= batches:
            break
    dt = time.perf_counter() - t0
    probe.sample()
    hwm_kib = probe.field_kib(b"VmHWM")
    close = getattr(it, "close", None)
    if close is not None:
        close()
    if closer is not None:
        closer.close()
    return {
        "windows_per_s": delivered / dt,
        "windows": delivered,
        "batches": k,
        "batches_asked": batches,
        "seconds": dt,
        "peak_rss_mib": hwm_kib / 1024,
        "peak_anon_mib": probe.peak_anon_kib / 1024,
        "probe_share": probe.seconds / dt,
    }


def spawn(variant: str, root: Path, big: int, corpus_key: str | None = None) -> dict[str, float]:
    corpus_key = corpus_key or VARIANTS[variant][1]
    cmd = [sys.executable, __file__, "--child", variant, "--dir", str(root), "--windows", str(VARIANTS[variant][2]),
           "--corpus", corpus_key, "--big", str(big)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"variant {variant} failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_variants(text: str) -> list[str]:
    ids = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in ids if v not in VARIANTS]
    if bad or not ids:
        raise SystemExit(f"--variants {text!r}: unknown {bad}; choose a comma-separated list of {list(VARIANTS)}")
    return list(dict.fromkeys(ids))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/tmp/zarrmux_bench_sampler2")
    ap.add_argument("--entries", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cold-runs", type=int, default=None, help="runs with the page cache dropped (default --runs)")
    ap.add_argument("--big", type=int, default=10, help="size factor of the corpus of the memory check (1: skip)")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS, help="comma-separated ids (default: %(default)s)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--windows", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--corpus", default="corpus", help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = Path(args.dir)

    if args.child:
        print(json.dumps(run_variant(args.child, paths_of(root, args.big), args.windows, args.corpus)))
        return 0

    variants = parse_variants(args.variants)
    print(f"command: {shlex.join(getattr(sys, 'orig_argv', [sys.executable, *sys.argv]))}")
    print(f"machine: {os.cpu_count()} cpus (os.cpu_count()); figures are medians on a shared, noisy machine")
    root.mkdir(parents=True, exist_ok=True)
    print(f"setting up {args.entries} entries in {root} ...", flush=True)
    paths = prepare(root, args.entries, args.big)
    print_sizes(paths, args.big)
    print(f"workload: windows of {N} rows, n_active={N_ACTIVE}, rate={RATE}, batches of {BATCH}")
    print("windows per timed run: " + ", ".join(f"({v}) {VARIANTS[v][2]}" for v in variants))
    cold_runs = args.runs if args.cold_runs is None else args.cold_runs
    can_drop = cold_runs > 0 and drop_caches()
    results: dict[str, dict[str, list[dict[str, float]]]] = {"warm": {}, "cold": {}}
    for r in range(max(args.runs, cold_runs)):
        for v in variants:
            data = paths[VARIANTS[v][1]]
            if r < args.runs:
                warm(data)
                results["warm"].setdefault(v, []).append(spawn(v, root, args.big))
            if r < cold_runs and can_drop:
                drop_caches()
                results["cold"].setdefault(v, []).append(spawn(v, root, args.big))
        print(f"  round {r + 1} done", flush=True)

    def med(lst: list[dict[str, float]], key: str) -> float:
        return statistics.median(x[key] for x in lst)

    def spread(lst: list[dict[str, float]], key: str) -> str:
        vals = [x[key] for x in lst]
        m = statistics.median(vals)
        return f"{(max(vals) - min(vals)) / m * 100:.0f}%" if m else "-"

    def ratio(res: dict[str, list[dict[str, float]]], v: str, ref: str) -> str:
        if ref not in res:
            return "-"
        return f"{med(res[v], 'windows_per_s') / med(res[ref], 'windows_per_s'):.2f}x"

    for phase in ("warm", "cold"):
        res = results[phase]
        if not res:
            print(f"\n{phase}: skipped (--cold-runs 0, or the page cache cannot be dropped: not root / not allowed)")
            continue
        n_runs = len(next(iter(res.values())))
        print(f"\n{phase} page cache: median of {n_runs} run(s) per variant; spread = (max-min)/median")
        print(
            f"  {'variant':<58} {'windows/s':>10} {'spread':>7} {'vs (b)':>8} {'vs (c)':>8} {'vs (f)':>8} "
            f"{'peak RSS':>10} {'peak anon':>10}"
        )
        for v, lst in res.items():
            print(
                f"  {'(' + v + ')':<5}{VARIANTS[v][0]:<53} {med(lst, 'windows_per_s'):>10.0f} {spread(lst, 'windows_per_s'):>7} "
                f"{ratio(res, v, 'b'):>8} {ratio(res, v, 'c'):>8} {ratio(res, v, 'f'):>8} "
                f"{med(lst, 'peak_rss_mib'):>6.0f} MiB {med(lst, 'peak_anon_mib'):>6.0f} MiB"
            )
        short = [f"({v}) {x['batches']}/{x['batches_asked']}" for v, lst in res.items() for x in lst if x["batches"] != x["batches_asked"]]
        if short:
            print(f"  NOTE: fewer batches delivered than asked (rates count what was delivered): {', '.join(short)}")
        worst = max(res, key=lambda v: max(x["probe_share"] for x in res[v]))
        probe = max(x["probe_share"] for x in res[worst])
        print(f"  RssAnon sampling (~{PROBE_SAMPLES} samples per run): at most {probe * 100:.2f}% of a timed loop (({worst}))")

    checks: list[tuple[str, bool, str]] = []
    W, C = results["warm"], results["cold"]

    def rate(res: dict[str, list[dict[str, float]]], v: str) -> float:
        return med(res[v], "windows_per_s")

    def at_least(res: dict[str, list[dict[str, float]]], phase: str, v: str, ref: str, factor: float, what: str = "") -> None:
        if v in res and ref in res:
            x = rate(res, v) / rate(res, ref)
            checks.append((f"({v}) >= {factor:g}x ({ref}) {phase}{what}", x >= factor, f"{x:.2f}x"))

    at_least(W, "warm", "e", "b", 40, ", default conversion")
    at_least(W, "warm", "e", "c", 10, ", default conversion")
    at_least(W, "warm", "e", "f", 0.4, " (the in-memory limit), default conversion")
    at_least(W, "warm", "g", "b", 10, ", lz4 corpus")
    at_least(C, "cold", "e", "b", 10)
    at_least(C, "cold", "e", "c", 2)
    at_least(W, "warm", "d", "b", 3)
    if {"b", "e"} <= set(W):
        ab, ae = med(W["b"], "peak_anon_mib"), med(W["e"], "peak_anon_mib")
        checks.append(("(e) peak anonymous memory <= half of (b)'s (warm)", ae <= ab / 2, f"{ae:.0f} vs {ab:.0f} MiB"))
    for res, phase in ((W, "warm"), (C, "cold")):
        at_least(res, phase, "e", "e0", 1, ": default settings never slower than prefetch=0")
        at_least(res, phase, "g", "g0", 1, ": default settings never slower than prefetch=0")
    if args.big > 1 and "e" in W:
        big_runs = [spawn("e", root, args.big, corpus_key="big") for _ in range(args.runs)]
        small = med(W["e"], "peak_anon_mib")
        large = med(big_runs, "peak_anon_mib")
        print(
            f"\nmemory check: (e) on the x{args.big} corpus (not warmed; median of {len(big_runs)}): "
            f"{med(big_runs, 'windows_per_s'):.0f} windows/s, peak anon {large:.0f} MiB "
            f"(peak RSS {med(big_runs, 'peak_rss_mib'):.0f} MiB) vs {small:.0f} MiB "
            f"(peak RSS {med(W['e'], 'peak_rss_mib'):.0f} MiB) on the base corpus ({(large / small - 1) * 100:+.1f}%)"
        )
        checks.append(
            (f"(e) peak anonymous memory on the x{args.big} corpus within 20% of the base corpus's",
             abs(large / small - 1) <= 0.2, f"{(large / small - 1) * 100:+.1f}%")
        )
    print("\ntargets (medians):")
    for name, ok, fig in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {fig}")
    if not checks:
        print("  (none: their variants were not run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
