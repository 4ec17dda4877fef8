"""Reading corpora over HTTP from a loopback server (which cannot list directories)."""

from __future__ import annotations

import functools
import os
import pickle
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import zarr

from zarrmux.corpus import open_corpus
from zarrmux.exceptions import CorpusError, DataError
from zarrmux.testing import make_entry, send_range, write_corpus


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single-range ``Range`` support; no directory listings; counts requests."""

    requests: list[str] = []
    ranges = True

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def list_directory(self, path: str):  # type: ignore[no-untyped-def]
        self.send_error(404, "no listings")
        return None

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        rng = self.headers.get("Range")
        path = self.translate_path(self.path)
        if not type(self).ranges or not rng or not os.path.isfile(path):
            return super().do_GET()
        send_range(self, path, rng)
        return None


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default (5) drops bursts of connections: 1 s SYN retries
    daemon_threads = True


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict]]:
    root = tmp_path_factory.mktemp("http")
    truth = {f"song{i}": make_entry(150 + 61 * i, 4, seed=i) for i in range(4)}
    write_corpus(root / "c.zarr", truth, chunk_rows=16, shard_rows=64)
    handler = functools.partial(RangeHandler, directory=str(root))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, truth
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


#: every test runs with both readers of remote URLs
pytestmark = pytest.mark.parametrize("backend", ["obstore", "fsspec"])


def test_auto_backend_prefers_obstore(served: tuple[str, Path, dict], backend: str) -> None:
    from zarr.storage import FsspecStore, ObjectStore

    url, _, truth = served
    c = open_corpus(f"{url}/c.zarr", backend=backend)
    auto = open_corpus(f"{url}/c.zarr")
    assert type(auto._root.store) is ObjectStore  # obstore is installed with the test extra
    assert type(c._root.store) is (ObjectStore if backend == "obstore" else FsspecStore)
    assert pickle.loads(pickle.dumps(c))._backend == backend
    _check(c, truth, 16, 9)


def _check(c, truth: dict, n: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    ents = rng.integers(0, len(c), 40)
    starts = np.array([rng.integers(0, c.rows[e] - n + 1) for e in ents])
    out = c.read_windows(ents, starts, n)
    for k in c.keys:
        for b, (e, s) in enumerate(zip(ents, starts)):
            np.testing.assert_array_equal(out[k][b], truth[c.names[e]][k][s : s + n])


def test_http_corpus_with_ranges(served: tuple[str, Path, dict], backend: str) -> None:
    url, _, truth = served
    RangeHandler.ranges = True
    RangeHandler.requests.clear()
    c = open_corpus(f"{url}/c.zarr", backend=backend)
    assert c.names == list(truth) and c.keys == ("X", "Y")
    assert not any(r.rstrip("/").endswith("c.zarr") for r in RangeHandler.requests)  # never listed
    assert {r.mode for r in c._readers} == {"shard"}
    _check(c, truth, 16, 0)
    _check(c, truth, 70, 1)
    np.testing.assert_array_equal(c["song3"]["X"][:], truth["song3"]["X"])
    # workers reopen from the pickle
    c2 = pickle.loads(pickle.dumps(c))
    _check(c2, truth, 5, 2)


def test_http_server_without_range_support(served: tuple[str, Path, dict], backend: str) -> None:
    url, _, truth = served
    RangeHandler.ranges = False  # plain http.server behaviour: whole objects
    try:
        c = open_corpus(f"{url}/c.zarr", backend=backend, cache_bytes=0)
        _check(c, truth, 16, 3)
    finally:
        RangeHandler.ranges = True


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
def test_http_plain_zarr_with_consolidated_metadata(served: tuple[str, Path, dict], backend: str) -> None:
    url, root, _ = served
    e = make_entry(90, 3, seed=5)
    g = zarr.open_group(root / "plain.zarr", mode="w")
    for name in ("a", "b"):
        sub = g.create_group(name)
        for k, a in e.items():
            sub.create_array(k, shape=a.shape, dtype=a.dtype, chunks=(20, *a.shape[1:]))[...] = a
    zarr.consolidate_metadata(root / "plain.zarr")
    c = open_corpus(f"{url}/plain.zarr", backend=backend)
    assert c.names == ["a", "b"]
    _check(c, {"a": e, "b": e}, 11, 4)


def test_http_errors(served: tuple[str, Path, dict], backend: str) -> None:
    url, root, _ = served
    with pytest.raises(CorpusError, match="missing.zarr"):
        open_corpus(f"{url}/missing.zarr", backend=backend)
    with pytest.raises(KeyError, match="'Q'"):
        open_corpus(f"{url}/c.zarr", backend=backend, keys=["Q"])
    # a corrupt shard index over HTTP
    import shutil

    bad = f"bad-{backend}.zarr"
    shutil.copytree(root / "c.zarr", root / bad)
    shard = root / bad / "X" / "c" / "1" / "0"
    raw = bytearray(shard.read_bytes())
    raw[-7] ^= 0x55
    shard.write_bytes(bytes(raw))
    c = open_corpus(f"{url}/{bad}", backend=backend)
    with pytest.raises(DataError, match=r"song0.*'X'.*X/c/1/0"):
        c.read_windows([0], [70], 16)


def test_http_server_errors_name_the_object(served: tuple[str, Path, dict], backend: str) -> None:
    url, _, _ = served
    c = open_corpus(f"{url}/c.zarr", backend=backend)
    old = RangeHandler.do_GET

    def broken(self: RangeHandler) -> None:
        if "/X/c/" in self.path:
            self.send_error(500, "disk on fire")
            return
        old(self)

    RangeHandler.do_GET = broken  # type: ignore[method-assign]
    try:
        with pytest.raises(CorpusError, match=r"X/c/0/0"):
            c.read_windows([0], [0], 16)
    finally:
        RangeHandler.do_GET = old  # type: ignore[method-assign]
    assert c.read_windows([0], [0], 16)["X"].shape == (1, 16, 4)


def test_without_obstore(served: tuple[str, Path, dict], backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without obstore, 'auto' falls back to fsspec and 'obstore' says how to install it."""
    from zarr.storage import FsspecStore

    url, _, truth = served
    for name in [m for m in list(__import__("sys").modules) if m == "obstore" or m.startswith("obstore.")]:
        monkeypatch.delitem(__import__("sys").modules, name)
    monkeypatch.setitem(__import__("sys").modules, "obstore", None)  # import obstore -> ImportError
    if backend == "obstore":
        with pytest.raises(CorpusError, match=r"zarrmux\[cloud\].*c\.zarr"):
            open_corpus(f"{url}/c.zarr", backend=backend)
    else:
        c = open_corpus(f"{url}/c.zarr")
        assert type(c._root.store) is FsspecStore
        _check(c, truth, 16, 11)


def test_http_truncated_shard_is_a_data_error(served: tuple[str, Path, dict], backend: str) -> None:
    """A shard cut short (its last inner chunk runs past the end) raises DataError naming entry, key and chunk."""
    import shutil

    url, root, _ = served
    name = f"trunc-{backend}.zarr"
    shutil.copytree(root / "c.zarr", root / name)
    shard = root / name / "X" / "c" / "0" / "0"
    raw = shard.read_bytes()
    index = 16 * 4 + 4  # 4 inner chunks per shard, crc32c
    shard.write_bytes(raw[: -index - 40] + raw[-index:])
    c = open_corpus(f"{url}/{name}", backend=backend)
    np.testing.assert_array_equal(c.read_windows([0], [0], 16)["X"][0], make_entry(150, 4, seed=0)["X"][:16])
    with pytest.raises(DataError, match=r"entry 'song0', key 'X', chunk X/c/0/0 \(inner chunk 3, rows 48:64"):
        c.read_windows([0], [48], 16)
