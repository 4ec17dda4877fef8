"""One global batch stream, and each rank's and reader's place in it.  Pure: no I/O, no torch.

The global stream
-----------------
A :class:`~zarrmux.plan.WindowPlan` with ``world_size=1`` plans *the* stream
of a run: for a corpus, sampling parameters and seed, global batch ``g`` of
epoch ``e`` is fixed, whoever plans it, whatever the number of ranks or
DataLoader workers.  :class:`GlobalStream` gives its blocks in order
(:meth:`GlobalStream.blocks_from`) or by index (:meth:`GlobalStream.block`).

The stochastic modes carry state from batch to batch (the active entries and
their quotas, as :class:`~zarrmux.StochasticMux` does), so batch ``g`` is
found by planning forward from the nearest known plan state before it:
random access keeps the plan state every :data:`CHECKPOINT_EVERY` batches
it plans through (of the last two epochs accessed; about 2.5 KB each for
``n_active=32``), so once an epoch has been planned up to ``g`` (the first
access to a late batch plans up to it), any batch before costs at most
``CHECKPOINT_EVERY`` blocks of planning.  Iterating keeps no states (a run's
memory does not grow with the epoch).  'sequential' batches are found
directly.

Ranks and readers
-----------------
Rank ``r`` of ``R`` takes global batches ``p + r, p + r + R, ...`` of the
epoch from the position ``p`` it starts at (0 at an epoch start): the epoch
is dealt out in *rounds* of ``R`` consecutive batches.  Every rank yields the
same number of batches: ``ceil((G - p) / R)`` of an epoch of ``G`` batches,
the ranks past the end of the last, incomplete round taking the epoch's
first batches again (as ``DistributedSampler`` pads); with ``drop_last`` the
incomplete round is dropped instead (``floor((G - p) / R)``).  The position
that all ranks reached together is ``p + k * R`` after each took ``k``
batches; it is what a state records, so a state saved by any rank of any
world size resumes on any other (:meth:`RankStream.advance`).

A rank's sequence may be split further over ``W`` readers (DataLoader
workers): reader ``w`` takes the rank's batches ``w, w + W, ...`` of a pass,
so taking the readers round-robin, skipping those that ran out (what a
DataLoader in order does), gives the rank's sequence exactly.
"""

from __future__ import annotations

import threading
from bisect import bisect_right, insort
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from .exceptions import PescadorError
from .params import check_int
from .plan import Block, WindowPlan

__all__ = [
    "GlobalStream", "RankStream", "Step", "Cursor", "CHECKPOINT_EVERY", "rank_batches",
    "position_state", "parse_position_state", "SAMPLER_FORMAT", "DATASET_FORMAT",
]

#: a plan state is kept every this many global batches of an epoch (random access cost)
CHECKPOINT_EVERY = 32
#: epochs whose checkpoints are kept
_EPOCHS_KEPT = 2


def rank_batches(length: int, position: int, world_size: int, drop_last: bool) -> int:
    """Batches each rank yields from ``position`` in an epoch of ``length`` global batches.

    ``ceil((length - position) / world_size)``, or the floor with ``drop_last``.
    """
    rest = max(0, length - position)
    return rest // world_size if drop_last else -(-rest // world_size)


