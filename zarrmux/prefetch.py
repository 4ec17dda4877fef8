"""Background execution: a pool of reading threads, and :class:`Prefetcher`.

:class:`ThreadPool`
    The threads that run tasks ahead for :func:`zarrmux.adaptive.adaptive_map`
    (the sampler's reading ahead): results come back as futures, a task's
    exception is re-raised in the consumer, and ``shutdown`` joins the
    threads and cancels the tasks not started.
:class:`Prefetcher`
    Runs any picklable ``Streamer`` (or mux) in a background thread or a
    spawned process and yields its items in order.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing as mp
import pickle
import queue
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import numpy as np

from . import core
from .exceptions import PescadorError

__all__ = ["ThreadPool", "Prefetcher"]

T = TypeVar("T")
R = TypeVar("R")

_pool_ids = itertools.count()


class ThreadPool:
    """A minimal pool of daemon threads running ``fn(task)`` into :class:`~concurrent.futures.Future`.

    Parameters
    ----------
    fn : callable
        The function every task is passed to.
    threads : int > 0
        Number of worker threads (started at once).
    name : str
        Prefix of the threads' names.
    """

    def __init__(self, fn: Callable[[Any], Any], threads: int, name: str = "zarrmux-prefetch") -> None:
        if threads < 1:
            raise PescadorError(f"threads={threads!r} must be >= 1")
        self._fn = fn
        self._tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        pid = next(_pool_ids)
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{pid}-{i}", daemon=True) for i in range(threads)
        ]
        self._closed = False
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while True:
            item = self._tasks.get()
            if item is None:
                return
            fut, task = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = self._fn(task)
            except BaseException as exc:  # noqa: BLE001  (handed to the consumer)
                fut.set_exception(exc)
            else:
                fut.set_result(result)
            del fut, task, item

    def submit(self, task: Any) -> Future:
        """Queue ``task``; its result (or exception) arrives in the returned future."""
        if self._closed:
            raise PescadorError("the thread pool is shut down")
        fut: Future = Future()
        self._tasks.put((fut, task))
        return fut

    def shutdown(self, pending: Iterable[Future] = ()) -> None:
        """Cancel ``pending`` futures not started yet, stop and join every thread."""
        for f in pending:
            f.cancel()
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._tasks.put(None)
        me = threading.current_thread()
        for t in self._threads:
            if t is not me:
                t.join()

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)


# ---------------------------------------------------------------------- Prefetcher
_END = "__zarrmux_prefetcher_end__"
_ERR = "__zarrmux_prefetcher_error__"


def _run_streamer_into(streamer: Any, max_iter: Any, put: Callable[[Any], bool], stop: Any) -> None:
    """Body of a worker: iterate ``streamer``, ``put`` every item, then the end marker."""
    try:
        for item in streamer.iterate(max_iter=max_iter):
            if stop.is_set() or not put(("item", item)):
                return
        put((_END, None))
    except BaseException as exc:  # noqa: BLE001  (sent to the consumer)
        text = f"the Prefetcher's streamer raised {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        try:
            payload: Any = (pickle.dumps(exc), text)
        except Exception:  # an exception that does not pickle: send its text
            payload = PescadorError(text)
        put((_ERR, payload))


def _global_random_states() -> tuple[Any, Any]:
    """The states of the global generators ``numpy.random`` and ``random``."""
    return np.random.get_state(), random.getstate()


def _process_main(payload: bytes, max_iter: Any, q: Any, stop: Any, states: tuple[Any, Any] | None = None) -> None:
    if states is not None:
        # start where the parent's global generators are, as a forked child would
        np.random.set_state(states[0])
        random.setstate(states[1])
    streamer = pickle.loads(payload)

    def put(msg: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(msg, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    _run_streamer_into(streamer, max_iter, put, stop)


class Prefetcher(core.Streamer):
    """Run a streamer (or mux) in a background thread or process; yield its items in order.

    Parameters
    ----------
    streamer : Streamer or iterable
        What to run.  With ``method='process'`` it must be picklable (it is
        sent to a new process started with ``spawn``; no network ports).
        The process starts from the parent's global random states
        (``numpy.random``, ``random``) as they are when the iteration
        starts, as a forked child would, so a stream that draws from them
        (a mux with ``random_state=None``) yields what it would yield in the
        parent.
    method : {'thread', 'process'}
    depth : int > 0
        Items buffered ahead of the consumer.
    timeout : float > 0 or None
        ``method='process'`` only: seconds to wait for the worker process to
        stop once the consumer is done with it (it stops at its next item),
        before terminating it; ``None`` waits as long as it takes.

    Notes
    -----
    A ``Prefetcher`` is itself a ``Streamer``: each activation starts a fresh
    worker that iterates ``streamer`` once.  The worker stops when the stream
    ends, when the consumer stops iterating (the generator is closed or
    garbage-collected) or is interrupted; an exception raised in the worker
    is re-raised in the consumer.  The worker may run up to ``depth`` items
    ahead of a ``max_iter`` limit.
    """

    def __init__(
        self, streamer: Any, *, method: str = "thread", depth: int = 4, timeout: float | None = None
    ) -> None:
        if method not in ("thread", "process"):
            raise PescadorError(f"method={method!r} must be 'thread' or 'process'")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise PescadorError(f"depth={depth!r} must be an integer >= 1")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
                raise PescadorError(f"timeout={timeout!r} must be a number > 0 or None")
            if method != "process":
                raise PescadorError(f"timeout={timeout!r} applies to method='process' only (a thread cannot be stopped)")
        if not isinstance(streamer, core.Streamer):
            streamer = core.Streamer(streamer)
        if method == "process":
            try:
                pickle.dumps(streamer)
            except Exception as exc:
                raise PescadorError(f"method='process' needs a picklable streamer: {exc}") from exc
        self.source = streamer
        self.method = method
        self.depth = depth
        self.timeout = timeout
        if method == "thread":
            super().__init__(_thread_items, streamer, depth)
        else:
            super().__init__(_process_items, streamer, depth, timeout)


def _drain(get: Callable[[], Any]) -> Iterator[Any]:
    while True:
        kind, value = get()
        if kind == _END:
            return
        if kind == _ERR:
            if isinstance(value, tuple):
                raw, text = value
                try:
                    exc = pickle.loads(raw)
                except Exception:  # pickles but does not unpickle (custom __init__): its text
                    exc = PescadorError(text)
                raise exc
            raise value
        yield value


def _thread_items(source: Any, depth: int) -> Iterator[Any]:
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(msg: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(msg, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    t = threading.Thread(target=_run_streamer_into, args=(source, None, put, stop), name="zarrmux-prefetcher", daemon=True)
    t.start()
    try:
        yield from _drain(q.get)
    finally:
        stop.set()
        t.join()


def _process_items(source: Any, depth: int, timeout: float | None = None) -> Iterator[Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue(maxsize=depth)
    stop = ctx.Event()
    proc = ctx.Process(
        target=_process_main,
        args=(pickle.dumps(source), None, q, stop, _global_random_states()),
        name="zarrmux-prefetcher",
        daemon=True,
    )
    proc.start()

    def get() -> Any:
        while True:
            try:
                return q.get(timeout=0.2)
            except queue.Empty:
                if not proc.is_alive():
                    try:
                        return q.get(timeout=1.0)
                    except queue.Empty:
                        raise PescadorError(
                            f"the Prefetcher process exited (code {proc.exitcode}) without finishing the stream"
                        ) from None

    try:
        yield from _drain(get)
    finally:
        stop.set()
        # unblock a worker waiting on a full queue, then wait for it (up to `timeout`)
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        proc.join(timeout=min(0.5, timeout or 0.5))
        while proc.is_alive():
            if time.monotonic() >= deadline:
                proc.terminate()
                proc.join()
                break
            try:
                while True:
                    q.get_nowait()
            except queue.Empty:
                pass
            proc.join(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
        q.close()
        q.join_thread()
