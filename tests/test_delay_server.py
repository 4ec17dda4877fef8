"""The benchmark's delay HTTP server (``python -m zarrmux.testing ROOT DELAY``), a real process on loopback."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from zarrmux.corpus import open_corpus
from zarrmux.exceptions import CorpusError
from zarrmux.testing import make_entry, write_corpus


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("srv")
    (root / "blob").write_bytes(bytes(range(256)) * 4)
    proc = subprocess.Popen([sys.executable, "-m", "zarrmux.testing", str(root), "0.05"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}", root
    finally:
        proc.terminate()
        proc.wait()


def _get(url: str, rng: str | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, headers={"Range": rng} if rng else {})
    with urllib.request.urlopen(req) as r:
        return r.status, r.read(), dict(r.headers)


def test_ranges_suffix_whole_and_missing(server: tuple[str, Path]) -> None:
    url, root = server
    data = (root / "blob").read_bytes()
    t = time.perf_counter()
    status, body, headers = _get(f"{url}/blob", "bytes=10-19")
    assert time.perf_counter() - t >= 0.05  # the delay is applied
    assert (status, body, headers["Content-Range"]) == (206, data[10:20], f"bytes 10-19/{len(data)}")
    assert _get(f"{url}/blob", "bytes=-7")[1] == data[-7:]
    assert _get(f"{url}/blob", "bytes=1000-")[1] == data[1000:]
    assert _get(f"{url}/blob")[:2] == (200, data)
    for bad in ("/missing", "/../etc/passwd", "/"):
        with pytest.raises(urllib.error.HTTPError) as e:
            _get(f"{url}{bad}")
        assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        _get(f"{url}/blob", f"bytes={len(data) + 5}-")
    assert e.value.code == 416


@pytest.mark.parametrize("backend", ["obstore", "fsspec"])
def test_corpus_over_delay_server(server: tuple[str, Path], backend: str) -> None:
    url, root = server
    if not (root / "c.zarr").exists():
        write_corpus(root / "c.zarr", {f"s{i}": make_entry(300 + 50 * i, 4, seed=i) for i in range(3)}, chunk_rows=32, shard_rows=128)
    truth = {f"s{i}": make_entry(300 + 50 * i, 4, seed=i) for i in range(3)}
    c = open_corpus(f"{url}/c.zarr", backend=backend)
    out = c.read_windows([0, 2, 1, 2], [0, 280, 100, 7], 20)
    for b, (e, s) in enumerate([(0, 0), (2, 280), (1, 100), (2, 7)]):
        np.testing.assert_array_equal(out["X"][b], truth[f"s{e}"]["X"][s : s + 20])
        np.testing.assert_array_equal(out["Y"][b], truth[f"s{e}"]["Y"][s : s + 20])


def test_delay_filesystem_url(tmp_path: Path) -> None:
    """``zarrmux-delay://`` (an fsspec entry point): same data as the directory, every read delayed."""
    truth = {f"s{i}": make_entry(200 + 30 * i, 3, seed=i) for i in range(2)}
    write_corpus(tmp_path / "c.zarr", truth, chunk_rows=16, shard_rows=64)
    c = open_corpus(f"zarrmux-delay://{tmp_path / 'c.zarr'}", storage_options={"delay": 0.05})
    assert c.names == ["s0", "s1"]
    t = time.perf_counter()
    out = c.read_windows([1, 0], [200, 5], 20)
    assert time.perf_counter() - t >= 0.05
    np.testing.assert_array_equal(out["X"][0], truth["s1"]["X"][200:220])
    np.testing.assert_array_equal(out["Y"][1], truth["s0"]["Y"][5:25])
    with pytest.raises(CorpusError, match="delay=-1 must be >= 0"):
        open_corpus(f"zarrmux-delay://{tmp_path / 'c.zarr'}", storage_options={"delay": -1})