class GlobalStream:
    """The blocks of a ``world_size=1`` plan, in order or by ``(epoch, g)``; thread-safe.

    Parameters
    ----------
    plan : WindowPlan
        Planned with ``rank=0, world_size=1`` (its position does not matter; it is copied).
    every : int > 0
        Batches between kept plan states.
    """

    def __init__(self, plan: WindowPlan, *, every: int = CHECKPOINT_EVERY) -> None:
        if plan.world_size != 1:
            raise PescadorError("a GlobalStream needs a plan with world_size=1 (ranks take batches of it)")
        self.every = int(every)
        self._template = plan.copy()  # for epoch-start states (under the lock)
        self._work = plan.copy()  # the plan random access moves (under the lock)
        self._lock = threading.RLock()
        self._ckpt: OrderedDict[int, tuple[list[int], dict[int, dict[str, Any]]]] = OrderedDict()
        self._lengths: dict[int, int] = {}
        self.mode = plan.mode
        self.batch_size = plan.batch_size
        self.drop_last = plan.drop_last

    @property
    def seed(self) -> int:
        return self._template.seed

    @property
    def fingerprint(self) -> str:
        return self._template.fingerprint

    @property
    def plan(self) -> WindowPlan:
        """The plan (a template: do not move it)."""
        return self._template

    # ------------------------------------------------------------------ states
    def start_state(self, epoch: int) -> dict[str, Any]:
        """The plan state at the start of ``epoch`` (a function of the seed only)."""
        with self._lock:
            self._template.start_epoch(epoch)
            return self._template.state_dict()

    def _sequential_state(self, epoch: int, g: int) -> dict[str, Any]:
        st = self.start_state(epoch)
        st.update(batch=g, window=g * self.batch_size)
        return st

    def _epoch_ckpts(self, epoch: int) -> tuple[list[int], dict[int, dict[str, Any]]]:
        with self._lock:
            got = self._ckpt.get(epoch)
            if got is None:
                got = self._ckpt[epoch] = ([], {})
                while len(self._ckpt) > _EPOCHS_KEPT:
                    self._ckpt.popitem(last=False)
            else:
                self._ckpt.move_to_end(epoch)
            return got

    def add_state(self, state: dict[str, Any]) -> None:
        """Keep a plan state (from a checkpoint being resumed) as a starting point."""
        e, g = int(state["epoch"]), int(state["batch"])
        keys, states = self._epoch_ckpts(e)
        with self._lock:
            if g not in states:
                insort(keys, g)
                states[g] = state

    def _record(self, epoch: int, g: int, state: dict[str, Any]) -> None:
        if g % self.every == 0:
            keys, states = self._epoch_ckpts(epoch)
            if g not in states:
                with self._lock:
                    if g not in states:
                        insort(keys, g)
                        states[g] = state

    def _nearest(self, epoch: int, g: int) -> tuple[int, dict[str, Any] | None]:
        keys, states = self._epoch_ckpts(epoch)
        with self._lock:
            i = bisect_right(keys, g)
            if i == 0:
                return 0, None
            return keys[i - 1], states[keys[i - 1]]

    def _next(self, plan: WindowPlan, epoch: int, record: bool = True) -> Block | None:
        """The plan's next block if it belongs to ``epoch`` (else None); learns the epoch's length.

        ``record``: keep the state after it if it falls on a checkpoint (random access
        records; iteration does not, so a long run holds no more than its position).
        """
        if plan.epoch != epoch:
            return None
        g = plan.batch
        known = self.known_length(epoch)
        if known is not None and g >= known:
            return None
        blk = plan.next_block()
        if blk is None:  # a short last block dropped: the epoch had g batches
            self._lengths[epoch] = g
            return None
        if blk.last_in_epoch:
            self._lengths[epoch] = g + 1
        elif record:
            self._record(epoch, g + 1, blk.state_after)
        return blk

    def _seek(self, plan: WindowPlan, epoch: int, g: int, *, continue_from: bool) -> None:
        """Move ``plan`` so that its next block is batch ``g`` of ``epoch``."""
        if self.mode == "sequential":
            plan.load_state_dict(self._sequential_state(epoch, g))
            return
        c, state = self._nearest(epoch, g)
        if not (continue_from and plan.epoch == epoch and c <= plan.batch <= g):
            plan.load_state_dict(state if state is not None else self.start_state(epoch))
        plan.plan_together(g - plan.batch + 1)  # the blocks up to g (no more: random access)
        while plan.batch < g:
            if self._next(plan, epoch) is None:
                raise IndexError(f"epoch {epoch} has {self.known_length(epoch)} batches: no batch {g}")

    # ------------------------------------------------------------------ access
    def known_length(self, epoch: int) -> int | None:
        """Global batches of ``epoch`` if known without planning it."""
        p = self._template
        if p.mode in ("with_replacement", "single_active"):
            return int(p.epoch_batches)  # type: ignore[arg-type]
        if p.mode == "sequential":
            full, short = divmod(p.windows_per_epoch, p.batch_size)
            return full + (1 if short and not p.drop_last else 0)
        return self._lengths.get(epoch)

    def epoch_length(self, epoch: int) -> int:
        """Global batches of ``epoch`` ('exhaustive': plans the epoch once)."""
        known = self.known_length(epoch)
        if known is not None:
            return known
        c, _ = self._nearest(epoch, 1 << 62)
        for _ in self.blocks_from(epoch, c):
            pass
        return self._lengths[epoch]

    def state_at(self, epoch: int, g: int) -> dict[str, Any]:
        """The plan state before batch ``g`` of ``epoch`` (``g=0``: the epoch's start)."""
        if g == 0:
            return self.start_state(epoch)
        if self.mode == "sequential":
            return self._sequential_state(epoch, g)
        with self._lock:
            self._seek(self._work, epoch, g, continue_from=True)
            return self._work.state_dict()

    def block(self, epoch: int, g: int) -> Block:
        """Batch ``g`` of ``epoch`` (planned from the nearest kept state before it).

        Raises
        ------
        IndexError
            If the epoch has no batch ``g``.
        """
        if g < 0:
            raise IndexError(f"batch {g} < 0")
        known = self.known_length(epoch)
        if known is not None and g >= known:
            raise IndexError(f"epoch {epoch} has {known} batches: no batch {g}")
        with self._lock:
            self._seek(self._work, epoch, g, continue_from=True)
            blk = self._next(self._work, epoch)
        if blk is None:
            raise IndexError(f"epoch {epoch} has {self.known_length(epoch)} batches: no batch {g}")
        return blk

    def blocks_from(self, epoch: int, g: int) -> Iterator[tuple[Block, bool]]:
        """Batches ``g, g + 1, ...`` of ``epoch`` to its end, each with whether it is the last."""
        with self._lock:
            plan = self._template.copy()
        self._seek(plan, epoch, g, continue_from=False)
        nxt = self._next(plan, epoch, False)
        while nxt is not None:
            cur = nxt
            nxt = None if cur.last_in_epoch else self._next(plan, epoch, False)
            yield cur, nxt is None


