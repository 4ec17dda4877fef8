"""Prefetcher (issue 5, point 5): no network port, faults reach the consumer."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections.abc import Iterator

import psutil
import pytest

import zarrmux
from zarrmux.exceptions import PescadorError
from zarrmux.prefetch import Prefetcher


def count(n: int) -> Iterator[int]:
    yield from range(n)


class OddError(Exception):
    """Pickles, but unpickling fails (required keyword-only argument)."""

    def __init__(self, *, code: int) -> None:
        super().__init__(f"odd failure code={code}")


def odd(n: int) -> Iterator[int]:
    yield from range(n)
    raise OddError(code=7)


def _inet(proc: psutil.Process) -> list:
    return [c for c in proc.net_connections(kind="inet")]


@pytest.mark.parametrize("method", ["thread", "process"])
def test_binds_no_port(method: str) -> None:
    me = psutil.Process()
    before = {(c.laddr, c.status) for c in _inet(me)}
    it = iter(Prefetcher(zarrmux.Streamer(count, 10**9), method=method, depth=2))
    assert [next(it) for _ in range(5)] == list(range(5))
    assert {(c.laddr, c.status) for c in _inet(me)} == before
    kids = [psutil.Process(c.pid) for c in mp.active_children() if c.name == "zarrmux-prefetcher"]
    assert len(kids) == (1 if method == "process" else 0)
    for k in kids:
        assert _inet(k) == []
    it.close()


@pytest.mark.parametrize("method", ["thread", "process"])
def test_unpicklable_exception_arrives_as_text(method: str) -> None:
    got = []
    with pytest.raises((OddError, PescadorError), match="odd failure code=7"):
        for x in Prefetcher(zarrmux.Streamer(odd, 3), method=method):
            got.append(x)
    assert got == [0, 1, 2]


def test_killed_process_is_an_error_not_an_end() -> None:
    it = iter(Prefetcher(zarrmux.Streamer(count, 10**9), method="process", depth=2))
    next(it)
    (kid,) = [c for c in mp.active_children() if c.name == "zarrmux-prefetcher"]
    os.kill(kid.pid, signal.SIGKILL)
    with pytest.raises(PescadorError, match="exited"):
        for _ in it:
            pass
