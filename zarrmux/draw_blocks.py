"""Random draws made in blocks: what a mux draws one at a time, drawn in bulk, with the same values.

A ``StochasticMux`` draws one double per item (``RandomState.choice`` over the
active streams), and at each activation one more double and a binomial quota.
One numpy call per draw costs more than the rest of the item's path.
:class:`BlockDraws` draws the doubles a block at a time and computes from them
exactly what the calls one at a time return:

- the item draws, a window at a time, as bisections of the draw's cdf
  (``np.searchsorted``, the comparisons ``bisect_right`` makes);
- one double (:meth:`BlockDraws.uniform`);
- a binomial, by numpy's own algorithm for the quotas a mux draws
  (inversion; ``n * min(p, 1 - p) <= 30``).

Every numpy draw used here consumes whole doubles of the generator's stream, so
the values come out the same, in the same order.  The generator must be
private to the caller: it runs up to a block ahead of the draws made.
:class:`~zarrmux.util.Draws` offers the same methods one numpy call at a time.

Part of the streaming core: imports numpy, ``util`` and ``binomial_inversion`` only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .binomial_inversion import inversion_count, inversion_plan
from .util import is_legacy_rng

__all__ = ["BlockDraws", "BLOCK"]

#: doubles drawn per numpy call
BLOCK = 4096
#: item draws bisected at a time: MIN_SPAN after a new cdf, doubling up to MAX_SPAN while it lasts
MIN_SPAN, MAX_SPAN = 32, 1024


class BlockDraws:
    """The draws of a mux, computed from doubles drawn a block at a time.

    Parameters
    ----------
    rng : np.random.RandomState or np.random.Generator
        Private to this object from now on: it is drawn up to ``block``
        doubles ahead of the draws made.
    block : int > 0
        Doubles drawn per numpy call, once warmed up (the first calls draw
        fewer).

    Examples
    --------
    >>> a, b = np.random.RandomState(0), np.random.RandomState(0)
    >>> draws = BlockDraws(a)
    >>> [draws.uniform(), draws.binomial(15, 0.97)] == [b.random_sample(), b.binomial(15, 0.97)]
    True
    """

    def __init__(self, rng: Any, block: int = BLOCK) -> None:
        self._legacy = is_legacy_rng(rng)
        self._fill = rng.random_sample if self._legacy else rng.random
        self._block = block
        self._size = min(MIN_SPAN, block)  # doubles drawn at the next refill
        self._doubles: np.ndarray = np.empty(0)
        self._next = 0  # index in _doubles of the next draw
        self._window = (0, 0)  # (start, length) in _doubles of the last window
        self._cdf: list[float] | None = None  # the cdf of _indices
        self._cdf_array: np.ndarray = np.empty(0)
        self._indices: list[int] = []  # bisections of _doubles[slice(*_bisected)]
        self._bisected = (0, 0)
        self._span = MIN_SPAN

    def _refill(self) -> None:
        # small blocks first (a mux of a few items draws few), then doubling up to `block`
        self._doubles = self._fill(self._size)
        self._size = min(2 * self._size, self._block)
        self._next = 0
        self._bisected = (0, 0)

    def uniform(self) -> float:
        """The next double: what ``rng.random_sample()`` (``rng.random()``) returns."""
        i = self._next
        if i == len(self._doubles):
            self._refill()
            i = 0
        self._next = i + 1
        return self._doubles.item(i)  # type: ignore[no-any-return]

    def window(self, cdf: list[float], most: int | None) -> Iterator[int]:
        """The next draws as ``bisect_right(cdf, uniform())``: an iterator of at least one, at most ``most``.

        Pass the iterator to :meth:`commit` before any other draw: what it
        yielded counts as drawn, the rest not.
        """
        i = self._next
        if i == len(self._doubles):
            self._refill()
            i = 0
        if cdf is not self._cdf or not self._bisected[0] <= i < self._bisected[1]:
            self._bisect_from(i, cdf)
        first, stop = self._bisected
        if most is not None and most < stop - i:
            window = iter(self._indices[i - first : i - first + most])
            self._window = (i, most)
        else:
            window = iter(self._indices)
            window.__setstate__(i - first)  # type: ignore[attr-defined]
            self._window = (i, stop - i)
        return window

    def _bisect_from(self, i: int, cdf: list[float]) -> None:
        # a run of the same cdf bisects more doubles at a time; a new cdf starts small
        if cdf is self._cdf:
            self._span = min(2 * self._span, MAX_SPAN)
        else:
            self._cdf, self._cdf_array, self._span = cdf, np.array(cdf), MIN_SPAN
        stop = min(i + self._span, len(self._doubles))
        self._indices = np.searchsorted(self._cdf_array, self._doubles[i:stop], side="right").tolist()
        self._bisected = (i, stop)

    def commit(self, window: Any) -> None:
        """Count what ``window`` (the iterator :meth:`window` returned last) yielded as drawn."""
        start, length = self._window
        self._next = start + length - window.__length_hint__()

    def binomial(self, n: float, p: float) -> int:
        """``rng.binomial(n, p)``, from the next doubles (``n`` truncated to an int, as numpy does).

        numpy's algorithm (see ``binomial_inversion``), where only a count
        over ten standard deviations out could be told apart from numpy's on
        a machine whose numpy was compiled with fused multiply-adds.

        Raises
        ------
        ValueError
            If ``n * min(p, 1 - p) > 30``, where numpy uses its BTPE algorithm,
            which is not repeated here.
        """
        n = int(n)
        if (n == 0 or p == 0.0) and not self._legacy:
            return 0  # a Generator draws nothing; a RandomState draws as for any n, p
        plan = inversion_plan(n, p, False)  # not strict (positional: the cheaper cache key)
        if plan is None:
            raise ValueError(f"binomial(n={n}, p={p}): numpy draws it by BTPE, which BlockDraws does not repeat")
        return inversion_count(n, plan, self.uniform)

    def poisson(self, lam: float) -> int:
        """Not repeated here: a mux drawing Poisson quotas draws them one at a time."""
        raise ValueError(f"poisson(lam={lam}): BlockDraws does not repeat numpy's Poisson draws")
