"""Background execution: ordered bounded reading ahead (adaptive_map while it reads ahead), Prefetcher (thread and process)."""

from __future__ import annotations

import gc
import itertools
import random
import threading
import time
from collections.abc import Iterator

import pytest

import zarrmux
from zarrmux.exceptions import PescadorError
from zarrmux.adaptive import adaptive_map
from zarrmux.prefetch import Prefetcher


def ahead(fn, tasks, depth: int, threads: int = 1):  # type: ignore[no-untyped-def]
    """adaptive_map told that every read sends requests (a remote store): it reads ahead throughout."""
    return adaptive_map(fn, tasks, depth=depth, threads=threads, sends=itertools.count().__next__)


def _ours() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("zarrmux")}


def _jittery_square(x: int) -> int:
    time.sleep(random.random() * 0.002)  # finish out of order
    return x * x


def count(n: int) -> Iterator[int]:
    yield from range(n)


def failing(n: int) -> Iterator[int]:
    for i in range(n):
        yield i
    raise ValueError(f"boom after {n}")


def test_reading_ahead_keeps_order_and_bounds_inflight() -> None:
    before = _ours()
    submitted = []

    def tasks() -> Iterator[int]:
        for i in range(60):
            submitted.append(i)
            yield i

    out = []
    for task, result in ahead(_jittery_square, tasks(), depth=3, threads=3):
        # the result being consumed plus at most depth tasks ahead of it
        assert len(submitted) - len(out) <= 3 + 1
        out.append((task, result))
    assert out == [(i, i * i) for i in range(60)]
    assert _ours() == before


def test_reading_ahead_reraises_and_stops() -> None:
    before = _ours()

    def f(x: int) -> int:
        if x == 5:
            raise ValueError("task 5 failed")
        return x

    got = []
    with pytest.raises(ValueError, match="task 5 failed"):
        for _, r in ahead(f, range(100), depth=4, threads=2):
            got.append(r)
    assert got == [0, 1, 2, 3, 4]
    assert _ours() == before


def test_reading_ahead_stops_on_close_and_gc() -> None:
    before = _ours()
    it = ahead(_jittery_square, range(10**6), depth=4, threads=2)
    next(it)
    assert len(_ours() - before) == 2
    it.close()
    assert _ours() == before
    it = ahead(_jittery_square, range(10**6), depth=4, threads=2)
    next(it)
    del it
    gc.collect()
    assert _ours() == before


def test_bad_depth() -> None:
    with pytest.raises(PescadorError, match="depth"):
        adaptive_map(abs, [1], depth=0)
    with pytest.raises(PescadorError, match="method"):
        Prefetcher(zarrmux.Streamer(count, 3), method="gpu")
    with pytest.raises(PescadorError, match="depth"):
        Prefetcher(zarrmux.Streamer(count, 3), depth=0)


@pytest.mark.parametrize("method", ["thread", "process"])
def test_prefetcher_yields_in_order_and_restarts(method: str) -> None:
    p = Prefetcher(zarrmux.Streamer(count, 50), method=method, depth=3)
    assert list(p) == list(range(50))
    assert list(p(max_iter=7)) == list(range(7))


def test_prefetcher_runs_a_mux_in_a_process() -> None:
    streams = [zarrmux.Streamer(count, 5), zarrmux.Streamer(range(10, 13))]
    mux = zarrmux.StochasticMux(streams, n_active=2, rate=2, mode="exhaustive", random_state=4)
    assert list(Prefetcher(mux, method="process")) == list(mux)


@pytest.mark.parametrize("method", ["thread", "process"])
def test_prefetcher_reraises_worker_exception(method: str) -> None:
    got = []
    with pytest.raises(ValueError, match="boom after 4"):
        for x in Prefetcher(zarrmux.Streamer(failing, 4), method=method):
            got.append(x)
    assert got == [0, 1, 2, 3]


def test_prefetcher_thread_stops_early() -> None:
    before = _ours()
    it = iter(Prefetcher(zarrmux.Streamer(count, 10**9), depth=2))
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert _ours() == before


def test_prefetcher_process_stops_early() -> None:
    import multiprocessing as mp

    it = iter(Prefetcher(zarrmux.Streamer(count, 10**9), method="process", depth=2))
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    assert len(mp.active_children()) >= 1
    it.close()
    assert [c for c in mp.active_children() if c.name == "zarrmux-prefetcher"] == []


def test_process_needs_picklable() -> None:
    lock = threading.Lock()
    with pytest.raises(PescadorError, match="picklable"):
        Prefetcher(zarrmux.Streamer([lock]), method="process")


def test_timeout_is_checked_and_only_for_processes() -> None:
    for bad in (0, -2.5, "1", True):
        with pytest.raises(PescadorError, match="timeout"):
            Prefetcher(zarrmux.Streamer(count, 3), method="process", timeout=bad)
    with pytest.raises(PescadorError, match="process' only"):
        Prefetcher(zarrmux.Streamer(count, 3), method="thread", timeout=1.0)
    p = Prefetcher(zarrmux.Streamer(count, 4), method="process", timeout=2)
    assert p.timeout == 2 and list(p) == [0, 1, 2, 3]
