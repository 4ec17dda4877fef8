"""Helpers for tests, demos and benchmarks: synthetic archives and small corpora.

Public, so users can build fixtures the same way the project's own tests do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import layout
from .chunking import default_chunk_rows, default_shard_rows, shard_ceil
from .entry_checksum import checksum_arrays
from .index_commit import commit_entries

if TYPE_CHECKING:
    from zarr.storage import LocalStore

__all__ = [
    "COUNTS_PATH",
    "latency_store",
    "make_entry",
    "make_npz_archives",
    "run_delay_server",
    "run_stdlib_server",
    "serve_directory",
    "write_corpus",
]


def make_entry(
    rows: int, features: int = 128, *, seed: int = 0, dtype: Any = np.float32, quantize: bool = True
) -> dict[str, np.ndarray]:
    """One synthetic song: ``X (rows, features)`` and ``Y (rows,)`` int64 labels.

    ``X`` is Gaussian noise, ``Y`` a slowly varying label.  With ``quantize``
    (default) ``X`` is rounded to multiples of 1/64, which blosc-lz4 with byte
    shuffle stores about 2.2x smaller; with ``quantize=False`` it keeps every
    mantissa bit, like real float features (log-mel, sensor, climate), which
    lz4 barely shrinks (about 1.1x).
    """
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((rows, features)).astype(np.float32)
    X = (np.round(base * 64) / 64).astype(dtype) if quantize else base.astype(dtype)
    Y = (np.arange(rows, dtype=np.int64) // 97 + seed) % 10
    return {"X": X, "Y": Y}


def make_npz_archives(
    directory: str | os.PathLike[str],
    n_archives: int,
    *,
    min_rows: int = 5000,
    max_rows: int = 20000,
    features: int = 128,
    seed: int = 0,
    compressed: bool = False,
    prefix: str = "song",
    quantize: bool = True,
) -> list[Path]:
    """Write ``n_archives`` NPZ files ``{prefix}{i:05d}.npz`` with ``X`` and ``Y``.

    Rows are drawn uniformly from ``[min_rows, max_rows]``; reproducible from ``seed``.
    ``quantize`` as in :func:`make_entry`.
    Returns the paths, in order.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    # Callable[..., None]: the entry's keys go as keyword arguments, which numpy's stubs take for allow_pickle
    save: Callable[..., None] = np.savez_compressed if compressed else np.savez
    for i in range(n_archives):
        rows = int(rng.integers(min_rows, max_rows + 1))
        path = directory / f"{prefix}{i:05d}.npz"
        save(path, **make_entry(rows, features, seed=seed * 100003 + i, quantize=quantize))
        paths.append(path)
    return paths


def write_corpus(
    dest: Any,
    entries: Mapping[str, Mapping[str, np.ndarray]],
    *,
    chunk_rows: int | None = None,
    shard_rows: int | None = None,
    codec: str = "lz4",
    level: int | None = None,
) -> Any:
    """Write in-memory ``{name: {key: array}}`` entries as a corpus, in one process.

    The simple, non-streaming writer for fixtures; :func:`zarrmux.convert` is
    the real one.  Entries are written in one unit each; returns the root group.
    """
    first = next(iter(entries.values()))
    keys = {}
    for k in sorted(first):
        a = np.asarray(first[k])
        spec_rows = chunk_rows or default_chunk_rows(a.dtype.itemsize * int(np.prod(a.shape[1:], dtype=np.int64)))
        keys[k] = layout.KeySpec(a.dtype.str, tuple(a.shape[1:]), spec_rows)
    if shard_rows is None:
        shard_rows = default_shard_rows([s.row_bytes for s in keys.values()], [s.chunk_rows for s in keys.values()])
    import zarr

    root = layout.create_corpus(dest, keys, shard_rows=shard_rows, codec=codec, level=level)
    end = 0
    for name, arrays in entries.items():
        rows = len(next(iter(arrays.values())))
        start = shard_ceil(end, shard_rows)
        for k in keys:
            arr = root[k]
            assert isinstance(arr, zarr.Array), f"{dest}/{k}: create_corpus made a group, not an array"
            arr.resize((start + rows, *keys[k].trailing_shape))
            arr[start : start + rows] = np.asarray(arrays[k])
        end = start + rows
        rec = layout.EntryRecord(name, start, rows, source="<memory>", checksum=checksum_arrays(arrays))
        commit_entries(root, [rec], rows_allocated=end)
    return root


