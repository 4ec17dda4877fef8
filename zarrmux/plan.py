"""The window plan: which windows ``(entry, start)`` come next.  Pure, cheap, no I/O.

A :class:`WindowPlan` turns a corpus's row counts into a sequence of *blocks*
(one block = one batch of up to ``batch_size`` windows, as two int64 arrays
``entries`` and ``starts``).  Reading the windows is somebody else's job
(:mod:`zarrmux.sampler`), so the same plan drives a reader in the consumer's
thread, in background threads or on Dask workers, and the sequence of
windows never depends on how it is read.

Modes
-----
``'with_replacement'``, ``'single_active'``, ``'exhaustive'``
    :class:`~zarrmux.StochasticMux` semantics over the entries: ``n_active``
    *slots* each hold an active entry with a *quota* of windows (expected
    ``rate``; ``dist`` 'binomial' | 'poisson' | 'constant', the same formulas
    as the mux).  Each window picks a slot with probability proportional to
    its entry's weight and takes a window start uniformly from
    ``0 .. rows - n`` (inclusive: every valid position; the pescador seed's
    ``np.random.randint(n_total - n)`` leaves out the last one).  A slot whose
    quota is used up is refilled at once: ``with_replacement`` draws any entry
    (proportionally to ``weights``), ``single_active`` any entry not active in
    another slot, ``exhaustive`` the next entry of the epoch's weighted random
    order (each entry is activated once per epoch).

    Unlike pescador's mux, which activates streams uniformly and uses the
    weights only to choose among active streams (so its long-run proportions
    ignore the weights), new entries are *activated* proportionally to
    ``weights`` too, so ``weights`` are the long-run proportions of windows.
``'sequential'``
    For evaluation: every entry of the rank's share in corpus order, windows
    at ``0, hop, 2*hop, ... <= rows - n`` in order (``hop=1``: every valid
    position once).  No randomness.

Epochs
------
* ``with_replacement`` / ``single_active``: ``epoch_batches`` batches
  (default: ``ceil(eligible_rows / (n * batch_size * world_size))``, about one
  pass over the rows; ``world_size`` is 1 for the global stream).
* ``exhaustive``: until every entry of the share has been activated once and
  its quota drawn; the last batch may be short (``drop_last`` drops it).
* ``sequential``: one pass; the last batch may be short (``drop_last``).

Each epoch starts afresh (new active entries), so epochs differ and an epoch
boundary needs no state at all.

Randomness and state
--------------------
Every random number comes from a counter-based generator,
``Philox(key=seed, counter=(0, block, epoch, rank/tag))``
(:mod:`zarrmux.plan_streams`): block ``b`` of epoch ``e`` on rank ``r``
always draws the same numbers whoever plans it.  So the
whole state between blocks is a handful of integers (seed, epoch, batch,
window counter, position in the exhaustive order) and the active slots
(``n_active`` entries and quotas, :mod:`zarrmux.plan_slots`):
:meth:`WindowPlan.state_dict` is small and
JSON-serialisable, and :meth:`WindowPlan.load_state_dict` resumes exactly.

Cost
----
Planning stays far below the cost of reading a batch (tens of microseconds
per batch of 32 windows, see ``tools/bench_plan.py``): the stochastic modes
plan blocks a few at a time, replay each block's draws from the raw outputs
of its Philox stream drawn in one call (the very numbers numpy's
``Generator`` gives, so the sequence, and the states saved, are those of the
first version of the planner, kept in ``tests/plan_reference.py``), and
build the arrays of the blocks planned together in one go.

Modules
-------
This module holds :class:`WindowPlan`: the plan's position and the sequence
of blocks (planning stochastic blocks ahead, the epochs, the state).  The
parameters are checked in :mod:`zarrmux.plan_params`, the random streams
are :mod:`zarrmux.plan_streams`, the stochastic modes' slots and quotas
:mod:`zarrmux.plan_slots`, and the 'sequential' windows
:mod:`zarrmux.plan_sequential`.

Ranks
-----
:class:`~zarrmux.WindowSampler` and :mod:`zarrmux.torch` plan with
``world_size=1``: that plan is the *global* stream of a run, and ranks and
DataLoader workers take batches of it (:mod:`zarrmux.global_stream`), so
the batches do not depend on how many there are and a position resumes on
any number of them.

Entries shorter than ``n`` are left out (one warning counts them).  A plan
made here with ``world_size > 1`` instead deals the remaining (eligible)
entries out round-robin (rank ``r`` of ``world_size`` owns eligible entries
``r, r + world_size, ...``: disjoint shares, each its own stream); this
entry sharding is kept for direct users of :class:`WindowPlan` only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .exceptions import PescadorError
from .philox import TWO_M53, uniform_starts
from .plan_params import DISTRIBUTIONS, MODES, PlanParams
from .plan_sequential import SequentialWindows
from .plan_slots import Slots
from .plan_streams import PlanStreams

__all__ = ["WindowPlan", "Block", "MODES", "DISTRIBUTIONS", "STATE_FORMAT"]

STATE_FORMAT = "zarrmux.WindowPlan/1"

#: most stochastic blocks planned at a time (see WindowPlan.next_block)
_AHEAD = 32


@dataclass
class Block:
    """One planned batch: windows ``(entries[i], starts[i])``.

    ``entries`` are corpus positions.  ``state_after`` is the plan state once
    this block has been consumed (what a consumer that received it resumes
    from).
    """

    epoch: int
    index: int  #: batch number within the epoch
    entries: np.ndarray
    starts: np.ndarray
    last_in_epoch: bool
    state_after: dict[str, Any] = field(repr=False)

    def __len__(self) -> int:
        return len(self.entries)


class WindowPlan(PlanParams):
    """Plans windows of ``n`` rows from entries with the given row counts.

    A plan is its checked parameters (the attributes of
    :class:`~zarrmux.plan_params.PlanParams`), its random streams and its
    position: ``epoch``, ``batch`` (blocks planned in the epoch), ``window``
    (windows planned in the epoch) and, in the stochastic modes, the slots.

    Parameters
    ----------
    rows : sequence of int >= 0
        Rows of every entry of the corpus, by position.
    n : int > 0
        Rows per window.
    batch_size : int > 0
        Windows per block.
    n_active : int > 0 or None
        Active entries at a time (stochastic modes; ignored by 'sequential').
    rate : float > 0 or None
        Expected windows per activation (>= 1 unless ``dist='constant'``);
        ``None``: an active entry is never deactivated.
    weights : array-like of float >= 0 (one per corpus entry) or None
        Long-run proportion of windows of each entry; ``None``: uniform.
    mode : {'with_replacement', 'single_active', 'exhaustive', 'sequential'}
    dist : {'binomial', 'poisson', 'constant'}
        Distribution of the per-activation quota, as in ``StochasticMux``.
    seed : int >= 0 or None
        ``None`` draws one from the OS (it is kept in the state).
    rank : int >= 0 and world_size : int > rank
        This rank's share of the entries.
    epoch_batches : int > 0 or None
        Batches per epoch in 'with_replacement' and 'single_active' modes.
    hop : int > 0 or None
        Distance between window starts in 'sequential' mode (default ``n``).
    drop_last : bool
        Drop the short last batch of an 'exhaustive' or 'sequential' epoch.

    Raises
    ------
    PescadorError
        For invalid parameters (naming the parameter and value), or when no
        entry (or none of this rank's share) has at least ``n`` rows.
    """

    def __init__(
        self,
        rows: Sequence[int] | np.ndarray,
        n: int,
        *,
        batch_size: int,
        n_active: int | None = None,
        rate: float | None = 16.0,
        weights: Any = None,
        mode: str = "with_replacement",
        dist: str = "binomial",
        seed: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        epoch_batches: int | None = None,
        hop: int | None = None,
        drop_last: bool = False,
    ) -> None:
        super().__init__(
            rows, n, batch_size=batch_size, n_active=n_active, rate=rate, weights=weights, mode=mode, dist=dist,
            rank=rank, world_size=world_size, epoch_batches=epoch_batches, hop=hop, drop_last=drop_last,
        )
        self.streams = PlanStreams(seed, self.rank)
        #: blocks planned ahead, with the state after each (see next_block), and how many to plan next
        self._ahead: deque[tuple[Block | None, dict[str, Any]]] = deque()
        self._ahead_n = 1
        self.slots: Slots | None = None
        self.sequential: SequentialWindows | None = None
        if self.mode == "sequential":
            assert self.hop is not None
            self.sequential = SequentialWindows(self.share, self.rows[self.share], self.n, self.hop)
            self.windows_per_epoch = self.sequential.count
        else:
            self.slots = Slots(self.mode, self.weights_all[self.share], self.n_active, self.rate, self.dist,
                               self.streams)
            span = self.rows[self.share] - self.n + 1  # number of valid starts per share entry
            self._span_u64 = span.astype(np.uint64)
            #: the largest span if every span is in [2, 2**32) (window starts take the vectorised
            #: path of uniform_starts), else None
            self._span_bound = int(span.max()) if span.min() >= 2 and span.max() <= 0xFFFFFFFF else None
            #: outputs of a block's stream drawn in advance: its uniforms, the window starts'
            #: words and a few more for refills (a multiple of 4, see Draws)
            B = self.batch_size
            self._raw_count = -(-(B + (B + 1) // 2 + 24) // 4) * 4
        self.start_epoch(0)

    @property
    def seed(self) -> int:
        """The seed (the key of every random stream; part of the state)."""
        return self.streams.seed

    def start_epoch(self, epoch: int) -> None:
        """Move to the start of ``epoch`` (its first slots come from its own stream)."""
        self.epoch = int(epoch)
        self.batch = 0
        self.window = 0  # windows planned in this epoch ('sequential': next window)
        self._ahead.clear()
        if self.slots is not None:
            self.slots.start(self.epoch)

    # ------------------------------------------------------------------ planning
    @property
    def epoch_done(self) -> bool:
        """Whether the current epoch has no window left (only true transiently)."""
        if self.mode == "sequential":
            return self.window >= self.windows_per_epoch
        if self.mode == "exhaustive":
            assert self.slots is not None
            return self.slots.exhausted
        return self.batch >= (self.epoch_batches or 0)

    def _advance(self, epoch: int, index: int, size: int) -> tuple[bool, bool]:
        """Count a planned block of ``size`` windows; move to the next epoch after its last block.

        Returns whether the block was the epoch's last, and whether it is dropped.
        """
        self.window += size
        self.batch += 1
        last = self.epoch_done
        if last:
            self.start_epoch(epoch + 1)
        if size == 0 or (self.drop_last and size < self.batch_size):
            if index == 0:
                raise PescadorError(
                    f"an epoch has only {size} windows, fewer than batch_size={self.batch_size}, "
                    "and drop_last=True drops them all"
                )
            return last, True
        return last, False

    def plan_together(self, count: int) -> None:
        """Plan the next ``count`` blocks (at most the planner's batch) in one go, unless some are
        planned already: cheaper per block than one at a time (random access knows how many it needs)."""
        if not self._ahead:
            self._ahead_n = max(self._ahead_n, min(_AHEAD, int(count)))

    def _plan_ahead(self) -> None:
        """Plan the next stochastic blocks into ``self._ahead`` (each with the state after it).

        Plans ``self._ahead_n`` blocks (1, 2, 4, ... up to ``_AHEAD`` as the
        plan keeps being asked for more), or to the end of the epoch if that
        comes first.  Numpy's per-call overhead is paid once for them all
        where the blocks do not depend on each other: their streams' outputs
        are drawn first, the slots of all their windows found in one search
        (valid until a refill changes the slot weights), and their arrays and
        window starts built together at the end.  Each block has its own
        generator (see :meth:`PlanStreams.generator`), so it can still draw
        its window starts then.
        """
        slots = self.slots
        assert slots is not None
        count = self._ahead_n
        self._ahead_n = min(2 * count, _AHEAD)
        epoch, batch, B = self.epoch, self.batch, self.batch_size
        if self.epoch_batches is not None:  # (never past the epoch's end)
            count = max(1, min(count, self.epoch_batches - batch))
        raw, draws = self.streams.block_draws(epoch, batch, count, self._raw_count, B)
        # the blocks' uniforms (used here; the draws continue after them)
        u_all = (raw[:, :B] >> 11) * TWO_M53
        picks_all = slots.first_picks(u_all.reshape(-1))
        version = slots.version
        planned = []  # (index, windows, last, state after) per block; None windows: dropped
        kept = []  # the draws of the blocks kept
        sizes: list[int] = []
        positions: list[int] = []  # of all their windows
        for which, d in enumerate(draws):
            picks = None
            if picks_all is not None and slots.version == version:  # still valid
                picks = picks_all[which * B : (which + 1) * B]
            pos = slots.plan(d, u_all[which], picks, epoch)
            last, dropped = self._advance(epoch, batch + which, len(pos))
            planned.append((batch + which, None if dropped else len(pos), last, self.state_dict()))
            if not dropped:
                kept.append(d)
                sizes.append(len(pos))
                positions += pos
            if last:
                break
        pos_all = np.array(positions, dtype=np.intp)
        entries = self.share[pos_all]
        starts = uniform_starts(kept, sizes, self._span_u64[pos_all], self._span_bound)
        o = 0
        for index, n, last, state in planned:
            if n is None:
                self._ahead.append((None, state))
            else:
                self._ahead.append((Block(epoch, index, entries[o : o + n], starts[o : o + n], last, state), state))
                o += n

    def next_block(self) -> Block | None:
        """Plan the next block and advance; after an epoch's last block the plan is at the next epoch.

        Returns ``None`` (having moved to the next epoch) when the epoch's last
        block is short and ``drop_last`` drops it.

        In the stochastic modes, blocks are planned a few at a time (never past
        the end of an epoch) and their arrays built together, which saves
        numpy's per-call overhead (see :meth:`_plan_ahead`).  This changes
        nothing visible: the blocks are those planned one at a time, and the
        plan's position (:meth:`state_dict`, ``epoch``, ...) is always that
        after the block returned; a plan moved by :meth:`load_state_dict`
        forgets what it had planned ahead.
        """
        slots = self.slots
        if slots is None:
            assert self.sequential is not None
            epoch, index, lo = self.epoch, self.batch, self.window
            entries, starts = self.sequential.windows(lo, min(lo + self.batch_size, self.windows_per_epoch))
            last, dropped = self._advance(epoch, index, len(entries))
            return None if dropped else Block(epoch, index, entries, starts, last, self.state_dict())
        if not self._ahead:
            self._plan_ahead()
        blk, state = self._ahead.popleft()
        # the plan may be further on: back to the position after this block (the
        # slot sums stay those of the last block planned, where planning resumes)
        self.epoch, self.batch, self.window = state["epoch"], state["batch"], state["window"]
        slots.pos, slots.quota, slots.order_pos = list(state["slots"]), list(state["quota"]), state["order_pos"]
        return blk

    def blocks(self, max_iter: int | None = None, *, epoch_end: bool = True) -> Iterator[Block]:
        """Plan blocks: to the end of the current epoch (``max_iter=None`` and ``epoch_end``), or
        ``max_iter`` blocks (crossing epochs), or forever (``max_iter=None``, ``epoch_end=False``)."""
        count = 0
        while max_iter is None or count < max_iter:
            blk = self.next_block()
            if blk is None:
                if epoch_end and max_iter is None:
                    return
                continue
            count += 1
            yield blk
            if epoch_end and max_iter is None and blk.last_in_epoch:
                return

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The plan's position: small, JSON-serialisable (ints and lists of ints)."""
        slots = self.slots
        return {
            "format": STATE_FORMAT,
            "fingerprint": self.fingerprint,
            "seed": self.streams.seed,
            "epoch": self.epoch,
            "batch": self.batch,
            "window": self.window,
            "order_pos": 0 if slots is None else slots.order_pos,
            "slots": [] if slots is None else list(slots.pos),
            "quota": [] if slots is None else list(slots.quota),
        }

    def load_state_dict(self, state: dict[str, Any], *, check_seed: int | None = None) -> None:
        """Continue from ``state`` (from :meth:`state_dict` of a plan with the same configuration).

        Raises
        ------
        PescadorError
            If the state is malformed or from a differently configured plan or corpus.
        """
        try:
            if state.get("format") != STATE_FORMAT:
                raise PescadorError(f"not a {STATE_FORMAT} state: format={state.get('format')!r}")
            if state["fingerprint"] != self.fingerprint:
                raise PescadorError(
                    "the state comes from a plan with another configuration or corpus "
                    f"(fingerprint {state['fingerprint']!r}, this plan {self.fingerprint!r})"
                )
            seed = int(state["seed"])
            if check_seed is not None and check_seed != seed:
                raise PescadorError(f"the state was saved with seed={seed}, this plan has seed={check_seed}")
            pos = [int(x) for x in state["slots"]]
            quota = [int(x) for x in state["quota"]]
            epoch, batch, window, order_pos = (int(state[k]) for k in ("epoch", "batch", "window", "order_pos"))
        except (KeyError, TypeError, ValueError) as exc:
            raise PescadorError(f"malformed plan state: {exc!r}") from None
        if len(pos) != len(quota) or len(pos) != self.n_active:
            raise PescadorError(f"malformed plan state: {len(pos)} slots for n_active={self.n_active}")
        bad = [k for k, v in (("epoch", epoch), ("batch", batch), ("window", window), ("order_pos", order_pos)) if v < 0]
        if bad or any(not -1 <= p < len(self.share) for p in pos) or any(q < 0 for q in quota):
            raise PescadorError(
                f"malformed plan state: epoch={epoch} batch={batch} window={window} order_pos={order_pos} "
                f"slots={pos[:8]} quota={quota[:8]} (entries 0..{len(self.share) - 1})"
            )
        self.streams.seed = seed
        self.epoch, self.batch, self.window = epoch, batch, window
        if self.slots is not None:
            self.slots.load(pos, quota, order_pos)
        self._ahead.clear()
        self._ahead_n = 1

    def copy(self) -> "WindowPlan":
        """An independent plan at the same position."""
        import copy as _copy

        return _copy.deepcopy(self)

    def __getstate__(self) -> dict[str, Any]:
        # copies and pickles leave out the blocks planned ahead (the position is that
        # after the last block returned); the streams and slots leave out their caches
        state = self.__dict__.copy()
        state.update(_ahead=deque(), _ahead_n=1)
        return state
