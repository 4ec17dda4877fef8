"""Byte reads of local files: :class:`LocalIO`, slices of memory-mapped files.

The byte reader :func:`zarrmux.byte_io.make_io` picks for a ``LocalStore``.
A batch of :class:`~zarrmux.byte_requests.ByteRequest` costs no system call
and no copy once its files are mapped; :mod:`zarrmux.exact_windows` and
:mod:`zarrmux.chunk_arena` also read through its whole-file mappings
(:meth:`LocalIO.mapping`) by address.  It is on the per-batch path of every
local corpus: keep it free of indirection.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from . import _forksafe
from .byte_requests import ByteRequest

__all__ = ["LocalIO"]


class LocalIO:
    """Reads of files under a ``LocalStore`` root, served from memory-mapped files.

    A file is mapped whole (:meth:`map_file`) on its first read and kept in
    an LRU of at most ``max_maps`` files shared by threads; a read returns a
    ``memoryview`` slice of the mapping, so a batch costs no system call and
    no copy once its files are mapped.  A slice keeps its mapping alive after
    the file leaves the LRU.
    """

    def __init__(self, root: str, max_maps: int = 512) -> None:
        self.root = root
        #: object sizes learned by suffix reads, taken once by the caller (see ``take_size``)
        self._sizes: dict[str, int] = {}
        self.max_maps = max_maps
        self._maps: OrderedDict[str, tuple[memoryview, int]] = OrderedDict()
        self._lock = threading.Lock()
        _forksafe.register(self)

    def mapping(self, key: str) -> tuple[memoryview, int] | None:
        """File ``key`` mapped whole (kept in the LRU), and the address of its first byte; ``None`` if absent.

        The memoryview holds the mapping: keep it while reading through the address.
        """
        with self._lock:
            got = self._maps.get(key)
            if got is not None:
                self._maps.move_to_end(key)
                return got
        arr = self.map_file(key)
        if arr is None:
            return None
        got = (arr.data, arr.ctypes.data if len(arr) else 0)  # arr.data: a 1-d uint8 view of the map
        with self._lock:
            self._maps[key] = got
            while len(self._maps) > self.max_maps:
                self._maps.popitem(last=False)
        return got

    def take_size(self, key: str) -> int | None:
        """The size of object ``key`` if a suffix read just learned it (forgotten once taken)."""
        return self._sizes.pop(key, None)

    def map_file(self, key: str) -> np.ndarray | None:
        """The whole file ``key`` memory-mapped read-only, as a uint8 array (``None`` if absent).

        The mapping lives as long as the returned array (it holds the map);
        the caller keeps it for as long as it reads through its address.
        The file is mapped with ``MAP_POPULATE`` where the platform has it:
        the kernel reads it (one sequential read, outside the GIL) and maps
        all its pages at once, about ten times cheaper here than taking a
        page fault for each 4 KiB page on first touch.
        """
        try:
            with open(os.path.join(self.root, *key.split("/")), "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size == 0:
                    return np.zeros(0, dtype=np.uint8)
                if hasattr(mmap, "MAP_SHARED"):  # POSIX
                    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
                    m = mmap.mmap(fh.fileno(), size, flags=flags, prot=mmap.PROT_READ)
                else:  # Windows
                    m = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        return np.frombuffer(m, dtype=np.uint8)

    def close(self) -> None:
        with self._lock:
            self._maps.clear()

    def read_many(self, reqs: Sequence[ByteRequest]) -> list[Any]:
        out: list[Any] = [None] * len(reqs)
        maps: dict[str, memoryview | None] = {}
        for i, r in enumerate(reqs):
            mv: memoryview | None | Literal[False] = maps.get(r.key, False)
            if mv is False:
                got = self.mapping(r.key)
                mv = maps[r.key] = None if got is None else got[0]
            if mv is None:
                continue
            if r.kind == "range":
                out[i] = mv[r.start : r.start + r.length]
            elif r.kind == "suffix":
                out[i] = mv[max(0, len(mv) - r.length) :]
                self._sizes[r.key] = len(mv)
            else:
                out[i] = mv
        return out
