"""The native batched sampler: :class:`WindowSampler`.

Structure: *plan slice -> pure read function -> batch*.  A
:class:`~zarrmux.plan.WindowPlan` decides the windows of every batch
(cheap, in the consumer's thread); :func:`~zarrmux.batch_reading.read_block`
reads one batch with one :meth:`Corpus.read_windows` call (each key gathered
for the whole batch at once); with ``prefetch > 0`` background threads run
it ahead of the consumer when that pays (always for a remote store; for a
local one when the consumer works between batches; see
:mod:`zarrmux.batch_reading`), and the batches come out in plan order.  So the
sequence of windows depends on the seed only, never on prefetch depth,
threads or cache size; rank ``r`` of ``world_size`` ``R`` takes global
batches ``r, r + R, ...`` of the one global stream
(:mod:`zarrmux.global_stream`), so the ranks together see exactly the
batches one process would.

Memory: decoded chunks held are bounded by the corpus's ``cache_bytes``
(default 16 MiB, :data:`zarrmux.chunk_cache.DEFAULT_CACHE_BYTES`), plus at most
``prefetch + 1`` batches (in flight and being consumed) plus the chunks one
read per thread has in hand.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .adaptive import AdaptiveStats
from .batch_reading import (
    DEFAULT_BATCHES_PER_TASK, DEFAULT_PREFETCH, DEFAULT_REMOTE_PREFETCH, DEFAULT_REMOTE_THREADS, DEFAULT_THREADS,
    BlockReader, read_block, read_in_order, reading_defaults,
)
from .epoch_view import EpochView
from .exceptions import ClosedError
from .global_stream import (
    SAMPLER_FORMAT, Cursor, GlobalStream, RankStream, Step, parse_position_state, position_state,
)
from .params import REQUIRED, check_int, required
from .plan import WindowPlan
from .stats import LoaderStats, StatsRecorder

if TYPE_CHECKING:
    from .corpus import Corpus

#: what is worth knowing but not an error (entries skipped)
log = logging.getLogger("zarrmux")

__all__ = [
    "WindowSampler",
    "EpochView",
    "read_block",
    "DEFAULT_PREFETCH",
    "DEFAULT_THREADS",
    "DEFAULT_REMOTE_PREFETCH",
    "DEFAULT_REMOTE_THREADS",
    "DEFAULT_BATCHES_PER_TASK",
]

class WindowSampler:
    """Batches of random contiguous windows from a corpus: ``{key: array (batch_size, n, ...)}``.

    Parameters
    ----------
    corpus : zarrmux.Corpus, or a path / URL
        A path or URL is opened with :func:`zarrmux.open_corpus` (``keys``,
        ``cache_bytes``).
    n : int > 0
        Rows per window.
    batch_size : int > 0
        Windows per batch.
    n_active : int > 0, or None for mode='sequential'
        Entries active at a time.  Required in every mode but 'sequential'
        (which visits entries in order and ignores it): ``None`` there raises
        :class:`~zarrmux.exceptions.PescadorError` naming the mode.
    rate : float > 0 or None
        Expected windows per activation (``StochasticMux`` semantics).
    weights : array-like of float >= 0, one per entry, or None
        Long-run proportion of windows of each entry.
    mode : {'with_replacement', 'single_active', 'exhaustive', 'sequential'}
        See :mod:`zarrmux.plan`; 'sequential' visits every window position
        (every ``hop`` rows) of every entry once, in order.
    dist : {'binomial', 'poisson', 'constant'}
        Distribution of the per-activation quota.
    seed : int >= 0 or None
        ``None`` draws one (kept in :meth:`state_dict`).
    keys : sequence of str, optional
        Keys to read (default: every key).
    prefetch : int >= 0 or None
        Batches read ahead in background threads; 0 reads in the consumer's
        thread.  Default :data:`DEFAULT_PREFETCH` (4), or
        :data:`DEFAULT_REMOTE_PREFETCH` (32) for a remote store (a URL other
        than ``file://``, or a store object other than a ``LocalStore``).
        Prefetch adapts (:mod:`zarrmux.adaptive`): it reads in the
        consumer's thread while the consumer takes batches as fast as they
        come, and runs ahead when the consumer works between batches or,
        for a remote store, while reads send requests; so it is never
        slower than ``prefetch=0`` (``tools/bench_sampler.py``,
        ``tools/bench_prefetch.py`` and ``tools/bench_latency.py`` compare
        them); :attr:`prefetch_stats` tells what it did.  With ``scheduler``: Dask tasks in flight
        (default 4; 0 counts as 1).
    threads : int > 0 or None
        Reading threads when reading ahead (default 1 for a local corpus,
        ``min(prefetch, 16)`` (:data:`DEFAULT_REMOTE_THREADS`) for a remote
        one).  Reading a local corpus is mostly CPU work under the GIL, so
        more threads only help high-latency stores (HTTP, object stores),
        where each thread waits for its own batch's round trips; the disk
        reads of a cold local corpus overlap anyway (the shards a batch needs
        are mapped concurrently).
    cache_bytes : int >= 0 or None
        Decoded-chunk budget when ``corpus`` is a path (default 16 MiB).
    rank, world_size : int
        This rank takes global batches ``rank, rank + world_size, ...`` of
        each epoch (see :mod:`zarrmux.global_stream`).  Every rank yields the
        same number of batches per epoch, ``ceil(G / world_size)`` of an
        epoch of ``G`` global batches: the ranks past the end of the last,
        incomplete round take the epoch's first batches again (as
        ``DistributedSampler`` pads); ``drop_last=True`` drops that round.
    epoch_batches : int > 0 or None
        *Global* batches per epoch in 'with_replacement' / 'single_active'
        modes, whatever ``world_size`` (default: about one pass over the
        rows, ``ceil(eligible rows / (n * batch_size))``).
    max_iter : int > 0 or None
        Iterating yields ``max_iter`` batches of this rank (crossing epochs
        as needed); ``None``: see ``epochs``.
    epochs : int > 0 or None
        Without ``max_iter``, iterating yields the rest of the current epoch
        and ``epochs - 1`` more (default 1); ``None``: endless, as
        pescador's ``mux(max_iter=None)``.
    hop : int > 0 or None
        Step between window starts in 'sequential' mode (default ``n``).
    drop_last : bool
        Drop the short last batch of an 'exhaustive' or 'sequential' epoch,
        and with several ranks the epoch's last incomplete round.
    scheduler : distributed.Client, str or None
        Read on dask.distributed (``pip install 'zarrmux[dask]'``): a
        ``Client`` (left open), a scheduler address ``'tcp://host:8786'`` or
        ``'local'`` (a ``LocalCluster`` of worker processes on 127.0.0.1,
        closed with the sampler).  Workers open the corpus themselves from its
        path or URL (once per worker process) and each task reads
        ``batches_per_task`` whole batches; the task graph holds the path,
        options and the plan slice only.  The batches are the same as without
        Dask.  ``corpus`` must be a path/URL or a Corpus opened from one.
    batches_per_task : int > 0 or None
        Batches read by one Dask task (default :data:`DEFAULT_BATCHES_PER_TASK`).
    connect_timeout : float > 0 or None
        Seconds to wait for a scheduler address before raising
        :class:`zarrmux.distributed.SchedulerError` (default
        :data:`zarrmux.distributed.DEFAULT_CONNECT_TIMEOUT`, 10).

    Notes
    -----
    ``for batch in sampler`` runs the rest of the current epoch (or
    ``max_iter`` batches), so ``for epoch in range(E): for batch in sampler``
    runs ``E`` epochs; ``epochs=None`` never ends.  ``len(sampler)`` is this
    rank's batches of an epoch (times ``epochs``; or ``max_iter``).  :meth:`state_dict` reflects the
    batches the consumer has received (batches read ahead are not counted),
    and :meth:`load_state_dict` on a new sampler, of any rank and world
    size, continues with exactly the batches that would have come next.
    :meth:`epoch_view` gives an epoch's batches by index.

    Which entries a rank's windows come from is not a partition of the
    corpus: every rank plans the one global stream (a small seeded plan, no
    I/O) and reads its own batches of it.  The windows are random anyway,
    so this costs nothing in coverage, and it is what makes the batches
    independent of the number of ranks and workers.
    """

    def __init__(
        self,
        corpus: Any,
        n: int,
        *,
        batch_size: int,
        n_active: int | None = REQUIRED,  # type: ignore[assignment]  # a sentinel that help() shows as required
        rate: float | None = 16.0,
        weights: Any = None,
        mode: str = "with_replacement",
        dist: str = "binomial",
        seed: int | None = None,
        keys: Sequence[str] | str | None = None,
        prefetch: int | None = None,
        threads: int | None = None,
        cache_bytes: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        epoch_batches: int | None = None,
        max_iter: int | None = None,
        epochs: int | None = 1,
        hop: int | None = None,
        drop_last: bool = False,
        scheduler: Any = None,
        batches_per_task: int | None = None,
        connect_timeout: float | None = None,
        close_corpus: bool | None = None,
    ) -> None:
        prefetch = check_int("prefetch", prefetch, minimum=0, none=True)
        batches_per_task = check_int("batches_per_task", batches_per_task, minimum=1, none=True)
        threads = check_int("threads", threads, minimum=1, none=True)
        max_iter = check_int("max_iter", max_iter, minimum=1, none=True)
        epochs = check_int("epochs", epochs, minimum=1, none=True)  # None: endless
        n = check_int("n", n, minimum=1)
        world_size = check_int("world_size", world_size, minimum=1)
        rank = check_int("rank", rank, minimum=0, maximum=world_size - 1)
        if isinstance(keys, str):
            keys = (keys,)
        self._owns_corpus = bool(close_corpus)
        if not hasattr(corpus, "read_windows"):
            from .corpus import open_corpus

            corpus = open_corpus(corpus, keys=keys, cache_bytes=cache_bytes)
            self._owns_corpus = close_corpus is None or close_corpus
        self.corpus: Corpus = corpus
        if keys is not None:
            keys = corpus.check_keys(keys)
        self.keys: tuple[str, ...] = tuple(keys) if keys is not None else tuple(corpus.keys)
        self.n = n
        self.batch_size = batch_size
        from .corpus import is_remote

        remote = scheduler is None and is_remote(getattr(corpus, "path", ""))
        self._remote = remote
        #: timings and decisions of the adaptive prefetch of the last iteration (local corpora)
        self.prefetch_stats: AdaptiveStats | None = None
        self._recorder = StatsRecorder(getattr(corpus, "io_counters", None))
        self.prefetch, self.threads, self.batches_per_task = reading_defaults(
            prefetch, threads, batches_per_task, remote=remote
        )
        self.max_iter = max_iter
        self.epochs = epochs
        self._seed_given = seed
        #: the global stream's plan (world_size=1: ranks take batches of it, see global_stream)
        try:
            self.plan = WindowPlan(
                corpus.rows,
                n,
                batch_size=batch_size,
                n_active=required(n_active),
                rate=rate,
                weights=weights,
                mode=mode,
                dist=dist,
                seed=seed,
                epoch_batches=epoch_batches,
                hop=hop,
                drop_last=drop_last,
            )
            self._global = GlobalStream(self.plan)
            self._ranks = RankStream(self._global, rank, world_size)
            if self.plan.n_short:
                short = np.flatnonzero(np.asarray(corpus.rows) < n)
                names = corpus.names
                shown = ", ".join(repr(names[i]) for i in short[:10].tolist())
                log.info(
                    "%d of %d entries have fewer than n=%d rows and are skipped: %s%s",
                    len(short), len(names), n, shown, ", ..." if len(short) > 10 else "",
                )
        except BaseException:
            if self._owns_corpus:
                corpus.close()
            raise
        #: (reader, readers): this sampler yields the rank's batches reader, reader + readers, ...
        #: (see :meth:`split_for_worker`)
        self._worker = (0, 1)
        #: what the consumer has received: the global plan state at the position reached
        self._state = self.plan.state_dict()
        self._iter_ref: weakref.ReferenceType[Any] | None = None
        self._closed = False
        #: the Dask connection (``scheduler``), its tasks stream while iterating
        self._dask: Any = None
        self._stream: Any = None
        if scheduler is not None:
            from . import distributed  # the install hint if dask is missing

            try:
                self._spec = distributed.corpus_spec(corpus)
                self._dask = distributed.connect(scheduler, timeout=connect_timeout)
            except BaseException:
                if self._owns_corpus:
                    corpus.close()
                raise

    # ------------------------------------------------------------------ plan
    @property
    def seed(self) -> int:
        return int(self._state["seed"])

    @property
    def epoch(self) -> int:
        """The epoch the next batch belongs to."""
        return int(self._state["epoch"])

    @property
    def position(self) -> int:
        """The global position in the epoch: the global batches all ranks have taken together."""
        return int(self._state["batch"])

    def _steps(self, max_iter: int | None, epochs: int | None, cursor: Cursor | None = None) -> Iterator[Step]:
        return self._ranks.steps(self.epoch, self.position, max_steps=max_iter, epochs=epochs,
                                 worker=self._worker[0], num_workers=self._worker[1], cursor=cursor)

    def windows(self, max_iter: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The ``(entries, starts)`` of the batches iteration would yield next, without reading.

        Does not advance the sampler.  ``max_iter`` as in the constructor
        (default: the sampler's ``max_iter``).
        """
        limit = self.max_iter if max_iter is None else max_iter
        for step in self._steps(limit, self.epochs):
            yield step.entries, step.starts

    def __len__(self) -> int:
        """Batches an iteration yields: ``max_iter``, or this rank's batches of a whole epoch
        (the current one; the same on every rank) times ``epochs``.  An iteration
        resumed mid-epoch yields the rest of the epoch, fewer.

        Raises ``TypeError`` for an endless sampler (``epochs=None``, no ``max_iter``).
        """
        if self.max_iter is not None:
            return self.max_iter
        if self.epochs is None:
            raise TypeError("an endless WindowSampler (epochs=None) has no length")
        return sum(self._ranks.remaining(self.epoch + i, 0) for i in range(self.epochs))

    def batches_per_epoch(self, epoch: int | None = None) -> int:
        """Batches this rank yields in a whole ``epoch`` (default: the current one); the same on every rank."""
        return self._ranks.remaining(self.epoch if epoch is None else epoch, 0)

    def epoch_view(self, epoch: int | None = None) -> EpochView:
        """This rank's batches of ``epoch`` (default: the current one) by index: a map-style view
        (``len(view)``, ``view[i]``) for frameworks that index a data source.  See :class:`EpochView`."""
        return EpochView(self, self.epoch if epoch is None else epoch)

    def batch_windows(self, epoch: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``(entries, starts)`` of this rank's batch ``i >= 0`` of ``epoch`` (see :class:`EpochView`)."""
        blk = self._global.block(epoch, self._ranks.global_index(epoch, i))
        return blk.entries, blk.starts

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        """The batches of the rest of the current epoch (``epochs`` epochs; or ``max_iter`` batches), in order.

        Starting a new iteration stops the previous one.  Raises
        :class:`~zarrmux.exceptions.PescadorError` if the sampler is closed.
        """
        if self._closed:
            raise ClosedError("the WindowSampler is closed")
        self._stop_iteration()
        it = self._iterate()
        self._iter_ref = weakref.ref(it)
        return it

    def _iterate(self) -> Iterator[dict[str, np.ndarray]]:
        depth = None
        if self._dask is not None:
            depth = lambda: len(self._stream.pending) if self._stream is not None else 0  # noqa: E731
        return self._recorder.delivered(self._batches(), depth=depth)

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        cursor = Cursor(self._state)
        steps = self._steps(self.max_iter, self.epochs, cursor)
        if self._dask is not None:
            from .distributed import TaskStream

            stream = TaskStream(
                self._dask.client,
                self._spec,
                self.n,
                self.keys,
                steps,
                depth=max(1, self.prefetch),
                batches_per_task=self.batches_per_task,
            )
            self._stream = stream
            try:
                for step, batch in stream:
                    self._state = step.after
                    yield batch
            finally:
                stream.close()
                self._stream = None
        else:
            reader = self._recorder.timed(BlockReader(self.corpus, self.n, self.keys))
            sends = self._requests_sent if self._remote else None
            pairs, stats = read_in_order(reader, steps, prefetch=self.prefetch, threads=self.threads, sends=sends)
            if stats is not None:
                self.prefetch_stats = stats
            for step, batch in pairs:
                self._state = step.after
                yield batch
        # every planned batch was consumed: the pass may have moved on past batches it
        # did not yield (another reader's, an epoch's dropped end); that is where we are
        self._state = cursor.state

    def _requests_sent(self) -> int:
        return self.corpus.io_counters()["requests"]

    # ------------------------------------------------------------------ statistics
    def stats(self) -> LoaderStats:
        """What this sampler delivered since it was made (or :meth:`reset_stats`), and where the time went.

        Batches and windows handed to the consumer, bytes and requests fetched
        from storage, decoded-chunk hits, time spent reading against time the
        consumer waited or worked, and the prefetch queue depth (see
        :mod:`zarrmux.stats`; ``print(sampler.stats())`` shows a table with a
        verdict of what bounds the throughput).  Counting costs a few clock
        reads per batch and is always on.
        """
        return self._recorder.snapshot()

    def reset_stats(self) -> None:
        """Count from zero, e.g. at the start of an epoch."""
        self._recorder.reset()

    def _stop_iteration(self) -> None:
        ref, self._iter_ref = self._iter_ref, None
        it = ref() if ref is not None else None
        if it is not None:
            it.close()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Where the consumer is: a small JSON-serialisable dict, the same on every rank in lockstep.

        ``epoch`` and ``position`` (the global batches of the epoch every rank
        has taken: ``k * world_size`` after ``k`` batches per rank), the plan
        state there (``plan``: seed, fingerprint of the corpus and parameters,
        the active entries and quotas), and who saved it (``saved_by``, for
        information only).  It loads on any rank of any world size.
        """
        return position_state(SAMPLER_FORMAT, self._state, rank=self._ranks.rank, world_size=self._ranks.world_size)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict` of a sampler, or of a
        :class:`zarrmux.torch.WindowDataset`, over the same corpus with the same parameters
        and seed; saved by any rank, world size or number of DataLoader workers).

        This rank ``r`` of ``R`` continues with global batch ``position + r``.

        Raises
        ------
        PescadorError
            If the state is malformed, or from another configuration, corpus or seed.
        """
        plan_state = parse_position_state(state)
        self.load_plan_state(plan_state)

    @property
    def plan_state(self) -> dict[str, Any]:
        """The plan part of :meth:`state_dict`: the global plan state at the position reached."""
        return self._state

    def load_plan_state(self, plan_state: dict[str, Any]) -> None:
        """Continue from a plan state (:attr:`plan_state`, or ``state_dict()["plan"]``) of this run."""
        self._stop_iteration()
        cursor = self.plan.copy()
        cursor.load_state_dict(plan_state, check_seed=self._seed_given)
        if cursor.seed != self._global.seed:
            self._set_stream(cursor)
        self._global.add_state(plan_state)
        self._state = cursor.state_dict()

    def split_for_worker(self, worker: int, num_workers: int) -> None:
        """Yield only batches ``worker, worker + num_workers, ...`` of this rank's stream.

        For a reader among several (DataLoader workers): taken in turn, the
        readers' batches are the rank's stream, in order.
        """
        num_workers = check_int("num_workers", num_workers, minimum=1)
        self._worker = (check_int("worker", worker, minimum=0, maximum=num_workers - 1), num_workers)

    def _set_stream(self, plan: WindowPlan) -> None:
        self.plan = plan
        self._global = GlobalStream(plan)
        self._ranks = RankStream(self._global, self._ranks.rank, self._ranks.world_size)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Stop any running iteration (threads joined, Dask tasks in flight cancelled); close the
        corpus if the sampler opened it, and the Dask client / ``'local'`` cluster it started.

        Returns promptly even with remote reads in flight against a server
        that does not answer: a corpus the sampler opened has them interrupted
        first (see :mod:`zarrmux.remote_io`), which may also be done from
        another thread while one iterates."""
        close_corpus = not self._closed and self._owns_corpus
        if close_corpus and self._remote:  # first: cancels the remote reads in flight and refuses new ones
            self.corpus.close()
        try:
            self._stop_iteration()
        except ValueError:  # iterating in another thread right now: its reads fail, and it ends there
            pass
        if self._dask is not None:
            self._dask.close()
        if close_corpus and not self._remote:  # local: after the reading threads stopped using its maps
            self.corpus.close()
        self._closed = True

    def __enter__(self) -> "WindowSampler":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        p = self.plan
        return (
            f"<zarrmux.WindowSampler n={self.n} batch_size={self.batch_size} mode={p.mode!r} "
            f"n_active={p.n_active} rate={p.rate} entries={len(p.share)} rank={self._ranks.rank}/{self._ranks.world_size} "
            f"epoch={self.epoch} position={self.position} prefetch={self.prefetch}"
            + ("" if self._dask is None else f" scheduler={self._dask.client.scheduler.address!r}")
            + ">"
        )

