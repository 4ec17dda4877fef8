"""The windows of a 'sequential' plan, by number: :class:`SequentialWindows`.  Pure: no I/O.

For evaluation, a 'sequential' :class:`~zarrmux.plan.WindowPlan` visits
every entry of its share in corpus order, with windows at ``0, hop, 2*hop,
... <= rows - n``; an epoch is one pass.  No randomness and no state but
the number of the next window, so a block is found directly from it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SequentialWindows"]


class SequentialWindows:
    """Window ``i`` of an epoch, for every entry of ``share`` in turn.

    Parameters
    ----------
    share : int64 array
        Corpus positions of the entries, in order.
    rows : int64 array
        Their rows (each >= ``n``).
    n : int > 0
        Rows per window.
    hop : int > 0
        Step between window starts.
    """

    def __init__(self, share: np.ndarray, rows: np.ndarray, n: int, hop: int) -> None:
        self.share = share
        self.hop = hop
        per_entry = (rows - n) // hop + 1
        self._cum = np.cumsum(per_entry)
        self._first = self._cum - per_entry  # epoch window number of each entry's first window
        #: windows of an epoch
        self.count = int(self._cum[-1])

    def windows(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``(entries, starts)`` of windows ``lo .. hi - 1`` of an epoch (``hi <= count``)."""
        idx = np.arange(lo, hi, dtype=np.int64)
        k = self._cum.searchsorted(idx, side="right")
        return self.share[k], (idx - self._first[k]) * self.hop
