"""Byte reads of stored objects: local files, zarr stores, obstore.

The readers of :mod:`zarrmux.array_reader` ask for bytes as small typed
values (:class:`ByteRequest`: a range, a suffix or a whole object) and hand a
whole batch of them to one ``read_many`` call, which returns the bytes (or
``None`` for an absent object) in the same order:

* :class:`LocalIO` (a ``LocalStore``): slices of memory-mapped files (no
  system call, no copy per read); it also maps whole files for
  :mod:`zarrmux.exact_windows`.
* :class:`StoreIO` (any other zarr store): ``store.get(..., byte_range=...)``
  on zarr's event loop, at most ``async.concurrency`` requests in flight.
* :class:`ObstoreIO` (a ``zarr.storage.ObjectStore``): one
  ``obstore.get_ranges`` call per object, outside the GIL.

:func:`make_io` picks the fastest for a store.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _forksafe

__all__ = ["ByteRequest", "LocalIO", "StoreIO", "ObstoreIO", "make_io", "coalesce", "bounded"]


class ByteRequest(NamedTuple):
    """One read: ``kind`` is ``'range'`` (start, length), ``'suffix'`` (length) or ``'full'``."""

    key: str
    kind: str
    start: int = 0
    length: int = 0


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
        self._maps: OrderedDict[str, memoryview] = OrderedDict()
        self._lock = threading.Lock()
        _forksafe.register(self)

    def _mapped(self, key: str) -> memoryview | None:
        with self._lock:
            mv = self._maps.get(key)
            if mv is not None:
                self._maps.move_to_end(key)
                return mv
        arr = self.map_file(key)
        if arr is None:
            return None
        mv = memoryview(arr)
        with self._lock:
            self._maps[key] = mv
            while len(self._maps) > self.max_maps:
                self._maps.popitem(last=False)
        return mv

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
            mv = maps.get(r.key, False)
            if mv is False:
                mv = maps[r.key] = self._mapped(r.key)
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


def coalesce(ranges: list[tuple[int, int, int]], gap: int) -> list[tuple[int, int, list[tuple[int, int, int]]]]:
    """Merge ``(start, length, tag)`` ranges of one object lying within ``gap`` bytes of each other.

    Returns ``(start, stop, members)`` runs, in order.
    """
    ranges = sorted(ranges)
    runs = []
    j = 0
    while j < len(ranges):
        lo, ln, _ = ranges[j]
        hi = lo + ln
        k = j + 1
        while k < len(ranges) and ranges[k][0] <= hi + gap:
            hi = max(hi, ranges[k][0] + ranges[k][1])
            k += 1
        runs.append((lo, hi, ranges[j:k]))
        j = k
    return runs


async def bounded(jobs: Sequence[Any], run_one: Callable[[Any], Any], key_of: Callable[[Any], str], store: Any) -> None:
    """Await ``run_one(job)`` for every job, at most zarr's ``async.concurrency`` at once.

    A fixed pool of worker coroutines takes the jobs in turn (no task and
    semaphore round per job).  A failure raises :class:`CorpusError` naming
    the job's object (``key_of(job)``) and the store.
    """
    import zarr

    from .exceptions import CorpusError

    limit = max(1, int(zarr.config.get("async.concurrency", 10) or 10))
    todo = iter(jobs)

    async def worker() -> None:
        for job in todo:
            try:
                await run_one(job)
            except Exception as exc:
                raise CorpusError(f"cannot read {key_of(job)!r} from {store}: {type(exc).__name__}: {exc}") from exc

    if len(jobs) == 1:
        await worker()
    elif jobs:
        await asyncio.gather(*(worker() for _ in range(min(limit, len(jobs)))))


class StoreIO:
    """Byte-range reads through the zarr store API, gathered in one event-loop round trip.

    Ranges of one object within ``COALESCE_GAP`` bytes are merged into one
    request; at most zarr's ``async.concurrency`` requests run at once.
    """

    COALESCE_GAP = 64 * 1024

    def __init__(self, store: Any) -> None:
        from zarr.abc.store import RangeByteRequest, SuffixByteRequest
        from zarr.core.buffer import default_buffer_prototype

        self.store = store
        self._sizes: dict[str, int] = {}
        self._proto = default_buffer_prototype()
        self._range = RangeByteRequest
        self._suffix = SuffixByteRequest

    def take_size(self, key: str) -> int | None:
        """The size of object ``key`` if a suffix read just learned it (forgotten once taken)."""
        return self._sizes.pop(key, None)

    async def _size(self, key: str) -> None:
        """Learn the size of ``key`` (to bound its shard index; see ``take_size``); quiet on failure."""
        try:
            self._sizes[key] = int(await self.store.getsize(key))
        except Exception:
            pass

    async def _get(self, r: ByteRequest) -> Any:
        if r.kind == "range":
            buf = await self.store.get(r.key, self._proto, byte_range=self._range(r.start, r.start + r.length))
        elif r.kind == "suffix":
            # a shard index: its object's size, asked for alongside, bounds the inner chunks
            buf, _ = await asyncio.gather(self.store.get(r.key, self._proto, byte_range=self._suffix(r.length)), self._size(r.key))
        else:
            buf = await self.store.get(r.key, self._proto)
        if buf is None:
            return None
        data = memoryview(buf.as_numpy_array())
        # servers that ignore Range headers (e.g. http.server) send the whole object
        if r.kind == "range" and len(data) > r.length and len(data) >= r.start + r.length:
            data = data[r.start : r.start + r.length]
        elif r.kind == "suffix" and len(data) > r.length:
            data = data[-r.length :]
        return data

    def read_many(self, reqs: Sequence[ByteRequest]) -> list[Any]:
        from zarr.core.sync import sync

        out: list[Any] = [None] * len(reqs)
        # merge ranges of one object; other requests go as they are
        jobs: list[tuple[ByteRequest, list[tuple[int, int, int]] | int]] = []
        by_key: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        for i, r in enumerate(reqs):
            if r.kind == "range":
                by_key[r.key].append((r.start, r.length, i))
            else:
                jobs.append((r, i))
        for key, ranges in by_key.items():
            for lo, hi, members in coalesce(ranges, self.COALESCE_GAP):
                jobs.append((ByteRequest(key, "range", lo, hi - lo), members))
        results: list[Any] = [None] * len(jobs)

        async def fetch(j: int) -> None:
            results[j] = await self._get(jobs[j][0])

        sync(bounded(range(len(jobs)), fetch, lambda j: jobs[j][0].key, self.store))
        for (r, members), data in zip(jobs, results):
            if isinstance(members, int):
                out[members] = data
                continue
            if data is None:
                continue
            view = memoryview(data)
            for a, b, i in members:
                out[i] = view[a - r.start : a - r.start + b]
        return out


class ObstoreIO(StoreIO):
    """Byte-range reads of a ``zarr.storage.ObjectStore`` straight through obstore.

    All the ranges of one object go in one ``obstore.get_ranges_async`` call:
    obstore (Rust, outside the GIL) merges ranges within ``COALESCE_GAP`` bytes
    and fetches the rest concurrently, so a batch costs a few Python calls per
    *object* rather than per chunk.  Suffix and whole-object reads go through
    the store's ``get``.  For a server without ``Range`` support (obstore's
    ``NotSupportedError``), the object is read whole once and sliced.
    """

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        import obstore

        self._obs = obstore

    def read_many(self, reqs: Sequence[ByteRequest]) -> list[Any]:
        from zarr.core.sync import sync

        out: list[Any] = [None] * len(reqs)
        by_key: dict[str, list[int]] = defaultdict(list)
        jobs: list[tuple[str, Any]] = []
        for i, r in enumerate(reqs):
            if r.kind == "range":
                by_key[r.key].append(i)
            else:
                jobs.append(("one", i))
        jobs.extend(("ranges", key) for key in by_key)
        obs = self._obs

        async def ranges(key: str, idxs: list[int]) -> None:
            rs = [reqs[i] for i in idxs]
            try:
                got = await obs.get_ranges_async(
                    self.store.store, key, starts=[r.start for r in rs], lengths=[r.length for r in rs], coalesce=self.COALESCE_GAP
                )
            except FileNotFoundError:
                return
            except obs.exceptions.NotSupportedError:  # a server without Range support
                await whole(key, idxs)
                return
            for i, b in zip(idxs, got):
                out[i] = memoryview(b)

        async def whole(key: str, idxs: list[int]) -> None:
            """Serve requests from the whole object (for servers that refuse byte ranges)."""
            try:
                resp = await obs.get_async(self.store.store, key)
                data = memoryview(await resp.bytes_async())
            except FileNotFoundError:
                return
            self._sizes[key] = len(data)
            for i in idxs:
                r = reqs[i]
                if r.kind == "range":
                    out[i] = data[r.start : r.start + r.length]
                elif r.kind == "suffix":
                    out[i] = data[max(0, len(data) - r.length) :]
                else:
                    out[i] = data

        async def one(i: int) -> None:
            r = reqs[i]
            try:
                if r.kind == "suffix":
                    resp = await obs.get_async(self.store.store, r.key, options={"range": {"suffix": r.length}})
                    self._sizes[r.key] = int(resp.meta["size"])
                    out[i] = memoryview(await resp.bytes_async())
                else:
                    out[i] = await self._get(r)
            except FileNotFoundError:
                out[i] = None
            except obs.exceptions.NotSupportedError:
                await whole(r.key, [i])

        async def fetch(job: tuple[str, Any]) -> None:
            kind, what = job
            await (one(what) if kind == "one" else ranges(what, by_key[what]))

        if jobs:
            sync(bounded(jobs, fetch, lambda job: reqs[job[1]].key if job[0] == "one" else job[1], self.store))
        return out


def make_io(store: Any) -> LocalIO | StoreIO:
    """The fastest byte reader for a zarr store: ``os.pread`` for a ``LocalStore``, obstore for an ``ObjectStore``."""
    from zarr.storage import LocalStore

    if isinstance(store, LocalStore):
        return LocalIO(str(store.root))
    if type(store).__name__ == "ObjectStore" and type(store).__module__.startswith("zarr.storage"):
        return ObstoreIO(store)
    return StoreIO(store)
