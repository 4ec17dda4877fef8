"""Fast row-chunk reading for Zarr arrays: shard indexes, byte ranges, decode, cache.

zarr-python costs a few hundred microseconds per ``arr[i:j]`` call, so the hot
path of :mod:`zarrmux.corpus` bypasses it for the arrays it understands and
reads the stored objects itself:

* **Sharded v3 arrays** (what :func:`zarrmux.layout.create_corpus` writes):
  the shard index of each needed shard is read once (a suffix or prefix byte
  range, crc32c-checked) and cached; the inner chunks are then fetched as
  byte ranges, all of a call's ranges together (``os.pread`` for a
  ``LocalStore``, one ``asyncio.gather`` of ``store.get(..., byte_range=...)``
  on zarr's event loop for any other store), and decoded directly with
  numcodecs (blosc, zstd, gzip, or no compressor).
* **Unsharded v3 arrays** with the same codecs: one object per chunk.
* **Anything else** (zarr v2 arrays, transposes, chunks that split the
  trailing axes, unusual codecs): the *chunk* is read through zarr-python
  slicing of its row range, then served from the same cache.  Correct, slower.

The unit of reading and caching is a *row chunk*: rows
``[c * chunk_rows, (c + 1) * chunk_rows)`` of one array with all trailing
axes.  Decoded chunks live in a :class:`ChunkCache`, an LRU bounded by bytes
and safe to share between threads; shard indexes in a per-array cache of at
most :data:`INDEX_CACHE_BYTES`.  Memory held by a corpus's reads is thus
bounded by ``1.125 * cache_bytes`` + ``INDEX_CACHE_BYTES`` per key + the
chunks of the calls in flight (a call holds the chunks its batch needs).  Corrupt data (index checksum mismatch,
undecodable or wrong-sized chunk, truncated object) raises :class:`ChunkFault`,
which :mod:`zarrmux.corpus` turns into a :class:`~zarrmux.exceptions.DataError`
naming the entry, key and stored object.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import struct
import sys
import threading
import weakref
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import numpy as np
from numcodecs import blosc as _blosc

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "ChunkCache",
    "ChunkFault",
    "ArrayReader",
    "make_io",
    "load_chunks",
]

#: Default byte budget of the decoded-chunk cache (see :class:`ChunkCache`): 64 MiB.
#: Random windows rarely revisit a wide key's chunks (a 16-row window of a
#: 128-float key touches 1-2 chunks of 64 rows among hundreds of thousands), so
#: a bigger cache buys little; what it must hold are the narrow keys' chunks
#: (labels: 4096 rows per 32 KiB chunk, revisited by every window of the
#: entry) for the active entries, a few MiB, plus recent wide chunks.  64 MiB
#: keeps a sampling process near 130 MiB resident on the benchmark corpus
#: whatever the corpus size; pass ``cache_bytes`` to trade memory for hits.
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
#: zarr's marker of an absent inner chunk in a shard index
MAX_UINT_64 = 2**64 - 1
#: shard indexes kept per array (16 bytes per inner chunk: 8 MiB index 16 GiB of data at 32 KiB chunks)
INDEX_CACHE_BYTES = 8 * 1024 * 1024
#: fallback (zarr-slicing) reads are cut into row blocks of at most this many bytes
FALLBACK_BLOCK_BYTES = 4 * 1024 * 1024

_uid = itertools.count()

#: objects holding locks, re-armed in a forked child (a lock held by another
#: thread at fork time would otherwise stay locked forever in the child)
_FORK_SAFE: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for obj in list(_FORK_SAFE):
        obj._lock = threading.Lock()
        if hasattr(obj, "_pending"):  # index reads of the parent's threads never finish here
            obj._pending = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ChunkFault(Exception):
    """Corrupt or unreadable stored data in one object of one array.

    Attributes
    ----------
    reader : ArrayReader
        The array.
    chunks : list of int
        The row chunks that could not be produced.
    where : str
        The stored object (store key, and inner chunk when sharded).
    """

    def __init__(self, reader: "ArrayReader", chunks: Sequence[int], where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.reader = reader
        self.chunks = list(chunks)
        self.where = where
        self.message = message


# ----------------------------------------------------------------------------- cache


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
        _FORK_SAFE.add(self)
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


# ----------------------------------------------------------------------------- I/O


class _Req(NamedTuple):
    """One read: ``kind`` is ``'range'`` (start, length), ``'suffix'`` (length) or ``'full'``."""

    key: str
    kind: str
    start: int = 0
    length: int = 0


class _LocalIO:
    """Byte-range reads of files under a ``LocalStore`` root with ``os.pread``.

    Open file descriptors are kept in a small LRU (``max_fds``) shared by
    threads; a descriptor is closed only when no read is using it.  Reads of
    one file within ``COALESCE_GAP`` bytes of each other are merged into one
    ``pread``.
    """

    COALESCE_GAP = 16 * 1024

    def __init__(self, root: str, max_fds: int = 128) -> None:
        self.root = root
        #: object sizes learned by suffix reads, taken once by :func:`load_chunks` (see ``take_size``)
        self._sizes: dict[str, int] = {}
        self.max_fds = max_fds
        self._fds: OrderedDict[str, list[int]] = OrderedDict()  # key -> [fd, users]
        self._lock = threading.Lock()
        _FORK_SAFE.add(self)

    def _acquire(self, key: str) -> int | None:
        with self._lock:
            slot = self._fds.get(key)
            if slot is not None:
                slot[1] += 1
                self._fds.move_to_end(key)
                return slot[0]
        try:
            fd = os.open(os.path.join(self.root, *key.split("/")), os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        with self._lock:
            slot = self._fds.get(key)
            if slot is not None:  # another thread opened it meanwhile
                os.close(fd)
                slot[1] += 1
                return slot[0]
            self._fds[key] = [fd, 1]
            if len(self._fds) > self.max_fds:
                for k in list(self._fds):
                    if len(self._fds) <= self.max_fds:
                        break
                    if self._fds[k][1] == 0:
                        os.close(self._fds.pop(k)[0])
            return fd

    def _release(self, key: str, fd: int) -> None:
        with self._lock:
            slot = self._fds.get(key)
            if slot is not None and slot[0] == fd:
                slot[1] -= 1
                if slot[1] == 0 and len(self._fds) > self.max_fds:
                    os.close(self._fds.pop(key)[0])

    def take_size(self, key: str) -> int | None:
        """The size of object ``key`` if a suffix read just learned it (forgotten once taken)."""
        return self._sizes.pop(key, None)

    def close(self) -> None:
        with self._lock:
            for k in [k for k, v in self._fds.items() if v[1] == 0]:
                os.close(self._fds.pop(k)[0])

    def __del__(self) -> None:
        try:
            for fd, _ in self._fds.values():
                os.close(fd)
        except Exception:
            pass

    def read_many(self, reqs: Sequence[_Req]) -> list[Any]:
        out: list[Any] = [None] * len(reqs)
        by_key: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(reqs):
            by_key[r.key].append(i)
        gap = self.COALESCE_GAP
        for key, idxs in by_key.items():
            fd = self._acquire(key)
            if fd is None:
                continue
            try:
                ranges = []
                size = -1
                for i in idxs:
                    r = reqs[i]
                    if r.kind == "range":
                        ranges.append((r.start, r.length, i))
                        continue
                    if size < 0:
                        size = os.fstat(fd).st_size
                    if r.kind == "suffix":
                        start = max(0, size - r.length)
                        out[i] = os.pread(fd, size - start, start)
                        self._sizes[key] = size
                    else:
                        out[i] = os.pread(fd, size, 0)
                if not ranges:
                    continue
                for lo, hi, members in _coalesce(ranges, gap):
                    if len(members) == 1:
                        out[members[0][2]] = os.pread(fd, hi - lo, lo)
                    else:
                        buf = memoryview(os.pread(fd, hi - lo, lo))
                        for a, b, i in members:
                            out[i] = buf[a - lo : a - lo + b]
            finally:
                self._release(key, fd)
        return out


def _coalesce(ranges: list[tuple[int, int, int]], gap: int) -> list[tuple[int, int, list[tuple[int, int, int]]]]:
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


async def _bounded(jobs: Sequence[Any], run_one: Callable[[Any], Any], key_of: Callable[[Any], str], store: Any) -> None:
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


class _StoreIO:
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

    async def _get(self, r: _Req) -> Any:
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

    def read_many(self, reqs: Sequence[_Req]) -> list[Any]:
        from zarr.core.sync import sync

        out: list[Any] = [None] * len(reqs)
        # merge ranges of one object; other requests go as they are
        jobs: list[tuple[_Req, list[tuple[int, int, int]] | int]] = []
        by_key: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        for i, r in enumerate(reqs):
            if r.kind == "range":
                by_key[r.key].append((r.start, r.length, i))
            else:
                jobs.append((r, i))
        for key, ranges in by_key.items():
            for lo, hi, members in _coalesce(ranges, self.COALESCE_GAP):
                jobs.append((_Req(key, "range", lo, hi - lo), members))
        results: list[Any] = [None] * len(jobs)

        async def fetch(j: int) -> None:
            results[j] = await self._get(jobs[j][0])

        sync(_bounded(range(len(jobs)), fetch, lambda j: jobs[j][0].key, self.store))
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


class _ObstoreIO(_StoreIO):
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

    def read_many(self, reqs: Sequence[_Req]) -> list[Any]:
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
            sync(_bounded(jobs, fetch, lambda job: reqs[job[1]].key if job[0] == "one" else job[1], self.store))
        return out


def make_io(store: Any) -> _LocalIO | _StoreIO:
    """The fastest byte reader for a zarr store: ``os.pread`` for a ``LocalStore``, obstore for an ``ObjectStore``."""
    from zarr.storage import LocalStore

    if isinstance(store, LocalStore):
        return _LocalIO(str(store.root))
    if type(store).__name__ == "ObjectStore" and type(store).__module__.startswith("zarr.storage"):
        return _ObstoreIO(store)
    return _StoreIO(store)


# ----------------------------------------------------------------------------- codecs

_BLOSC_HEADER = struct.Struct("<BBBBIII")


def _decode_blosc(raw: bytes, expected: int) -> bytes:
    _check_blosc(raw, expected)
    return _blosc.decompress(raw)


def _check_blosc(raw: bytes, expected: int) -> None:
    """Validate a blosc frame's header against the object's length and the chunk size."""
    if len(raw) < _BLOSC_HEADER.size:
        raise ValueError(f"blosc frame of {len(raw)} bytes is shorter than its header")
    _v, _vl, _flags, _ts, nbytes, _bs, cbytes = _BLOSC_HEADER.unpack_from(raw)
    if cbytes != len(raw):
        raise ValueError(f"blosc header says {cbytes} compressed bytes, the object holds {len(raw)}")
    if nbytes != expected:
        raise ValueError(f"blosc header says {nbytes} decoded bytes, expected {expected}")


def _chunk_crc(codecs: Sequence[Any]) -> tuple[list[Any], bool]:
    """The codec chain without a trailing ``crc32c`` codec, and whether there was one."""
    from zarr.codecs import Crc32cCodec

    codecs = list(codecs)
    if codecs and isinstance(codecs[-1], Crc32cCodec):
        return codecs[:-1], True
    return codecs, False


def _decoder_for(codecs: Sequence[Any], itemsize: int) -> tuple[str, Callable[[bytes, int], bytes], str] | None:
    """``(name, decode(raw, expected_nbytes) -> bytes, byteorder)`` for a codec chain, or None."""
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

    if not codecs or not isinstance(codecs[0], BytesCodec):
        return None
    endian = codecs[0].endian
    order = "<" if endian is None or getattr(endian, "value", endian) == "little" else ">"
    rest = list(codecs[1:])
    if not rest:
        return "none", lambda raw, expected: bytes(raw), order
    if len(rest) > 1:
        return None
    c = rest[0]
    if isinstance(c, BloscCodec):
        return "blosc", _decode_blosc, order
    if isinstance(c, ZstdCodec):
        from numcodecs import Zstd

        z = Zstd()
        return "zstd", lambda raw, expected: bytes(z.decode(raw)), order
    if isinstance(c, GzipCodec):
        from numcodecs import GZip

        g = GZip()
        return "gzip", lambda raw, expected: bytes(g.decode(raw)), order
    return None


def _index_check(index_codecs: Sequence[Any]) -> bool | None:
    """True if the index codecs are [bytes, crc32c], False for [bytes], None if unsupported."""
    from zarr.codecs import BytesCodec, Crc32cCodec

    if not index_codecs or not isinstance(index_codecs[0], BytesCodec):
        return None
    endian = index_codecs[0].endian
    if endian is not None and getattr(endian, "value", endian) != "little":
        return None
    if len(index_codecs) == 1:
        return False
    if len(index_codecs) == 2 and isinstance(index_codecs[1], Crc32cCodec):
        return True
    return None


# ----------------------------------------------------------------------------- arrays


class ArrayReader:
    """Reads row chunks of one zarr array (see the module docstring for the modes).

    Parameters
    ----------
    array : zarr.Array
        An open array with at least one dimension.
    label : str
        How errors name the array (its path in the store).
    io : object, optional
        A byte reader from :func:`make_io` for the array's store (shared by
        the arrays of one corpus); made here when omitted.
    """

    mode: str  #: 'shard', 'chunk' or 'zarr'

    def __init__(self, array: Any, label: str, io: Any = None) -> None:
        self.array = array
        self.label = label
        self.uid = next(_uid)
        self.shape: tuple[int, ...] = tuple(int(s) for s in array.shape)
        if not self.shape:
            raise ValueError(f"array {label!r} is 0-dimensional")
        self.trailing = self.shape[1:]
        self.dtype = np.dtype(array.dtype)
        self.row_bytes = int(self.dtype.itemsize * int(np.prod(self.trailing, dtype=np.int64)))
        self._fill: np.ndarray | None = None
        self._lock = threading.Lock()  # guards the fill chunk and the index cache
        _FORK_SAFE.add(self)
        self.mode = "zarr"
        #: chunks end with a crc32c of their encoded bytes (checked before decoding)
        self.chunk_crc = False
        self.chunk_rows = max(1, int(array.chunks[0]) if array.chunks else max(1, self.shape[0]))
        self.store_dtype = self.dtype
        self._io = io
        self._indexes: OrderedDict[int, np.ndarray] = OrderedDict()
        #: ``shard -> (lo, hi)``: the bytes inner chunks may occupy, when the shard's size is known
        self._bounds: dict[int, tuple[int, int]] = {}
        #: ``shard -> Event`` of index reads in progress (see :meth:`claim_index`)
        self._pending: dict[int, threading.Event] = {}
        self._analyse()
        if self.mode == "zarr":
            # cut big chunks into row blocks so one window does not fetch a huge block
            cap = max(1, FALLBACK_BLOCK_BYTES // max(1, self.row_bytes))
            self.chunk_rows = max(1, min(self.chunk_rows, cap))
        if self._io is None and self.mode != "zarr":
            self._io = make_io(array.store_path.store)

    # -- analysis of the metadata
    def _analyse(self) -> None:
        try:
            from zarr.codecs import ShardingCodec
            from zarr.core.chunk_grids import RegularChunkGrid
            from zarr.core.metadata.v3 import ArrayV3Metadata
        except ImportError:  # pragma: no cover - other zarr versions
            return
        meta = self.array.metadata
        if not isinstance(meta, ArrayV3Metadata) or not isinstance(meta.chunk_grid, RegularChunkGrid):
            return
        if self.dtype.hasobject or self.dtype.itemsize == 0:
            return
        outer = tuple(int(s) for s in meta.chunk_grid.chunk_shape)
        if outer[1:] != self.trailing:
            return
        codecs = list(meta.codecs)
        base = self.array.store_path.path
        self._prefix = f"{base}/" if base else ""
        self._keys: dict[int, str] = {}
        self._meta = meta
        self._ndim = len(self.shape)
        if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
            sc = codecs[0]
            inner = tuple(int(s) for s in sc.chunk_shape)
            if inner[1:] != self.trailing or outer[0] % inner[0]:
                return
            crc = _index_check(sc.index_codecs)
            if crc is None:
                return
            inner_codecs, self.chunk_crc = _chunk_crc(sc.codecs)
            dec = _decoder_for(inner_codecs, self.dtype.itemsize)
            if dec is None:
                return
            self.codec, self._decode, order = dec
            self.store_dtype = self.dtype.newbyteorder(order) if self.dtype.itemsize > 1 else self.dtype
            self.chunk_rows = inner[0]
            self.shard_rows = outer[0]
            self.chunks_per_shard = outer[0] // inner[0]
            self._index_crc = crc
            self.index_nbytes = 16 * self.chunks_per_shard + (4 if crc else 0)
            loc = getattr(sc.index_location, "value", sc.index_location)
            self.index_at_end = loc == "end"
            self.mode = "shard"
        else:
            plain_codecs, self.chunk_crc = _chunk_crc(codecs)
            dec = _decoder_for(plain_codecs, self.dtype.itemsize)
            if dec is None:
                return
            self.codec, self._decode, order = dec
            self.store_dtype = self.dtype.newbyteorder(order) if self.dtype.itemsize > 1 else self.dtype
            self.chunk_rows = outer[0]
            self.mode = "chunk"

    # -- helpers
    @property
    def n_chunks(self) -> int:
        return -(-self.shape[0] // self.chunk_rows)

    @property
    def chunk_nbytes(self) -> int:
        return self.chunk_rows * self.row_bytes

    def object_key(self, outer_index: int) -> str:
        """The store key of outer chunk (shard) ``outer_index``."""
        key = self._keys.get(outer_index)
        if key is None:
            coords = (outer_index,) + (0,) * (self._ndim - 1)
            key = self._prefix + self._meta.encode_chunk_key(coords)
            if len(self._keys) < 65536:
                self._keys[outer_index] = key
        return key

    def describe_chunk(self, c: int) -> str:
        """How errors name row chunk ``c``: store key, inner chunk and rows."""
        r0, r1 = c * self.chunk_rows, min(self.shape[0], (c + 1) * self.chunk_rows)
        if self.mode == "shard":
            s = c // self.chunks_per_shard
            return f"{self.object_key(s)} (inner chunk {c % self.chunks_per_shard}, rows {r0}:{r1} of {self.label!r})"
        if self.mode == "chunk":
            return f"{self.object_key(c)} (rows {r0}:{r1} of {self.label!r})"
        return f"rows {r0}:{r1} of {self.label!r}"

    def fill_chunk(self) -> np.ndarray:
        """A read-only chunk of the fill value (shared)."""
        if self._fill is None:
            with self._lock:
                if self._fill is None:
                    fv = getattr(self.array, "fill_value", None)
                    a = np.zeros((self.chunk_rows, *self.trailing), dtype=self.store_dtype)
                    if fv is not None:
                        a[...] = fv
                    a.flags.writeable = False
                    self._fill = a
        return self._fill

    def cached_index(self, shard: int) -> np.ndarray | None:
        return self._indexes.get(shard)

    def cache_index(self, shard: int, index: np.ndarray) -> None:
        """Keep a shard index (at most ``INDEX_CACHE_BYTES`` per array, oldest dropped first)."""
        with self._lock:
            self._indexes[shard] = index
            while len(self._indexes) > 1 and len(self._indexes) * index.nbytes > INDEX_CACHE_BYTES:
                self._indexes.popitem(last=False)

    def claim_index(self, shard: int) -> tuple[threading.Event, bool]:
        """``(event, True)`` if the caller must read shard ``shard``'s index (then :meth:`release_index`),
        ``(event, False)`` if another thread is reading it: wait for ``event``."""
        with self._lock:
            ev = self._pending.get(shard)
            if ev is not None:
                return ev, False
            ev = self._pending[shard] = threading.Event()
            return ev, True

    def release_index(self, shard: int) -> None:
        """The index read claimed with :meth:`claim_index` is over (done or failed): wake the waiters."""
        with self._lock:
            ev = self._pending.pop(shard, None)
        if ev is not None:
            ev.set()

    def note_size(self, shard: int, size: int | None) -> None:
        """Remember where shard ``shard``'s inner chunks may lie, given its object size (if known)."""
        if size is None:
            return
        lo, hi = (0, size - self.index_nbytes) if self.index_at_end else (self.index_nbytes, size)
        with self._lock:
            if len(self._bounds) >= 65536:
                self._bounds.clear()
            self._bounds[shard] = (lo, hi)

    def decode_index(self, raw: bytes | None, shard: int) -> np.ndarray:
        """Offsets and lengths ``(chunks_per_shard, 2)`` of a shard; all-empty if absent."""
        if raw is None:
            return np.full((self.chunks_per_shard, 2), MAX_UINT_64, dtype=np.uint64)
        raw = bytes(raw)
        where = f"{self.object_key(shard)} (shard index of {self.label!r})"
        chunks = list(range(shard * self.chunks_per_shard, (shard + 1) * self.chunks_per_shard))
        if len(raw) != self.index_nbytes:
            raise ChunkFault(self, chunks, where, f"shard object too short for its index ({len(raw)} of {self.index_nbytes} bytes)")
        body = raw[: 16 * self.chunks_per_shard]
        if self._index_crc:
            import google_crc32c

            stored = raw[-4:]
            computed = struct.pack("<I", google_crc32c.value(body))
            if stored != computed:
                raise ChunkFault(self, chunks, where, f"shard index crc32c mismatch (stored {stored.hex()}, computed {computed.hex()})")
        index = np.frombuffer(body, dtype="<u8").reshape(self.chunks_per_shard, 2)
        return index

    def decode_chunk(self, raw: bytes, c: int, cache: ChunkCache | None = None) -> np.ndarray:
        """Decode the stored bytes of row chunk ``c`` into a read-only array.

        Blosc data is decoded into a buffer from ``cache.take`` (recycled).
        """
        expected = self.chunk_nbytes
        if self.chunk_crc:
            raw = _strip_crc(self, raw, c)
        if self.codec == "blosc" and cache is not None:
            try:
                _check_blosc(raw, expected)
                buf = cache.take(expected)
                _blosc.decompress(raw, buf)
            except Exception as exc:
                raise ChunkFault(self, [c], self.describe_chunk(c), f"cannot decode {self.codec} data: {exc}") from exc
            a = buf.view(self.store_dtype).reshape(self.chunk_rows, *self.trailing)
            a.flags.writeable = False
            return a
        try:
            data = self._decode(raw, expected)
        except Exception as exc:
            raise ChunkFault(self, [c], self.describe_chunk(c), f"cannot decode {self.codec} data: {exc}") from exc
        if len(data) != expected:
            raise ChunkFault(self, [c], self.describe_chunk(c), f"decoded {len(data)} bytes, expected {expected}")
        a = np.frombuffer(data, dtype=self.store_dtype).reshape(self.chunk_rows, *self.trailing)
        return a

    def read_zarr_chunk(self, c: int) -> np.ndarray:
        """Row chunk ``c`` through zarr-python (the fallback mode)."""
        r0, r1 = c * self.chunk_rows, min(self.shape[0], (c + 1) * self.chunk_rows)
        try:
            a = np.asarray(self.array[r0:r1])
        except Exception as exc:
            raise ChunkFault(self, [c], self.describe_chunk(c), f"zarr cannot read it: {type(exc).__name__}: {exc}") from exc
        a = np.ascontiguousarray(a)
        a.flags.writeable = False
        return a


