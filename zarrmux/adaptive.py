"""Prefetch that only runs ahead when it pays: :func:`adaptive_map`.

Reading a batch of a local corpus is CPU work that mostly holds the GIL.  A
background thread then overlaps it with the consumer's work only if the
consumer *has* work between batches that releases the GIL (a training step
in PyTorch or NumPy), or if the reads wait for the disk; with a consumer that
takes batches as fast as they come, the hand-off between threads is pure
overhead (in an ad hoc run on the benchmark corpus, a background reader
thread delivered about 0.8x of the same reads done in the consumer's
thread; ``tools/bench_sampler.py`` compares the defaults with
``prefetch=0``).

:func:`adaptive_map` yields ``(task, fn(task))`` **in task order**.  Reading
ahead, at most ``depth`` tasks are in flight besides the result the consumer
holds, so memory is bounded by ``depth + 1`` results; a task's exception is
re-raised in the consumer; the threads stop (joined, pending tasks
cancelled) when the iteration ends, when the generator is closed or
garbage-collected, when the consumer is interrupted or on an error; the
tasks iterator is advanced in the consumer's thread only.  It decides as it
goes, from moving averages of timings per batch:

* ``read``: wall time of ``fn(task)``;
* ``consume``: time the consumer spends between taking a batch and asking
  for the next one.

It reads ahead in ``threads`` background threads (``depth`` batches ahead)
while ``consume`` is more than half of ``read``, and in the consumer's
thread once it falls below a quarter of it (the gap avoids flapping).
Waiting for the disk is not a reason to run ahead: :mod:`zarrmux.exact_windows`
maps the shards a batch needs concurrently, so cold reads overlap anyway
(and in a background thread, waiting for the GIL would look the same).  It starts in the consumer's thread.

Waiting for the network is: given ``sends`` (a count of requests sent to a
remote store so far), it also reads ahead while reads send requests, from
the start, and comes back to the consumer's thread once ``depth``
batches in a row were read without sending any (every byte they needed was
held already: a small corpus whose chunks all fit in memory, or a server
without Range whose objects were downloaded whole).  There background
threads would only add their hand-off to CPU work.

Switching never reorders: batches already submitted are taken first.  So the
results, and their order, are the same whatever it decides.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from .exceptions import PescadorError
from .prefetch import ThreadPool

__all__ = ["adaptive_map", "AdaptiveStats"]

T = TypeVar("T")
R = TypeVar("R")

#: the end of the tasks (``next(it, _END)``)
_END: Any = object()
#: weight of the newest timing in the moving averages
_ALPHA = 0.2
#: run ahead above this share of the read time, come back below the lower one
_AHEAD, _BACK = 0.5, 0.25


class AdaptiveStats:
    """What :func:`adaptive_map` measured and decided (moving averages in seconds)."""

    def __init__(self) -> None:
        self.read = 0.0  #: wall time of one read
        self.consume = 0.0  #: consumer's time between batches
        self.ahead = False  #: reading ahead in background threads now
        self.fetching = False  #: recent reads sent requests (only with ``sends``)
        self.switches = 0  #: times it changed its mind
        self.batches_ahead = 0  #: results read by background threads
        self.batches_inline = 0  #: results read in the consumer's thread

    def decide(self) -> bool:
        """Whether to read ahead from now on."""
        if self.read:
            want = self.consume / self.read
            ahead = self.fetching or (want > _AHEAD if not self.ahead else want >= _BACK)
        else:
            ahead = self.fetching or self.ahead
        if ahead != self.ahead:
            self.switches += 1
            self.ahead = ahead
        return ahead


def _timed(fn: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, float]]:
    def run(task: Any) -> tuple[Any, float]:
        t0 = time.perf_counter()
        result = fn(task)
        return result, time.perf_counter() - t0

    return run


def adaptive_map(
    fn: Callable[[T], R],
    tasks: Iterable[T],
    *,
    depth: int,
    threads: int = 1,
    name: str = "zarrmux-prefetch",
    stats: AdaptiveStats | None = None,
    sends: Callable[[], int] | None = None,
) -> Iterator[tuple[T, R]]:
    """Yield ``(task, fn(task))`` in task order, read ahead only when it pays (see the module docstring).

    Parameters
    ----------
    fn : callable
        Must be thread-safe.
    tasks : iterable
        Advanced in the consumer's thread only.
    depth : int > 0
        Tasks submitted ahead while reading ahead.
    threads : int > 0
        Background threads (at most ``depth`` are useful).
    stats : AdaptiveStats, optional
        Receives the timings and decisions, for inspection.
    sends : callable, optional
        Requests sent to a remote store so far (a count that only grows),
        read in the consumer's thread once per batch: reads that send
        requests wait for the network, so they are read ahead.
    """
    if depth < 1:
        raise PescadorError(f"depth={depth!r} must be >= 1")
    st = stats or AdaptiveStats()
    return _adaptive(fn, iter(tasks), depth, max(1, min(threads, depth)), name, st, sends)


def _adaptive(
    fn: Callable[[T], R], it: Iterator[T], depth: int, threads: int, name: str, st: AdaptiveStats, sends: Callable[[], int] | None
) -> Iterator[tuple[T, R]]:
    # The inline path is the common one on local data (a consumer that takes batches as fast as
    # they come): it costs three clock reads and a little float arithmetic per batch, and no call
    # it can do without, so the defaults stay within noise of ``prefetch=0`` (tools/bench_prefetch.py).
    clock = time.perf_counter
    pool: ThreadPool | None = None
    pending: collections.deque[tuple[T, Future]] = collections.deque()
    handed = 0.0  # when the consumer got its last batch
    sent = 0 if sends is None else sends()
    st.fetching = sends is not None  # a remote store's first reads fetch
    quiet = 0  # batches in a row during which no request was sent
    try:
        while True:
            if handed:
                st.consume += _ALPHA * (clock() - handed - st.consume)
            if sends is not None:
                now = sends()
                quiet = 0 if now != sent else quiet + 1
                sent = now
                st.fetching = quiet < depth
            if st.decide():
                if pool is None:
                    pool = ThreadPool(_timed(fn), threads, name)
                for task in itertools.islice(it, depth - len(pending)):
                    pending.append((task, pool.submit(task)))
            if pending:
                task, fut = pending.popleft()
                result, wall = fut.result()
                del fut
                if st.ahead:  # keep ``depth`` in flight while the consumer works
                    for nxt in itertools.islice(it, 1):
                        pending.append((nxt, pool.submit(nxt)))  # type: ignore[union-attr]
                st.batches_ahead += 1
            else:
                nxt = next(it, _END)
                if nxt is _END:
                    return
                task = nxt
                t0 = clock()
                result = fn(task)
                wall = clock() - t0
                st.batches_inline += 1
            st.read += _ALPHA * (wall - st.read)
            handed = clock()
            yield task, result
            del task, result
    finally:
        if pool is not None:
            pool.shutdown([f for _, f in pending])
        pending.clear()
