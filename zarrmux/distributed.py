"""Dask/distributed execution: the only zarrmux module that imports dask.

Generic helpers, used by :func:`zarrmux.convert` and reusable elsewhere:

* :func:`connect` -- a :class:`Connection` holding a ``distributed.Client``
  for a ``Client`` (used as is, never closed), an address
  (``tcp://host:8786``; connecting fails after ``timeout`` seconds with
  :class:`SchedulerError` naming the address), or ``'local'`` (a
  ``LocalCluster`` of worker processes bound to 127.0.0.1, no dashboard,
  shut down with the connection).
* :func:`get_client` -- the same as a context manager.
* :func:`run_tasks` -- run ``fn(item)`` for every item as Dask tasks and
  yield ``(position, result)`` as they complete.

For :class:`zarrmux.WindowSampler` (``scheduler=...``):

* :func:`read_task` -- the task: open the corpus from its path/URL (cached
  per worker process, see :func:`worker_corpus`) and read a slice of the
  plan, a few whole batches.  A pure function of its arguments, so Dask may
  rerun it after a worker dies.
* :class:`TaskStream` -- submits ``read_task`` for consecutive plan slices,
  at most ``depth`` in flight, and yields the batches in plan order;
  ``close()`` cancels whatever is still in flight.

dask and distributed are optional: ``pip install 'zarrmux[dask]'``.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from .exceptions import PescadorError, SchedulerError

__all__ = [
    "INSTALL_HINT",
    "DEFAULT_CONNECT_TIMEOUT",
    "SchedulerError",
    "require_distributed",
    "Connection",
    "connect",
    "get_client",
    "run_tasks",
    "read_task",
    "CorpusSpec",
    "corpus_spec",
    "worker_corpus",
    "TaskStream",
]

INSTALL_HINT = "dask.distributed is needed for scheduler=...: pip install 'zarrmux[dask]'"
#: seconds to wait for a scheduler address before giving up
DEFAULT_CONNECT_TIMEOUT = 10.0



def require_distributed() -> Any:
    """The ``distributed`` module, or :class:`ImportError` with the install hint."""
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - dask is installed in the test env
        raise ImportError(INSTALL_HINT) from exc
    return distributed


class Connection:
    """A ``distributed.Client`` and what to close with it (see :func:`connect`).

    Attributes
    ----------
    client : distributed.Client
    cluster : distributed.LocalCluster or None
        The cluster started for ``'local'`` (closed by :meth:`close`).
    owned : bool
        Whether :meth:`close` closes the client (not for a client passed in).
    """

    def __init__(self, client: Any, cluster: Any = None, owned: bool = True) -> None:
        self.client, self.cluster, self.owned = client, cluster, owned
        self.closed = False

    def close(self) -> None:
        """Close the client and the cluster this connection started (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self.owned:
            with contextlib.suppress(Exception):
                self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def connect(
    scheduler: Any,
    *,
    n_workers: int | None = None,
    processes: bool = True,
    threads_per_worker: int = 1,
    timeout: float | None = None,
) -> Connection:
    """A :class:`Connection` to ``scheduler``.

    Parameters
    ----------
    scheduler : distributed.Client, str
        A client (used unchanged, left open), a scheduler address such as
        ``'tcp://10.0.0.1:8786'`` (a client is connected, closed with the
        connection), or ``'local'``: a ``LocalCluster`` on 127.0.0.1 with
        ``n_workers`` workers and no dashboard, shut down with the connection.
    n_workers : int > 0, optional
        Workers of a ``'local'`` cluster (default: the number of cores).
    processes : bool
        ``'local'`` workers are processes (default) or threads of this process.
    threads_per_worker : int > 0
        Threads per ``'local'`` worker.
    timeout : float > 0 or None
        Seconds to wait for a scheduler address (None: :data:`DEFAULT_CONNECT_TIMEOUT`).

    Raises
    ------
    ImportError
        dask.distributed is not installed (the message says ``pip install 'zarrmux[dask]'``).
    SchedulerError
        The address cannot be reached within ``timeout`` seconds.
    ValueError
        ``scheduler`` is none of the above.
    """
    distributed = require_distributed()
    if isinstance(scheduler, distributed.Client):
        return Connection(scheduler, owned=False)
    if not isinstance(scheduler, str) or not scheduler:
        raise ValueError(f"scheduler={scheduler!r} must be a distributed.Client, an address like tcp://host:8786, or 'local'")
    if timeout is None:
        timeout = DEFAULT_CONNECT_TIMEOUT
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout={timeout!r} must be a number of seconds > 0")
    if scheduler == "local":
        # processes: TCP bound to loopback only; threads: in-process transport, no socket at all
        where = {"host": "127.0.0.1"} if processes else {}
        cluster = distributed.LocalCluster(
            n_workers=n_workers or os.cpu_count() or 1,
            threads_per_worker=threads_per_worker,
            processes=processes,
            dashboard_address=None,
            **where,
        )
        try:
            client = distributed.Client(cluster)
        except BaseException:
            cluster.close()
            raise
        return Connection(client, cluster)
    try:
        client = distributed.Client(scheduler, timeout=f"{float(timeout)}s")
    except (OSError, TimeoutError) as exc:
        raise SchedulerError(
            f"cannot reach the Dask scheduler at {scheduler!r} within {timeout:g} s "
            f"(is `dask scheduler` running there?): {exc}"
        ) from None
    return Connection(client)


@contextlib.contextmanager
def get_client(
    scheduler: Any,
    *,
    n_workers: int | None = None,
    processes: bool = True,
    threads_per_worker: int = 1,
    timeout: float | None = None,
) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler`` (see :func:`connect`), closed afterwards if it was opened here."""
    conn = connect(scheduler, n_workers=n_workers, processes=processes, threads_per_worker=threads_per_worker, timeout=timeout)
    try:
        yield conn.client
    finally:
        conn.close()


def run_tasks(
    scheduler: Any,
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    n_workers: int | None = None,
    processes: bool = True,
    timeout: float | None = None,
) -> Iterator[tuple[int, Any]]:
    """Run ``fn(item)`` for each item as Dask tasks; yield ``(position, result)`` as each completes.

    The first task that raises re-raises here (remaining tasks are cancelled).
    Tasks are submitted with ``pure=False`` so equal items still run.
    ``timeout``: seconds to reach a scheduler address (see :func:`connect`).
    """
    distributed = require_distributed()
    with get_client(scheduler, n_workers=n_workers, processes=processes, timeout=timeout) as client:
        futures = [client.submit(fn, item, pure=False, retries=1) for item in items]
        position = {f.key: i for i, f in enumerate(futures)}
        try:
            for fut in distributed.as_completed(futures):
                yield position[fut.key], fut.result()
        finally:
            client.cancel([f for f in futures if not f.done()])


# ---------------------------------------------------------------------- sampler tasks
class CorpusSpec(NamedTuple):
    """What a worker needs to open a corpus itself (hashable: workers keep one open corpus per spec)."""

    target: str  #: path or URL
    keys: tuple[str, ...] | None
    cache_bytes: int
    storage_options: tuple[tuple[str, Any], ...] | None  #: sorted items
    backend: str
    entries: tuple[str, ...] | None  #: a corpus view's entries (Corpus.split / select)
    exact_remote: bool

    def open(self) -> Any:
        from .corpus import open_corpus

        return open_corpus(
            self.target, keys=self.keys, cache_bytes=self.cache_bytes,
            storage_options=dict(self.storage_options) if self.storage_options else None,
            backend=self.backend, entries=self.entries, exact_remote=self.exact_remote,
        )


#: open corpora of this (worker) process, one per spec
_CORPORA: dict[CorpusSpec, Any] = {}
_CORPORA_LOCK = threading.Lock()


def corpus_spec(corpus: Any) -> CorpusSpec:
    """What a worker needs to open ``corpus`` itself: its path or URL and every option (a :class:`CorpusSpec`).

    Raises
    ------
    PescadorError
        The corpus was opened from a store object rather than a path or URL
        (workers cannot reopen it; no store handle travels in the task graph).
    """
    state = corpus.__getstate__()  # a Corpus pickles as path + options
    target = state["target"]
    if not isinstance(target, str):
        raise PescadorError(
            f"scheduler=...: the corpus must be opened from a path or URL that the workers can open, "
            f"not a store object ({type(target).__name__})"
        )
    opts = state.get("storage_options")
    keys, entries = state.get("keys"), state.get("entries")
    return CorpusSpec(
        target, tuple(keys) if keys is not None else None, int(state["cache_bytes"]),
        tuple(sorted(opts.items())) if opts else None, state.get("backend", "auto"),
        tuple(entries) if entries is not None else None, bool(state.get("exact_remote", False)),
    )


def worker_corpus(spec: CorpusSpec) -> Any:
    """The open corpus for ``spec`` (from :func:`corpus_spec`), opened once per process and reused."""
    c = _CORPORA.get(spec)
    if c is None:
        with _CORPORA_LOCK:
            c = _CORPORA.get(spec)
            if c is None:
                c = _CORPORA[spec] = spec.open()
    return c


def read_task(
    spec: CorpusSpec, n: int, keys: tuple[str, ...] | None, slices: Sequence[tuple[np.ndarray, np.ndarray]]
) -> list[dict[str, np.ndarray]]:
    """One Dask task: the batches ``read_windows(entries, starts, n, keys)`` of a plan slice, on a worker.

    Pure: the result depends on the arguments only (the corpus is opened from
    its path, cached per worker process), so a rerun gives the same batches.
    """
    corpus = worker_corpus(spec)
    from .corpus import is_remote

    if len(slices) > 1 and is_remote(spec.target):
        # high-latency store: the batches' round trips overlap (local reads are GIL-bound: one by one)
        return list(_remote_pool().map(lambda s: corpus.read_windows(s[0], s[1], n, keys), slices))
    return [corpus.read_windows(entries, starts, n, keys) for entries, starts in slices]


#: reading threads of a worker process for remote stores
REMOTE_TASK_THREADS = 16
_POOL: Any = None


def _remote_pool() -> Any:
    global _POOL
    with _CORPORA_LOCK:
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(REMOTE_TASK_THREADS, thread_name_prefix="zarrmux-worker-read")
        return _POOL


class TaskStream:
    """Batches of a sequence of plan blocks, read by Dask tasks, in plan order.

    Parameters
    ----------
    client : distributed.Client
    spec : tuple
        :func:`corpus_spec` of the corpus.
    n : int > 0
        Rows per window.
    keys : tuple of str or None
    blocks : iterable of :class:`zarrmux.plan.Block` or :class:`zarrmux.global_stream.Step`
        Anything with ``entries``, ``starts``, ``epoch`` and ``index``: a
        sampler passes its rank's steps of the global stream, so the batches
        are the global batches the rank owns, as without Dask.
        Advanced in the consumer's thread, ``depth * batches_per_task`` blocks ahead.
    depth : int > 0
        Tasks in flight at most (besides the one being consumed).
    batches_per_task : int > 0
        Consecutive blocks read by one task.
    retries : int >= 0
        Reruns of a task that raised (a task lost with its worker is rerun by Dask anyway).

    Iterating yields ``(block, batch)``.  :meth:`close` (also on
    ``GeneratorExit`` / errors) cancels the tasks still in flight.
    """

    def __init__(
        self,
        client: Any,
        spec: CorpusSpec,
        n: int,
        keys: tuple[str, ...] | None,
        blocks: Iterable[Any],
        *,
        depth: int,
        batches_per_task: int,
        retries: int = 1,
    ) -> None:
        self.client, self.spec, self.n, self.keys = client, spec, n, keys
        self._blocks = iter(blocks)
        self.depth, self.batches_per_task, self.retries = depth, batches_per_task, retries
        self._token = uuid.uuid4().hex[:12]
        self._count = itertools.count()
        self.pending: collections.deque[tuple[list[Any], Any]] = collections.deque()

    def _submit_next(self) -> bool:
        group = list(itertools.islice(self._blocks, self.batches_per_task))
        if not group:
            return False
        first = group[0]
        # unique per submission: a rerun of a plan slice never meets a cancelled/erred key
        key = f"zarrmux-read-{self._token}-e{first.epoch}-b{first.index}-{next(self._count)}"
        slices = [(b.entries, b.starts) for b in group]
        fut = self.client.submit(read_task, self.spec, self.n, self.keys, slices, key=key, pure=False, retries=self.retries)
        self.pending.append((group, fut))
        return True

    def __iter__(self) -> Iterator[tuple[Any, dict[str, np.ndarray]]]:
        try:
            for _ in range(self.depth):
                if not self._submit_next():
                    break
            while self.pending:
                group, fut = self.pending[0]
                batches = fut.result()
                self.pending.popleft()
                del fut
                self._submit_next()
                for blk, batch in zip(group, batches):
                    yield blk, batch
                del group, batches
        finally:
            self.close()

    def futures(self) -> list[Any]:
        """The futures in flight (for inspection)."""
        return [f for _, f in self.pending]

    def close(self) -> None:
        """Cancel the tasks still in flight."""
        futs = self.futures()
        self.pending.clear()
        if futs:
            with contextlib.suppress(Exception):
                self.client.cancel(futs)
