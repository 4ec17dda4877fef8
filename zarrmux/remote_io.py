"""Requests to remote stores: a ramping concurrency gate, retries, timeouts, servers without Range.

The remote byte readers of :mod:`zarrmux.byte_io` (:class:`~zarrmux.byte_io.StoreIO`
for fsspec and other zarr stores, :class:`~zarrmux.byte_io.ObstoreIO` for
obstore) send every request through one :class:`Requests` object per reader:

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
* **Servers that ignore Range** (``python -m http.server``): detected on the
  first reply (a 200 with the whole object where a 206 was asked for); from
  then on each object is downloaded whole at most once per process into
  :data:`WHOLE_OBJECTS`, a cache bounded by
  :attr:`RemoteConfig.whole_cache_bytes`, in memory or in a local directory
  (:attr:`RemoteConfig.whole_cache_dir`), and ranges are sliced from it.  One
  warning names the server.

Settings come from :func:`configure` (this process) or environment variables
(inherited by worker processes, Dask's included), read when a reader is made:

=================================  ==========================================
``ZARRMUX_REMOTE_TIMEOUT``          seconds, default 30
``ZARRMUX_REMOTE_RETRIES``          default 4
``ZARRMUX_REMOTE_BACKOFF``          first backoff in seconds, default 0.1 (doubles, at most 5 s)
``ZARRMUX_REMOTE_MAX_REQUESTS``     requests in flight per reader, default 64
``ZARRMUX_WHOLE_OBJECT_CACHE_BYTES`` budget of whole objects (Range-less servers), default 1 GiB
``ZARRMUX_WHOLE_OBJECT_CACHE_DIR``  keep them in files under this directory instead of memory
=================================  ==========================================
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import dataclasses
import hashlib
import logging
import mmap
import os
import random
import re
import shutil
import tempfile
import threading
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = [
    "WHOLE_OBJECTS",
    "RangeNotSupported",
    "RemoteConfig",
    "RemoteTimeoutError",
    "Requests",
    "WholeObjects",
    "configure",
    "current_config",
    "transient",
]

log = logging.getLogger("zarrmux")


@dataclasses.dataclass(frozen=True)
class RemoteConfig:
    """How remote requests are made (see the module docstring).

    Parameters
    ----------
    timeout : float > 0
        Seconds a request may take to answer.
    retries : int >= 0
        Retries of a transient failure.
    backoff : float >= 0
        Seconds before the first retry; doubled each time, at most ``max_backoff``.
    max_backoff : float >= 0
    max_requests : int > 0
        Requests in flight per reader.
    start_requests : int > 0
        The limit at the start (it grows by one per request completed while others wait).
    whole_cache_bytes : int >= 0
        Budget of whole objects kept for servers that ignore Range.
    whole_cache_dir : str or None
        Keep whole objects in files under this directory rather than in memory.
    """

    timeout: float = 30.0
    retries: int = 4
    backoff: float = 0.1
    max_backoff: float = 5.0
    max_requests: int = 64
    start_requests: int = 8
    whole_cache_bytes: int = 1 << 30
    whole_cache_dir: str | None = None


_ENV = {
    "timeout": "ZARRMUX_REMOTE_TIMEOUT",
    "retries": "ZARRMUX_REMOTE_RETRIES",
    "backoff": "ZARRMUX_REMOTE_BACKOFF",
    "max_requests": "ZARRMUX_REMOTE_MAX_REQUESTS",
    "whole_cache_bytes": "ZARRMUX_WHOLE_OBJECT_CACHE_BYTES",
    "whole_cache_dir": "ZARRMUX_WHOLE_OBJECT_CACHE_DIR",
}
_overrides: dict[str, Any] = {}


def _check(name: str, value: Any, where: str) -> Any:
    field = {f.name: f for f in dataclasses.fields(RemoteConfig)}.get(name)
    if field is None:
        raise TypeError(f"unknown remote setting {name!r}; settings: {[f.name for f in dataclasses.fields(RemoteConfig)]}")
    if name == "whole_cache_dir":
        return None if value in (None, "") else os.fspath(value)
    kind = float if name in ("timeout", "backoff", "max_backoff") else int
    try:
        v = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}={value!r} must be a number") from None
    low_ok = v > 0 if name in ("timeout", "max_requests", "start_requests") else v >= 0
    if not low_ok:
        raise ValueError(f"{where}={value!r} must be {'> 0' if name in ('timeout', 'max_requests', 'start_requests') else '>= 0'}")
    return v


def configure(**settings: Any) -> None:
    """Set remote settings for the readers made from now on in this process (``None`` resets one).

    Keywords are the fields of :class:`RemoteConfig`; they win over the
    environment variables.  Worker processes (Dask, DataLoader workers)
    do not see them: set the environment variables for those.
    """
    for name, value in settings.items():
        if value is None:
            if name not in {f.name for f in dataclasses.fields(RemoteConfig)}:
                _check(name, 1, name)  # raises: names the settings
            _overrides.pop(name, None)
        else:
            _overrides[name] = _check(name, value, name)


def current_config() -> RemoteConfig:
    """The settings in force: :func:`configure`, else the environment, else the defaults."""
    kw: dict[str, Any] = {}
    for name, var in _ENV.items():
        raw = os.environ.get(var)
        if raw is not None and raw != "":
            kw[name] = _check(name, raw, var)
    kw.update(_overrides)
    return RemoteConfig(**kw)


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
    ``weight`` units (an obstore ``get_ranges`` call sends several).
    """

    #: seconds between two raises of the limit (at most 100 new connections a second)
    GROW_EVERY = 0.01

    def __init__(self, start: int, most: int) -> None:
        self.most = max(1, most)
        self.limit = max(1, min(start, self.most))
        self.busy = 0
        self._waiters: deque[tuple[asyncio.Future, int]] = deque()
        self._grown = 0.0

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

    def leave(self, weight: int, ok: bool) -> None:
        self.busy -= weight
        if ok and self._waiters and self.limit < self.most:
            now = asyncio.get_running_loop().time()
            if now - self._grown >= self.GROW_EVERY:  # demand exceeds the limit and the server answers:
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


