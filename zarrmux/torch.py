"""PyTorch integration: :class:`WindowDataset` and :class:`WindowLoader`.

Imported only when used (``import zarrmux.torch``); ``import zarrmux`` never
imports torch.  Install with ``pip install 'zarrmux[torch]'``.

::

    from zarrmux.torch import WindowDataset, WindowLoader

    ds = WindowDataset("songs.zarr", 16, batch_size=32, n_active=32, rate=16, seed=0)
    loader = WindowLoader(ds, num_workers=2)          # a DataLoader(ds, batch_size=None, ...)
    for batch in loader:                              # {"X": tensor (32, 16, 128), "Y": tensor (32, 16)}
        ...
        ckpt = {"data": loader.state_dict(), ...}     # exact, mid-epoch; resumes on any ranks / workers

Ranks and workers
-----------------
There is one global batch stream (:mod:`zarrmux.global_stream`): for a
corpus, parameters and seed, global batch ``g`` of an epoch is fixed.  Rank
``r`` of ``world_size`` ``R`` takes global batches ``r, r + R, ...``, and
DataLoader worker ``w`` of ``W`` takes the rank's batches ``w, w + W, ...``,
so the DataLoader's in-order round robin over its workers yields exactly the
rank's sequence, whatever ``num_workers``.  Each reader (the training
process with ``num_workers=0``, or each worker) builds its own
:class:`~zarrmux.WindowSampler` and opens the corpus itself (nothing is
inherited across fork); every worker plans the whole global stream (tens of
microseconds per batch) and reads only its own batches.

Position and checkpoints
------------------------
A position is where all ranks are together in the global stream: epoch
``e`` and global position ``p`` (``k * R`` once each rank took ``k``
batches of the epoch), with the plan state there.  With ``num_workers=0``
the dataset iterates in the training process and follows its position
itself; with workers, :class:`WindowLoader` counts the batches it delivers
and the position follows from that count (batches the workers read ahead
but did not deliver are read again after a restore).
:meth:`WindowDataset.load_state_dict` accepts a state saved by any rank of
any world size with any ``num_workers``; rank ``r`` continues with global
batch ``p + r``.

With a plain ``DataLoader(ds, batch_size=None, num_workers=K>0)`` (not
persistent) every pass starts again from the dataset's position in the
training process, which does not move: call :meth:`WindowDataset.set_epoch`
at the start of every epoch, as with ``DistributedSampler``, or use
:class:`WindowLoader`.

Layout: the position (:mod:`zarrmux.dataset_position`), how each process
makes its sampler (:mod:`zarrmux.sampler_recipe`) and which share it reads
(:mod:`zarrmux.torch_ranks`) live apart; statistics of the workers are summed
through :class:`zarrmux.stats.StatsBoard`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

try:
    import torch
    from torch.utils.data import DataLoader, Dataset, IterableDataset
except ImportError as _exc:  # pragma: no cover - exercised only without torch
    raise ImportError(
        f"zarrmux.torch needs PyTorch ({_exc}); install it with: pip install 'zarrmux[torch]'"
    ) from _exc

import numpy as np

from .dataset_position import DatasetPosition
from .exceptions import ConfigError
from .global_stream import DATASET_FORMAT, parse_position_state, position_state
from .params import REQUIRED, check_int, required
from .plan import WindowPlan
from .plan_streams import fresh_seed
from .sampler_recipe import WORKER_PREFETCH, SamplerRecipe
from .stats import LoaderStats, StatsBoard, StatsRecorder, with_reading
from .torch_ranks import rank_and_world, worker_share

__all__ = ["WindowDataset", "WindowLoader", "EpochDataset", "STATE_FORMAT", "WORKER_PREFETCH"]

STATE_FORMAT = DATASET_FORMAT


def _to_tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    # read_windows returns fresh, writeable, C-contiguous arrays: from_numpy shares their memory
    return {k: torch.from_numpy(v) for k, v in batch.items()}


class WindowDataset(IterableDataset):  # type: ignore[type-arg]
    """An ``IterableDataset`` of :class:`~zarrmux.WindowSampler` batches as tensors.

    Use it with ``DataLoader(dataset, batch_size=None, ...)`` or, for exact
    checkpoints with workers, :class:`WindowLoader`.  Each item is
    ``{key: torch.Tensor (batch_size, n, ...)}``.  ``len(dataset)`` is the
    number of batches of a pass: this rank's batches of a whole epoch (the
    same on every rank) times ``epochs``, or ``max_iter``; a pass resumed
    mid-epoch yields the rest of the epoch, fewer.

    Parameters
    ----------
    path_or_url : str or os.PathLike or zarrmux.Corpus
        The corpus (a :class:`~zarrmux.Corpus` is reduced to its path and
        options; every reader opens its own).
    n : int > 0
        Rows per window.
    batch_size, n_active, rate, weights, mode, dist, hop, drop_last
        The sampling: see :class:`~zarrmux.WindowSampler` (``batch_size`` is
        required; ``n_active`` in every mode but 'sequential').
    keys, prefetch, threads, cache_bytes
        The reading: see :class:`~zarrmux.WindowSampler` (``prefetch``
        defaults to 4 in the training process, :data:`WORKER_PREFETCH` in a
        DataLoader worker).
    rank, world_size : int or None
        This process takes global batches ``rank, rank + world_size, ...``.
        ``None``: taken from ``torch.distributed`` when it is initialised
        (when the dataset is constructed), else 0 and 1.
    seed : int >= 0 or None
        ``None`` draws one now, so all workers agree (kept in the state; use
        the same seed on every rank).
    epoch_batches : int > 0 or None
        *Global* batches per epoch (modes 'with_replacement' and
        'single_active'), whatever the world size; each rank yields
        ``ceil(epoch_batches / world_size)``.  Default: about one pass over
        the rows, as in :class:`~zarrmux.WindowSampler`.
    max_iter : int > 0 or None
        A pass yields ``max_iter`` batches of this rank (crossing epochs);
        ``None``: see ``epochs``.
    epochs : int > 0 or None
        Without ``max_iter``, a pass yields the rest of the current epoch and
        ``epochs - 1`` more (default 1); ``None``: endless.
    storage_options : dict, optional
        For fsspec URLs.

    Raises
    ------
    PescadorError
        For invalid options (checked here, against the corpus's row counts).
    CorpusError
        If the corpus cannot be opened.
    """

    def __init__(
        self,
        path_or_url: Any,
        n: int,
        *,
        batch_size: int,
        n_active: int | None = REQUIRED,  # type: ignore[assignment]  # a sentinel that help() shows as required
        rate: float | None = 16.0,
        weights: Any = None,
        mode: str = "with_replacement",
        dist: str = "binomial",
        hop: int | None = None,
        drop_last: bool = False,
        keys: Sequence[str] | str | None = None,
        prefetch: int | None = None,
        threads: int | None = None,
        cache_bytes: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        seed: int | None = None,
        epoch_batches: int | None = None,
        max_iter: int | None = None,
        epochs: int | None = 1,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        options: dict[str, Any] = dict(
            batch_size=batch_size, n_active=required(n_active), rate=rate, weights=weights, mode=mode, dist=dist,
            hop=hop, drop_last=drop_last,
        )
        for name, value in (("keys", keys), ("prefetch", prefetch), ("threads", threads), ("cache_bytes", cache_bytes)):
            if value is not None:  # left to the sampler's (or the worker's) default
                options[name] = value
        self._recipe = SamplerRecipe(path_or_url, options, storage_options)
        plan_opts = self._recipe.plan_opts
        self.n = n
        self.rank, self.world_size = rank_and_world(rank, world_size)
        self._seed_given = seed
        if seed is None:
            seed = fresh_seed()
        self.seed = seed
        epoch_batches = check_int("epoch_batches", epoch_batches, minimum=1, none=True)
        max_iter = check_int("max_iter", max_iter, minimum=1, none=True)
        epochs = check_int("epochs", epochs, minimum=1, none=True)
        self.max_iter = max_iter
        self.epochs = epochs
        # Read the row counts once (metadata only) and close: no handle is kept.
        self.rows, self.keys = self._recipe.rows_and_keys()
        self.mode = plan_opts.get("mode", "with_replacement")
        self.epoch_batches = epoch_batches if self.mode in ("with_replacement", "single_active") else None
        # the global stream's plan; validates everything (warns once about short entries)
        plan = WindowPlan(self.rows, n, seed=seed, epoch_batches=self.epoch_batches, **plan_opts)
        self.epoch_batches = plan.epoch_batches
        #: the position: where the next pass starts (checks rank / world_size against the epoch)
        self._position = DatasetPosition(plan, self.rank, self.world_size, max_iter, epochs)
        self._local: tuple[int, Any] | None = None  # (pid, WindowSampler) of in-process iteration
        self._board: StatsBoard | None = None  # where DataLoader workers publish their statistics

    @property
    def path(self) -> Any:
        """The corpus's path or URL (every reader opens its own)."""
        return self._recipe.path

    @property
    def entries(self) -> tuple[str, ...] | None:
        """The entry names of a corpus view, or None for every entry."""
        return self._recipe.entries

    @property
    def storage_options(self) -> dict[str, Any] | None:
        """For fsspec URLs."""
        return self._recipe.storage_options

    def __len__(self) -> int:
        """Batches of a pass (see the class notes); ``TypeError`` if endless."""
        return self._position.pass_length()

    def _sampler(self, in_worker: bool) -> Any:
        return self._recipe.sampler(self.n, in_worker, seed=self.seed, rank=self.rank, world_size=self.world_size,
                                    epoch_batches=self.epoch_batches, max_iter=self.max_iter, epochs=self.epochs)

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        """This process's share of one pass, as batches of tensors.

        In the training process (``num_workers=0``) the whole pass; in
        DataLoader worker ``w`` of ``W``, the pass's batches ``w, w + W, ...``.
        """
        share = worker_share()
        if share is None:
            return self._iterate_local()
        return self._iterate_worker(*share)

    def _iterate_local(self) -> Iterator[dict[str, torch.Tensor]]:
        pos = self._position
        start = pos.resolve()
        pid = os.getpid()
        if self._local is None or self._local[0] != pid:
            self._local = (pid, self._sampler(False))
        sampler = self._local[1]
        sampler.load_plan_state(start)
        generation = pos.generation
        for batch in sampler:
            if pos.generation != generation:  # load_state_dict / set_epoch during the pass: stop
                return
            pos.state = sampler.plan_state
            yield _to_tensors(batch)
        if pos.generation == generation:
            pos.state = sampler.plan_state

    def _iterate_worker(self, w: int, k: int) -> Iterator[dict[str, torch.Tensor]]:
        sampler = self._sampler(True)
        board = self._board
        try:
            sampler.load_plan_state(self._position.state)
            sampler.split_for_worker(w, k)
            for batch in sampler:
                if board is not None:
                    board.publish(w, sampler.stats())
                yield _to_tensors(batch)
            # a full pass: a persistent worker's next pass continues from its end, as every worker's does
            self._position.state = sampler.plan_state
        finally:
            sampler.close()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The position after the batches received: small, JSON-serialisable, the same on every rank.

        Exact with ``num_workers=0`` and with :class:`WindowLoader`; after a
        plain multi-worker ``DataLoader`` it is the position that loader
        started from (see the module notes).  ``epoch``, ``position`` (global
        batches of the epoch all ranks took together), ``plan`` (the plan
        state there: seed, fingerprint, active entries and quotas),
        ``saved_by`` (for information).
        """
        return position_state(STATE_FORMAT, self._position.resolve(), rank=self.rank, world_size=self.world_size)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: from :meth:`state_dict` of a dataset (or a
        :class:`~zarrmux.WindowSampler`) over the same corpus with the same parameters and
        seed, saved by any rank of any world size with any ``num_workers``.

        Rank ``r`` continues with global batch ``position + r``.

        Raises
        ------
        PescadorError
            If the state is malformed or comes from another configuration, corpus or seed.
        """
        pos = self._position
        pos.load(parse_position_state(state), check_seed=self._seed_given)
        if pos.plan.seed != self.seed:
            self.seed = pos.plan.seed
            self._local = None

    def set_epoch(self, epoch: int) -> None:
        """Start the next pass at the beginning of ``epoch`` (as ``DistributedSampler.set_epoch``)."""
        self._position.set_epoch(check_int("epoch", epoch, minimum=0))

    @property
    def epoch(self) -> int:
        """The epoch of the next batch."""
        return int(self._position.resolve()["epoch"])

    def epoch_view(self, epoch: int | None = None) -> "EpochDataset":
        """This rank's batches of ``epoch`` (default: the current one) as a map-style ``Dataset``."""
        return EpochDataset(self, self.epoch if epoch is None else epoch)

    def stats(self) -> LoaderStats:
        """Statistics of in-process iteration (``num_workers=0``; see :meth:`WindowLoader.stats` with workers)."""
        return self._local[1].stats() if self._local is not None else LoaderStats()

    # ------------------------------------------------------------------ pickling (spawn workers)
    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)  # the position pickles resolved, without its pass
        d["_local"] = None
        return d

    def __repr__(self) -> str:
        return (
            f"<zarrmux.torch.WindowDataset {self.path!r} n={self.n} rank={self.rank}/{self.world_size} "
            f"seed={self.seed} {self._recipe.plan_opts}>"
        )


