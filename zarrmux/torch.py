"""PyTorch integration: :class:`WindowDataset` and :class:`WindowLoader`.

Imported only when used (``import zarrmux.torch``); ``import zarrmux`` never
imports torch.  Install with ``pip install 'zarrmux[torch]'``.

::

    from zarrmux.torch import WindowDataset, WindowLoader

    ds = WindowDataset("songs.zarr", 16, batch_size=32, n_active=32, rate=16, seed=0)
    loader = WindowLoader(ds, num_workers=2)          # a DataLoader(ds, batch_size=None, ...)
    for batch in loader:                              # {"X": tensor (32, 16, 128), "Y": tensor (32, 16)}
        ...
        ckpt = {"data": loader.state_dict(), ...}     # exact, mid-epoch, any num_workers

Sharding
--------
A :class:`WindowDataset` holds only the corpus path, the sampler options and
its *position* (small integers); it never holds an open corpus that a
DataLoader worker could inherit.  Each reader (the training process itself
with ``num_workers=0``, or each DataLoader worker) builds its own
:class:`~zarrmux.WindowSampler` and opens the corpus itself, as the effective
rank ``rank * K + worker_id`` of ``world_size * K`` (``K = max(num_workers,
1)``).  The plan deals entries round-robin over effective ranks, so the
readers' shares are disjoint and no window is read by two workers; every
window depends on the seed, rank, world size and ``K`` only.
``epoch_batches`` and ``max_iter`` are per *rank* (the dataset yields the
same number of batches whatever ``num_workers``): they are split over the
workers (worker ``w`` gets ``q + (w < r)`` of ``divmod(total, K)``).

Position and checkpoints
------------------------
With ``num_workers=0`` the dataset iterates in the training process and
knows exactly which batches were received.  With workers it cannot see the
batches, so :class:`WindowLoader` (a ``DataLoader`` subclass) counts the
batches it delivers.  A DataLoader in order (``in_order=True``, the default)
interleaves its workers round-robin, skipping exhausted ones, so ``C``
batches delivered from known start positions determine each worker's
position: :meth:`WindowDataset.state_dict` replays the workers' *plans*
(no data is read) to find it.  Batches the workers read ahead but were not
delivered are simply read again after a restore.

A position taken mid-epoch resumes only with the same ``num_workers``; a
position at an epoch boundary (a fresh dataset, after ``set_epoch``, after
complete epochs) resumes with any ``num_workers``.

With a plain ``DataLoader(ds, batch_size=None, num_workers=K>0)`` (not
persistent) every pass starts again from the dataset's position in the
training process, which does not move: call :meth:`WindowDataset.set_epoch`
at the start of every epoch, as with ``DistributedSampler``, or use
:class:`WindowLoader`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

try:
    import torch
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info
except ImportError as _exc:  # pragma: no cover - exercised only without torch
    raise ImportError(
        f"zarrmux.torch needs PyTorch ({_exc}); install it with: pip install 'zarrmux[torch]'"
    ) from _exc

import numpy as np

from .exceptions import PescadorError
from .plan import WindowPlan

__all__ = ["WindowDataset", "WindowLoader", "STATE_FORMAT"]

STATE_FORMAT = "zarrmux.torch.WindowDataset/1"
_SAMPLER_FORMAT = "zarrmux.WindowSampler/1"
#: WindowSampler options a WindowDataset passes through
_PLAN_OPTIONS = ("batch_size", "n_active", "rate", "weights", "mode", "dist", "hop", "drop_last")
_READ_OPTIONS = ("keys", "prefetch", "threads", "cache_bytes")
#: read-ahead of the sampler inside a DataLoader worker (the DataLoader already prefetches across workers)
WORKER_PREFETCH = 1


def _split(total: int, k: int, w: int) -> int:
    q, r = divmod(total, k)
    return q + (1 if w < r else 0)


def _dist_rank_world() -> tuple[int, int] | None:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return None
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank()), int(dist.get_world_size())
    return None


def _after_block(remaining: int | None, state: dict[str, Any]) -> int | None:
    """A reader's batches left in the pass after it yielded a block that left it at ``state``."""
    if remaining is None:  # to the end of the epoch: a block that ends the epoch starts the next one
        return 0 if int(state["plan"]["batch"]) == 0 else None
    return remaining - 1