def _strip_crc(reader: "ArrayReader", raw: Any, c: int) -> Any:
    """``raw`` without its trailing crc32c, after checking it (raises :class:`ChunkFault`)."""
    import google_crc32c

    if len(raw) < 4:
        raise ChunkFault(reader, [c], reader.describe_chunk(c), f"chunk of {len(raw)} bytes is too short for its crc32c")
    body = raw[:-4]
    computed = struct.pack("<I", google_crc32c.value(body if isinstance(body, bytes) else bytes(body)))
    stored = bytes(raw[-4:])
    if stored != computed:
        raise ChunkFault(reader, [c], reader.describe_chunk(c), f"chunk crc32c mismatch (stored {stored.hex()}, computed {computed.hex()})")
    return body


def load_chunks(wanted: Sequence[tuple[ArrayReader, int]], cache: ChunkCache) -> dict[tuple[int, int], np.ndarray]:
    """Decoded row chunks ``{(reader.uid, c): array}`` for every ``(reader, c)`` in ``wanted``.

    Cache hits are served first; the misses are fetched together: one round of
    shard-index reads (for indexes not cached), then one round of chunk byte
    ranges, then decoding.  Raises :class:`ChunkFault` on corrupt data.
    """
    keys = [(reader.uid, c) for reader, c in wanted]
    found = cache.get_many(keys)
    got: dict[tuple[int, int], np.ndarray] = {}
    misses: dict[ArrayReader, list[int]] = {}
    for (reader, c), key, a in zip(wanted, keys, found):
        if a is None:
            lst = misses.get(reader)
            if lst is None:
                misses[reader] = [c]
            else:
                lst.append(c)
        else:
            got[key] = a
    if not misses:
        return got

    # zarr-python fallback
    for reader in [r for r in misses if r.mode == "zarr"]:
        for c in misses.pop(reader):
            a = reader.read_zarr_chunk(c)
            cache.put((reader.uid, c), a)
            got[(reader.uid, c)] = a
    if not misses:
        return got

    # round 1: shard indexes not cached yet; an index another thread is reading
    # right now is waited for, not read again (prefetching threads start together)
    idx_reqs: dict[Any, list[tuple[ArrayReader, int, _Req]]] = defaultdict(list)
    waits: list[tuple[ArrayReader, int, threading.Event]] = []
    for reader, cs in misses.items():
        if reader.mode != "shard":
            continue
        cps = reader.chunks_per_shard
        for s in {c // cps for c in cs}:
            if reader.cached_index(s) is None:
                ev, mine = reader.claim_index(s)
                if not mine:
                    waits.append((reader, s, ev))
                    continue
                okey = reader.object_key(s)
                kind = "suffix" if reader.index_at_end else "range"
                idx_reqs[reader._io].append((reader, s, _Req(okey, kind, 0, reader.index_nbytes)))
    indexes: dict[tuple[int, int], np.ndarray] = {}
    try:
        for io, items in idx_reqs.items():
            raws = io.read_many([it[2] for it in items])
            for (reader, s, _), raw in zip(items, raws):
                idx = reader.decode_index(raw, s)
                reader.note_size(s, io.take_size(reader.object_key(s)))
                indexes[(reader.uid, s)] = idx  # held for this call even if evicted
                reader.cache_index(s, idx)
    finally:
        for items in idx_reqs.values():
            for reader, s, _ in items:
                reader.release_index(s)
    for reader, s, ev in waits:
        ev.wait()
        idx = reader.cached_index(s)
        if idx is None:  # the other read failed, or the index was evicted since: read it here
            idx = load_index(reader, s)
        indexes[(reader.uid, s)] = idx

    # round 2: chunk bytes
    chunk_reqs: dict[Any, list[tuple[ArrayReader, int, _Req]]] = defaultdict(list)
    for reader, cs in misses.items():
        reqs = chunk_reqs[reader._io]
        if reader.mode == "shard":
            cps = reader.chunks_per_shard
            uid = reader.uid
            for c in cs:
                s, i = divmod(c, cps)
                idx = indexes.get((uid, s))
                if idx is None:
                    idx = reader.cached_index(s)
                    if idx is None:  # evicted by another thread meanwhile: read it again
                        idx = load_index(reader, s)
                    indexes[(uid, s)] = idx
                off, nb = idx[i].tolist()
                if off == MAX_UINT_64 and nb == MAX_UINT_64:
                    got[(uid, c)] = reader.fill_chunk()
                    continue
                if off == MAX_UINT_64 or nb == MAX_UINT_64 or nb > 1 << 40:
                    raise ChunkFault(reader, [c], reader.describe_chunk(c), f"bad shard index entry (offset {off}, nbytes {nb})")
                bounds = reader._bounds.get(s)
                if bounds is not None and (off < bounds[0] or off + nb > bounds[1]):
                    raise ChunkFault(
                        reader, [c], reader.describe_chunk(c),
                        f"shard index entry (offset {off}, nbytes {nb}) lies outside the shard's chunk data "
                        f"(bytes {bounds[0]}:{bounds[1]}): the shard is truncated or its index is wrong",
                    )
                reqs.append((reader, c, _Req(reader.object_key(s), "range", off, nb)))
        else:
            for c in cs:
                reqs.append((reader, c, _Req(reader.object_key(c), "full")))
    for io, items in chunk_reqs.items():
        if not items:
            continue
        _fetch_decode(io, items, got, cache)
    return got


def _fetch_decode(io: Any, items: Sequence[tuple[ArrayReader, int, _Req]], got: dict, cache: ChunkCache) -> None:
    raws = io.read_many([it[2] for it in items])
    decoded: list[tuple[tuple[int, int], np.ndarray]] = []
    try:
        _decode_all(items, raws, got, decoded, cache)
    finally:
        cache.put_many(decoded)


def _decode_all(
    items: Sequence[tuple[ArrayReader, int, _Req]], raws: Sequence[Any], got: dict, decoded: list, cache: ChunkCache
) -> None:
    for (reader, c, req), raw in zip(items, raws):
        if raw is None:
            if reader.mode == "shard":
                raise ChunkFault(reader, [c], reader.describe_chunk(c), "shard object disappeared after its index was read")
            a = reader.fill_chunk()
        else:
            if req.kind == "range" and len(raw) != req.length:
                raise ChunkFault(reader, [c], reader.describe_chunk(c), f"truncated: read {len(raw)} of {req.length} bytes at offset {req.start}")
            a = reader.decode_chunk(raw, c, cache)
            decoded.append(((reader.uid, c), a))
        got[(reader.uid, c)] = a


def load_index(reader: ArrayReader, shard: int) -> np.ndarray:
    """Read, check and cache the index of one shard."""
    kind = "suffix" if reader.index_at_end else "range"
    (raw,) = reader._io.read_many([_Req(reader.object_key(shard), kind, 0, reader.index_nbytes)])
    idx = reader.decode_index(raw, shard)
    reader.note_size(shard, reader._io.take_size(reader.object_key(shard)))
    reader.cache_index(shard, idx)
    return idx
