"""Byte reads of stored objects: local files, zarr stores, obstore.

The readers of :mod:`zarrmux.array_reader` ask for bytes as small typed
values (:class:`ByteRequest`: a range, a suffix or a whole object) and hand a
whole batch of them to one ``read_many`` call, which returns the bytes (or
``None`` for an absent object) in the same order:

* :class:`LocalIO` (a ``LocalStore``): slices of memory-mapped files (no
  system call, no copy per read); it also maps whole files for
  :mod:`zarrmux.exact_windows`.
* :class:`StoreIO` (any other zarr store, fsspec URLs included):
  ``store.get(..., byte_range=...)`` on zarr's event loop.
* :class:`ObstoreIO` (a ``zarr.storage.ObjectStore``): one
  ``obstore.get_ranges`` call per object, outside the GIL.

The two remote readers send their requests through
:class:`zarrmux.remote_io.Requests` (a ramping limit of requests in flight,
retries with backoff, a timeout naming the URL, counters in ``io.stats``,
``close()`` interrupting what is in flight) and read servers that ignore
Range as whole objects, once per process (:mod:`zarrmux.remote_io`).

:func:`make_io` picks the fastest for a store.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

import numpy as np

from . import _forksafe
from .remote_io import (
    WHOLE_OBJECTS,
    RangeNotSupported,
    RemoteConfig,
    Requests,
    warn_rangeless,
)

if TYPE_CHECKING:
    from obstore.store import ClientConfig  # a TypedDict of obstore's stubs, not importable at runtime

__all__ = ["ByteRequest", "LocalIO", "ObstoreIO", "StoreIO", "coalesce", "make_io"]


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


def coalesce(
    ranges: list[tuple[int, int, int]], gap: int, waste: float | None = None
) -> list[tuple[int, int, list[tuple[int, int, int]]]]:
    """Merge ``(start, length, tag)`` ranges of one object lying within ``gap`` bytes of each other.

    With ``waste``, a range joins the run before it only if the gap between
    them is at most ``waste`` times its own length: the bytes fetched then
    stay within ``1 + waste`` times the bytes asked for.
    Returns ``(start, stop, members)`` runs, in order.
    """
    ranges = sorted(ranges)
    runs = []
    j = 0
    while j < len(ranges):
        lo, ln, _ = ranges[j]
        hi = lo + ln
        k = j + 1
        while k < len(ranges):
            s, n = ranges[k][0], ranges[k][1]
            if s > hi + (gap if waste is None else min(gap, int(waste * n))):
                break
            hi = max(hi, s + n)
            k += 1
        runs.append((lo, hi, ranges[j:k]))
        j = k
    return runs


async def _all(coros: Sequence[Any]) -> list[Any]:
    """``asyncio.gather`` that cancels the rest when one fails."""
    if len(coros) == 1:
        return [await coros[0]]
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        raise


def _store_url(store: Any) -> str:
    """The URL (or description) of a zarr store's root, for messages."""
    inner = getattr(store, "store", None)
    url = getattr(inner, "url", None)
    if isinstance(url, str):  # an obstore HTTPStore
        return url.rstrip("/")
    path, fs = getattr(store, "path", None), getattr(store, "fs", None)
    if isinstance(path, str) and fs is not None:  # an FsspecStore
        if "://" in path:
            return path.rstrip("/")
        proto = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
        return f"{proto}://{path.rstrip('/')}"
    return str(store)


def _view(data: Any) -> memoryview:
    v = memoryview(data)
    return v if v.format == "B" and v.ndim == 1 else v.cast("B")


