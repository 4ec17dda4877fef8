"""Stand-ins for an object store, for tests and benchmarks: a latency store and loopback HTTP servers of a directory.

:func:`latency_store` delays every read of a local directory, in process.
The servers answer single-range ``Range`` requests (:func:`send_range`),
wait ``delay`` seconds before each answer, never list directories, and
answer their request counts at :data:`COUNTS_PATH`: a threaded
standard-library one (:func:`serve_directory`, :func:`run_stdlib_server`:
it can also ignore ranges, fail or hang) and an asynchronous aiohttp one
(:func:`run_delay_server`).  :func:`main` is ``python -m zarrmux.testing
ROOT DELAY``; :mod:`zarrmux.testing` re-exports these names.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from zarr.storage import LocalStore

__all__ = ["COUNTS_PATH", "latency_store", "main", "run_delay_server", "run_stdlib_server", "send_range", "serve_directory"]


# ---------------------------------------------------------------------- in process
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


# ---------------------------------------------------------------------- HTTP servers
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


def main(argv: list[str] | None = None) -> None:
    """The command line ``python -m zarrmux.testing ROOT [DELAY] [--server stdlib] ...`` (``argv``: default ``sys.argv[1:]``).

    Runs :func:`run_delay_server` (default) or, with ``--server stdlib``,
    :func:`run_stdlib_server` (its docstring lists the options) until killed.
    """
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
