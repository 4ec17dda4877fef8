"""The window plan: which windows ``(entry, start)`` come next.  Pure, cheap, no I/O.

A :class:`WindowPlan` turns a corpus's row counts into a sequence of *blocks*
(one block = one batch of up to ``batch_size`` windows, as two int64 arrays
``entries`` and ``starts``).  Reading the windows is somebody else's job
(:mod:`zarrmux.sampler`), so the same plan drives a reader in the consumer's
thread, in background threads or (later) on Dask workers, and the sequence of
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
``Philox(key=seed, counter=(0, block, epoch, rank/tag))``: block ``b`` of epoch
``e`` on rank ``r`` always draws the same numbers whoever plans it.  So the
whole state between blocks is a handful of integers (seed, epoch, batch,
window counter, position in the exhaustive order) and the active slots
(``n_active`` entries and quotas): :meth:`WindowPlan.state_dict` is small and
JSON-serialisable, and :meth:`WindowPlan.load_state_dict` resumes exactly.

Cost
----
Planning stays far below the cost of reading a batch (tens of microseconds
per batch of 32 windows, see ``tools/bench_plan.py``): the stochastic modes
plan blocks a few at a time, replay each block's draws from the raw outputs
of its Philox stream drawn in one call (the very numbers numpy's
``Generator`` gives, so the sequence, and the states saved, are those of the
first version of this module, kept in ``tests/plan_reference.py``), and
build the arrays of the blocks planned together in one go.

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

import hashlib
import json
import math
import warnings
from bisect import bisect_right
from collections import deque
from collections.abc import Iterator, Sequence
from itertools import accumulate
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .exceptions import ConfigError, PescadorError
from .params import check_int, check_number
from .philox import PHILOX_BUFFER_SIZE, TWO_M53, Draws, uniform_starts

__all__ = ["WindowPlan", "Block", "MODES", "DISTRIBUTIONS", "STATE_FORMAT"]

MODES = ("with_replacement", "single_active", "exhaustive", "sequential")
DISTRIBUTIONS = ("binomial", "poisson", "constant")
STATE_FORMAT = "zarrmux.WindowPlan/1"

# what each draw is for: the low 8 bits of the Philox counter's last word
_TAG_BLOCK = 1
_TAG_INIT = 2
_TAG_ORDER = 3
#: the quota of a slot when ``rate`` is None: never deactivated
_NO_QUOTA = 1 << 62
_MASK64 = (1 << 64) - 1
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


def fresh_seed() -> int:
    """A seed from the OS's entropy, for ``seed=None`` (kept in the state, so a run can resume)."""
    return int(np.random.SeedSequence().entropy) & ((1 << 63) - 1)  # type: ignore[arg-type]  # entropy is an int when drawn


def _check_int(name: str, value: Any, minimum: int) -> int:
    return int(check_int(name, value, minimum=minimum))