def _to_tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    # read_windows returns fresh, writeable, C-contiguous arrays: from_numpy shares their memory
    return {k: torch.from_numpy(v) for k, v in batch.items()}


class WindowDataset(IterableDataset):  # type: ignore[type-arg]
    """An ``IterableDataset`` of :class:`~zarrmux.WindowSampler` batches as tensors.

    Use it with ``DataLoader(dataset, batch_size=None, ...)`` or, for exact
    checkpoints with workers, :class:`WindowLoader`.  Each item is
    ``{key: torch.Tensor (batch_size, n, ...)}``.

    Parameters
    ----------
    path_or_url : str or os.PathLike or zarrmux.Corpus
        The corpus (a :class:`~zarrmux.Corpus` is reduced to its path and
        options; every reader opens its own).
    n : int > 0
        Rows per window.
    rank, world_size : int or None
        This process's share of the entries.  ``None``: taken from
        ``torch.distributed`` when it is initialised (when the dataset is
        constructed), else 0 and 1.
    seed : int >= 0 or None
        ``None`` draws one now, so all workers agree (kept in the state).
    epoch_batches : int > 0 or None
        Batches per epoch of this rank (modes 'with_replacement' and
        'single_active'); default: about one pass over the rows, as in
        :class:`~zarrmux.WindowSampler`.  Split over DataLoader workers.
    max_iter : int > 0 or None
        A pass yields ``max_iter`` batches (crossing epochs); ``None``: the
        rest of the current epoch.  Split over DataLoader workers.
    storage_options : dict, optional
        For fsspec URLs.
    **sampler_options
        ``batch_size`` (required), ``n_active``, ``rate``, ``weights``,
        ``mode``, ``dist``, ``hop``, ``drop_last``, ``keys``, ``prefetch``
        (default 4 in the training process, :data:`WORKER_PREFETCH` in a
        worker), ``threads``, ``cache_bytes``: see :class:`~zarrmux.WindowSampler`.

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
        rank: int | None = None,
        world_size: int | None = None,
        seed: int | None = None,
        epoch_batches: int | None = None,
        max_iter: int | None = None,
        storage_options: dict[str, Any] | None = None,
        **sampler_options: Any,
    ) -> None:
        super().__init__()
        unknown = set(sampler_options) - set(_PLAN_OPTIONS) - set(_READ_OPTIONS)
        if unknown:
            raise TypeError(f"WindowDataset got unexpected options {sorted(unknown)}")
        if "batch_size" not in sampler_options:
            raise TypeError("WindowDataset needs batch_size= (windows per batch)")
        if hasattr(path_or_url, "read_windows") and hasattr(path_or_url, "__getstate__"):
            st = path_or_url.__getstate__()  # a Corpus: keep how to reopen it, not the handle
            path_or_url = st["target"]
            sampler_options.setdefault("keys", st["keys"])
            sampler_options.setdefault("cache_bytes", st["cache_bytes"])
            storage_options = storage_options or st["storage_options"]
        if isinstance(path_or_url, os.PathLike):
            path_or_url = os.fspath(path_or_url)
        if isinstance(sampler_options.get("keys"), str):
            sampler_options["keys"] = (sampler_options["keys"],)
        self.path = path_or_url
        self.n = n
        self.storage_options = dict(storage_options) if storage_options else None
        self._plan_opts = {k: sampler_options[k] for k in _PLAN_OPTIONS if k in sampler_options}
        self._read_opts = {k: sampler_options[k] for k in _READ_OPTIONS if k in sampler_options}
        if rank is None or world_size is None:
            got = _dist_rank_world() or (0, 1)
            rank = got[0] if rank is None else rank
            world_size = got[1] if world_size is None else world_size
        self.rank, self.world_size = rank, world_size
        self._seed_given = seed
        if seed is None:
            seed = int(np.random.SeedSequence().entropy) & ((1 << 63) - 1)
        self.seed = seed
        for name, value in (("epoch_batches", epoch_batches), ("max_iter", max_iter)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise PescadorError(f"{name}={value!r} must be an integer >= 1 or None")
        self.max_iter = max_iter

        # Read the row counts once (metadata only) and close: no handle is kept.
        from .corpus import open_corpus

        corpus = open_corpus(path_or_url, keys=self._read_opts.get("keys"), storage_options=self.storage_options)
        try:
            self.rows = np.asarray(corpus.rows, dtype=np.int64).copy()
            self.keys: tuple[str, ...] = tuple(self._read_opts.get("keys") or corpus.keys)
        finally:
            corpus.close()
        mode = self._plan_opts.get("mode", "with_replacement")
        self.mode = mode
        if mode in ("with_replacement", "single_active") and epoch_batches is None:
            bs = self._plan_opts["batch_size"]
            if isinstance(n, int) and isinstance(bs, int) and n > 0 and bs > 0:
                eligible = int(self.rows[self.rows >= n].sum())
                epoch_batches = max(1, -(-eligible // (n * bs * world_size)))
        self.epoch_batches = epoch_batches
        # validate everything against the rank-level plan (warns once about short entries)
        self._rank_plan = WindowPlan(
            self.rows, n, seed=seed, rank=rank, world_size=world_size,
            epoch_batches=epoch_batches if mode in ("with_replacement", "single_active") else None,
            **self._plan_opts,
        )
        #: position: {"epoch": e} (an epoch start, any K) or {"num_workers": K, "workers": [state | None]}
        self._pos: dict[str, Any] = {"epoch": 0}
        self._pass: _LoaderPass | None = None
        self._local: tuple[int, Any] | None = None  # (pid, WindowSampler) of in-process iteration
        self._iter_pid = -1  # the process that last iterated this object

    # ------------------------------------------------------------------ worker plans
    def _plan_args(self, w: int, k: int) -> dict[str, Any] | None:
        """WindowPlan/WindowSampler arguments of reader ``w`` of ``k`` (None: it has no batch at all)."""
        args = dict(self._plan_opts)
        args.update(seed=self.seed, rank=self.rank * k + w, world_size=self.world_size * k)
        if self.mode in ("with_replacement", "single_active"):
            e = _split(int(self.epoch_batches), k, w)  # type: ignore[arg-type]
            if e == 0:
                return None
            args["epoch_batches"] = e
        return args

    def _pass_limit(self, w: int, k: int) -> int | None:
        return None if self.max_iter is None else _split(self.max_iter, k, w)

    def _make_plan(self, w: int, k: int) -> WindowPlan | None:
        args = self._plan_args(w, k)
        if args is None:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # short entries: warned once at construction
            try:
                return WindowPlan(self.rows, self.n, **args)
            except PescadorError as exc:
                if k > 1 and "has no entry" in str(exc):
                    raise PescadorError(
                        f"num_workers={k}: worker {w} of rank {self.rank} (effective rank {args['rank']} of "
                        f"{args['world_size']}) has no entry; the corpus has {len(self.rows)} entries for "
                        f"world_size={self.world_size} x num_workers={k} readers: use fewer workers"
                    ) from None
                raise

    def _epoch_states(self, epoch: int, k: int) -> list[dict[str, Any] | None]:
        out: list[dict[str, Any] | None] = []
        for w in range(k):
            plan = self._make_plan(w, k)
            if plan is None:
                out.append(None)
                continue
            if epoch:
                plan._start_epoch(epoch)  # the seed-determined start of that epoch
            out.append({"sampler": _SAMPLER_FORMAT, "plan": plan.state_dict()})
        return out

    def _resolve(self) -> None:
        """Fold the batches a WindowLoader delivered into the position."""
        if self._pass is not None:
            self._pos = self._pass.position()

    def _fresh_pass(self, k: int) -> list[int | None]:
        return [self._pass_limit(w, k) for w in range(k)]

    def _pass_start(self, k: int) -> dict[str, Any]:
        """The position the next pass of ``k`` readers starts from.

        A finished pass (every reader's ``remaining`` is 0) is followed by a
        fresh one; an interrupted pass is continued.
        """
        self._resolve()
        pos = self._pos
        if "epoch" in pos:
            return {"num_workers": k, "workers": self._epoch_states(int(pos["epoch"]), k),
                    "remaining": self._fresh_pass(k), "offset": 0}
        if pos["num_workers"] == k:
            if all(r == 0 for r in pos["remaining"]):
                return {"num_workers": k, "workers": list(pos["workers"]), "remaining": self._fresh_pass(k), "offset": 0}
            return {key: (list(v) if isinstance(v, list) else v) for key, v in pos.items()}
        # another K: only possible between passes, with every reader at the start of the same epoch
        epochs = {int(s["plan"]["epoch"]) for s in pos["workers"] if s is not None}
        if len(epochs) == 1 and all(r == 0 for r in pos["remaining"]):
            e = epochs.pop()
            if self._epoch_states(e, pos["num_workers"]) == pos["workers"]:
                return {"num_workers": k, "workers": self._epoch_states(e, k),
                        "remaining": self._fresh_pass(k), "offset": 0}
        old = pos["num_workers"]
        raise PescadorError(
            f"the dataset's position was taken mid-epoch with num_workers={0 if old == 1 else old}; "
            f"continue it with that many workers (not {0 if k == 1 else k}), "
            "or call set_epoch() to start an epoch afresh"
        )

    def _sampler(self, w: int, k: int, state: dict[str, Any] | None, in_worker: bool) -> Any:
        from .sampler import WindowSampler

        args = self._plan_args(w, k)
        assert args is not None
        read = dict(self._read_opts)
        if in_worker:
            read.setdefault("prefetch", WORKER_PREFETCH)
        target: Any = self.path
        if self.storage_options:
            from .corpus import open_corpus

            target = open_corpus(self.path, keys=read.get("keys"), cache_bytes=read.get("cache_bytes"),
                                 storage_options=self.storage_options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            s = WindowSampler(target, self.n, **args, **read)
        if self.storage_options:
            s._owns_corpus = True
        if state is not None:
            s.load_state_dict(state)
        return s

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        """This process's share of one pass, as batches of tensors.

        In the main process (``num_workers=0``) the whole pass; in a
        DataLoader worker, that worker's reader's batches, resuming where a
        loaded state or an earlier pass of the same worker left off.
        """
        info = get_worker_info()
        pid = os.getpid()
        if info is None:
            pos = self._pass_start(1)
            w = 0
        else:
            k = int(info.num_workers)
            if self._pos.get("num_workers") == k and any(r != 0 for r in self._pos["remaining"]):
                pos = self._pos  # as the WindowLoader (or an earlier pass in this worker) left it
            else:
                pos = self._pass_start(k)
            w = (int(pos["offset"]) + int(info.id)) % k
            if self._iter_pid == pid and pos["remaining"][w] == 0:
                pos["remaining"][w] = self._pass_limit(w, k)  # a persistent worker's next pass
        self._iter_pid = pid
        self._pos, self._pass = pos, None
        if pos["workers"][w] is None or pos["remaining"][w] == 0:
            return iter(())
        return self._iterate(w, pos, info is not None)

    def _iterate(self, w: int, pos: dict[str, Any], in_worker: bool) -> Iterator[dict[str, torch.Tensor]]:
        k = int(pos["num_workers"])
        if in_worker:
            sampler = self._sampler(w, k, pos["workers"][w], True)
        else:
            pid = os.getpid()
            if self._local is None or self._local[0] != pid:
                self._local = (pid, self._sampler(w, k, None, False))
            sampler = self._local[1]
            sampler.load_state_dict(pos["workers"][w])
        rem = pos["remaining"][w]
        sampler.max_iter = rem
        try:
            for batch in sampler:
                if self._pos is not pos:  # load_state_dict / set_epoch during the pass: stop
                    return
                pos["workers"][w] = sampler.state_dict()
                rem = _after_block(rem, pos["workers"][w])
                pos["remaining"][w] = rem
                yield _to_tensors(batch)
            pos["remaining"][w] = 0
        finally:
            if in_worker:
                sampler.close()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The position after the batches received: small and JSON-serialisable.

        Exact with ``num_workers=0`` and with :class:`WindowLoader`; after a
        plain multi-worker ``DataLoader`` it is the position that loader
        started from (see the module notes).  ``workers`` holds one
        :class:`~zarrmux.WindowSampler` state per reader, ``remaining`` the
        batches each reader still owes the current pass (``None``: to the end
        of its epoch), ``offset`` the reader that delivers next.
        """
        self._resolve()
        pos = self._pos
        out: dict[str, Any] = {
            "format": STATE_FORMAT, "seed": self.seed, "rank": self.rank, "world_size": self.world_size,
        }
        if "epoch" in pos:
            out.update(epoch=int(pos["epoch"]), num_workers=None, workers=None, remaining=None, offset=0)
            return out
        epochs = [int(s["plan"]["epoch"]) for s in pos["workers"] if s is not None]
        k = int(pos["num_workers"])
        out.update(
            epoch=min(epochs) if epochs else 0,
            num_workers=0 if k == 1 else k,
            workers=[None if s is None else {"sampler": s["sampler"], "plan": dict(s["plan"])} for s in pos["workers"]],
            remaining=list(pos["remaining"]),
            offset=int(pos["offset"]),
        )
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict` of a dataset configured alike).

        Raises
        ------
        PescadorError
            If the state is malformed or comes from another configuration,
            corpus, seed, rank or world size.
        """
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise PescadorError(f"not a WindowDataset state: {state!r:.200}")
        for name in ("rank", "world_size"):
            if state.get(name) != getattr(self, name):
                raise PescadorError(
                    f"the state was saved with {name}={state.get(name)!r}, this dataset has {getattr(self, name)!r}"
                )
        seed = state.get("seed")
        if self._seed_given is not None and seed != self._seed_given:
            raise PescadorError(f"the state was saved with seed={seed!r}, this dataset has seed={self._seed_given!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise PescadorError(f"malformed WindowDataset state: seed={seed!r}")
        old_seed, self.seed = self.seed, seed
        try:
            if state.get("workers") is None:
                pos: dict[str, Any] = {"epoch": int(state["epoch"])}
            else:
                k = max(int(state["num_workers"]), 1)
                workers, remaining = list(state["workers"]), list(state["remaining"])
                offset = int(state["offset"])
                if len(workers) != k or len(remaining) != k or not 0 <= offset < k:
                    raise PescadorError(
                        f"malformed WindowDataset state: {len(workers)} worker states, {len(remaining)} "
                        f"counts and offset {offset} for num_workers={state['num_workers']}"
                    )
                for w, s in enumerate(workers):  # check each against its plan (fingerprint, slots)
                    plan = self._make_plan(w, k)
                    if (plan is None) != (s is None):
                        raise PescadorError(f"the state of worker {w} does not fit this configuration")
                    if plan is not None:
                        if not isinstance(s, dict) or s.get("sampler") != _SAMPLER_FORMAT:
                            raise PescadorError(f"malformed state of worker {w}: {s!r:.200}")
                        plan.load_state_dict(s["plan"])
                    r = remaining[w]
                    if r is not None and (isinstance(r, bool) or not isinstance(r, int) or r < 0):
                        raise PescadorError(f"malformed WindowDataset state: remaining[{w}]={r!r}")
                pos = {"num_workers": k, "workers": workers, "remaining": remaining, "offset": offset}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.seed = old_seed
            raise PescadorError(f"malformed WindowDataset state: {exc!r}") from None
        except PescadorError:
            self.seed = old_seed
            raise
        self._pos, self._pass = pos, None

    def set_epoch(self, epoch: int) -> None:
        """Start the next pass at the beginning of ``epoch`` (as ``DistributedSampler.set_epoch``)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise PescadorError(f"epoch={epoch!r} must be an integer >= 0")
        self._pos, self._pass = {"epoch": epoch}, None

    @property
    def epoch(self) -> int:
        """The epoch of the next batch (the earliest among workers)."""
        return int(self.state_dict()["epoch"])

    # ------------------------------------------------------------------ pickling (spawn workers)
    def __getstate__(self) -> dict[str, Any]:
        self._resolve()
        d = dict(self.__dict__)
        d["_local"] = None
        d["_pass"] = None
        return d

    def __repr__(self) -> str:
        return (
            f"<zarrmux.torch.WindowDataset {self.path!r} n={self.n} rank={self.rank}/{self.world_size} "
            f"seed={self.seed} {self._plan_opts}>"
        )


class _LoaderPass:
    """The batches one WindowLoader pass delivered, and the readers' positions they imply."""

    def __init__(self, ds: WindowDataset, pos: dict[str, Any]) -> None:
        self.k = k = int(pos["num_workers"])
        self.states = list(pos["workers"])
        self.remaining = list(pos["remaining"])
        self.offset = int(pos["offset"])
        self.delivered = 0
        self._done = 0
        self._blocks: list[Iterator[Any] | None] = []
        for w in range(k):
            s, rem = self.states[w], self.remaining[w]
            plan = ds._make_plan(w, k) if s is not None and rem != 0 else None
            if plan is not None:
                assert s is not None
                plan.load_state_dict(s["plan"])
                self._blocks.append(plan.blocks(rem))
            else:
                self._blocks.append(None)
                self.remaining[w] = 0

    def position(self) -> dict[str, Any]:
        # replay the DataLoader's in-order round robin over the readers' plans (no data is read):
        # worker i is reader (offset + i) % k, and a reader with nothing left is skipped
        while self._done < self.delivered:
            if not any(r != 0 for r in self.remaining):
                raise PescadorError(f"{self.delivered} batches delivered but the readers' plans hold only {self._done}")
            w = self.offset
            if self.remaining[w] == 0:
                self.offset = (w + 1) % self.k
                continue
            blk = next(self._blocks[w], None)  # type: ignore[arg-type]
            if blk is None:
                self.remaining[w] = 0
                continue
            self.states[w] = {"sampler": _SAMPLER_FORMAT, "plan": blk.state_after}
            self.remaining[w] = _after_block(self.remaining[w], self.states[w])
            self.offset = (w + 1) % self.k
            self._done += 1
        return {"num_workers": self.k, "workers": list(self.states), "remaining": list(self.remaining),
                "offset": self.offset}


class WindowLoader(DataLoader):  # type: ignore[type-arg]
    """``DataLoader(dataset, batch_size=None, ...)`` that keeps the dataset's position exact.

    It counts the batches it delivers, so :meth:`state_dict` (the
    dataset's) is exact mid-epoch with any ``num_workers``, and the next
    pass continues after the last delivered batch.

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
            raise TypeError(f"WindowLoader needs a WindowDataset, not {type(dataset).__name__}")
        if kwargs.pop("batch_size", None) is not None:
            raise ValueError("batches come from the WindowDataset (its batch_size): WindowLoader needs batch_size=None")
        if kwargs.get("persistent_workers"):
            raise ValueError("WindowLoader does not support persistent_workers=True (positions would not be exact)")
        if kwargs.get("in_order") is False:
            raise ValueError("WindowLoader needs in_order=True (the order of batches is what makes positions exact)")
        super().__init__(dataset, batch_size=None, **kwargs)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        ds: WindowDataset = self.dataset  # type: ignore[assignment]
        if self.num_workers == 0:
            yield from super().__iter__()  # the dataset iterates here and tracks itself
            return
        pos = ds._pass_start(self.num_workers)
        ds._pos, ds._pass = pos, None  # what the workers start from (they are forked below)
        lp = _LoaderPass(ds, pos)
        ds._pass = lp
        for batch in super().__iter__():
            if ds._pass is lp:
                lp.delivered += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """The dataset's :meth:`WindowDataset.state_dict`."""
        return self.dataset.state_dict()  # type: ignore[attr-defined,no-any-return]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The dataset's :meth:`WindowDataset.load_state_dict`."""
        self.dataset.load_state_dict(state)  # type: ignore[attr-defined]
