"""Byte reads through the zarr store API: :class:`StoreIO`, for fsspec URLs and any zarr store.

The byte reader :func:`zarrmux.byte_io.make_io` picks for a store that is
neither a ``LocalStore`` nor an obstore ``ObjectStore``, and the base of
:class:`zarrmux.obstore_io.ObstoreIO`.  A batch of
:class:`~zarrmux.byte_requests.ByteRequest` is grouped by object; the ranges
of one object are merged (:func:`coalesce`) and fetched concurrently with
``store.get(..., byte_range=...)`` on zarr's event loop.  Every request goes
through :class:`zarrmux.remote_io.Requests` (a ramping limit of requests in
flight, retries with backoff, a timeout naming the URL, counters in
``io.stats``, ``close()`` interrupting what is in flight); a server that
ignores Range is read as whole objects, once per process
(:mod:`zarrmux.range_cache`).

A subclass reads through another client by overriding the four primitives
(one request each): :meth:`StoreIO.get_range`, :meth:`StoreIO.fetch_runs`,
:meth:`StoreIO.fetch_suffix`, :meth:`StoreIO.fetch_full`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

from .byte_requests import ByteRequest
from .range_cache import WHOLE_OBJECTS, warn_rangeless
from .remote_io import RangeNotSupported, Requests
from .remote_settings import RemoteConfig

__all__ = ["StoreIO", "byte_view", "coalesce", "gather_all"]

_log = logging.getLogger("zarrmux")


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


async def gather_all(coros: Sequence[Any]) -> list[Any]:
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


def byte_view(data: Any) -> memoryview:
    """``data`` (any buffer) as a flat memoryview of bytes."""
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
    config : zarrmux.remote_settings.RemoteConfig, optional
        Default: :func:`zarrmux.remote_settings.current_config`.
    """

    COALESCE_GAP = 64 * 1024
    #: a run of ranges fetches at most ``1 + COALESCE_WASTE`` times their bytes
    COALESCE_WASTE = 0.5

    def __init__(self, store: Any, config: RemoteConfig | None = None) -> None:
        from zarr.abc.store import RangeByteRequest, SuffixByteRequest
        from zarr.core.buffer import default_buffer_prototype

        self.store = store
        #: object sizes learned by suffix reads (the primitives record them), taken once by :meth:`take_size`
        self.sizes: dict[str, int] = {}
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
        return self.sizes.pop(key, None)

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
        return None if buf is None else byte_view(buf.as_numpy_array())

    async def get_range(self, key: str, start: int, length: int) -> Any:
        """Bytes ``start`` to ``start + length`` of object ``key``; :class:`RangeNotSupported` if the whole object comes back."""
        data = self._buf(await self.store.get(key, self._proto, byte_range=self._range(start, start + length)))
        if data is not None and len(data) > length:  # a 200 with the whole object: Range ignored
            raise RangeNotSupported(data)
        return data

    async def fetch_runs(self, key: str, runs: list[tuple[int, int]]) -> list[Any]:
        """The bytes of ``(start, length)`` runs of object ``key`` (``None`` if it is absent)."""

        async def one(a: int, n: int) -> Any:
            return await self.requests.call(key, lambda: self.get_range(key, a, n))

        return await gather_all([one(a, n) for a, n in runs])

    async def fetch_suffix(self, key: str, length: int) -> Any:
        """The last ``length`` bytes of object ``key`` (its size goes to :attr:`sizes`), with the gate and retries."""
        async def size() -> None:
            try:
                self.sizes[key] = int(await self.requests.call(key, lambda: self.store.getsize(key)))
            except Exception as exc:  # noqa: BLE001 - the size only bounds the index; reading goes on without it
                _log.debug("size of %s unknown (%s: %s); its index is read without that bound", key, type(exc).__name__, exc)

        async def get() -> Any:
            data = self._buf(await self.store.get(key, self._proto, byte_range=self._suffix(length)))
            if data is not None and len(data) > length:
                raise RangeNotSupported(data)
            return data

        data, _ = await asyncio.gather(self.requests.call(key, get), size())
        return data

    async def fetch_full(self, key: str) -> Any:
        """Object ``key`` whole (one attempt; the caller adds the gate and retries)."""
        return self._buf(await self.store.get(key, self._proto))

    async def _probe_ranges(self) -> bool:
        """Ask for one byte of the root's ``zarr.json``: False if the whole object comes back."""
        try:
            await self.requests.call("zarr.json", lambda: self.get_range("zarr.json", 0, 1))
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
                got = WHOLE_OBJECTS.put(self.url_of(key), first, self.requests.config)
                self.stats["whole_objects"] += 1
            return got
        return await self.requests.whole(key, lambda: self.fetch_full(key))

    async def _serve_whole(self, key: str, idxs: list[int], reqs: Sequence[ByteRequest], out: list[Any], first: Any = None) -> None:
        try:
            data = await self._whole(key, first)
        except FileNotFoundError:
            return
        if data is None:
            return
        self.sizes[key] = len(data)
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
            await gather_all(jobs)
        except RangeNotSupported as exc:
            self._no_ranges()
            await self._serve_whole(key, idxs, reqs, out, exc.data)

    async def _runs_job(self, key: str, runs: list[tuple[int, int, list[tuple[int, int, int]]]], out: list[Any]) -> None:
        try:
            got = await self.fetch_runs(key, [(lo, hi - lo) for lo, hi, _ in runs])
        except FileNotFoundError:
            return
        for (lo, _, members), data in zip(runs, got):
            if data is None:
                continue
            view = byte_view(data)
            for a, b, i in members:
                out[i] = view[a - lo : a - lo + b]

    async def _one_job(self, r: ByteRequest, i: int, out: list[Any]) -> None:
        try:
            if r.kind == "suffix":
                out[i] = await self.fetch_suffix(r.key, r.length)
            else:
                out[i] = await self.requests.call(r.key, lambda: self.fetch_full(r.key))
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

        await gather_all([job(k, v) for k, v in by_key.items()])
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
                self.sizes[r.key] = len(data)
                out.append(data[max(0, len(data) - r.length) :])
            else:
                out.append(data)
        return out
