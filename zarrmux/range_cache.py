"""Whole objects of servers that ignore Range: :data:`WHOLE_OBJECTS`, one cache per process.

A server such as ``python -m http.server`` answers a range request with
the whole object (a 200 where a 206 was asked for).  The remote readers
(:mod:`zarrmux.store_io`) detect it on the first reply; from then on each
object is downloaded whole at most once per process into
:data:`WHOLE_OBJECTS`, a cache bounded by
:attr:`~zarrmux.remote_settings.RemoteConfig.whole_cache_bytes`, in memory
or in a local directory
(:attr:`~zarrmux.remote_settings.RemoteConfig.whole_cache_dir`), and ranges
are sliced from it.  :func:`warn_rangeless` names the server once.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import logging
import mmap
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from .remote_settings import RemoteConfig

__all__ = ["WHOLE_OBJECTS", "WholeObjects", "warn_rangeless"]

log = logging.getLogger("zarrmux")


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

    def put(self, ident: str, data: Any, cfg: RemoteConfig) -> memoryview:
        """Keep ``data`` as object ``ident`` (not if it exceeds the budget); the view to read it through."""
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
            view = None if data is None else self.put(ident, data, cfg)
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
