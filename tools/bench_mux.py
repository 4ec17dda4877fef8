"""Mux throughput: zarrmux against pescador 3.0, ``StochasticMux`` + ``buffer_stream``, in one process.

Two workloads, both with 64 streams, ``n_active=32``, ``rate=16``, binomial
quotas, ``buffer_stream`` batches of ``--batch`` (32), the same seed for both
libraries and the same sequences (every batch compared, in an untimed pass):

``tiny``
    Items ``{'X': (16, 8) float32, 'Y': (16,) int64}`` prepared in memory; the
    streams cycle through them.  Measures the mux and the batching alone.
``windows``
    What a pescador user writes: 64 generators, each over its own
    ``(2000, 128)`` float32 ``X`` and ``(2000,)`` int64 ``Y``, with a
    ``np.random.RandomState(seed)`` made at activation and one ``randint`` per
    window, yielding ``dict(X=x[j:j+16], Y=y[j:j+16])``.  Printed with
    - the limit: the same mux and batching over the same kind of items already
      in memory (16-row windows prepared beforehand, generators that cost
      nothing), i.e. the ``tiny`` measurement at this item size;
    - the floor: the generators and the batching alone, without a mux (the
      work both libraries share, one extra window per activation included).

Figures are samples/s, medians of ``--repeats`` runs (pescador and zarrmux
alternate within each run).

    python tools/bench_mux.py [--workload all|tiny|windows] [--samples 60000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
import timeit
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

N_STREAMS, N_ACTIVE, RATE, WINDOW, ROWS, DIM = 64, 32, 16, 16, 2000, 128

#: data prepared once; streams take an index into it, so that activating a
#: Streamer (which deep-copies its arguments) copies an int, not the data
ITEMS: list[list[dict[str, np.ndarray]]] = []
DATA: list[tuple[np.ndarray, np.ndarray]] = []


def make_items(n_streams: int, per_stream: int, shape: tuple[int, ...]) -> list[list[dict[str, np.ndarray]]]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_streams, per_stream, *shape)).astype(np.float32)
    Y = rng.integers(0, 10, size=(n_streams, per_stream, shape[0]))
    return [[{"X": X[s, i], "Y": Y[s, i]} for i in range(per_stream)] for s in range(n_streams)]


def make_data(n_streams: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [
        (rng.standard_normal((ROWS, DIM)).astype(np.float32), rng.integers(0, 10, size=ROWS)) for _ in range(n_streams)
    ]


def in_memory(stream_id: int) -> Iterator[dict[str, np.ndarray]]:
    """An endless in-memory stream: cycles through prepared items (cheap per item)."""
    items = ITEMS[stream_id]
    while True:
        yield from items


def windows(stream_id: int, n: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
    """A pescador user's window generator: random ``n``-row windows of one stream's arrays."""
    x, y = DATA[stream_id]
    rng = np.random.RandomState(seed)
    while True:
        j = rng.randint(0, len(x) - n)
        yield dict(X=x[j : j + n], Y=y[j : j + n])


def build(lib: Any, workload: str, seed: int) -> Any:
    if workload == "windows":
        streams = [lib.Streamer(windows, i, WINDOW, 1000 + i) for i in range(N_STREAMS)]
    else:
        streams = [lib.Streamer(in_memory, i) for i in range(N_STREAMS)]
    return lib.StochasticMux(streams, n_active=N_ACTIVE, rate=RATE, random_state=seed)


def timed(lib: Any, workload: str, samples: int, batch: int, seed: int) -> float:
    mux = build(lib, workload, seed)
    t0 = time.perf_counter()
    for _ in lib.buffer_stream(mux(max_iter=samples), batch):
        pass
    return samples / (time.perf_counter() - t0)


def digests(lib: Any, workload: str, samples: int, batch: int, seed: int) -> list[bytes]:
    out = []
    for b in lib.buffer_stream(build(lib, workload, seed)(max_iter=samples), batch):
        h = hashlib.blake2b(digest_size=16)
        for k in sorted(b):
            h.update(k.encode() + str(b[k].dtype).encode() + str(b[k].shape).encode() + b[k].tobytes())
        out.append(h.digest())
    return out


def floor(samples: int, batch: int, seed: int) -> float:
    """The generators and the batching without a mux: activations of ~RATE windows, round robin."""
    rng = np.random.RandomState(seed)
    t0 = time.perf_counter()
    buf: list[dict[str, np.ndarray]] = []
    done = 0
    stream = 0
    while done < samples:
        quota = 1 + rng.binomial(RATE - 1, 1.0 - 1.0 / N_ACTIVE)
        gen = windows(stream, WINDOW, 1000 + stream)
        for _ in range(quota):
            buf.append(next(gen))
            if len(buf) == batch:
                {k: np.array([d[k] for d in buf]) for k in buf[0]}
                buf = []
            done += 1
        next(gen)  # the extra window a Streamer pulls at the end of an activation
        stream = (stream + 1) % N_STREAMS
    return samples / (time.perf_counter() - t0)


def medians(runs: int, fns: dict[str, Callable[[int], float]]) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(runs):
        for name, fn in fns.items():
            rates[name].append(fn(r))
    return rates


def report(label: str, rates: list[float], ref: float | None = None) -> float:
    m = statistics.median(rates)
    spread = f"[{min(rates):,.0f} .. {max(rates):,.0f}]"
    ratio = f"  {m / ref:5.2f}x" if ref else ""
    print(f"  {label:<44} {m:10,.0f} samples/s  ({1e6 / m:6.2f} us/sample) {spread}{ratio}")
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", choices=["all", "tiny", "windows"], default="all")
    ap.add_argument("--samples", type=int, default=60_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()

    import pescador

    import zarrmux

    libs = {"pescador": pescador, "zarrmux": zarrmux}
    DATA[:] = make_data(N_STREAMS)
    print(f"pescador {pescador.__version__}, zarrmux {zarrmux.__version__}; {N_STREAMS} streams, n_active={N_ACTIVE}, "
          f"rate={RATE}, buffer_stream({args.batch}); {args.samples} samples x {args.repeats} runs, medians [min .. max]")

    def check(workload: str) -> None:
        a, b = (digests(lib, workload, args.samples, args.batch, seed=0) for lib in libs.values())
        assert a == b and len(a) == args.samples // args.batch, f"{workload}: zarrmux and pescador batches differ"

    if args.workload in ("all", "tiny"):
        ITEMS[:] = make_items(N_STREAMS, 64, (16, 8))
        check("tiny")
        r = medians(args.repeats, {n: (lambda s, lib=lib: timed(lib, "tiny", args.samples, args.batch, s)) for n, lib in libs.items()})
        print("tiny: items {'X': (16, 8) float32, 'Y': (16,) int64} in memory; same batches: checked")
        p = report("pescador", r["pescador"])
        report("zarrmux", r["zarrmux"], p)

    if args.workload in ("all", "windows"):
        check("windows")
        fns: dict[str, Callable[[int], float]] = {
            n: (lambda s, lib=lib: timed(lib, "windows", args.samples, args.batch, s)) for n, lib in libs.items()
        }
        ITEMS[:] = make_items(N_STREAMS, 64, (WINDOW, DIM))
        check("tiny")
        fns.update({f"{n} (limit)": (lambda s, lib=lib: timed(lib, "tiny", args.samples, args.batch, s)) for n, lib in libs.items()})
        fns["floor"] = lambda s: floor(args.samples, args.batch, s)
        r = medians(args.repeats, fns)
        print(f"windows: generators of {WINDOW}-row windows of ({ROWS}, {DIM}) float32 + ({ROWS},) int64, "
              "RandomState per activation, randint per window; same batches: checked")
        p = report("pescador", r["pescador"])
        z = report("zarrmux", r["zarrmux"], p)
        print(f"limit: the same mux and batching over {WINDOW}x{DIM} windows already in memory")
        pl = report("pescador", r["pescador (limit)"])
        zl = report("zarrmux", r["zarrmux (limit)"], pl)
        print("floor: the generators and the batching alone, no mux")
        f = report("generators + np.array batching", r["floor"])
        print(f"ratio zarrmux/pescador: windows {z / p:.2f}x; the limit (in memory) {zl / pl:.2f}x; "
              f"a mux costing nothing would give {f / p:.2f}x (floor / pescador)")
        made, drawn = user_costs()
        print(f"in the generators (both libraries): np.random.RandomState(seed) {made:.1f} us per activation, "
              f"randint {drawn:.2f} us per window (best of 5)")


def user_costs() -> tuple[float, float]:
    """Microseconds of the generators' own calls: making a ``RandomState``, and one ``randint``."""
    rng = np.random.RandomState(0)
    made = min(timeit.repeat(lambda: np.random.RandomState(1000), number=200, repeat=5)) / 200
    drawn = min(timeit.repeat(lambda: rng.randint(0, ROWS - WINDOW), number=20000, repeat=5)) / 20000
    return made * 1e6, drawn * 1e6


if __name__ == "__main__":
    main()
