"""Requests to remote stores: a ramping concurrency gate, retries, timeouts, cancellation.

The remote byte readers (:class:`zarrmux.store_io.StoreIO` for fsspec and
other zarr stores, :class:`zarrmux.obstore_io.ObstoreIO` for obstore) send
every request through one :class:`Requests` object per reader:

* **Concurrency**: at most :attr:`RemoteConfig.max_requests` requests in
  flight per reader of an ``http(s)://`` server, whatever the number of
  reading threads (1024 for other stores, from the start: object-store
  services, in-process stores).  The limit
  starts at :attr:`RemoteConfig.start_requests` and grows by one each time a
  request completes while others wait (at most every 10 ms), so connections
  are opened a few at a time.  (Opening hundreds at once, as 16 prefetch threads each sending a
  batch's ranges did, overflows the listen backlog of an ordinary threaded
  server, 5 connections for the standard library's ``ThreadingHTTPServer``;
  the dropped connection attempts are retried by the kernel after 1 s, 3 s,
  7 s: prefetching was 6x *slower* than reading one batch at a time.)
* **Retries**: a transient failure (a 5xx or 408/429 answer, a connection
  refused, reset or closed mid-body) is retried up to
  :attr:`RemoteConfig.retries` times with exponential backoff and jitter;
  each retry is counted in :attr:`Requests.stats` and logged (logger
  ``"zarrmux"``, level INFO).  A missing object (404) is not retried: the
  reader reports it as before (``None``).
* **Timeouts**: a request that does not answer within
  :attr:`RemoteConfig.timeout` seconds raises :class:`RemoteTimeoutError`
  naming the URL and the timeout (not retried: a hung server would otherwise
  hold the reader for several timeouts).
* **Closing**: :meth:`Requests.close` cancels every request in flight; the
  threads waiting for them raise at once.
* **Servers that ignore Range**: a reader raises :class:`RangeNotSupported`
  on a reply with the whole object; :meth:`Requests.whole` then downloads
  each object whole once per process into
  :data:`zarrmux.range_cache.WHOLE_OBJECTS`.

The settings (:class:`RemoteConfig`, :func:`configure`, the
``ZARRMUX_REMOTE_*`` environment variables) live in
:mod:`zarrmux.remote_settings`; ``zarrmux.remote_io.configure`` is the
name the README and error messages give, so it is re-exported here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .range_cache import WHOLE_OBJECTS
from .remote_settings import RemoteConfig, configure, current_config

__all__ = [
    "RangeNotSupported",
    "RemoteTimeoutError",
    "Requests",
    "configure",
    "transient",
]

log = logging.getLogger("zarrmux")


class RemoteTimeoutError(TimeoutError):
    """A request did not answer within the timeout (the message names the URL and the timeout)."""


class RangeNotSupported(Exception):
    """The server answered a range request with the whole object (raised to switch to whole objects)."""

    def __init__(self, data: Any = None) -> None:
        super().__init__("the server ignores Range requests")
        self.data = data


_STATUS = re.compile(r"\b([1-5]\d\d) [A-Z][A-Za-z]")
_FINAL_NAMES = {
    "NotSupportedError",
    "PermissionDeniedError",
    "UnauthenticatedError",
    "InvalidPathError",
    "NotFoundError",
    "UnknownConfigurationKeyError",
    "PreconditionError",
    "NotModifiedError",
    "AlreadyExistsError",
}


def transient(exc: BaseException) -> bool:
    """Whether a failed request is worth retrying: a 5xx (or 408/429) answer, a dropped or cut connection."""
    if isinstance(exc, (FileNotFoundError, PermissionError, RangeNotSupported, RemoteTimeoutError, asyncio.CancelledError)):
        return False
    if type(exc).__name__ in _FINAL_NAMES:
        return False
    status = getattr(exc, "status", None)  # aiohttp.ClientResponseError
    if isinstance(status, int):
        return status >= 500 or status in (408, 429)
    m = _STATUS.search(str(exc))  # obstore: "... status code: 500 Internal Server Error ..."
    if m is not None:
        code = int(m.group(1))
        return code >= 500 or code in (408, 429)
    if isinstance(exc, (OSError, EOFError, asyncio.IncompleteReadError)):  # reset, refused, cut short
        return True
    mod = type(exc).__module__ or ""
    # aiohttp's connection and payload errors; obstore's generic errors (connection, body decoding)
    return mod.startswith("aiohttp") or type(exc).__name__ in ("GenericError", "BaseError")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines() or [""])[0][:300]


def _nbytes(x: Any) -> int:
    if x is None:
        return 0
    if isinstance(x, (list, tuple)):
        return sum(_nbytes(y) for y in x)
    try:
        return len(x)
    except TypeError:
        return 0


class Gate:
    """At most ``limit`` units of requests in flight, ``limit`` growing from ``start`` to ``most``.

    Lives on one event loop (every call is made from it); a request takes
    ``weight`` units (an obstore ``get_ranges`` call sends several).  The
    limit grows by one at a time while requests wait and the server answers
    as fast as it can (within :data:`SLOW` of the fastest answer seen); an
    answer slower than that means the server is overrun (a full listen
    backlog: the kernel retries a dropped connection after 1 s; a server
    thrashing among its threads), and the limit drops by a quarter and holds
    for :data:`HOLD` seconds.  More requests in flight than a server can take
    only make every one of them slower.
    """

    #: seconds between two raises of the limit (at most 100 new connections a second)
    GROW_EVERY = 0.01
    #: an answer this much slower than the fastest one means the server is overrun
    SLOW = 0.5
    #: seconds without growth after the limit dropped
    HOLD = 1.0

    def __init__(self, start: int, most: int) -> None:
        self.most = max(1, most)
        self.start = max(1, min(start, self.most))
        self.limit = self.start
        self.busy = 0
        self._waiters: deque[tuple[asyncio.Future, int]] = deque()
        self._grown = 0.0
        self._held = 0.0  # growth resumes after this time
        self.fastest = float("inf")  #: seconds of the fastest answer so far
        self.drops = 0  #: times the limit dropped

    async def enter(self, weight: int) -> int:
        w = max(1, min(weight, self.limit))
        if not self._waiters and self.busy + w <= self.limit:
            self.busy += w
            return w
        fut = asyncio.get_running_loop().create_future()
        item = (fut, w)
        self._waiters.append(item)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # granted, then cancelled: give it back
                self.leave(w, False)
            else:
                try:
                    self._waiters.remove(item)
                except ValueError:
                    pass
            raise
        return w

    def leave(self, weight: int, ok: bool, seconds: float | None = None) -> None:
        """Give back ``weight`` units; ``ok``: the request was answered, in ``seconds`` if known."""
        self.busy -= weight
        if ok:
            now = asyncio.get_running_loop().time()
            if seconds is not None:
                self.fastest = min(self.fastest, seconds)
                if seconds > self.fastest + self.SLOW and now >= self._held:  # overrun: back off
                    self.limit = max(self.start, self.limit * 3 // 4)
                    self._held = now + self.HOLD
                    self.drops += 1
            if self._waiters and self.limit < self.most and now >= self._held and now - self._grown >= self.GROW_EVERY:
                self.limit += 1  # one more connection, a few at a time (a burst overflows a small listen backlog)
                self._grown = now
        while self._waiters:
            fut, w = self._waiters[0]
            if fut.done():
                self._waiters.popleft()
                continue
            if self.busy + w > self.limit:
                break
            self._waiters.popleft()
            self.busy += w
            fut.set_result(None)


class Requests:
    """The requests of one byte reader: gate, retries, timeout, statistics, cancellation.

    Parameters
    ----------
    url_of : callable
        ``url_of(key)``: how errors and logs name object ``key``.
    config : RemoteConfig, optional
        Default: :func:`current_config`.
    """

    #: the limit of requests in flight to stores that are not plain HTTP servers (object-store
    #: services, fsspec and in-process stores), which no connection burst can overflow
    SERVICE_REQUESTS = 1024

    def __init__(self, url_of: Callable[[str], str], config: RemoteConfig | None = None, http: bool = True) -> None:
        self.config = config or current_config()
        self.url_of = url_of
        #: requests in flight at most: ``config.max_requests`` for an HTTP(S) server
        self.max_requests = self.config.max_requests if http else max(self.config.max_requests, self.SERVICE_REQUESTS)
        #: counters: requests sent, bytes received, retries, timeouts, whole objects downloaded
        self.stats: dict[str, int] = {"requests": 0, "bytes": 0, "retries": 0, "timeouts": 0, "whole_objects": 0}
        self._gate: Gate | None = None
        self._gate_loop: Any = None
        self._futures: dict[concurrent.futures.Future, int] = {}  #: in flight -> the waiting thread
        self._lock = threading.Lock()
        self._closed = False

    def _gate_for(self, loop: Any) -> Gate:
        if self._gate is None or self._gate_loop is not loop:
            start = self.config.start_requests if self.max_requests == self.config.max_requests else self.max_requests
            self._gate = Gate(start, self.max_requests)
            self._gate_loop = loop
        return self._gate

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on zarr's event loop and wait for it; :meth:`close` interrupts the wait."""
        from zarr.core.sync import _get_loop

        from .exceptions import CorpusError

        loop = _get_loop()
        # Scheduled and recorded under the lock: the coroutine may send its first request before
        # ``run_coroutine_threadsafe`` returns, and an interrupt() or close() seeing that request
        # must find the future to cancel.
        with self._lock:
            if self._closed:
                getattr(coro, "close", lambda: None)()
                raise CorpusError(f"cannot read from {self.url_of('')}: the reader is closed")
            fut = asyncio.run_coroutine_threadsafe(coro, loop)
            self._futures[fut] = threading.get_ident()
        try:
            return fut.result()
        except concurrent.futures.CancelledError:
            why = "the reader was closed" if self._closed else "interrupted"
            raise CorpusError(f"reading from {self.url_of('')} was interrupted: {why}") from None
        finally:
            with self._lock:
                self._futures.pop(fut, None)

    def interrupt(self, threads: Any = None) -> int:
        """Cancel the reads in flight (of the threads whose ``ident`` is in ``threads``, default all):
        their callers raise :class:`~zarrmux.exceptions.CorpusError` at once.  Returns how many."""
        with self._lock:
            futs = [f for f, t in self._futures.items() if threads is None or t in threads]
        for f in futs:
            f.cancel()
        return len(futs)

    def close(self) -> None:
        """Cancel every request in flight (their callers raise at once) and refuse new ones."""
        with self._lock:
            self._closed = True
        self.interrupt()

    async def call(self, key: str, attempt: Callable[[], Awaitable[Any]], weight: int = 1, count: int | None = None) -> Any:
        """``await attempt()`` under the gate, with the timeout and retries of the settings.

        ``count``: requests the attempt sends (default ``weight``).  Raises
        :class:`RemoteTimeoutError`, or the last error of a failure that is
        not transient or outlived its retries.
        """
        cfg = self.config
        loop = asyncio.get_running_loop()
        gate = self._gate_for(loop)
        for n_try in range(cfg.retries + 1):
            w = await gate.enter(weight)
            ok = False
            sent = loop.time()
            try:
                self.stats["requests"] += weight if count is None else count
                try:
                    async with asyncio.timeout(cfg.timeout):
                        result = await attempt()
                except TimeoutError as exc:
                    if isinstance(exc, RemoteTimeoutError):
                        raise
                    self.stats["timeouts"] += 1
                    raise RemoteTimeoutError(
                        f"no answer from {self.url_of(key)} within {cfg.timeout:g} s (the timeout: "
                        f"ZARRMUX_REMOTE_TIMEOUT or zarrmux.remote_io.configure(timeout=...))"
                    ) from None
                ok = True
            except Exception as exc:
                if n_try >= cfg.retries or not transient(exc):
                    raise
                self.stats["retries"] += 1
                wait = min(cfg.max_backoff, cfg.backoff * (2**n_try)) * (0.5 + random.random() / 2)
                log.info(
                    "retrying %s in %.2f s (attempt %d of %d): %s: %s",
                    self.url_of(key), wait, n_try + 2, cfg.retries + 1, type(exc).__name__, _first_line(exc),
                )
                gate.leave(w, False)
                w = 0
                await asyncio.sleep(wait)
                continue
            finally:
                if w:
                    gate.leave(w, ok, loop.time() - sent)
            self.stats["bytes"] += _nbytes(result)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def whole(self, key: str, download: Callable[[], Awaitable[Any]]) -> memoryview | None:
        """Object ``key`` whole, from :data:`WHOLE_OBJECTS` or downloaded once (with retries)."""
        async def fetch() -> Any:
            data = await self.call(key, download)
            if data is not None:
                self.stats["whole_objects"] += 1
            return data

        return await WHOLE_OBJECTS.fetch(self.url_of(key), fetch, self.config)