class WholeObjects:
    """Whole objects of servers that ignore Range, kept once per process under a byte budget.

    In memory, or in files under ``whole_cache_dir`` (a private subdirectory
    of it, removed at exit) read through memory maps.  Least recently used
    objects leave first; an object larger than the budget is not kept.
    Downloads of the same object are shared: it is fetched once even when
    many threads want it at the same time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[memoryview, str | None]] = OrderedDict()
        self.nbytes = 0
        self.downloads = 0
        self._pending: dict[tuple[int, str], asyncio.Future] = {}
        self._dir: str | None = None
        self._dir_root: str | None = None

    def get(self, ident: str) -> memoryview | None:
        with self._lock:
            item = self._items.get(ident)
            if item is None:
                return None
            self._items.move_to_end(ident)
            return item[0]

    def _put(self, ident: str, data: Any, cfg: RemoteConfig) -> memoryview:
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        size = len(view)
        if size > cfg.whole_cache_bytes:
            return view
        path = None
        if cfg.whole_cache_dir:
            path = os.path.join(self._directory(cfg.whole_cache_dir), hashlib.sha256(ident.encode()).hexdigest())
            tmp = f"{path}.{threading.get_ident()}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(view)
            os.replace(tmp, path)
            if size:
                with open(path, "rb") as fh:
                    view = memoryview(mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ))
        with self._lock:
            old = self._items.pop(ident, None)
            if old is not None:
                self.nbytes -= len(old[0])
            self._items[ident] = (view, path)
            self.nbytes += size
            while self.nbytes > cfg.whole_cache_bytes and len(self._items) > 1:
                _, (v, p) = self._items.popitem(last=False)
                self.nbytes -= len(v)
                if p is not None:
                    try:
                        os.unlink(p)  # a mapping still in use stays valid
                    except OSError:
                        pass
        return view

    def _directory(self, root: str) -> str:
        with self._lock:
            if self._dir is None or self._dir_root != root:
                os.makedirs(root, exist_ok=True)
                self._dir = tempfile.mkdtemp(prefix=f"zarrmux-whole-{os.getpid()}-", dir=root)
                self._dir_root = root
                atexit.register(shutil.rmtree, self._dir, True)
            return self._dir

    async def fetch(self, ident: str, download: Callable[[], Awaitable[Any]], cfg: RemoteConfig) -> memoryview | None:
        """The whole object ``ident``: from the cache, or downloaded once (``None`` if absent)."""
        got = self.get(ident)
        if got is not None:
            return got
        loop = asyncio.get_running_loop()
        key = (id(loop), ident)
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut = loop.create_future()
        self._pending[key] = fut
        try:
            data = await download()
            view = None if data is None else self._put(ident, data, cfg)
            if view is not None:
                self.downloads += 1
            fut.set_result(view)
            return view
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            self._pending.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            for _, p in self._items.values():
                if p is not None:
                    try:
                        os.unlink(p)
                    except OSError:
                        pass
            self._items.clear()
            self.nbytes = 0


#: the process's whole objects of Range-less servers (shared by every reader)
WHOLE_OBJECTS = WholeObjects()
_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_rangeless(server: str, cfg: RemoteConfig) -> None:
    """Warn once per process that ``server`` ignores Range requests."""
    with _warned_lock:
        if server in _warned:
            return
        _warned.add(server)
    where = f"files under {cfg.whole_cache_dir}" if cfg.whole_cache_dir else "memory"
    log.warning(
        "%s ignores HTTP Range requests (it answered a range request with the whole object): each object is "
        "downloaded whole, once, and kept in %s (budget %d MiB; ZARRMUX_WHOLE_OBJECT_CACHE_BYTES, "
        "ZARRMUX_WHOLE_OBJECT_CACHE_DIR); a server that supports Range is much faster",
        server,
        where,
        cfg.whole_cache_bytes >> 20,
    )


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

        if self._closed:
            getattr(coro, "close", lambda: None)()
            raise CorpusError(f"cannot read from {self.url_of('')}: the reader is closed")
        fut = asyncio.run_coroutine_threadsafe(coro, _get_loop())
        with self._lock:
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
        self._closed = True
        self.interrupt()

    async def call(self, key: str, attempt: Callable[[], Awaitable[Any]], weight: int = 1, count: int | None = None) -> Any:
        """``await attempt()`` under the gate, with the timeout and retries of the settings.

        ``count``: requests the attempt sends (default ``weight``).  Raises
        :class:`RemoteTimeoutError`, or the last error of a failure that is
        not transient or outlived its retries.
        """
        cfg = self.config
        gate = self._gate_for(asyncio.get_running_loop())
        for n_try in range(cfg.retries + 1):
            w = await gate.enter(weight)
            ok = False
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
                    gate.leave(w, ok)
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