class Step:
    """A batch of a rank's sequence: the global ``block`` and the plan state ``after`` it.

    ``after`` is the state at the position all ranks reach once each took
    this round's batch (the next epoch's start after an epoch's last round).
    """

    __slots__ = ("block", "after")

    def __init__(self, block: Block, after: dict[str, Any]) -> None:
        self.block, self.after = block, after

    @property
    def entries(self) -> Any:
        return self.block.entries

    @property
    def starts(self) -> Any:
        return self.block.starts

    @property
    def epoch(self) -> int:
        return self.block.epoch

    @property
    def index(self) -> int:
        return self.block.index


class Cursor:
    """The position (a plan state) of a pass's rank after the steps planned so far."""

    __slots__ = ("state",)

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state


class RankStream:
    """Rank ``rank`` of ``world_size``'s share of a :class:`GlobalStream` (see the module notes).

    Parameters
    ----------
    stream : GlobalStream
    rank : int >= 0
    world_size : int > rank
    """

    def __init__(self, stream: GlobalStream, rank: int, world_size: int) -> None:
        world_size = check_int("world_size", world_size, minimum=1)
        rank = check_int("rank", rank, minimum=0, maximum=world_size - 1)
        self.stream, self.rank, self.world_size = stream, rank, world_size
        self.drop_last = stream.drop_last
        known = stream.known_length(0)
        if known is not None and rank_batches(known, 0, world_size, self.drop_last) == 0:
            raise PescadorError(
                f"an epoch has {known} batches, fewer than world_size={world_size}, and drop_last=True "
                "drops them all: ask for more batches per epoch (epoch_batches) or fewer ranks"
            )

    def remaining(self, epoch: int, position: int) -> int:
        """Batches this rank yields from ``position`` to the end of ``epoch``."""
        return rank_batches(self.stream.epoch_length(epoch), position, self.world_size, self.drop_last)

    def advance(self, epoch: int, position: int, steps: int) -> tuple[int, int]:
        """The position after this rank took ``steps`` more batches from ``(epoch, position)``."""
        while steps > 0:
            n = self.remaining(epoch, position)
            if steps < n:
                return epoch, position + steps * self.world_size
            steps -= n
            epoch, position = epoch + 1, 0
        return epoch, position

    def global_index(self, epoch: int, i: int) -> int:
        """The global batch that is this rank's batch ``i`` of ``epoch`` (counting from its start)."""
        n = self.remaining(epoch, 0)
        if not 0 <= i < n:
            raise IndexError(f"rank {self.rank} of {self.world_size} has {n} batches in epoch {epoch}: no batch {i}")
        return (self.rank + i * self.world_size) % self.stream.epoch_length(epoch)

    def _rounds(self, epoch: int, position: int) -> Iterator[list[Block]]:
        """The epoch's rounds of ``world_size`` consecutive batches from ``position`` (the last may be short)."""
        R = self.world_size
        rnd: list[Block] = []
        for blk, _ in self.stream.blocks_from(epoch, position):
            rnd.append(blk)
            if len(rnd) == R:
                yield rnd
                rnd = []
        if rnd:
            yield rnd

    def _epoch_steps(self, epoch: int, position: int) -> Iterator[Step]:
        R, r, s = self.world_size, self.rank, self.stream
        rounds = self._rounds(epoch, position)
        q = position
        rnd = next(rounds, None)
        while rnd is not None:
            if len(rnd) == R:
                # a look at the next round says whether this one is the rank's last of the epoch
                nxt = next(rounds, None)
                final = nxt is None or (self.drop_last and len(nxt) < R)
                yield Step(rnd[r], s.start_state(epoch + 1) if final else rnd[-1].state_after)
                if final:
                    return
                q += R
                rnd = nxt
                continue
            # the epoch's last round is incomplete, and the first from ``position`` (or dropped above)
            if self.drop_last:
                if q == 0:
                    raise PescadorError(
                        f"epoch {epoch} has {len(rnd)} batches, fewer than world_size={R}, "
                        "and drop_last=True drops them all"
                    )
                return
            length = q + len(rnd)
            blk = rnd[r] if r < len(rnd) else s.block(epoch, (q + r) % length)
            yield Step(blk, s.start_state(epoch + 1))
            return

    def steps(
        self,
        epoch: int,
        position: int,
        *,
        max_steps: int | None = None,
        epochs: int | None = 1,
        worker: int = 0,
        num_workers: int = 1,
        cursor: Cursor | None = None,
    ) -> Iterator[Step]:
        """This rank's batches from ``(epoch, position)``: ``max_steps`` of them (crossing
        epochs), or else to the end of ``epochs`` epochs (None: forever); of those, reader
        ``worker`` of ``num_workers`` yields numbers ``worker, worker + num_workers, ...``.

        ``cursor.state`` follows the position after the batches planned so far.
        """
        count = 0
        done = 0
        while max_steps is not None or epochs is None or done < epochs:
            for step in self._epoch_steps(epoch, position):
                if cursor is not None:
                    cursor.state = step.after
                if count % num_workers == worker:
                    yield step
                count += 1
                if max_steps is not None and count >= max_steps:
                    return
            epoch, position, done = epoch + 1, 0, done + 1
            if cursor is not None and int(cursor.state["epoch"]) != epoch:
                cursor.state = self.stream.start_state(epoch)


