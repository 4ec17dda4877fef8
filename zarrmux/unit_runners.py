"""Running the units of a conversion: a process pool, or Dask tasks.

Each runner yields :class:`~zarrmux.convert_units.UnitResult` objects as
units finish, in any order; the coordinator (:mod:`zarrmux.conversion`)
commits them in plan order.  (One unit after another in the coordinator's
own process needs no runner.)

Pool workers watch a pipe only the coordinator can write: when it is gone
(even ``kill -9``) they exit at once, and the forkserver and the resource
tracker follow (:func:`_worker_init`).  They share the writer lock, so a new
writer never overlaps an orphaned worker.  Dask lives in
:mod:`zarrmux.distributed`, imported only when ``scheduler=`` is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from .convert_units import UnitResult, UnitTask, convert_unit
from .writer_lock import InheritedFd, StoreIOError, WriterLock

__all__ = ["run_pool", "run_dask"]


def _worker_init(alive: InheritedFd, lock: InheritedFd | None) -> None:
    """Initializer of a pool worker: exit as soon as the coordinator is gone.

    ``alive`` is the read end of a pipe whose only write end the coordinator
    holds: a daemon thread blocks reading it and, at EOF (the coordinator
    exited or was killed, even by ``kill -9``), ends the worker at once.  So no
    worker outlives its coordinator, and once the workers are gone the
    forkserver and multiprocessing's resource tracker (kept alive only by
    descriptors the workers hold) exit too.  Holding ``lock`` (the
    coordinator's writer lock descriptor) keeps the destination locked until
    the last worker has exited, so a new writer never overlaps an orphan.
    """
    import threading

    global _HELD_LOCK
    _HELD_LOCK = lock  # keep the descriptor open for the life of the worker

    def watch() -> None:
        try:
            while os.read(alive.fd, 1):
                pass
        except OSError:
            pass
        os._exit(70)  # the coordinator is gone: stop now, its uncommitted data is trimmed by the next run

    threading.Thread(target=watch, name="zarrmux-parent-watch", daemon=True).start()


_HELD_LOCK: InheritedFd | None = None


def run_pool(tasks: Sequence[UnitTask], workers: int, lock: WriterLock | None = None) -> Iterator[UnitResult]:
    """Run ``tasks`` in ``workers`` processes, yielding each result as its unit finishes.

    A worker that dies (a signal, the out-of-memory killer) is a
    :class:`~zarrmux.writer_lock.StoreIOError`; on any error or interrupt,
    queued units are dropped and running ones waited for before this returns.
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing.context import BaseContext

    # zarr's async machinery is not fork-safe: a forkserver that has only *imported* zarr is.
    ctx: BaseContext
    try:
        forkserver = mp.get_context("forkserver")
        forkserver.set_forkserver_preload(["zarrmux.unit_runners"])
        ctx = forkserver
    except ValueError:  # pragma: no cover - platforms without forkserver
        ctx = mp.get_context("spawn")
    alive_r, alive_w = os.pipe()  # workers watch alive_r; only this process holds alive_w
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_worker_init,
        initargs=(InheritedFd(alive_r), lock.share() if lock is not None else None),
    )
    ok = False
    try:
        pending = {pool.submit(convert_unit, t) for t in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                try:
                    result = f.result()
                except BrokenProcessPool:
                    raise StoreIOError(
                        f"a worker process converting into {tasks[0].dest} died unexpectedly (killed by a signal, "
                        "e.g. the out-of-memory killer, or crashed); committed entries are kept and the store stays "
                        "valid, rerun the same command to resume"
                    ) from None
                yield result
        ok = True
    finally:
        # on error or interrupt: drop queued units and wait for running ones, so
        # nobody writes after the coordinator trims uncommitted data
        pool.shutdown(wait=True, cancel_futures=not ok)
        os.close(alive_w)
        os.close(alive_r)


def run_dask(
    tasks: Sequence[UnitTask], scheduler: Any, workers: int, connect_timeout: float | None = None
) -> Iterator[UnitResult]:
    """Run ``tasks`` as Dask tasks on ``scheduler`` (:func:`zarrmux.distributed.run_tasks`), yielding results.

    ``connect_timeout``: seconds to reach a scheduler address (None: the default, 10).
    """
    from . import distributed

    for _, result in distributed.run_tasks(scheduler, convert_unit, tasks, n_workers=workers, timeout=connect_timeout):
        yield result