# ---------------------------------------------------------------------- latency (benchmarks, tests)
def latency_store(path: str | os.PathLike[str], delay: float) -> Any:
    """A read-only zarr store of the local directory ``path`` whose every read waits ``delay`` seconds.

    A subclass of zarr's ``zarr.testing.store.LatencyStore`` (a ``WrapperStore``)
    around a read-only ``LocalStore``.  The wait is an ``asyncio.sleep``, so
    concurrent reads overlap like requests to an object store; the bytes are
    then read from the file right away on the event loop (a few microseconds
    for a chunk) instead of through ``LocalStore.get``'s ``asyncio.to_thread``,
    whose thread hand-off costs more CPU per read than the simulated network
    client would.  Open it with ``open_corpus(latency_store(path, 0.02))``.
    """
    from zarr.storage import LocalStore

    return _delayed_store_class()(LocalStore(os.fspath(path), read_only=True), get_latency=float(delay))


_DELAYED_STORE: Any = None


def _delayed_store_class() -> Any:
    global _DELAYED_STORE
    if _DELAYED_STORE is not None:
        return _DELAYED_STORE
    import asyncio

    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
    from zarr.core.buffer import default_buffer_prototype
    from zarr.testing.store import LatencyStore

    class DelayedLocalStore(LatencyStore):
        """``LatencyStore`` over a ``LocalStore`` that reads the file synchronously after the delay."""

        async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
            await asyncio.sleep(self.get_latency)
            proto = prototype or default_buffer_prototype()
            fpath = os.path.join(str(cast("LocalStore", self._store).root), *key.split("/"))
            try:
                fd = os.open(fpath, os.O_RDONLY)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None
            try:
                size = os.fstat(fd).st_size
                if byte_range is None:
                    start, stop = 0, size
                elif isinstance(byte_range, RangeByteRequest):
                    start, stop = byte_range.start, min(size, byte_range.end)
                elif isinstance(byte_range, OffsetByteRequest):
                    start, stop = byte_range.offset, size
                elif isinstance(byte_range, SuffixByteRequest):
                    start, stop = max(0, size - byte_range.suffix), size
                else:
                    raise TypeError(f"unexpected byte_range {byte_range!r}")
                data = os.pread(fd, max(0, stop - start), start)
            finally:
                os.close(fd)
            return proto.buffer.from_bytes(data)

    _DELAYED_STORE = DelayedLocalStore
    return DelayedLocalStore


