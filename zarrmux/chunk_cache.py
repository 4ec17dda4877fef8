"""The decoded-chunk cache: :class:`ChunkCache`, an LRU bounded by bytes, shared by threads."""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence

import numpy as np

from . import _forksafe

__all__ = ["DEFAULT_CACHE_BYTES", "ChunkCache"]

#: Default byte budget of decoded chunks per open corpus: 16 MiB.  Only
#: compressed keys use it (uncompressed keys are read as exact windows, with
#: no cache): the chunk arenas of :mod:`zarrmux.chunk_arena` share it, the
#: smallest keys first, so labels (4096 rows per 32 KiB chunk, revisited by
#: every window of their entry) stay resident on a corpus of a few million
#: rows, and a bigger corpus reuses the budget instead of growing with it.
#: Random windows of a wide compressed key rarely hit a chunk again (a 16-row
#: window of a 128-float key touches 1-2 of its 64-row chunks among hundreds
#: of thousands), so a bigger budget buys little for it; pass
#: ``cache_bytes`` to trade memory for hits.
DEFAULT_CACHE_BYTES = 16 * 1024 * 1024


class ChunkCache:
    """A thread-safe LRU of decoded chunks bounded by ``max_bytes``.

    Values are read-only numpy arrays; their ``nbytes`` count against the
    budget.  A value larger than the budget is not stored.  A hit is a dict
    lookup and a ``move_to_end`` under a lock (about a microsecond).

    Evicted chunks that nobody else references (checked with refcounts under
    the lock) keep their buffers in a free list of at most ``max_bytes / 8``
    bytes, handed out again by :meth:`take`, so steady-state decoding
    allocates no fresh memory.  Memory held: at most ``1.125 * max_bytes``.

    Parameters
    ----------
    max_bytes : int >= 0
        The budget; 0 disables caching (every read decodes again).
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"cache_bytes={max_bytes} must be >= 0")
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        _forksafe.register(self)
        #: evicted decoded-chunk buffers by size, reused by :meth:`take` (no malloc churn:
        #: freshly mapped memory page-faults, notably in threads' malloc arenas)
        self._free: dict[int, list[np.ndarray]] = {}
        self._free_max = 64
        self._free_bytes = self.max_bytes // 8
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def get_many(self, keys: Sequence[Hashable]) -> list[np.ndarray | None]:
        """Look up several keys under one lock acquisition."""
        data = self._data
        out: list[np.ndarray | None] = []
        with self._lock:
            for key in keys:
                value = data.get(key)
                if value is not None:
                    data.move_to_end(key)
                out.append(value)
            hits = sum(v is not None for v in out)
            self.hits += hits
            self.misses += len(out) - hits
        return out

    def take(self, nbytes: int) -> np.ndarray:
        """A writable ``uint8`` buffer of ``nbytes`` bytes: a recycled one if available."""
        free = self._free.get(nbytes)
        if free:
            with self._lock:
                if free:
                    return free.pop()
        return np.empty(nbytes, dtype=np.uint8)

    def put_many(self, items: Sequence[tuple[Hashable, np.ndarray]]) -> None:
        """Store several values under one lock acquisition."""
        data = self._data
        with self._lock:
            for key, value in items:
                size = value.nbytes
                if size > self.max_bytes:
                    continue
                old = data.pop(key, None)
                if old is not None:
                    self.nbytes -= old.nbytes
                data[key] = value
                self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, evicted = data.popitem(last=False)
                self.nbytes -= evicted.nbytes
                # recycle the buffer of a decoded chunk nobody else holds (refcounts:
                # the name 'evicted' + getrefcount's argument; base: evicted.base + 'base' + argument)
                base = evicted.base
                if (
                    type(base) is np.ndarray
                    and sys.getrefcount(evicted) == 2
                    and sys.getrefcount(base) == 3
                    and base.flags.owndata
                    and base.flags.writeable
                ):
                    free = self._free.setdefault(base.nbytes, [])
                    if len(free) < self._free_max and (len(free) + 1) * base.nbytes <= self._free_bytes:
                        free.append(base)
                del evicted, base

    def put(self, key: Hashable, value: np.ndarray) -> None:
        size = int(value.nbytes)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.nbytes -= int(old.nbytes)
            self._data[key] = value
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, evicted = self._data.popitem(last=False)
                self.nbytes -= int(evicted.nbytes)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._free.clear()
            self.nbytes = 0

    def __len__(self) -> int:
        return len(self._data)
