"""The checked parameters of a window plan: :class:`PlanParams`.  Pure: no I/O.

Everything a :class:`~zarrmux.plan.WindowPlan` is configured with, checked
and normalised once (each error names the parameter and value), and what
follows from the parameters and the corpus's row counts alone: the entries
long enough for a window, this rank's share of them, the default epoch
length, and the :attr:`PlanParams.fingerprint` a saved plan state carries so
that it is never loaded into a plan of another configuration or corpus.
The seed is not a parameter here: it keys the random streams
(:mod:`zarrmux.plan_streams`) and is part of the state.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .exceptions import ConfigError, PescadorError
from .params import check_int, check_number

__all__ = ["PlanParams", "MODES", "DISTRIBUTIONS"]

MODES = ("with_replacement", "single_active", "exhaustive", "sequential")
DISTRIBUTIONS = ("binomial", "poisson", "constant")


def _check_int(name: str, value: Any, minimum: int) -> int:
    return int(check_int(name, value, minimum=minimum))


class PlanParams:
    """The checked parameters of a plan (see :class:`~zarrmux.plan.WindowPlan` for their meaning).

    Attributes
    ----------
    n, batch_size, mode, dist, rank, world_size, drop_last : as given
    rows : int64 array
        Rows of every entry of the corpus.
    weights_all : float64 array
        Weight of every entry of the corpus (ones without ``weights``).
    n_short : int
        Entries shorter than ``n`` (left out).
    eligible_rows : int
        Rows of the entries that are not.
    share : int64 array
        Corpus positions of this rank's entries, in corpus order.
    n_active : int
        Active slots (0 in 'sequential' mode; in 'exhaustive' mode at most
        the share's entries).
    rate : float or None
        Expected windows per activation (None in 'sequential' mode).
    epoch_batches : int or None
        Batches per 'with_replacement' / 'single_active' epoch, else None.
    hop : int or None
        Step between window starts in 'sequential' mode, else None.
    fingerprint : str
        A hash of all of the above.
    """

    def __init__(
        self,
        rows: Sequence[int] | np.ndarray,
        n: int,
        *,
        batch_size: int,
        n_active: int | None,
        rate: float | None,
        weights: Any,
        mode: str,
        dist: str,
        rank: int,
        world_size: int,
        epoch_batches: int | None,
        hop: int | None,
        drop_last: bool,
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
            # stacklevel: the code that made the WindowPlan (this runs in its __init__)
            warnings.warn(
                f"{n_short} of {n_entries} entries have fewer than n={self.n} rows and are skipped",
                UserWarning,
                stacklevel=4,
            )
        self.n_short = n_short
        self.eligible_rows = int(self.rows[eligible].sum())
        self.weights_all = _check_weights(weights, n_entries)

        share = eligible[self.rank :: self.world_size]
        if mode != "sequential":
            share = share[self.weights_all[share] > 0]
        if len(share) == 0:
            raise PescadorError(
                f"rank {self.rank} of world_size={self.world_size} has no entry to draw from "
                f"({len(eligible)} entries have >= n={self.n} rows"
                + ("" if weights is None else ", counting only those of positive weight")
                + ")"
            )
        self.share = share.astype(np.int64)

        if mode == "sequential":
            self.hop: int | None = self.n if hop is None else _check_int("hop", hop, 1)
            self.n_active = 0
            self.rate: float | None = None
            self.epoch_batches: int | None = None
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
                self.epoch_batches = None
            elif epoch_batches is None:
                self.epoch_batches = max(1, -(-self.eligible_rows // (self.n * self.batch_size * self.world_size)))
            else:
                self.epoch_batches = _check_int("epoch_batches", epoch_batches, 1)
        self.fingerprint = self._make_fingerprint()

    def _make_fingerprint(self) -> str:
        h = hashlib.sha256()
        conf = [self.n, self.batch_size, self.n_active, self.rate, self.mode, self.dist, self.rank, self.world_size,
                self.epoch_batches, self.hop, self.drop_last]
        h.update(json.dumps(conf).encode())
        h.update(self.rows.tobytes())
        h.update(np.ascontiguousarray(self.weights_all).tobytes())
        return h.hexdigest()[:16]


def _check_weights(weights: Any, n_entries: int) -> np.ndarray:
    """``weights`` as one finite float >= 0 per entry (ones for ``None``)."""
    if weights is None:
        return np.ones(n_entries, dtype=np.float64)
    try:
        w_all = np.asarray(weights, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"weights={weights!r} is not an array of numbers: {exc}") from None
    if len(w_all) != n_entries:
        raise ConfigError(f"weights has {len(w_all)} values for {n_entries} entries")
    if not np.isfinite(w_all).all() or (w_all < 0).any():
        raise ConfigError("weights must be finite and >= 0")
    return w_all