# ---------------------------------------------------------------------- states
#: ``state["sampler"]`` of a :class:`~zarrmux.WindowSampler` state
SAMPLER_FORMAT = "zarrmux.WindowSampler/2"
#: ``state["format"]`` of a :class:`zarrmux.torch.WindowDataset` state
DATASET_FORMAT = "zarrmux.torch.WindowDataset/2"
_ACCEPTED = {("sampler", SAMPLER_FORMAT), ("sampler", "zarrmux.WindowSampler/1"), ("format", DATASET_FORMAT)}


def position_state(kind: str, plan_state: dict[str, Any], **saved_by: Any) -> dict[str, Any]:
    """A position as saved: ``{kind-key: kind, "epoch", "position", "plan", "saved_by"}`` (JSON-able).

    ``kind`` is :data:`SAMPLER_FORMAT` (key ``"sampler"``) or :data:`DATASET_FORMAT` (key ``"format"``).
    """
    key = "sampler" if kind.startswith("zarrmux.WindowSampler") else "format"
    return {
        key: kind,
        "epoch": int(plan_state["epoch"]),
        "position": int(plan_state["batch"]),
        "plan": {k: (list(v) if isinstance(v, list) else v) for k, v in plan_state.items()},
        "saved_by": dict(saved_by),
    }


def parse_position_state(state: Any) -> dict[str, Any]:
    """The plan state of a saved position (of a sampler or a dataset; checked against a plan later).

    Raises
    ------
    PescadorError
        If ``state`` is not such a state, or its ``epoch`` / ``position`` disagree with its plan.
    """
    if not isinstance(state, dict) or not isinstance(state.get("plan"), dict) or not any(
        state.get(k) == v for k, v in _ACCEPTED
    ):
        raise PescadorError(
            f"not a WindowSampler or WindowDataset state (or from an older zarrmux): {state!r:.200}"
        )
    plan = state["plan"]
    for key, pkey in (("epoch", "epoch"), ("position", "batch")):
        if key in state and state[key] != plan.get(pkey):
            raise PescadorError(f"malformed state: {key}={state[key]!r} but its plan says {plan.get(pkey)!r}")
    return plan
