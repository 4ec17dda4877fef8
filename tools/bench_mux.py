"""Mux throughput: zarrmux.StochasticMux against pescador.StochasticMux, in one process.

Workload (issue 2): 64 in-memory streams, 32 active, rate 16, binomial quotas,
items ``{'X': (16, 8) float32, 'Y': (16,) int64}`` batched by ``buffer_stream``
into batches of 32.  Both libraries get the same seed and produce the same
sequence (checked); the figures are samples/s, medians of ``--repeats`` runs.

    python tools/bench_mux.py [--samples 200000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np


def make_items(n_streams: int, per_stream: int) -> list[list[dict[str, np.ndarray]]]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_streams, per_stream, 16, 8)).astype(np.float32)
    Y = rng.integers(0, 10, size=(n_streams, per_stream, 16))
    return [[{"X": X[s, i], "Y": Y[s, i]} for i in range(per_stream)] for s in range(n_streams)]


#: the in-memory data, prepared once; streams take an index into it, so that
#: activating a Streamer (which deep-copies its arguments) stays cheap
ITEMS: list[list[dict[str, np.ndarray]]] = []


def in_memory(stream_id: int) -> Any:
    """An endless in-memory stream: cycles through prepared items (cheap per item)."""
    items = ITEMS[stream_id]
    while True:
        yield from items


def run(lib: Any, items: Any, samples: int, batch: int, seed: int) -> tuple[float, list[Any]]:
    streams = [lib.Streamer(in_memory, i) for i in range(len(items))]
    mux = lib.StochasticMux(streams, n_active=32, rate=16, random_state=seed)
    t0 = time.perf_counter()
    out = []
    for i, b in enumerate(lib.buffer_stream(mux(max_iter=samples), batch)):
        if i < 3:
            out.append(b)
    dt = time.perf_counter() - t0
    return samples / dt, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()

    import pescador

    import zarrmux

    items = make_items(64, 64)
    ITEMS[:] = items
    rates: dict[str, list[float]] = {"pescador": [], "zarrmux": []}
    for r in range(args.repeats):
        for name, lib in (("pescador", pescador), ("zarrmux", zarrmux)):
            rate, head = run(lib, items, args.samples, args.batch, seed=r)
            rates[name].append(rate)
            if name == "pescador":
                ref = head
            else:
                same = all(np.array_equal(a[k], b[k]) for a, b in zip(ref, head) for k in a)
                assert same, "zarrmux and pescador streams differ"
    p = statistics.median(rates["pescador"])
    z = statistics.median(rates["zarrmux"])
    print(f"workload: 64 in-memory streams, n_active=32, rate=16, buffer_stream({args.batch}), "
          f"{args.samples} samples x {args.repeats} runs (medians)")
    print(f"pescador {pescador.__version__}: {p:12,.0f} samples/s  ({1e6 / p:.2f} us/sample)")
    print(f"zarrmux  {zarrmux.__version__}: {z:12,.0f} samples/s  ({1e6 / z:.2f} us/sample)")
    print(f"ratio zarrmux/pescador: {z / p:.2f}x  (same sequences: checked)")


if __name__ == "__main__":
    main()
