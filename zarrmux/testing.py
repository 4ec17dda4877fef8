"""Helpers for tests, demos and benchmarks: synthetic archives and small corpora.

Public, so users can build fixtures the same way the project's own tests do.
The stand-ins for an object store (:func:`latency_store`, the loopback HTTP
servers, ``python -m zarrmux.testing ROOT DELAY``) live in
:mod:`zarrmux.testing_servers` and are importable from here too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import layout
from .chunking import default_chunk_rows, default_shard_rows, shard_ceil
from .entry_checksum import checksum_arrays
from .index_commit import commit_entries
from .testing_servers import (
    COUNTS_PATH,
    latency_store,
    run_delay_server,
    run_stdlib_server,
    serve_directory,
)
from .testing_servers import send_range as send_range  # public without being in __all__

__all__ = [
    "COUNTS_PATH",
    "latency_store",
    "make_entry",
    "make_npz_archives",
    "run_delay_server",
    "run_stdlib_server",
    "serve_directory",
    "write_corpus",
]


def make_entry(
    rows: int, features: int = 128, *, seed: int = 0, dtype: Any = np.float32, quantize: bool = True
) -> dict[str, np.ndarray]:
    """One synthetic song: ``X (rows, features)`` and ``Y (rows,)`` int64 labels.

    ``X`` is Gaussian noise, ``Y`` a slowly varying label.  With ``quantize``
    (default) ``X`` is rounded to multiples of 1/64, which blosc-lz4 with byte
    shuffle stores about 2.2x smaller; with ``quantize=False`` it keeps every
    mantissa bit, like real float features (log-mel, sensor, climate), which
    lz4 barely shrinks (about 1.1x).
    """
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((rows, features)).astype(np.float32)
    X = (np.round(base * 64) / 64).astype(dtype) if quantize else base.astype(dtype)
    Y = (np.arange(rows, dtype=np.int64) // 97 + seed) % 10
    return {"X": X, "Y": Y}


def make_npz_archives(
    directory: str | os.PathLike[str],
    n_archives: int,
    *,
    min_rows: int = 5000,
    max_rows: int = 20000,
    features: int = 128,
    seed: int = 0,
    compressed: bool = False,
    prefix: str = "song",
    quantize: bool = True,
) -> list[Path]:
    """Write ``n_archives`` NPZ files ``{prefix}{i:05d}.npz`` with ``X`` and ``Y``.

    Rows are drawn uniformly from ``[min_rows, max_rows]``; reproducible from ``seed``.
    ``quantize`` as in :func:`make_entry`.
    Returns the paths, in order.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    # Callable[..., None]: the entry's keys go as keyword arguments, which numpy's stubs take for allow_pickle
    save: Callable[..., None] = np.savez_compressed if compressed else np.savez
    for i in range(n_archives):
        rows = int(rng.integers(min_rows, max_rows + 1))
        path = directory / f"{prefix}{i:05d}.npz"
        save(path, **make_entry(rows, features, seed=seed * 100003 + i, quantize=quantize))
        paths.append(path)
    return paths


def write_corpus(
    dest: Any,
    entries: Mapping[str, Mapping[str, np.ndarray]],
    *,
    chunk_rows: int | None = None,
    shard_rows: int | None = None,
    codec: str = "lz4",
    level: int | None = None,
) -> Any:
    """Write in-memory ``{name: {key: array}}`` entries as a corpus, in one process.

    The simple, non-streaming writer for fixtures; :func:`zarrmux.convert` is
    the real one.  Entries are written in one unit each; returns the root group.
    """
    first = next(iter(entries.values()))
    keys = {}
    for k in sorted(first):
        a = np.asarray(first[k])
        spec_rows = chunk_rows or default_chunk_rows(a.dtype.itemsize * int(np.prod(a.shape[1:], dtype=np.int64)))
        keys[k] = layout.KeySpec(a.dtype.str, tuple(a.shape[1:]), spec_rows)
    if shard_rows is None:
        shard_rows = default_shard_rows([s.row_bytes for s in keys.values()], [s.chunk_rows for s in keys.values()])
    import zarr

    root = layout.create_corpus(dest, keys, shard_rows=shard_rows, codec=codec, level=level)
    end = 0
    for name, arrays in entries.items():
        rows = len(next(iter(arrays.values())))
        start = shard_ceil(end, shard_rows)
        for k in keys:
            arr = root[k]
            assert isinstance(arr, zarr.Array), f"{dest}/{k}: create_corpus made a group, not an array"
            arr.resize((start + rows, *keys[k].trailing_shape))
            arr[start : start + rows] = np.asarray(arrays[k])
        end = start + rows
        rec = layout.EntryRecord(name, start, rows, source="<memory>", checksum=checksum_arrays(arrays))
        commit_entries(root, [rec], rows_allocated=end)
    return root


if __name__ == "__main__":  # python -m zarrmux.testing ROOT DELAY [--server stdlib] [--no-range] ...
    from .testing_servers import main

    main()