class StoreIO:
    """Byte-range reads through the zarr store API (fsspec, or any zarr store), on zarr's event loop.

    Ranges of one object are merged into one request when the gap between
    them is at most ``COALESCE_GAP`` bytes and at most half the range that
    joins (so at most 1.5x the bytes asked for are fetched).  Every request
    goes through :class:`zarrmux.remote_io.Requests`: at most
    ``max_requests`` in flight, retries of transient failures, a timeout,
    statistics in :attr:`stats`; servers that ignore Range get whole
    objects, fetched once per process.

    Parameters
    ----------
    store : zarr store
    config : zarrmux.remote_io.RemoteConfig, optional
        Default: :func:`zarrmux.remote_io.current_config`.
    """

    COALESCE_GAP = 64 * 1024
    #: a run of ranges fetches at most ``1 + COALESCE_WASTE`` times their bytes
    COALESCE_WASTE = 0.5

    def __init__(self, store: Any, config: RemoteConfig | None = None) -> None:
        from zarr.abc.store import RangeByteRequest, SuffixByteRequest
        from zarr.core.buffer import default_buffer_prototype

        self.store = store
        self._sizes: dict[str, int] = {}
        self._proto = default_buffer_prototype()
        self._range = RangeByteRequest
        self._suffix = SuffixByteRequest
        self.url = _store_url(store)
        http = self.url.lower().startswith(("http://", "https://"))
        self.requests = Requests(self.url_of, config, http=http)
        #: counters of this reader: requests, bytes, retries, timeouts, whole_objects
        self.stats = self.requests.stats
        #: whether the server honours Range (None: not known yet)
        self.ranges_ok: bool | None = None if http else True
        self._probe: Any = None

    def url_of(self, key: str) -> str:
        """The URL of object ``key`` (how errors and logs name it)."""
        return f"{self.url}/{key}" if key else self.url

    def take_size(self, key: str) -> int | None:
        """The size of object ``key`` if a suffix read just learned it (forgotten once taken)."""
        return self._sizes.pop(key, None)

    def counters(self) -> dict[str, int]:
        """``bytes_read``, ``requests``, ``retries`` (and ``timeouts``, ``whole_objects``) since the reader was made."""
        st = self.stats
        return {"bytes_read": st["bytes"], "requests": st["requests"], "retries": st["retries"],
                "timeouts": st["timeouts"], "whole_objects": st["whole_objects"]}

    def close(self) -> None:
        """Cancel the requests in flight (their callers raise at once) and refuse new ones."""
        self.requests.close()

    def interrupt(self, threads: Any = None) -> int:
        """Cancel the reads in flight of ``threads`` (idents; default: all), leaving the reader open."""
        return self.requests.interrupt(threads)

    # ------------------------------------------------------------------ primitives (one request each)
    def _buf(self, buf: Any) -> memoryview | None:
        return None if buf is None else _view(buf.as_numpy_array())

    async def _get_range(self, key: str, start: int, length: int) -> Any:
        data = self._buf(await self.store.get(key, self._proto, byte_range=self._range(start, start + length)))
        if data is not None and len(data) > length:  # a 200 with the whole object: Range ignored
            raise RangeNotSupported(data)
        return data

    async def _fetch_runs(self, key: str, runs: list[tuple[int, int]]) -> list[Any]:
        """The bytes of ``(start, length)`` runs of object ``key`` (``None`` if it is absent)."""

        async def one(a: int, n: int) -> Any:
            return await self.requests.call(key, lambda: self._get_range(key, a, n))

        return await _all([one(a, n) for a, n in runs])

    async def _fetch_suffix(self, key: str, length: int) -> Any:
        async def size() -> None:
            try:
                self._sizes[key] = int(await self.requests.call(key, lambda: self.store.getsize(key)))
            except Exception:  # noqa: BLE001, S110 - the size only bounds the index; reading goes on without it
                pass

        async def get() -> Any:
            data = self._buf(await self.store.get(key, self._proto, byte_range=self._suffix(length)))
            if data is not None and len(data) > length:
                raise RangeNotSupported(data)
            return data

        data, _ = await asyncio.gather(self.requests.call(key, get), size())
        return data

    async def _fetch_full(self, key: str) -> Any:
        return self._buf(await self.store.get(key, self._proto))

    async def _probe_ranges(self) -> bool:
        """Ask for one byte of the root's ``zarr.json``: False if the whole object comes back."""
        try:
            await self.requests.call("zarr.json", lambda: self._get_range("zarr.json", 0, 1))
        except RangeNotSupported:
            return False
        except Exception:  # noqa: BLE001 - no verdict: the first real reply decides
            return True
        return True

    # ------------------------------------------------------------------ batches
    async def _range_support(self) -> bool:
        if self.ranges_ok is not None:
            return self.ranges_ok
        if self._probe is None:
            self._probe = asyncio.ensure_future(self._probe_ranges())
        ok = await asyncio.shield(self._probe)
        if self.ranges_ok is None:
            self.ranges_ok = ok
            if not ok:
                warn_rangeless(self._server(), self.requests.config)
        return self.ranges_ok

    def _server(self) -> str:
        from urllib.parse import urlparse

        u = urlparse(self.url)
        return f"{u.scheme}://{u.netloc}" if u.netloc else self.url

    def _no_ranges(self) -> None:
        """A reply showed the server ignores Range: remember it (and warn, once per server)."""
        if self.ranges_ok is not False:
            self.ranges_ok = False
            warn_rangeless(self._server(), self.requests.config)

    async def _whole(self, key: str, first: Any = None) -> memoryview | None:
        if first is not None:  # the reply that showed it: keep it
            got = WHOLE_OBJECTS.get(self.url_of(key))
            if got is None:
                got = WHOLE_OBJECTS._put(self.url_of(key), first, self.requests.config)
                self.stats["whole_objects"] += 1
            return got
        return await self.requests.whole(key, lambda: self._fetch_full(key))

    async def _serve_whole(self, key: str, idxs: list[int], reqs: Sequence[ByteRequest], out: list[Any], first: Any = None) -> None:
        try:
            data = await self._whole(key, first)
        except FileNotFoundError:
            return
        if data is None:
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

    async def _key_job(self, key: str, idxs: list[int], reqs: Sequence[ByteRequest], out: list[Any]) -> None:
        """Every request of ``idxs`` (all of object ``key``)."""
        if not await self._range_support():
            return await self._serve_whole(key, idxs, reqs, out)
        ranged = [i for i in idxs if reqs[i].kind == "range"]
        others = [i for i in idxs if reqs[i].kind != "range"]
        try:
            jobs = []
            if ranged:
                runs = coalesce([(reqs[i].start, reqs[i].length, i) for i in ranged], self.COALESCE_GAP, self.COALESCE_WASTE)
                jobs.append(self._runs_job(key, runs, out))
            for i in others:
                jobs.append(self._one_job(reqs[i], i, out))
            await _all(jobs)
        except RangeNotSupported as exc:
            self._no_ranges()
            await self._serve_whole(key, idxs, reqs, out, exc.data)

    async def _runs_job(self, key: str, runs: list[tuple[int, int, list[tuple[int, int, int]]]], out: list[Any]) -> None:
        try:
            got = await self._fetch_runs(key, [(lo, hi - lo) for lo, hi, _ in runs])
        except FileNotFoundError:
            return
        for (lo, _, members), data in zip(runs, got):
            if data is None:
                continue
            view = _view(data)
            for a, b, i in members:
                out[i] = view[a - lo : a - lo + b]

    async def _one_job(self, r: ByteRequest, i: int, out: list[Any]) -> None:
        try:
            if r.kind == "suffix":
                out[i] = await self._fetch_suffix(r.key, r.length)
            else:
                out[i] = await self.requests.call(r.key, lambda: self._fetch_full(r.key))
        except FileNotFoundError:
            out[i] = None

    async def _read_many(self, reqs: Sequence[ByteRequest]) -> list[Any]:
        from .exceptions import CorpusError

        out: list[Any] = [None] * len(reqs)
        by_key: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(reqs):
            by_key[r.key].append(i)

        async def job(key: str, idxs: list[int]) -> None:
            try:
                await self._key_job(key, idxs, reqs, out)
            except CorpusError:
                raise
            except Exception as exc:
                raise CorpusError(f"cannot read {key!r} from {self.url}: {type(exc).__name__}: {exc}") from exc

        await _all([job(k, v) for k, v in by_key.items()])
        return out

    def read_many(self, reqs: Sequence[ByteRequest]) -> list[Any]:
        """The bytes of every request, in order (``None`` for an absent object)."""
        if not reqs:
            return []
        if self.ranges_ok is False:  # whole objects: served in this thread when all are held already
            got = self._from_held(reqs)
            if got is not None:
                return got
        return self.requests.run(self._read_many(reqs))

    def _from_held(self, reqs: Sequence[ByteRequest]) -> list[Any] | None:
        held: dict[str, memoryview | None] = {}
        out: list[Any] = []
        for r in reqs:
            data: memoryview | None | Literal[False] = held.get(r.key, False)
            if data is False:
                data = held[r.key] = WHOLE_OBJECTS.get(self.url_of(r.key))
            if data is None:
                return None
            if r.kind == "range":
                out.append(data[r.start : r.start + r.length])
            elif r.kind == "suffix":
                self._sizes[r.key] = len(data)
                out.append(data[max(0, len(data) - r.length) :])
            else:
                out.append(data)
        return out


