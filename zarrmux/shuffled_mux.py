"""``ShuffledMux``: interleave the items of all streamers at random, restarting them.

With the same ``random_state`` (an int or a ``RandomState``) it yields exactly
the sequence pescador 3.0's ``ShuffledMux`` yields over the same streamers,
with one ``random_sample()`` and a bisection of a cached cumulative
distribution per item (what ``RandomState.choice(n, p=...)`` computes).

Part of the streaming core: imports numpy, ``util``, ``mux_params`` and ``mux_base`` only.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from typing import Any

import numpy as np

from .exceptions import PescadorError
from .mux_base import BaseMux
from .mux_params import normalised_weights
from .util import Draws, RandomLike, cdf_of

__all__ = ["ShuffledMux"]


class ShuffledMux(BaseMux):
    """Interleave items of all streamers at random; every streamer stays active.

    Exhausted streams are restarted; a stream that produces nothing is dropped.

    Parameters
    ----------
    streamers : iterable of Streamer
        The streamers.
    weights : array-like of float >= 0, or None
        Sampling proportion of each streamer; ``None``: uniform.
    random_state : None, int, np.random.RandomState or np.random.Generator
        See :class:`BaseMux`.

    Raises
    ------
    PescadorError
        For an empty collection or invalid ``weights`` or ``random_state``.
    """

    def __init__(self, streamers: Iterable[Any], weights: Any = None, random_state: RandomLike = None) -> None:
        super().__init__(streamers, random_state=random_state)
        if not self.n_streams:
            raise PescadorError("Cannot mux an empty collection")
        self.weights = normalised_weights(weights, self.n_streams, as_float64=True)

    def _reset(self) -> None:
        self.streams_ = None
        self.stream_weights_: Any = None
        self.stream_counts_ = None
        self.weight_norm_: Any = None
        self._draws: Draws | None = None
        self._cdf: list[float] = []

    def _activate(self) -> None:
        self._draws = Draws(self.rng)
        self.streams_ = [None] * self.n_streams
        self.stream_weights_ = np.array(self.weights, dtype=float)
        self.stream_counts_ = np.zeros(self.n_streams, dtype=int)  # pescador's type: an int array
        for idx in range(self.n_streams):
            self._new_stream(idx)
        self._set_weight_norm()

    def _set_weight_norm(self) -> None:
        self.weight_norm_ = self.stream_weights_.sum()
        if self.weight_norm_ > 0.0:
            self._cdf = cdf_of(self.stream_weights_ / self.weight_norm_)

    def _streamers_available(self) -> bool:
        return self.weight_norm_ > 0.0

    def _next_sample_index(self) -> int:
        return bisect_right(self._cdf, self._draws.uniform())  # type: ignore[union-attr]

    def _on_stream_exhausted(self, idx: int) -> None:
        if self.stream_counts_[idx] == 0:
            self.stream_weights_[idx] = 0

    def _new_stream(self, idx: int) -> None:
        if self.stream_weights_[idx]:
            self.streams_[idx] = self.streamers[idx].iterate()  # type: ignore[index]
        else:
            self.streams_[idx] = None  # type: ignore[index]
        self.stream_counts_[idx] = 0

    def _replace_stream(self, idx: int) -> None:
        if (self.stream_weights_ > 0).any():
            self._new_stream(idx)
        else:
            self.stream_weights_[idx] = 0.0
        self._set_weight_norm()
