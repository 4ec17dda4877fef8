"""Reference copy of ``zarrmux/plan.py`` as of commit 97a836c (before window planning was made cheap).

Kept verbatim (only the package-relative import of ``PescadorError`` became
absolute) so that ``tests/test_plan.py`` can check, block by block, that the
current :class:`zarrmux.plan.WindowPlan` plans exactly the same windows and
states for every seed, and ``tools/bench_plan.py`` can time it as the peer.
Do not "fix" or speed up this file: it is the specification of the sequence.

Original module docstring follows.

The window plan: which windows ``(entry, start)`` come next.  Pure, cheap, no I/O.

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
  pass over the rows, the same on every rank).
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

Rank sharding
-------------
Entries shorter than ``n`` are left out (one warning counts them).  The
remaining (eligible) entries, in corpus order, are dealt out round-robin:
rank ``r`` of ``world_size`` owns eligible entries ``r, r + world_size, ...``.
Shares are disjoint, together cover the eligible entries, and depend on
nothing random (so ranks agree even without a seed).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import warnings
from bisect import bisect_right
from itertools import accumulate
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zarrmux.exceptions import PescadorError

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


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise PescadorError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


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
    names : sequence of str, optional
        Entry names, for messages.

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
        names: Sequence[str] | None = None,
    ) -> None:
        self.n = _check_int("n", n, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        if mode not in MODES:
            raise PescadorError(f"mode={mode!r} is not one of {list(MODES)}")
        if dist not in DISTRIBUTIONS:
            raise PescadorError(f"dist={dist!r} is not one of {list(DISTRIBUTIONS)}")
        self.mode = mode
        self.dist = dist
        self.world_size = _check_int("world_size", world_size, 1)
        self.rank = _check_int("rank", rank, 0)
        if self.rank >= self.world_size:
            raise PescadorError(f"rank={rank!r} must be < world_size={world_size!r}")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy) & ((1 << 63) - 1)
        self.seed = _check_int("seed", seed, 0)
        if self.seed > _MASK64:
            raise PescadorError(f"seed={seed!r} must be < 2**64")
        self.drop_last = bool(drop_last)
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        n_entries = len(self.rows)
        self.names = list(names) if names is not None else None
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
                raise PescadorError(f"weights={weights!r} is not an array of numbers: {exc}") from None
            if len(w_all) != n_entries:
                raise PescadorError(f"weights has {len(w_all)} values for {n_entries} entries")
            if not np.isfinite(w_all).all() or (w_all < 0).any():
                raise PescadorError("weights must be finite and >= 0")
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

        if mode == "sequential":
            self.hop = self.n if hop is None else _check_int("hop", hop, 1)
            per_entry = (self._share_rows - self.n) // self.hop + 1
            self._seq_cum = np.cumsum(per_entry)
            self.windows_per_epoch = int(self._seq_cum[-1])
            self.n_active = 0
            self.rate = None
            self.epoch_batches = None
        else:
            self.hop = None
            if n_active is None:
                raise PescadorError(f"n_active is required in mode={mode!r}")
            self.n_active = _check_int("n_active", n_active, 1)
            if rate is not None:
                if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not (0 < rate < math.inf):
                    raise PescadorError(f"rate={rate!r} must be a finite number > 0 or None")
                if dist != "constant" and rate < 1:
                    raise PescadorError(f"rate={rate!r} must be >= 1 with dist={dist!r}")
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
            self._pos_of_entry = {int(e): i for i, e in enumerate(self.share)}
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

    def _rng(self, epoch: int, block: int, tag: int) -> np.random.Generator:
        return np.random.Generator(
            np.random.Philox(key=self.seed, counter=[0, block, epoch, (self.rank << 8) | tag])
        )

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
        if self.mode == "sequential":
            self._slot_pos: list[int] = []
            self._slot_quota: list[int] = []
            return
        rng = self._rng(epoch, 0, _TAG_INIT)
        k = self.n_active
        if self.mode == "with_replacement":
            pos = [self._draw_pos(rng) for _ in range(k)]
        elif self.mode == "single_active":
            # k distinct positions, weighted without replacement
            keys = np.log1p(-rng.random(len(self.share))) / np.asarray(self._w)
            pos = np.argsort(-keys, kind="stable")[:k].tolist()
        else:
            order = self._epoch_order(epoch)
            pos = order[:k].tolist()
            self.order_pos = k
        self._slot_pos = [int(p) for p in pos]
        total = sum(self._w[p] for p in self._slot_pos)
        self._slot_quota = [self._draw_quota(rng, self._w[p] / total if total > 0 else 1.0) for p in self._slot_pos]

    # ------------------------------------------------------------------ draws
    def _draw_pos(self, rng: np.random.Generator) -> int:
        """A share position drawn proportionally to the weights."""
        i = bisect_right(self._wcum, rng.random() * self._wtotal)  # type: ignore[arg-type]
        return min(i, len(self.share) - 1)

    def _draw_quota(self, rng: np.random.Generator, p: float) -> int:
        """Windows for a new activation whose chance among the active slots is ``p``."""
        rate = self.rate
        if rate is None:
            return _NO_QUOTA
        if self.dist == "constant":
            return max(1, math.ceil(rate))
        if self.dist == "poisson" or p > 0.9999 or not (p == p):
            return 1 + int(rng.poisson(rate - 1))
        return 1 + int(rng.binomial(int((rate - 1) / (1 - p)), 1 - p))

    def _replace(self, s: int, rng: np.random.Generator, others: float) -> None:
        """Refill slot ``s`` whose quota is used up (``others``: total weight of the other slots)."""
        old = self._slot_pos[s]
        if self.mode == "with_replacement":
            new = self._draw_pos(rng)
        elif self.mode == "single_active":
            taken = set(self._slot_pos)
            taken.discard(old)
            new = -1
            for _ in range(32):
                cand = self._draw_pos(rng)
                if cand not in taken:
                    new = cand
                    break
            if new < 0:  # the active entries hold most of the weight: draw exactly among the rest
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
            return all(p < 0 for p in self._slot_pos)
        return self.batch >= (self.epoch_batches or 0)

    def _plan_stochastic(self) -> tuple[np.ndarray, np.ndarray]:
        B = self.batch_size
        rng = self._rng(self.epoch, self.batch, _TAG_BLOCK)
        u = rng.random(B).tolist()
        slot_pos, quota, w = self._slot_pos, self._slot_quota, self._w
        sw = [w[p] if p >= 0 else 0.0 for p in slot_pos]
        out = [0] * B
        c = list(accumulate(sw))
        total = c[-1]
        j = 0
        while j < B:
            if total <= 0.0:
                break  # exhaustive: nothing left
            s = bisect_right(c, u[j] * total)
            while s >= len(c) or sw[s] <= 0.0:  # u * total rounded up to total: take the last live slot
                s = (s if s < len(c) else len(c)) - 1
            out[j] = slot_pos[s]
            j += 1
            quota[s] -= 1
            if quota[s] <= 0:
                self._replace(s, rng, sum(sw) - sw[s])
                p = slot_pos[s]
                sw[s] = w[p] if p >= 0 else 0.0
                c = list(accumulate(sw))
                total = c[-1]
        pos = np.asarray(out[:j], dtype=np.int64)
        starts = rng.integers(0, self._span[pos]) if j else np.zeros(0, dtype=np.int64)
        return self.share[pos], starts.astype(np.int64, copy=False)

    def _plan_sequential(self) -> tuple[np.ndarray, np.ndarray]:
        lo = self.window
        hi = min(lo + self.batch_size, self.windows_per_epoch)
        idx = np.arange(lo, hi, dtype=np.int64)
        k = np.searchsorted(self._seq_cum, idx, side="right")
        before = np.where(k > 0, self._seq_cum[np.maximum(k - 1, 0)], 0)
        return self.share[k], (idx - before) * self.hop

    def next_block(self) -> Block | None:
        """Plan the next block and advance; after an epoch's last block the plan is at the next epoch.

        Returns ``None`` (having moved to the next epoch) when the epoch's last
        block is short and ``drop_last`` drops it.
        """
        epoch, index = self.epoch, self.batch
        if self.mode == "sequential":
            entries, starts = self._plan_sequential()
        else:
            entries, starts = self._plan_stochastic()
        self.window += len(entries)
        self.batch += 1
        last = self.epoch_done
        if last:
            self._start_epoch(epoch + 1)
        if len(entries) == 0 or (self.drop_last and len(entries) < self.batch_size):
            if index == 0:
                raise PescadorError(
                    f"an epoch has only {len(entries)} windows, fewer than batch_size={self.batch_size}, "
                    "and drop_last=True drops them all"
                )
            return None
        return Block(epoch, index, entries, starts, last, self.state_dict())

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
        self.seed = seed
        self._order_epoch = -1
        self.epoch, self.batch, self.window, self.order_pos = epoch, batch, window, order_pos
        self._slot_pos, self._slot_quota = slots, quota

    def copy(self) -> "WindowPlan":
        """An independent plan at the same position."""
        import copy as _copy

        return _copy.deepcopy(self)