class EpochDataset(Dataset):  # type: ignore[type-arg]
    """One rank's batches of one epoch as a map-style ``Dataset``: ``len(ds)``, ``ds[i]`` (tensors).

    ``ds[i]`` is what iterating the epoch from its start yields ``i``-th (see
    :class:`zarrmux.sampler.EpochView` for the cost).  Each process opens the
    corpus itself on first use.  Use ``DataLoader(ds, batch_size=None, ...)``.
    """

    def __init__(self, dataset: WindowDataset, epoch: int) -> None:
        self.dataset, self.epoch = dataset, int(epoch)
        self._view: tuple[int, Any] | None = None

    def _get(self) -> Any:
        pid = os.getpid()
        if self._view is None or self._view[0] != pid:
            s = self.dataset._sampler(False)
            s.prefetch = 0
            s.load_plan_state(self.dataset._position.epoch_start(self.epoch))
            self._view = (pid, s.epoch_view(self.epoch))
        return self._view[1]

    def __len__(self) -> int:
        return self.dataset._position.epoch_length(self.epoch)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return _to_tensors(self._get()[i])

    def __getstate__(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "epoch": self.epoch, "_view": None}


class WindowLoader(DataLoader):  # type: ignore[type-arg]
    """``DataLoader(dataset, batch_size=None, ...)`` that keeps the dataset's position exact.

    It counts the batches it delivers, so :meth:`state_dict` (the
    dataset's) is exact mid-epoch with any ``num_workers``, and the next
    pass continues after the last delivered batch.  ``len(loader)`` is
    ``len(dataset)``.

    Parameters
    ----------
    dataset : WindowDataset
    **kwargs
        ``DataLoader`` options (``num_workers``, ``pin_memory``,
        ``prefetch_factor``, ``multiprocessing_context``, ``timeout``, ...).
        ``batch_size`` must be left out or ``None``; ``persistent_workers``
        and ``in_order=False`` are refused (positions would not be exact).
    """

    def __init__(self, dataset: WindowDataset, **kwargs: Any) -> None:
        if not isinstance(dataset, WindowDataset):
            raise ConfigError(f"WindowLoader needs a WindowDataset, not {type(dataset).__name__}")
        if kwargs.pop("batch_size", None) is not None:
            raise ConfigError("batches come from the WindowDataset (its batch_size): WindowLoader needs batch_size=None")
        if kwargs.get("persistent_workers"):
            raise ConfigError("WindowLoader does not support persistent_workers=True (positions would not be exact)")
        if kwargs.get("in_order") is False:
            raise ConfigError("WindowLoader needs in_order=True (the order of batches is what makes positions exact)")
        super().__init__(dataset, batch_size=None, **kwargs)
        self._recorder = StatsRecorder()
        self._stats_base = LoaderStats()

    def stats(self) -> LoaderStats:
        """What the loader delivered, and where the time went (see :mod:`zarrmux.stats`).

        Batches, windows and the time the training loop waited for batches or
        worked are measured here, in the training process; reading time,
        bytes fetched and decoded-chunk hits are the sums over the workers of
        the passes since :meth:`reset_stats` (or the dataset's own with
        ``num_workers=0``).
        """
        return with_reading(self._recorder.snapshot(), self._reading(), self._stats_base)

    def reset_stats(self) -> None:
        """Count from zero."""
        self._recorder.reset()
        self._stats_base = self._reading()

    def _reading(self) -> LoaderStats:
        """The reading statistics now: the dataset's own with ``num_workers=0``, else the workers' sum."""
        ds: WindowDataset = self.dataset  # type: ignore[assignment]
        if self.num_workers == 0:
            return ds.stats()
        return ds._board.total() if ds._board is not None else LoaderStats()

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        return self._recorder.delivered(self._iterate())

    def _iterate(self) -> Iterator[Any]:
        ds: WindowDataset = self.dataset  # type: ignore[assignment]
        if self.num_workers == 0:
            yield from super().__iter__()  # the dataset iterates here and follows its position itself
            return
        if ds._board is None or ds._board.workers != self.num_workers:
            ds._board = StatsBoard(self.num_workers, self.multiprocessing_context)
            self._stats_base = LoaderStats()
        pos = ds._position
        lp = pos.begin_pass()  # where the workers start (they are started below)
        for batch in super().__iter__():
            pos.count(lp)  # (not if load_state_dict / set_epoch moved the position meanwhile)
            yield batch
        pos.end_pass(lp)

    def state_dict(self) -> dict[str, Any]:
        """The dataset's :meth:`WindowDataset.state_dict`."""
        return self.dataset.state_dict()  # type: ignore[attr-defined,no-any-return]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The dataset's :meth:`WindowDataset.load_state_dict`."""
        self.dataset.load_state_dict(state)  # type: ignore[attr-defined]
