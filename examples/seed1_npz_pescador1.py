"""The first seed document ("Sampling from NPZ archives", pescador 1.x names), ported to zarrmux.

Part 1 runs the seed's code as written, on zarrmux (``import zarrmux as pescador``):
``sample_npz`` streamers, ``pescador.Mux(streams, k=32, lam=16)`` and
``mux_stream.generate(max_batches=...)``.  These 1.x names still work and warn
(``DeprecationWarning``) with their replacements.

Part 2 is the zarrmux way: convert the archives once, then sample windows lazily
(only the chunks a window touches are read; no archive is loaded whole).

    python examples/seed1_npz_pescador1.py --workdir /tmp/zm-seed1 --steps 200
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

import zarrmux
import zarrmux as pescador  # the seed's code runs unchanged on zarrmux's pescador-compatible core
from zarrmux.testing import make_npz_archives


# ---- the seed's streamer, verbatim ------------------------------------------------
def sample_npz(npz_file, n):
    '''Generate an infinite sequence of contiguous samples
    from the input `npz_file`.

    Each iterate has `n > 0` rows.
    '''
    # We use the context form of data loading here
    # so that memory is released when the streamer is deactivated
    with np.load(npz_file) as data:
        # How many rows are in the data?
        # We assume that data['Y'] has the same length
        n_total = len(data['X'])

        while True:
            # Compute the index offset
            idx = np.random.randint(n_total - n)
            yield dict(X=data['X'][idx:idx+n],
                       Y=data['Y'][idx:idx+n])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("zarrmux-example-seed1"))
    ap.add_argument("--steps", type=int, default=200, help="windows drawn by each part")
    args = ap.parse_args()
    npz_files = make_npz_archives(args.workdir / "songs", 40, min_rows=200, max_rows=600, features=16)

    # ---- part 1: the seed example, pescador 1.x names ----------------------------
    n = 16
    streams = [pescador.Streamer(sample_npz, npz_f, n) for npz_f in npz_files]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        # Keep 32 streams alive at once
        # Draw on average 16 patches from each stream before deactivating
        mux_stream = pescador.Mux(streams, k=32, lam=16)
        count = 0
        for batch in mux_stream.generate(max_batches=args.steps):
            # DO LEARNING HERE
            assert batch["X"].shape == (n, 16) and batch["Y"].shape == (n,)
            count += 1
    assert count == args.steps
    deprecations = sorted({str(w.message).splitlines()[0] for w in caught if w.category is DeprecationWarning})
    assert len(deprecations) == 3, deprecations  # Mux(k=...), lam=, generate(max_batches=)
    print(f"part 1 (seed code, 1.x names): {count} windows, {len(deprecations)} deprecation warnings naming replacements")

    # ---- part 2: the zarrmux way --------------------------------------------------
    corpus_path = args.workdir / "songs.zarr"
    zarrmux.convert(npz_files, corpus_path, workers=1)   # or: zarrmux convert songs/ -o songs.zarr
    corpus = zarrmux.open_corpus(corpus_path)
    streams = corpus.streamers(n)                          # one lazy window streamer per song
    mux_stream = zarrmux.StochasticMux(streams, n_active=32, rate=16, mode="with_replacement",
                                       dist="poisson", random_state=0)
    count = 0
    for batch in mux_stream(max_iter=args.steps):
        assert batch["X"].shape == (n, 16)
        count += 1
    # or the native batched sampler: plans, reads and prefetches whole batches
    with zarrmux.WindowSampler(corpus, n, batch_size=32, n_active=32, rate=16, seed=0,
                               max_iter=max(1, args.steps // 32)) as sampler:
        entries, starts = next(sampler.windows())          # the first batch's windows, planned without reading
        batches = list(sampler)
    # each window is exactly the rows of its archive
    for b in (0, 31):
        with np.load(args.workdir / "songs" / f"{corpus.names[int(entries[b])]}.npz") as src:
            st = int(starts[b])
            np.testing.assert_array_equal(batches[0]["X"][b], src["X"][st:st + n])
            np.testing.assert_array_equal(batches[0]["Y"][b], src["Y"][st:st + n])
    corpus.close()
    print(f"part 2 (zarrmux): {count} windows from streamers, {len(batches)} batches of 32 from WindowSampler")
    print("OK")


if __name__ == "__main__":
    main()