class ObstoreIO(StoreIO):
    """Byte-range reads of a ``zarr.storage.ObjectStore`` straight through obstore.

    The ranges of one object go in ``obstore.get_ranges_async`` calls of at
    most :data:`RANGES_PARALLEL` ranges (Rust, outside the GIL), after the
    same merging as :class:`StoreIO`, so a batch costs a few Python calls per
    *object* rather than per chunk.  The
    retries are this reader's (:mod:`zarrmux.remote_io`): for an HTTP store
    opened without a ``retry_config`` of its own, obstore's retries are
    turned off (they would otherwise retry for up to 3 minutes, unbounded by
    this reader's settings) and its request timeout follows this reader's.
    """

    #: ranges one ``get_ranges`` call fetches at once (object_store's parallelism)
    RANGES_PARALLEL = 10

    def __init__(self, store: Any, config: RemoteConfig | None = None) -> None:
        super().__init__(store, config)
        import obstore

        self._obs = obstore
        self._ostore = self._own_store(store.store)

    def _own_store(self, ostore: Any) -> Any:
        if type(ostore).__name__ != "HTTPStore" or getattr(ostore, "retry_config", None) is not None:
            return ostore
        import datetime

        from obstore.store import HTTPStore

        client = cast("ClientConfig", dict(getattr(ostore, "client_options", None) or {}))
        client.setdefault("timeout", f"{int(self.requests.config.timeout * 1000) + 5000}ms")
        try:
            return HTTPStore.from_url(
                ostore.url, client_options=client, retry_config={"max_retries": 0, "retry_timeout": datetime.timedelta(seconds=1)}
            )
        except Exception:  # noqa: BLE001 - keep the store as it was opened
            return ostore

    async def _fetch_runs(self, key: str, runs: list[tuple[int, int]]) -> list[Any]:
        """One ``get_ranges`` call per :data:`RANGES_PARALLEL` runs, the calls concurrent.

        obstore fetches at most 10 ranges of one call at once: a call of 11
        to 20 ranges would take two round trips.
        """
        obs = self._obs
        step = self.RANGES_PARALLEL
        groups = [runs[i : i + step] for i in range(0, len(runs), step)]

        async def one(group: list[tuple[int, int]]) -> Any:
            async def attempt() -> Any:
                try:
                    return await obs.get_ranges_async(
                        self._ostore, key, starts=[a for a, _ in group], lengths=[n for _, n in group], coalesce=0
                    )
                except obs.exceptions.NotSupportedError:
                    raise RangeNotSupported() from None

            return await self.requests.call(key, attempt, weight=len(group), count=len(group))

        got = await _all([one(g) for g in groups])
        return [b for part in got for b in part]

    async def _get_range(self, key: str, start: int, length: int) -> Any:
        try:
            return await self._obs.get_range_async(self._ostore, key, start=start, length=length)
        except self._obs.exceptions.NotSupportedError:
            raise RangeNotSupported() from None

    async def _fetch_suffix(self, key: str, length: int) -> Any:
        obs = self._obs

        async def attempt() -> Any:
            try:
                resp = await obs.get_async(self._ostore, key, options={"range": {"suffix": length}})
            except obs.exceptions.NotSupportedError:
                raise RangeNotSupported() from None
            self._sizes[key] = int(resp.meta["size"])
            return _view(await resp.bytes_async())

        return await self.requests.call(key, attempt)

    async def _fetch_full(self, key: str) -> Any:
        resp = await self._obs.get_async(self._ostore, key)
        return _view(await resp.bytes_async())


def make_io(store: Any, config: RemoteConfig | None = None) -> LocalIO | StoreIO:
    """The fastest byte reader for a zarr store: memory maps for a ``LocalStore``, obstore for an ``ObjectStore``.

    ``config`` (remote readers): default :func:`zarrmux.remote_io.current_config`
    (:func:`zarrmux.remote_io.configure`, else ``ZARRMUX_REMOTE_*`` environment variables).
    """
    from zarr.storage import LocalStore

    if isinstance(store, LocalStore):
        return LocalIO(str(store.root))
    if type(store).__name__ == "ObjectStore" and type(store).__module__.startswith("zarr.storage"):
        return ObstoreIO(store, config)
    return StoreIO(store, config)
