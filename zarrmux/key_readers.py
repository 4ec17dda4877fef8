"""Which reader serves each key of a corpus, and how the decoded-chunk budget is shared: :func:`key_readers`.

A key held by one array (every key of a zarrmux corpus) is read

* as exact windows when it is stored uncompressed in local files
  (:mod:`zarrmux.exact_windows`), or over the network when the caller asked
  for it (``exact_remote``, :mod:`zarrmux.remote_windows`);
* else through its chunk arena (:mod:`zarrmux.chunk_arena`).  The
  ``cache_bytes`` budget goes to the smallest keys first, whole if they fit
  in what is left (labels: resident), else shared equally with the keys
  after them; every arena holds at least :data:`zarrmux.chunk_arena.MIN_SLOTS`
  chunks.

A key with one array per entry (plain Zarr data) has neither and is read
through decoded chunks and the corpus's :class:`~zarrmux.chunk_cache.ChunkCache`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import exact_windows, remote_windows
from .array_reader import ArrayReader
from .chunk_arena import ChunkArena, slots_for

__all__ = ["KeyReaders", "key_readers"]


@dataclass
class KeyReaders:
    """Per key: what reads it (see the module docstring)."""

    #: dtype and row shape, when every entry agrees (needed to stack windows), else None
    spec: dict[str, tuple[np.dtype, tuple[int, ...]] | None]
    #: the one reader of every entry (a zarrmux corpus), else None
    single: dict[str, ArrayReader | None]
    #: its exact-window reader, when it has one
    exact: dict[str, exact_windows.ExactWindows | remote_windows.RemoteWindows]
    #: its arena, when it is read through decoded chunks of one array
    arena: dict[str, ChunkArena]


def key_readers(
    keys: Sequence[str], readers: Sequence[ArrayReader], rid: dict[str, np.ndarray], cache_bytes: int, exact_remote: bool
) -> KeyReaders:
    """The readers of ``keys``; ``rid[key][e]`` is the position in ``readers`` of entry ``e``'s array of ``key``."""
    out = KeyReaders({}, {}, {}, {})
    for k in keys:
        used = set(rid[k].tolist()) or {keys.index(k)}  # an empty zarrmux corpus: reader j is key j
        specs = {(readers[j].dtype, readers[j].trailing) for j in used}
        out.spec[k] = specs.pop() if len(specs) == 1 else None
        single = readers[used.pop()] if len(used) == 1 else None
        out.single[k] = single
        if single is not None and exact_windows.supports(single):
            out.exact[k] = exact_windows.ExactWindows(single)
        elif single is not None and exact_remote and remote_windows.supports(single):
            out.exact[k] = remote_windows.RemoteWindows(single)
    arena_keys = sorted(
        (k for k in keys if out.single[k] is not None and k not in out.exact),
        key=lambda k: out.single[k].n_chunks * out.single[k].chunk_nbytes,  # type: ignore[union-attr]
    )
    budget = cache_bytes
    for i, k in enumerate(arena_keys):
        reader = out.single[k]
        assert reader is not None
        whole = reader.n_chunks * reader.chunk_nbytes
        n_slots = slots_for(whole if whole <= budget else budget // (len(arena_keys) - i), reader)
        out.arena[k] = ChunkArena(reader, n_slots)
        budget = max(0, budget - n_slots * reader.chunk_nbytes)
    return out
