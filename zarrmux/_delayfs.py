"""``zarrmux-delay://``: local files behind a fixed per-read delay, as an fsspec filesystem.

The benchmarks' stand-in for an object store that any process can open by
URL (Dask workers included): ``open_corpus("zarrmux-delay:///abs/path/corpus.zarr",
storage_options={"delay": 0.02}, backend="fsspec")``.  Every read waits
``delay`` seconds (an ``asyncio.sleep``, so concurrent reads overlap like
requests to an object store), then reads the bytes with ``os.pread``.
Registered with fsspec through the ``fsspec.specs`` entry point.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from fsspec.asyn import AsyncFileSystem

__all__ = ["DelayFileSystem"]


class DelayFileSystem(AsyncFileSystem):
    """Read-only local files, ``delay`` seconds per read.

    Parameters
    ----------
    delay : float >= 0
        Seconds every read waits before it is answered.
    """

    protocol = "zarrmux-delay"
    root_marker = "/"
    cachable = False

    def __init__(self, delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if delay < 0:
            raise ValueError(f"delay={delay} must be >= 0")
        self.delay = float(delay)

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        path = str(path)
        if path.startswith("zarrmux-delay://"):
            path = path[len("zarrmux-delay://") :]
        return "/" + path.lstrip("/") if path else "/"

    async def _cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        await asyncio.sleep(self.delay)
        fd = os.open(self._strip_protocol(path), os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            lo = 0 if start is None else (max(0, size + start) if start < 0 else start)
            hi = size if end is None else (max(0, size + end) if end < 0 else min(end, size))
            return os.pread(fd, max(0, hi - lo), lo)
        finally:
            os.close(fd)

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        await asyncio.sleep(self.delay)
        p = self._strip_protocol(path)
        st = os.stat(p)
        return {"name": p, "size": st.st_size, "type": "directory" if os.path.isdir(p) else "file"}

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        await asyncio.sleep(self.delay)
        p = self._strip_protocol(path)
        names = [os.path.join(p, n) for n in sorted(os.listdir(p))]
        if not detail:
            return names
        return [{"name": n, "size": os.path.getsize(n), "type": "directory" if os.path.isdir(n) else "file"} for n in names]
