"""``Mux``: pescador 1.x's stochastic mux, kept for old code (deprecated: use ``StochasticMux``).

Part of the streaming core: imports numpy, ``util`` and ``stochastic_mux`` only.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable
from typing import Any, cast

import numpy as np

from .exceptions import PescadorError
from .stochastic_mux import StochasticMux
from .util import Deprecated, RandomLike, rename_kw

__all__ = ["Mux"]


class Mux(StochasticMux):
    """pescador 1.x's stochastic mux (deprecated: use :class:`StochasticMux`).

    Each activation draws a quota of ``1 + Poisson(rate)`` items, as 1.x did.

    Parameters
    ----------
    streamers : iterable of Streamer
        The streamers.
    k : int > 0
        The number of active streams (``n_active``).
    rate : float > 0
        Poisson rate of the per-activation quota (``lam`` is its old name).
    weights : array-like of float >= 0, or None
        Sampling proportion of each streamer.
    with_replacement : bool
        Draw streams with replacement (``mode='with_replacement'``).
    prune_empty_streams : bool
        Disable streamers that produce no data.
    revive : bool
        Without replacement, revive exhausted streams (``mode='single_active'``);
        otherwise each stream runs once (``mode='exhaustive'``).
    random_state : None, int, np.random.RandomState or np.random.Generator
        See :class:`~zarrmux.mux_base.BaseMux`.
    lam : float > 0
        Deprecated name of ``rate``.
    """

    def __init__(
        self,
        streamers: Iterable[Any],
        k: int,
        rate: float = 256.0,
        weights: Any = None,
        with_replacement: bool = True,
        prune_empty_streams: bool = True,
        revive: bool = False,
        random_state: RandomLike = None,
        lam: Any = Deprecated(),
    ) -> None:
        warnings.warn(
            "Mux(streamers, k, rate/lam, ...) is the pescador 1.x mux and is deprecated: use "
            "StochasticMux(streamers, n_active=k, rate=rate, mode=..., dist='poisson') instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        rate = rename_kw("lam", lam, "rate", rate, "1.0", "2.0")
        if with_replacement:
            mode = "with_replacement"
        else:
            mode = "single_active" if revive else "exhaustive"
        self.k = k
        self.with_replacement = with_replacement
        self.revive = revive
        super().__init__(
            streamers,
            n_active=k,
            rate=rate,
            weights=weights,
            mode=mode,
            prune_empty_streams=prune_empty_streams,
            dist="poisson",
            random_state=random_state,
        )

    def _check_rate(self, rate: Any) -> float | None:
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
            raise PescadorError(f"rate={rate!r} must be a finite number > 0")
        value = cast(float, rate)  # any real number, kept as given (as pescador does)
        if not (0 < value < math.inf):
            raise PescadorError(f"rate={rate!r} must be a finite number > 0")
        return value

    def _initial_stream_weights(self) -> np.ndarray:
        # 1.x started with zero weights; each activation sets its stream's weight
        return np.zeros(self.n_active)

    def _n_samples_to_stream(self, weight: float, old_idx: int) -> Any:
        return 1 + self.rng.poisson(lam=self.rate)
