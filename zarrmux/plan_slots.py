"""The active slots of a stochastic plan and their quotas: :class:`Slots`.  Pure: no I/O.

In the 'with_replacement', 'single_active' and 'exhaustive' modes of
:class:`~zarrmux.plan.WindowPlan`, ``n_active`` *slots* each hold an active
entry (a position in the rank's share) with a *quota* of windows.  Each
window picks a slot with probability proportional to its entry's weight; a
slot whose quota is used up is refilled at once (the modes differ only in
how: see :mod:`zarrmux.plan`).  :meth:`Slots.plan` finds the entries of one
block's windows this way and advances the slots; the window starts are drawn
by the plan afterwards.

What the slots hold between blocks is part of the plan state: which entry
each slot holds (``-1``: none left in an 'exhaustive' epoch), the quotas,
and the position in the 'exhaustive' epoch's order.  Everything else here
(the slots' weights and running sums, the epoch's order) is recomputed when
needed, never saved.

Cost
----
The slots of a block's windows come from one search of the slots' running
weight sums (:meth:`Slots.picks`), which stays valid until a refill changes
a slot's weight; the sums are kept between blocks, so blocks planned
together share one search.  Every draw is replayed from the block's raw
outputs (:class:`~zarrmux.philox.Draws`), in the order numpy's ``Generator``
would make it.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from itertools import accumulate
from typing import Any

import numpy as np

from .philox import Draws
from .plan_streams import PlanStreams

__all__ = ["Slots"]

#: the quota of a slot when ``rate`` is None: never deactivated
_NO_QUOTA = 1 << 62


class Slots:
    """The active entries and quotas of one rank's stochastic plan.

    Parameters
    ----------
    mode : {'with_replacement', 'single_active', 'exhaustive'}
    weights : float array, one per share position
        The share's weights (all > 0).
    n_active : int > 0
        Slots (in 'single_active' and 'exhaustive' modes at most the share's entries).
    rate : float > 0 or None
        Expected windows per activation; ``None``: never deactivated.
    dist : {'binomial', 'poisson', 'constant'}
        Distribution of the quota.
    streams : PlanStreams
        The plan's random streams (the epoch's first slots and order).

    Attributes
    ----------
    pos : list of int
        The share position each slot holds (-1: none).
    quota : list of int
        Windows each slot has left.
    order_pos : int
        'exhaustive': entries of the epoch's order activated so far.
    version : int
        Moves whenever the slots' weights change (picks found before are stale then).
    """

    def __init__(self, mode: str, weights: np.ndarray, n_active: int, rate: float | None, dist: str,
                 streams: PlanStreams) -> None:
        self.mode = mode
        self.n_active = n_active
        self.rate = rate
        self.dist = dist
        self.streams = streams
        self.w: list[float] = weights.tolist()
        wcum = np.cumsum(weights)
        self._wtotal = float(wcum[-1])
        self._wcum = wcum.tolist()
        self._last_pos = len(self.w) - 1
        self._binomial = dist == "binomial" and rate is not None
        self._rate_m1 = 0.0 if rate is None else rate - 1  # (used only with a rate)
        self.pos: list[int] = []
        self.quota: list[int] = []
        self.order_pos = 0
        #: the epoch's order ('exhaustive') and the epoch it is for (-1: none)
        self._order: np.ndarray | None = None
        self._order_epoch = -1
        #: the slots' weights, their running sums, the last live slot, and the sums before
        #: it as an array: kept between blocks (see _sums)
        self._slot_w: list[float] | None = None  # None: to recompute
        self._slot_cum: list[float] = []
        self._slot_last = -1
        self._slot_cum_arr: np.ndarray | None = None  # made when needed
        self.version = 0

    # ------------------------------------------------------------------ state
    def start(self, epoch: int) -> None:
        """The first slots and quotas of ``epoch`` (from its own stream)."""
        k = self.n_active
        n_share = len(self.w)
        # about the outputs the epoch's first slots and quotas take (more are drawn if needed)
        count = k + 8 + {"with_replacement": k, "single_active": n_share}.get(self.mode, 0)
        rng = self.streams.init_draws(epoch, count)
        self.order_pos = 0
        if self.mode == "with_replacement":
            pos = [self._draw_pos(rng) for _ in range(k)]
        elif self.mode == "single_active":
            # k distinct positions, weighted without replacement
            keys = np.log1p(-rng.random_array(n_share)) / np.asarray(self.w)
            pos = np.argsort(-keys, kind="stable")[:k].tolist()
        else:
            order = self._epoch_order(epoch)
            pos = order[:k].tolist()
            self.order_pos = k
        self.pos = [int(p) for p in pos]
        self._slot_w = None
        total = sum(self.w[p] for p in self.pos)
        self.quota = [self._draw_quota(rng, self.w[p] / total if total > 0 else 1.0) for p in self.pos]

    def load(self, pos: list[int], quota: list[int], order_pos: int) -> None:
        """Take the slots of a saved state (its seed may differ: the epoch's order is found again)."""
        self.pos, self.quota, self.order_pos = pos, quota, order_pos
        self._order_epoch = -1
        self._slot_w = None

    @property
    def exhausted(self) -> bool:
        """Whether no slot holds an entry ('exhaustive': the epoch is over)."""
        return max(self.pos) < 0

    def _epoch_order(self, epoch: int) -> np.ndarray:
        """'exhaustive': the epoch's weighted random order of share positions (Efraimidis-Spirakis)."""
        if self._order_epoch != epoch:
            rng = self.streams.order_generator(epoch)
            u = rng.random(len(self.w))
            keys = np.log1p(-u) / np.asarray(self.w)  # log(1-u)/w: larger is earlier
            self._order = np.argsort(-keys, kind="stable").astype(np.int64)
            self._order_epoch = epoch
        assert self._order is not None
        return self._order

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

    def _refill(self, s: int, rng: Draws, others: float, epoch: int) -> None:
        """Refill slot ``s`` whose quota is used up (``others``: total weight of the other slots)."""
        old = self.pos[s]
        if self.mode == "with_replacement":
            new = self._draw_pos(rng)
        elif self.mode == "single_active":
            slots = self.pos
            new = -1
            for _ in range(32):
                cand = self._draw_pos(rng)
                if cand == old or cand not in slots:  # not active in another slot
                    new = cand
                    break
            if new < 0:  # the active entries hold most of the weight: draw exactly among the rest
                taken = set(slots)
                taken.discard(old)
                w = np.asarray(self.w).copy()
                w[list(taken)] = 0.0
                new = min(int(np.searchsorted(np.cumsum(w), rng.random() * w.sum(), side="right")), len(w) - 1)
        else:
            order = self._epoch_order(epoch)
            if self.order_pos < len(order):
                new = int(order[self.order_pos])
                self.order_pos += 1
            else:
                new = -1
        self.pos[s] = new
        if new < 0:
            self.quota[s] = 0
            return
        wn = self.w[new]
        self.quota[s] = self._draw_quota(rng, wn / (others + wn) if others + wn > 0 else 1.0)

    # ------------------------------------------------------------------ planning
    def _sums(self) -> None:
        """Recompute the slots' weights, their running sums and the last live slot."""
        w = self.w
        sw = self._slot_w = [w[p] if p >= 0 else 0.0 for p in self.pos]
        self._slot_cum = list(accumulate(sw))
        last = len(sw) - 1
        while last >= 0 and sw[last] <= 0.0:
            last -= 1
        self._slot_last = last
        self._slot_cum_arr = None
        self.version += 1

    def first_picks(self, u: np.ndarray) -> list[int] | None:
        """The slots of windows with uniforms ``u`` for the slots as they are (None if no slot is live).

        For several blocks at once: valid for a block as long as :attr:`version` has not moved.
        """
        if self._slot_w is None:
            self._sums()
        return self.picks(u) if self._slot_cum[-1] > 0.0 else None

    def picks(self, u: np.ndarray) -> list[int]:
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

    def plan(self, draws: Draws, u: np.ndarray, picks: list[int] | None, epoch: int) -> list[int]:
        """The share positions of a block's windows; advances the slots.

        Parameters
        ----------
        draws : Draws
            The block's draws, just after its uniforms ``u``.
        u : float array
            The uniforms, one per window.
        picks : list of int or None
            The windows' slots (:meth:`picks`) if already found for the
            current slot sums.
        epoch : int
            The block's epoch ('exhaustive': whose order refills the slots).

        Notes
        -----
        Each window takes its slot in turn; a slot whose quota runs out is
        refilled before the next window.  The slots of the remaining windows
        are found again only when a refill changes a slot's weight (with
        uniform weights: only at the end of an 'exhaustive' epoch).
        """
        if self._slot_w is None:
            self._sums()
        slot_pos, quota, w = self.pos, self.quota, self.w
        sw = self._slot_w
        assert sw is not None
        out: list[int] = []
        while self._slot_cum[-1] > 0.0:  # (exhaustive: nothing left when 0)
            if picks is None:
                picks = self.picks(u[len(out) :] if out else u)
            for s in picks:
                out.append(slot_pos[s])
                q = quota[s] - 1
                quota[s] = q
                if q <= 0:
                    old = sw[s]
                    self._refill(s, draws, sum(sw) - old, epoch)
                    p = slot_pos[s]
                    if (w[p] if p >= 0 else 0.0) != old:  # the running sums change
                        self._sums()
                        sw = self._slot_w
                        assert sw is not None
                        picks = None
                        break
            if picks is not None or len(out) == len(u):
                break  # every window planned
        return out

    def __getstate__(self) -> dict[str, Any]:
        # copies and pickles leave out the slot sums: only there for speed
        state = self.__dict__.copy()
        state["_slot_w"] = None
        return state