class _Counts:
    """Requests a test server answered, per path: ``[requests, whole-object (200) answers, body bytes]``."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.by_path: dict[str, list[int]] = {}
        self.n = 0

    def add(self, path: str, whole: bool, nbytes: int) -> None:
        with self.lock:
            c = self.by_path.setdefault(path, [0, 0, 0])
            c[0] += 1
            c[1] += int(whole)
            c[2] += nbytes

    def next(self) -> int:
        with self.lock:
            self.n += 1
            return self.n

    def json(self) -> bytes:
        import json

        with self.lock:
            return json.dumps(self.by_path).encode()


#: the path at which the test servers answer their request counts (JSON ``{path: [requests, whole, bytes]}``)
COUNTS_PATH = "/.requests"


def _delay_handler(
    root: str,
    delay: float,
    *,
    ranges: bool = True,
    flaky: int = 0,
    flaky_paths: str = "/c/",
    hang: str | None = None,
    counts: _Counts | None = None,
) -> Any:
    import time
    from http.server import SimpleHTTPRequestHandler

    tally = counts or _Counts()  # a new name: the Handler's methods see it as _Counts, not _Counts | None

    class Handler(SimpleHTTPRequestHandler):
        """Static files with single-range ``Range`` support, no listings, ``delay`` s before each answer.

        ``ranges=False``: Range headers are ignored (200 with the whole object,
        like ``python -m http.server``).  ``flaky=N``: every N-th request for a
        path matching the regular expression ``flaky_paths`` (default: chunk
        objects) fails, in turn with a 503 and with the connection closed
        halfway through the body.  ``hang``: requests
        whose path contains it are never answered.
        """

        protocol_version = "HTTP/1.1"  # keep-alive: no new connection per request
        # answer as soon as the body is written: with Nagle's algorithm on, the
        # body (a second small write after the headers) waits for the client's
        # delayed ACK, adding ~40 ms to every request
        disable_nagle_algorithm = True

        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=root, **kw)

        def log_message(self, *args: object) -> None:
            pass

        def list_directory(self, path: str) -> None:  # type: ignore[override]
            self.send_error(404, "no listings")

        def do_GET(self) -> None:
            if self.path == COUNTS_PATH:
                body = tally.json()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return None
            if hang and hang in self.path:
                time.sleep(3600)
                return None
            if delay:
                time.sleep(delay)
            rng = self.headers.get("Range") if ranges else None
            fpath = self.translate_path(self.path)
            if not os.path.isfile(fpath):
                tally.add(self.path, False, 0)
                return super().do_GET()
            if flaky and re.search(flaky_paths, self.path):
                n = tally.next()
                if n % flaky == 0:
                    tally.add(self.path + " (failed)", False, 0)
                    return self._fail(fpath, rng, (n // flaky) % 2 == 1)
            nbytes = send_range(self, fpath, rng) if rng else self._whole(fpath)
            tally.add(self.path, not rng, nbytes)
            return None

        def _whole(self, fpath: str) -> int:
            with open(fpath, "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return len(body)

        def _fail(self, fpath: str, rng: str | None, error: bool) -> None:
            if error:
                self.send_error(503, "try again")
                return
            size = os.path.getsize(fpath)  # promise the whole object, send half, hang up
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            with open(fpath, "rb") as f:
                self.wfile.write(f.read(size // 2))
            self.wfile.flush()
            self.close_connection = True
            import socket

            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    return Handler


def send_range(handler: Any, fpath: str, rng: str) -> int:
    """Answer a single-range ``Range: bytes=a-b`` request for file ``fpath`` (206, or 416); the body bytes sent."""
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
    size = os.path.getsize(fpath)
    if m is None:
        handler.send_error(416)
        return 0
    a, b = m.groups()
    start, end = (max(0, size - int(b)), size) if a == "" else (int(a), min(size, int(b) + 1) if b else size)
    if start >= size:
        handler.send_error(416)
        return 0
    with open(fpath, "rb") as f:
        f.seek(start)
        body = f.read(end - start)
    handler.send_response(206)
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
    return len(body)


def serve_directory(
    root: str | os.PathLike[str],
    delay: float = 0.0,
    port: int = 0,
    *,
    ranges: bool = True,
    flaky: int = 0,
    flaky_paths: str = "/c/",
    hang: str | None = None,
    backlog: int = 5,
) -> Any:
    """A plain ``ThreadingHTTPServer`` on 127.0.0.1 serving ``root`` (byte ranges), ``delay`` s per request.

    A thread per connection, HTTP/1.1 keep-alive, and the standard library's
    listen backlog (``backlog=5``, what an ordinary threaded server has).
    ``ranges``, ``flaky`` and ``hang`` as in the handler (see
    :func:`run_stdlib_server`); ``GET /.requests`` answers the request counts.
    Not started: call ``serve_forever()`` (e.g. in a thread) and ``shutdown()``;
    the URL is ``f"http://127.0.0.1:{server.server_port}/"``.
    """
    from http.server import ThreadingHTTPServer

    class Server(ThreadingHTTPServer):
        request_queue_size = backlog
        daemon_threads = True

    handler = _delay_handler(os.fspath(root), float(delay), ranges=ranges, flaky=flaky, flaky_paths=flaky_paths, hang=hang)
    return Server(("127.0.0.1", port), handler)


def run_stdlib_server(
    root: str | os.PathLike[str],
    delay: float = 0.0,
    port: int = 0,
    *,
    ranges: bool = True,
    flaky: int = 0,
    flaky_paths: str = "/c/",
    hang: str | None = None,
) -> None:
    """Serve ``root`` with :func:`serve_directory` until killed; prints the port.

    ``python -m zarrmux.testing ROOT DELAY --server stdlib [--no-range]
    [--flaky N [--flaky-paths REGEX]] [--hang TEXT]``: ``--no-range`` ignores
    Range headers (whole objects, like ``python -m http.server``); ``--flaky N``
    fails every N-th request for a path matching REGEX (default ``/c/``: chunk
    objects), in turn with a 503 and with the connection closed halfway
    through the body; ``--hang TEXT`` never answers requests whose path
    contains TEXT.
    """
    server = serve_directory(root, delay, port, ranges=ranges, flaky=flaky, flaky_paths=flaky_paths, hang=hang)
    print(server.server_port, flush=True)
    server.serve_forever()


async def _serve_async(root: str, delay: float, port: int, ready: Any, ranges: bool = True) -> None:
    """An aiohttp server of ``root`` (byte ranges unless ``ranges=False``, no listings), ``delay`` s before each answer."""
    import asyncio

    from aiohttp import web

    base = os.path.realpath(root)
    counts = _Counts()

    async def handle(request: Any) -> Any:
        if "/" + request.match_info["path"] == COUNTS_PATH:
            return web.Response(body=counts.json())
        if delay:
            await asyncio.sleep(delay)
        parts = [p for p in request.match_info["path"].split("/") if p not in ("", ".", "..")]
        fpath = os.path.join(base, *parts)
        if not parts or not os.path.isfile(fpath):
            counts.add(request.path, False, 0)
            raise web.HTTPNotFound()
        size = os.path.getsize(fpath)
        try:
            rng = request.http_range if ranges else slice(None, None)
        except ValueError:
            raise web.HTTPRequestRangeNotSatisfiable() from None
        start, stop = rng.start, rng.stop
        if start is None and stop is None:
            status, start, stop = 200, 0, size
        else:
            status = 206
            if start is not None and start < 0:
                start, stop = max(0, size + start), size
            else:
                start = start or 0
                stop = size if stop is None else min(stop, size)
            if start >= size:
                raise web.HTTPRequestRangeNotSatisfiable()
        with open(fpath, "rb") as f:
            body = os.pread(f.fileno(), stop - start, start)
        headers = {"Content-Type": "application/octet-stream"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        counts.add(request.path, status == 200, len(body))
        return web.Response(body=body, status=status, headers=headers)

    app = web.Application()
    app.router.add_get("/{path:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = cast("asyncio.Server", site._server)  # set by start(): the loop's create_server
    ready(server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()


def run_delay_server(root: str | os.PathLike[str], delay: float = 0.0, port: int = 0, *, ranges: bool = True) -> None:
    """Serve ``root`` on 127.0.0.1 with aiohttp until killed, ``delay`` s per request; prints the port.

    The benchmark's stand-in for an object store (``python -m zarrmux.testing
    ROOT DELAY [--no-range]``): asynchronous, so the delays overlap without a
    thread per connection, and cheaper in CPU per request than
    :func:`serve_directory` (``tools/bench_latency.py`` prints its CPU per batch), which matters when the server shares the
    benchmark machine's cores with the reader.  ``ranges=False`` ignores
    Range headers.  ``GET /.requests`` answers the request counts.
    """
    import asyncio

    asyncio.run(_serve_async(os.fspath(root), float(delay), int(port), lambda p: print(p, flush=True), ranges))


def _main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m zarrmux.testing", description="A loopback test server of a directory.")
    ap.add_argument("root")
    ap.add_argument("delay", type=float, nargs="?", default=0.0)
    ap.add_argument("--server", choices=("aiohttp", "stdlib"), default="aiohttp")
    ap.add_argument("--no-range", dest="ranges", action="store_false")
    ap.add_argument("--flaky", type=int, default=0, help="stdlib: fail every N-th chunk request")
    ap.add_argument("--flaky-paths", default="/c/", help="stdlib: a regular expression of the paths --flaky applies to")
    ap.add_argument("--hang", default=None, help="stdlib: never answer paths containing this")
    a = ap.parse_args(argv)
    if a.server == "stdlib":
        run_stdlib_server(a.root, a.delay, ranges=a.ranges, flaky=a.flaky, flaky_paths=a.flaky_paths, hang=a.hang)
    else:
        if a.flaky or a.hang:
            ap.error("--flaky and --hang need --server stdlib")
        run_delay_server(a.root, a.delay, ranges=a.ranges)


if __name__ == "__main__":  # python -m zarrmux.testing ROOT DELAY [--server stdlib] [--no-range] ...
    _main()
