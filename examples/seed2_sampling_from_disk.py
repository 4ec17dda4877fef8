"""The second seed document ("Sampling from disk"): its three recipes, each next to its zarrmux replacement.

=====================  =================================================================
seed recipe            zarrmux replacement
=====================  =================================================================
``sample_npz``         ``corpus.streamers(n)``: lazy window streamers; an activation loads
                       nothing, a window reads only the chunks it touches
``sample_npz_copy``    the same streamers: every window is already a fresh array (nothing of
                       the archive stays referenced), with no whole-archive load to copy from
``sample_npy_mmap``    convert the NPY files too (``song_X.npy`` + ``song_Y.npy`` -> entry
                       ``song``); one corpus instead of one file per key, compressed, and
                       usable over HTTP, where memory maps are not
=====================  =================================================================

Each pair runs the seed's ``StochasticMux(streams, n_active=32, rate=16)`` for
``--steps`` windows, then checks windows of the replacement against the source files.

    python examples/seed2_sampling_from_disk.py --workdir /tmp/zm-seed2 --steps 200
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import zarrmux
import zarrmux as pescador
from zarrmux.testing import make_npz_archives

N = 16


# ---- recipe 1 ------------------------------------------------------------------------
def sample_npz(npz_file, n):
    '''Generate an infinite sequence of contiguous samples
    from the input `npz_file`.

    Each iterate has `n > 0` rows.'''
    with np.load(npz_file) as data:
        # How many rows are in the data?
        # We assume that data['Y'] has the same length
        n_total = len(data['X'])

        while True:
            # Compute the index offset
            idx = np.random.randint(n_total - n)
            yield dict(X=data['X'][idx:idx + n],
                       Y=data['Y'][idx:idx + n])


def replace_sample_npz(corpus_path: Path, n: int) -> list:
    """Recipe 1 in zarrmux: one lazy window streamer per song."""
    corpus = zarrmux.open_corpus(corpus_path)
    return corpus.streamers(n)


# ---- recipe 2 ------------------------------------------------------------------------
def sample_npz_copy(npz_file, n):
    with np.load(npz_file) as data:
        # How many rows are in the data?
        # We assume that data['Y'] has the same length
        n_total = len(data['X'])

        while True:
            # Compute the index offset
            idx = np.random.randint(n_total - n)
            yield dict(X=data['X'][idx:idx + n].copy(),  # <-- Note the explicit copy
                       Y=data['Y'][idx:idx + n].copy())


def replace_sample_npz_copy(corpus_path: Path, n: int) -> list:
    """Recipe 2 in zarrmux: the same streamers; ``readahead=1`` makes each window its own array."""
    corpus = zarrmux.open_corpus(corpus_path)
    return [zarrmux.window_streamer(entry, n, readahead=1) for entry in corpus]


# ---- recipe 3 ------------------------------------------------------------------------
def sample_npy_mmap(npy_x, npy_y, n):

    # Open each file in "copy-on-write" mode, so that the files are read-only
    X = np.load(npy_x, mmap_mode='c')
    Y = np.load(npy_y, mmap_mode='c')

    n_total = len(X)

    while True:
        # Compute the index offset
        idx = np.random.randint(n_total - n)
        yield dict(X=X[idx:idx + n],
                   Y=Y[idx:idx + n])


def replace_sample_npy_mmap(npy_dir: Path, corpus_path: Path, n: int) -> list:
    """Recipe 3 in zarrmux: convert the NPY pairs (grouped by file-name suffix) into a corpus."""
    zarrmux.convert([npy_dir], corpus_path, group="suffix", workers=1)  # zarrmux convert npy/ -o npy.zarr
    return zarrmux.open_corpus(corpus_path).streamers(n)


# ---- running them side by side ---------------------------------------------------------
def run_mux(streams: list, steps: int) -> int:
    # Keep 32 streams alive at once; draw on average 16 patches from each before deactivating
    mux_stream = pescador.StochasticMux(streams, n_active=32, rate=16)
    count = 0
    for batch in mux_stream(max_iter=steps):
        assert batch["X"].shape[0] == N and batch["Y"].shape == (N,)
        count += 1
    return count


def check_windows(streams: list, source_of: dict, n_windows: int = 20) -> None:
    """Windows of the zarrmux streamers equal the rows of their source files."""
    rng = np.random.default_rng(0)
    for _ in range(n_windows):
        s = streams[int(rng.integers(len(streams)))]
        win = next(s.iterate(max_iter=1))
        X, Y = source_of[s.entry.name]
        hits = [i for i in range(len(Y) - N + 1) if np.array_equal(X[i:i + N], win["X"])]
        assert hits and np.array_equal(Y[hits[0]:hits[0] + N], win["Y"]), s.entry.name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("zarrmux-example-seed2"))
    ap.add_argument("--steps", type=int, default=200, help="windows drawn by each streamer set")
    args = ap.parse_args()
    np.random.seed(0)
    npz_files = make_npz_archives(args.workdir / "npz", 40, min_rows=100, max_rows=300, features=8)
    source_of = {}
    npy_dir = args.workdir / "npy"
    npy_dir.mkdir(parents=True, exist_ok=True)
    npy_x_files, npy_y_files = [], []
    for f in npz_files:
        with np.load(f) as d:
            source_of[f.stem] = (d["X"], d["Y"])
            np.save(npy_dir / f"{f.stem}_X.npy", d["X"])
            np.save(npy_dir / f"{f.stem}_Y.npy", d["Y"])
        npy_x_files.append(npy_dir / f"{f.stem}_X.npy")
        npy_y_files.append(npy_dir / f"{f.stem}_Y.npy")
    npz_corpus = args.workdir / "npz.zarr"
    zarrmux.convert(npz_files, npz_corpus, workers=1)  # zarrmux convert npz/ -o npz.zarr

    # recipe 1
    seed_streams = [pescador.Streamer(sample_npz, npz_f, N) for npz_f in npz_files]
    ours = replace_sample_npz(npz_corpus, N)
    print(f"sample_npz:       seed {run_mux(seed_streams, args.steps)} windows | zarrmux {run_mux(ours, args.steps)} windows")
    check_windows(ours, source_of)

    # recipe 2
    seed_streams = [pescador.Streamer(sample_npz_copy, npz_f, N) for npz_f in npz_files]
    ours = replace_sample_npz_copy(npz_corpus, N)
    print(f"sample_npz_copy:  seed {run_mux(seed_streams, args.steps)} windows | zarrmux {run_mux(ours, args.steps)} windows")
    check_windows(ours, source_of)
    win = next(ours[0].iterate(max_iter=1))
    assert win["X"].base is None or win["X"].base.shape[0] == 1  # owns its rows: nothing else kept alive

    # recipe 3
    seed_streams = [pescador.Streamer(sample_npy_mmap, npy_x, npy_y, N)
                    for (npy_x, npy_y) in zip(npy_x_files, npy_y_files)]
    ours = replace_sample_npy_mmap(npy_dir, args.workdir / "npy.zarr", N)
    print(f"sample_npy_mmap:  seed {run_mux(seed_streams, args.steps)} windows | zarrmux {run_mux(ours, args.steps)} windows")
    check_windows(ours, source_of)
    print("OK")


if __name__ == "__main__":
    main()
