"""Dask/distributed execution: the only zarrmux module that imports dask.

Generic helpers, used by :func:`zarrmux.convert` and reusable elsewhere:

* :func:`get_client` -- a context manager giving a ``distributed.Client`` for
  a ``Client`` (used as is, not closed), an address (``tcp://host:8786``), or
  ``'local'`` (a ``LocalCluster`` bound to 127.0.0.1, closed afterwards).
* :func:`run_tasks` -- run ``fn(item)`` for every item as Dask tasks and
  yield ``(position, result)`` as they complete.

dask and distributed are optional: ``pip install 'zarrmux[dask]'``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["require_distributed", "get_client", "run_tasks"]

INSTALL_HINT = "dask.distributed is needed for scheduler=...: pip install 'zarrmux[dask]'"


def require_distributed() -> Any:
    """The ``distributed`` module, or :class:`ImportError` with the install hint."""
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - dask is installed in the test env
        raise ImportError(INSTALL_HINT) from exc
    return distributed


@contextlib.contextmanager
def get_client(
    scheduler: Any, *, n_workers: int | None = None, processes: bool = True, threads_per_worker: int = 1
) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler``.

    Parameters
    ----------
    scheduler : distributed.Client, str
        A client (yielded unchanged, left open), a scheduler address such as
        ``'tcp://10.0.0.1:8786'`` (a client is connected and closed
        afterwards), or ``'local'``: a ``LocalCluster`` on 127.0.0.1 with
        ``n_workers`` workers and no dashboard, shut down afterwards.
    n_workers : int > 0, optional
        Workers of a ``'local'`` cluster (default: the number of cores).
    processes : bool
        ``'local'`` workers are processes (default) or threads of this process.
    threads_per_worker : int > 0
        Threads per ``'local'`` worker.
    """
    distributed = require_distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if not isinstance(scheduler, str) or not scheduler:
        raise ValueError(f"scheduler={scheduler!r} must be a distributed.Client, an address like tcp://host:8786, or 'local'")
    if scheduler == "local":
        import os

        # processes: TCP bound to loopback only; threads: in-process transport, no socket at all
        where = {"host": "127.0.0.1"} if processes else {}
        with distributed.LocalCluster(
            n_workers=n_workers or os.cpu_count() or 1,
            threads_per_worker=threads_per_worker,
            processes=processes,
            dashboard_address=None,
            **where,
        ) as cluster, distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(scheduler, timeout="10s")
    except OSError as exc:
        raise ConnectionError(f"scheduler={scheduler!r}: cannot connect ({exc})") from None
    try:
        yield client
    finally:
        client.close()


def run_tasks(
    scheduler: Any,
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    n_workers: int | None = None,
    processes: bool = True,
) -> Iterator[tuple[int, Any]]:
    """Run ``fn(item)`` for each item as Dask tasks; yield ``(position, result)`` as each completes.

    The first task that raises re-raises here (remaining tasks are cancelled).
    Tasks are submitted with ``pure=False`` so equal items still run.
    """
    distributed = require_distributed()
    with get_client(scheduler, n_workers=n_workers, processes=processes) as client:
        futures = [client.submit(fn, item, pure=False) for item in items]
        position = {f.key: i for i, f in enumerate(futures)}
        try:
            for fut in distributed.as_completed(futures):
                yield position[fut.key], fut.result()
        finally:
            client.cancel([f for f in futures if not f.done()])