class WindowPlan:
    """Plans windows of ``n`` rows from entries with the given row counts.

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
        self.n = _check_int("n", n, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        if mode not in MODES:
            raise ConfigError(f"mode={mode!r} is not one of {list(MODES)}")
        if dist not in DISTRIBUTIONS:
            raise ConfigError(f"dist={dist!r} is not one of {list(DISTRIBUTIONS)}")
        self.mode = mode
        self.dist = dist
        self.world_size = _check_int("world_size", world_size, 1)
        self.rank = _check_int("rank", rank, 0)
        if self.rank >= self.world_size:
            raise ConfigError(f"rank={rank!r} must be < world_size={world_size!r}")
        if seed is None:
            seed = fresh_seed()
        self.seed = _check_int("seed", seed, 0)
        if self.seed > _MASK64:
            raise ConfigError(f"seed={seed!r} must be < 2**64")
        self.drop_last = bool(drop_last)
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        n_entries = len(self.rows)
        if n_entries == 0:
            raise PescadorError("the corpus has no entries")

        eligible = np.flatnonzero(self.rows >= self.n)
        n_short = n_entries - len(eligible)
        if len(eligible) == 0:
            raise PescadorError(
                f"n={self.n} is longer than every entry (the longest has {int(self.rows.max())} rows)"
            )
        if n_short:
            warnings.warn(
                f"{n_short} of {n_entries} entries have fewer than n={self.n} rows and are skipped",
                UserWarning,
                stacklevel=3,
            )
        self.n_short = n_short
        self.eligible_rows = int(self.rows[eligible].sum())

        if weights is None:
            w_all = np.ones(n_entries, dtype=np.float64)
        else:
            try:
                w_all = np.asarray(weights, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"weights={weights!r} is not an array of numbers: {exc}") from None
            if len(w_all) != n_entries:
                raise ConfigError(f"weights has {len(w_all)} values for {n_entries} entries")
            if not np.isfinite(w_all).all() or (w_all < 0).any():
                raise ConfigError("weights must be finite and >= 0")
        self.weights_all = w_all

        share = eligible[self.rank :: self.world_size]
        if mode != "sequential":
            share = share[w_all[share] > 0]
        if len(share) == 0:
            raise PescadorError(
                f"rank {self.rank} of world_size={self.world_size} has no entry to draw from "
                f"({len(eligible)} entries have >= n={self.n} rows"
                + ("" if weights is None else ", counting only those of positive weight")
                + ")"
            )
        #: corpus positions of this rank's entries, in corpus order
        self.share = share.astype(np.int64)
        self._share_rows = self.rows[self.share]
        self._span = self._share_rows - self.n + 1  # number of valid starts per share entry
        self._span_u64 = self._span.astype(np.uint64)
        #: the largest span if every span is in [2, 2**32) (window starts take the vectorised
        #: path of uniform_starts), else None
        self._span_bound = int(self._span.max()) if self._span.min() >= 2 and self._span.max() <= 0xFFFFFFFF else None
        #: outputs of a block's stream drawn in advance: its uniforms, the window starts'
        #: words and a few more for refills (a multiple of 4, see Draws)
        B = self.batch_size
        self._raw_count = -(-(B + (B + 1) // 2 + 24) // 4) * 4
        #: generators, reset for every use (see _rng)
        self._gens: dict[tuple[int, int], np.random.Generator] = {}
        #: the active slots' weights, their running sums, the last live slot, and the sums
        #: before it as an array: kept between blocks (see _slot_sums)
        self._slot_w: list[float] | None = None  # None: to recompute
        self._slot_cum: list[float] = []
        self._slot_last = -1
        self._slot_cum_arr: np.ndarray | None = None  # made when needed
        self._sums_version = 0
        #: blocks planned ahead, with the state after each (see next_block), and how many to plan next
        self._ahead: deque[tuple[Block | None, dict[str, Any]]] = deque()
        self._ahead_n = 1

        if mode == "sequential":
            self.hop: int | None = self.n if hop is None else _check_int("hop", hop, 1)
            per_entry = (self._share_rows - self.n) // self.hop + 1
            self._seq_cum = np.cumsum(per_entry)
            self._seq_first = self._seq_cum - per_entry  # epoch window number of each entry's first window
            self.windows_per_epoch = int(self._seq_cum[-1])
            self.n_active = 0
            self.rate = None
            self.epoch_batches = None
        else:
            self.hop = None
            if n_active is None:
                raise ConfigError(f"n_active is required in mode={mode!r}")
            self.n_active = _check_int("n_active", n_active, 1)
            if rate is not None:
                rate = check_number("rate", rate, positive=True)
                if dist != "constant" and rate < 1:
                    raise ConfigError(f"rate={rate!r} must be >= 1 with dist={dist!r}")
            self.rate = None if rate is None else float(rate)
            if mode == "single_active" and self.n_active > len(self.share):
                raise PescadorError(
                    f"n_active={n_active} exceeds the {len(self.share)} entries of rank {self.rank} "
                    "(mode='single_active' keeps each entry in one slot at most)"
                )
            if mode == "exhaustive":
                self.n_active = min(self.n_active, len(self.share))
            if mode == "exhaustive":
                self.epoch_batches = None
            elif epoch_batches is None:
                self.epoch_batches = max(1, -(-self.eligible_rows // (self.n * self.batch_size * self.world_size)))
            else:
                self.epoch_batches = _check_int("epoch_batches", epoch_batches, 1)
            w = w_all[self.share]
            self._w = w.tolist()
            wcum = np.cumsum(w)
            self._wtotal = float(wcum[-1])
            self._wcum = wcum.tolist()
            self._last_pos = len(self.share) - 1
            self._binomial = dist == "binomial" and self.rate is not None
            self._rate_m1 = 0.0 if self.rate is None else self.rate - 1  # (used only with a rate)
        self._fingerprint = self._make_fingerprint()
        self._order: np.ndarray | None = None
        self._order_epoch = -1
        self._start_epoch(0)

    # ------------------------------------------------------------------ setup
    def _make_fingerprint(self) -> str:
        h = hashlib.sha256()
        conf = [self.n, self.batch_size, self.n_active, self.rate, self.mode, self.dist, self.rank, self.world_size,
                self.epoch_batches, self.hop, self.drop_last]
        h.update(json.dumps(conf).encode())
        h.update(self.rows.tobytes())
        h.update(np.ascontiguousarray(self.weights_all).tobytes())
        return h.hexdigest()[:16]

    def _rng(self, epoch: int, block: int, tag: int, which: int = 0) -> np.random.Generator:
        """The generator of draw ``tag`` of block ``block`` of ``epoch`` (see "Randomness and state").

        It is ``Generator(Philox(key=seed, counter=(0, block, epoch, rank << 8 | tag)))``,
        but making a ``Philox`` costs 20-30 us, so the plan keeps generators
        and resets a bit generator to exactly that fresh state instead: key,
        counter, an empty output buffer and no pending 32-bit half (about 2
        us).  Tags do not share a generator, so one stream may be drawn from
        while another is (the epoch's order is computed while a block draws),
        and nor do blocks planned together (``which``: the block's place among
        them), so each can still draw its window starts when they are built
        together (see :meth:`_plan_ahead`).
        """
        gen = self._gens.get((tag, which))
        if gen is None:
            # (any seed: the state is replaced below; a SeedSequence spares gathering OS entropy)
            gen = self._gens[tag, which] = np.random.Generator(np.random.Philox(np.random.SeedSequence(0)))
        gen.bit_generator.state = {
            "bit_generator": "Philox",
            "state": {"counter": [0, block, epoch, (self.rank << 8) | tag], "key": [self.seed, 0]},
            "buffer": [0, 0, 0, 0],
            "buffer_pos": PHILOX_BUFFER_SIZE,  # empty
            "has_uint32": 0,
            "uinteger": 0,
        }
        return gen

    def _epoch_order(self, epoch: int) -> np.ndarray:
        """'exhaustive': the epoch's weighted random order of share positions (Efraimidis-Spirakis)."""
        if self._order_epoch != epoch:
            rng = self._rng(epoch, 0, _TAG_ORDER)
            u = rng.random(len(self.share))
            keys = np.log1p(-u) / np.asarray(self._w)  # log(1-u)/w: larger is earlier
            self._order = np.argsort(-keys, kind="stable").astype(np.int64)
            self._order_epoch = epoch
        assert self._order is not None
        return self._order

    def _start_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.batch = 0
        self.window = 0  # windows planned in this epoch ('sequential': next window)
        self.order_pos = 0
        self._ahead.clear()
        if self.mode == "sequential":
            self._slot_pos: list[int] = []
            self._slot_quota: list[int] = []
            return
        k = self.n_active
        # about the outputs the epoch's first slots and quotas take (more are drawn if needed)
        count = k + 8 + {"with_replacement": k, "single_active": len(self.share)}.get(self.mode, 0)
        gen = self._rng(epoch, 0, _TAG_INIT)
        rng = Draws(gen, gen.bit_generator.random_raw(-(-count // 4) * 4), 0, [0, epoch, (self.rank << 8) | _TAG_INIT],
                     self.seed)
        if self.mode == "with_replacement":
            pos = [self._draw_pos(rng) for _ in range(k)]
        elif self.mode == "single_active":
            # k distinct positions, weighted without replacement
            keys = np.log1p(-rng.random_array(len(self.share))) / np.asarray(self._w)
            pos = np.argsort(-keys, kind="stable")[:k].tolist()
        else:
            order = self._epoch_order(epoch)
            pos = order[:k].tolist()
            self.order_pos = k
        self._slot_pos = [int(p) for p in pos]
        self._slot_w = None
        total = sum(self._w[p] for p in self._slot_pos)
        self._slot_quota = [self._draw_quota(rng, self._w[p] / total if total > 0 else 1.0) for p in self._slot_pos]

    # ------------------------------------------------------------------ draws
    def _draw_pos(self, rng: Draws) -> int:
        """A share position drawn proportionally to the weights."""
        return min(bisect_right(self._wcum, rng.random() * self._wtotal), self._last_pos)

    def _draw_quota(self, rng: Draws, p: float) -> int:
        """Windows for a new activation whose chance among the active slots is ``p``."""
        if self._binomial and p <= 0.9999:  # the most common case first
            q = 1 - p
            return 1 + int(rng.binomial(int(self._rate_m1 / q), q))
        rate = self.rate
        if rate is None:
            return _NO_QUOTA
        if self.dist == "constant":
            return max(1, math.ceil(rate))
        if self.dist == "poisson" or p > 0.9999 or not (p == p):
            return 1 + int(rng.poisson(rate - 1))
        return 1 + int(rng.binomial(int((rate - 1) / (1 - p)), 1 - p))

    def _replace(self, s: int, rng: Draws, others: float) -> None:
        """Refill slot ``s`` whose quota is used up (``others``: total weight of the other slots)."""
        old = self._slot_pos[s]
        if self.mode == "with_replacement":
            new = self._draw_pos(rng)
        elif self.mode == "single_active":
            slots = self._slot_pos
            new = -1
            for _ in range(32):
                cand = self._draw_pos(rng)
                if cand == old or cand not in slots:  # not active in another slot
                    new = cand
                    break
            if new < 0:  # the active entries hold most of the weight: draw exactly among the rest
                taken = set(slots)
                taken.discard(old)
                w = np.asarray(self._w).copy()
                w[list(taken)] = 0.0
                new = min(int(np.searchsorted(np.cumsum(w), rng.random() * w.sum(), side="right")), len(w) - 1)
        else:
            order = self._epoch_order(self.epoch)
            if self.order_pos < len(order):
                new = int(order[self.order_pos])
                self.order_pos += 1
            else:
                new = -1
        self._slot_pos[s] = new
        if new < 0:
            self._slot_quota[s] = 0
            return
        wn = self._w[new]
        self._slot_quota[s] = self._draw_quota(rng, wn / (others + wn) if others + wn > 0 else 1.0)

    # ------------------------------------------------------------------ planning
    @property
    def epoch_done(self) -> bool:
        """Whether the current epoch has no window left (only true transiently)."""
        if self.mode == "sequential":
            return self.window >= self.windows_per_epoch
        if self.mode == "exhaustive":
            return max(self._slot_pos) < 0
        return self.batch >= (self.epoch_batches or 0)

    def _slot_sums(self) -> None:
        """Recompute the active slots' weights, their running sums and the last live slot."""
        w = self._w
        sw = self._slot_w = [w[p] if p >= 0 else 0.0 for p in self._slot_pos]
        self._slot_cum = list(accumulate(sw))
        last = len(sw) - 1
        while last >= 0 and sw[last] <= 0.0:
            last -= 1
        self._slot_last = last
        self._slot_cum_arr = None
        self._sums_version += 1

    def _picks(self, u: np.ndarray) -> list[int]:
        """The slots of windows with uniforms ``u``, for the current slot sums (whose total is > 0).

        Window ``j`` takes the first slot whose running weight sum exceeds
        ``u[j] * total``, or the last live slot if none does (``u[j] * total``
        is inf or NaN when the weights' sum overflows): searching the sums
        before the last live slot gives both.
        """
        c, last = self._slot_cum, self._slot_last
        if len(u) < 16:  # fewer calls than with numpy
            total = c[-1]
            return [bisect_right(c, x * total, 0, last) for x in u.tolist()]
        if self._slot_cum_arr is None:
            self._slot_cum_arr = np.array(c[:last])
        return self._slot_cum_arr.searchsorted(u * c[-1], side="right").tolist()

    def _plan_slots(self, draws: Draws, u: np.ndarray, picks: list[int] | None) -> list[int]:
        """The share positions of the next block's windows (stochastic modes); advances the slots.

        Parameters
        ----------
        draws : Draws
            The block's draws, just after its ``batch_size`` uniforms ``u``.
        u : float array
            The uniforms, one per window.
        picks : list of int or None
            The windows' slots (:meth:`_picks`) if already found for the
            current slot sums.

        Notes
        -----
        Each window takes its slot in turn; a slot whose quota runs out is
        refilled (:meth:`_replace`) before the next window.  The slots of the
        remaining windows are found again only when a refill changes a slot's
        weight (with uniform weights: only at the end of an 'exhaustive'
        epoch).  The window starts are drawn afterwards (:func:`uniform_starts`).
        """
        slot_pos, quota, w = self._slot_pos, self._slot_quota, self._w
        sw = self._slot_w
        assert sw is not None
        out: list[int] = []
        while self._slot_cum[-1] > 0.0:  # (exhaustive: nothing left when 0)
            if picks is None:
                picks = self._picks(u[len(out) :] if out else u)
            for s in picks:
                out.append(slot_pos[s])
                q = quota[s] - 1
                quota[s] = q
                if q <= 0:
                    old = sw[s]
                    self._replace(s, draws, sum(sw) - old)
                    p = slot_pos[s]
                    if (w[p] if p >= 0 else 0.0) != old:  # the running sums change
                        self._slot_sums()
                        sw = self._slot_w
                        assert sw is not None
                        picks = None
                        break
            if picks is not None or len(out) == len(u):
                break  # every window planned
        return out

    def _plan_sequential(self) -> tuple[np.ndarray, np.ndarray]:
        lo = self.window
        hi = min(lo + self.batch_size, self.windows_per_epoch)
        idx = np.arange(lo, hi, dtype=np.int64)
        k = self._seq_cum.searchsorted(idx, side="right")
        return self.share[k], (idx - self._seq_first[k]) * self.hop

    def _advance(self, epoch: int, index: int, size: int) -> tuple[bool, bool]:
        """Count a planned block of ``size`` windows; move to the next epoch after its last block.

        Returns whether the block was the epoch's last, and whether it is dropped.
        """
        self.window += size
        self.batch += 1
        last = self.epoch_done
        if last:
            self._start_epoch(epoch + 1)
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
        generator (:meth:`_rng` with ``which``), so it can still draw its
        window starts then.
        """
        count = self._ahead_n
        self._ahead_n = min(2 * count, _AHEAD)
        epoch, batch, B = self.epoch, self.batch, self.batch_size
        if self.epoch_batches is not None:  # (never past the epoch's end)
            count = max(1, min(count, self.epoch_batches - batch))
        tagword = (self.rank << 8) | _TAG_BLOCK
        gens = [self._rng(epoch, batch + w, _TAG_BLOCK, w) for w in range(count)]
        raws = [gen.bit_generator.random_raw(self._raw_count) for gen in gens]
        # the blocks' uniforms (used here; the draws continue after them)
        u_all = (np.concatenate(raws).reshape(count, -1)[:, :B] >> 11) * TWO_M53
        draws = [
            Draws(gen, raw, B, [batch + w, epoch, tagword], self.seed) for w, (gen, raw) in enumerate(zip(gens, raws))
        ]
        if self._slot_w is None:
            self._slot_sums()
        version = self._sums_version
        picks_all = self._picks(u_all.reshape(-1)) if self._slot_cum[-1] > 0.0 else None
        planned = []  # (index, windows, last, state after) per block; None windows: dropped
        kept: list[Draws] = []  # the draws of the blocks kept
        sizes: list[int] = []
        positions: list[int] = []  # of all their windows
        for which, d in enumerate(draws):
            picks = None
            if picks_all is not None and self._sums_version == version:  # still valid
                picks = picks_all[which * B : (which + 1) * B]
            pos = self._plan_slots(d, u_all[which], picks)
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
        if self.mode == "sequential":
            epoch, index = self.epoch, self.batch
            entries, starts = self._plan_sequential()
            last, dropped = self._advance(epoch, index, len(entries))
            return None if dropped else Block(epoch, index, entries, starts, last, self.state_dict())
        if not self._ahead:
            self._plan_ahead()
        blk, state = self._ahead.popleft()
        # the plan may be further on: back to the position after this block (the
        # slot sums stay those of the last block planned, where planning resumes)
        self.epoch, self.batch, self.window, self.order_pos = (
            state["epoch"], state["batch"], state["window"], state["order_pos"]
        )
        self._slot_pos, self._slot_quota = list(state["slots"]), list(state["quota"])
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
        return {
            "format": STATE_FORMAT,
            "fingerprint": self._fingerprint,
            "seed": self.seed,
            "epoch": self.epoch,
            "batch": self.batch,
            "window": self.window,
            "order_pos": self.order_pos,
            "slots": list(self._slot_pos),
            "quota": list(self._slot_quota),
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
            if state["fingerprint"] != self._fingerprint:
                raise PescadorError(
                    "the state comes from a plan with another configuration or corpus "
                    f"(fingerprint {state['fingerprint']!r}, this plan {self._fingerprint!r})"
                )
            seed = int(state["seed"])
            if check_seed is not None and check_seed != seed:
                raise PescadorError(f"the state was saved with seed={seed}, this plan has seed={check_seed}")
            slots = [int(x) for x in state["slots"]]
            quota = [int(x) for x in state["quota"]]
            epoch, batch, window, order_pos = (int(state[k]) for k in ("epoch", "batch", "window", "order_pos"))
        except (KeyError, TypeError, ValueError) as exc:
            raise PescadorError(f"malformed plan state: {exc!r}") from None
        if len(slots) != len(quota) or len(slots) != (0 if self.mode == "sequential" else self.n_active):
            raise PescadorError(f"malformed plan state: {len(slots)} slots for n_active={self.n_active}")
        bad = [k for k, v in (("epoch", epoch), ("batch", batch), ("window", window), ("order_pos", order_pos)) if v < 0]
        if bad or any(not -1 <= p < len(self.share) for p in slots) or any(q < 0 for q in quota):
            raise PescadorError(
                f"malformed plan state: epoch={epoch} batch={batch} window={window} order_pos={order_pos} "
                f"slots={slots[:8]} quota={quota[:8]} (entries 0..{len(self.share) - 1})"
            )
        self.seed = seed
        self._order_epoch = -1
        self.epoch, self.batch, self.window, self.order_pos = epoch, batch, window, order_pos
        self._slot_pos, self._slot_quota = slots, quota
        self._slot_w = None
        self._ahead.clear()
        self._ahead_n = 1

    def copy(self) -> "WindowPlan":
        """An independent plan at the same position."""
        import copy as _copy

        return _copy.deepcopy(self)

    def __getstate__(self) -> dict[str, Any]:
        # copies and pickles leave out what is only there for speed: the generators
        # (costly to copy, cheap to make again), the blocks planned ahead (the
        # position is that after the last block returned) and the slot sums
        state = self.__dict__.copy()
        state.update(_gens={}, _ahead=deque(), _ahead_n=1, _slot_w=None)
        return state
