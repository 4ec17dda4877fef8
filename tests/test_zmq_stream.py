"""ZMQStreamer (issue 14, point 2): pescador's name and signature, run by Prefetcher in a process, no port."""

from __future__ import annotations

import inspect
import multiprocessing as mp
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pescador
import psutil
import pytest

import zarrmux
from zarrmux.exceptions import PescadorError


def windows(stream_id: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
    """Endless dict items of arrays (what pescador's ZMQStreamer can send), from a seeded RandomState."""
    rng = np.random.RandomState(seed)
    x = np.arange(200 * 3, dtype=np.float32).reshape(200, 3) + 1000 * stream_id
    while True:
        j = rng.randint(0, 200 - 4)
        yield {"X": x[j : j + 4], "Y": np.asarray([stream_id, j], dtype=np.int64)}


def finite(stream_id: int, length: int) -> Iterator[dict[str, np.ndarray]]:
    for j in range(length):
        yield {"X": np.full((2, 2), stream_id * 100 + j, dtype=np.float64)}


def first_then_hang(n: int) -> Iterator[int]:
    """One item, then a generator stuck in a long call (it never reaches its next ``yield``)."""
    yield n
    time.sleep(3600)
    yield n + 1


def failing(n: int) -> Iterator[dict[str, np.ndarray]]:
    for i in range(n):
        yield {"X": np.asarray(i)}
    raise ValueError(f"boom after {n}")


def mux_of(lib: Any, seed: int) -> Any:
    streams = [lib.Streamer(windows, i, 100 + i) for i in range(6)]
    return lib.StochasticMux(streams, n_active=3, rate=4, random_state=seed)


def same(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]) for k in x)
        for x, y in zip(a, b)
    )


def _children() -> list[mp.process.BaseProcess]:
    return [c for c in mp.active_children() if c.name == "zarrmux-prefetcher"]


def test_pescador_name_and_signature() -> None:
    import zarrmux as pescador_alias

    assert pescador_alias.ZMQStreamer is zarrmux.zmq_stream.ZMQStreamer
    assert "ZMQStreamer" in zarrmux.__all__ and "ZMQStreamer" in dir(zarrmux)
    ours = list(inspect.signature(zarrmux.ZMQStreamer).parameters.values())
    theirs = list(inspect.signature(pescador.ZMQStreamer).parameters.values())
    # pescador's parameters, names, kinds and defaults, in order; then zarrmux's keyword-only depth
    assert [(p.name, p.kind, p.default) for p in ours[: len(theirs)]] == [
        (p.name, p.kind, p.default) for p in theirs
    ]
    assert [(p.name, p.kind) for p in ours[len(theirs) :]] == [("depth", inspect.Parameter.KEYWORD_ONLY)]
    z = zarrmux.ZMQStreamer(zarrmux.Streamer(finite, 1, 3), 5000, 6000, 3, True, 2.5)
    assert (z.min_port, z.max_port, z.max_tries, z.copy, z.timeout) == (5000, 6000, 3, True, 2.5)
    assert isinstance(z, zarrmux.Streamer) and isinstance(z.streamer, zarrmux.Streamer)


@pytest.mark.parametrize("seed", [0, 7])
def test_same_items_as_the_streamer_and_as_pescadors_zmqstreamer(seed: int) -> None:
    plain = list(mux_of(zarrmux, seed)(max_iter=80))
    ours = list(zarrmux.ZMQStreamer(mux_of(zarrmux, seed))(max_iter=80))
    theirs = list(pescador.ZMQStreamer(mux_of(pescador, seed))(max_iter=80))
    assert len(plain) == 80
    assert same(ours, plain)
    assert same(ours, theirs)
    # and the seed matters: another seed gives another stream
    assert not same(ours, list(mux_of(zarrmux, seed + 1)(max_iter=80)))


def global_windows(stream_id: int) -> Iterator[dict[str, np.ndarray]]:
    """The seed recipe's way: window starts from the global np.random."""
    while True:
        yield {"Y": np.asarray([stream_id, np.random.randint(1000)], dtype=np.int64)}


def test_global_random_state_as_a_forked_child_has_it() -> None:
    """random_state=None (the usual pescador call): the child starts from the parent's np.random."""
    runs = []
    for build in (
        lambda: list(zarrmux.StochasticMux([zarrmux.Streamer(global_windows, i) for i in range(4)], 2, 3)(max_iter=40)),
        lambda: list(zarrmux.ZMQStreamer(zarrmux.StochasticMux([zarrmux.Streamer(global_windows, i) for i in range(4)], 2, 3))(max_iter=40)),
        lambda: list(pescador.ZMQStreamer(pescador.StochasticMux([pescador.Streamer(global_windows, i) for i in range(4)], 2, 3))(max_iter=40)),
    ):
        np.random.seed(11)
        runs.append(build())
    assert len(runs[0]) == 40
    assert same(runs[1], runs[0]) and same(runs[2], runs[0])


def test_runs_a_finite_stream_to_its_end_and_restarts() -> None:
    mux = zarrmux.ChainMux([zarrmux.Streamer(finite, i, n) for i, n in enumerate([3, 0, 4])])
    z = zarrmux.ZMQStreamer(mux, depth=2)
    expected = list(mux)
    assert len(expected) == 7
    assert same(list(z), expected)
    assert same(list(z), expected)  # each iteration starts a new process
    assert same(list(z.cycle(max_iter=9)), expected + expected[:2])
    assert _children() == []


def test_runs_in_another_process_and_binds_no_port() -> None:
    me = psutil.Process()
    before = {(c.laddr, c.status) for c in me.net_connections(kind="inet")}
    it = iter(zarrmux.ZMQStreamer(zarrmux.Streamer(windows, 0, 1)))
    next(it)
    (kid,) = _children()
    assert kid.pid != me.pid
    assert psutil.Process(kid.pid).net_connections(kind="inet") == []
    assert {(c.laddr, c.status) for c in me.net_connections(kind="inet")} == before
    it.close()
    assert _children() == []


def test_timeout_terminates_a_worker_stuck_in_its_streamer() -> None:
    it = iter(zarrmux.ZMQStreamer(zarrmux.Streamer(first_then_hang, 5), timeout=0.2))
    assert next(it) == 5
    (kid,) = _children()
    it.close()  # the worker is in time.sleep(3600): it is terminated after 0.2 s
    assert not kid.is_alive() and kid.exitcode is not None and kid.exitcode < 0
    assert _children() == []


def test_errors() -> None:
    with pytest.raises(ValueError, match="boom after 3"):
        list(zarrmux.ZMQStreamer(zarrmux.Streamer(failing, 3)))
    with pytest.raises(PescadorError, match="picklable"):
        zarrmux.ZMQStreamer(zarrmux.Streamer([threading.Lock()]))
    for bad in (0, -1, "5", True):
        with pytest.raises(PescadorError, match="timeout"):
            zarrmux.ZMQStreamer(zarrmux.Streamer(finite, 1, 3), timeout=bad)
    with pytest.raises(PescadorError, match="depth"):
        zarrmux.ZMQStreamer(zarrmux.Streamer(finite, 1, 3), depth=0)
