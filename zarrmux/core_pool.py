"""A batch's GIL-free work shared between the caller's thread and a helper thread per spare core.

Blosc decodes (:func:`zarrmux.shard_format.decode_chunk`) and crc32c sums
(:func:`zarrmux.shard_format.crc32c_many`) run outside the GIL, so the chunks
a batch decodes, or the chunks of a freshly mapped shard, are processed in
parallel when the jobs are shared out: :func:`run_shared` gives the first part
of a list of jobs to the helpers and runs the rest in the caller's thread.
Below :data:`MIN_SHARED` jobs everything runs in the caller's thread, where
handing jobs over would cost more than it saves.  The helpers are started on
first use, and again in a forked child (threads do not survive ``fork``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["MIN_SHARED", "run_shared", "spare_cores"]

T = TypeVar("T")

#: jobs below which a batch decodes in the caller's thread alone (see tools/bench_sampler.py, variant g)
MIN_SHARED = 8

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def spare_cores() -> int:
    """Cores this process may run on, besides the caller's: one helper thread each."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(0, cores - 1)


def _helpers() -> ThreadPoolExecutor | None:
    global _pool
    if _pool is None and spare_cores():
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(spare_cores(), thread_name_prefix="zarrmux-core")
    return _pool


def _forget_after_fork() -> None:
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _run_all(fn: Callable[[T], None], jobs: Sequence[T]) -> None:
    for job in jobs:
        fn(job)


def run_shared(fn: Callable[[T], None], jobs: Sequence[T]) -> None:
    """``fn(job)`` for every job, shared between helper threads and this one.

    Returns once every job has run; the first exception (the helpers' first)
    is raised after all of them finished, so no job runs after the caller
    has moved on.
    """
    pool = _helpers() if len(jobs) >= MIN_SHARED else None
    if pool is None:
        _run_all(fn, jobs)
        return
    shares = spare_cores() + 1
    size = -(-len(jobs) // shares)
    futures: list[Future[None]] = [pool.submit(_run_all, fn, jobs[i * size : (i + 1) * size]) for i in range(shares - 1)]
    try:
        _run_all(fn, jobs[(shares - 1) * size :])
    finally:
        for fut in futures:
            fut.exception()  # wait: a helper must not write into memory the caller is about to release
    for fut in futures:
        fut.result()
