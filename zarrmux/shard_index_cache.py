"""The shard indexes one array keeps in memory: :class:`ShardIndexCache`.

A sharded array's reader (:class:`zarrmux.array_reader.ArrayReader`) reads
each needed shard index once and keeps it here, under a byte budget (oldest
dropped first).  Beside the indexes: where each shard's chunk data may lie
once its object size is known (so an index entry pointing outside a
truncated shard is caught before any read), and claims on index reads in
progress, so that threads needing the same index read it once
(:mod:`zarrmux.chunk_loader`).  The lock and the claims are re-armed in a
forked child (:mod:`zarrmux._forksafe`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from . import _forksafe

__all__ = ["ShardIndexCache", "INDEX_CACHE_BYTES"]

#: shard indexes kept per array (16 bytes per inner chunk: 8 MiB index 16 GiB of data at 32 KiB chunks)
INDEX_CACHE_BYTES = 8 * 1024 * 1024
#: shards whose bounds are kept at most (the table is emptied when full)
MAX_BOUNDS = 65536


class ShardIndexCache:
    """Shard indexes, shard bounds and index-read claims of one array (thread-safe)."""

    def __init__(self) -> None:
        #: ``shard -> index`` (offsets and lengths, ``(chunks_per_shard, 2)``), oldest first
        self.indexes: OrderedDict[int, np.ndarray] = OrderedDict()
        #: ``shard -> (lo, hi)``: the bytes inner chunks may occupy, when the shard's size is known
        #: (emptied when full, never replaced: readers may hold it)
        self.bounds: dict[int, tuple[int, int]] = {}
        #: ``shard -> Event`` of index reads in progress (see :meth:`claim`)
        self._pending: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        _forksafe.register(self)

    def put(self, shard: int, index: np.ndarray) -> None:
        """Keep a shard index (at most ``INDEX_CACHE_BYTES``, oldest dropped first)."""
        with self._lock:
            self.indexes[shard] = index
            while len(self.indexes) > 1 and len(self.indexes) * index.nbytes > INDEX_CACHE_BYTES:
                self.indexes.popitem(last=False)

    def claim(self, shard: int) -> tuple[threading.Event, bool]:
        """``(event, True)`` if the caller must read shard ``shard``'s index (then :meth:`release`),
        ``(event, False)`` if another thread is reading it: wait for ``event``."""
        with self._lock:
            ev = self._pending.get(shard)
            if ev is not None:
                return ev, False
            ev = self._pending[shard] = threading.Event()
            return ev, True

    def release(self, shard: int) -> None:
        """The index read claimed with :meth:`claim` is over (done or failed): wake the waiters."""
        with self._lock:
            ev = self._pending.pop(shard, None)
        if ev is not None:
            ev.set()

    def set_bounds(self, shard: int, lo: int, hi: int) -> None:
        """Shard ``shard``'s chunk data lies in bytes ``lo:hi`` of its object."""
        with self._lock:
            if len(self.bounds) >= MAX_BOUNDS:
                self.bounds.clear()
            self.bounds[shard] = (lo, hi)
