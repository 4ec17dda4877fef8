"""Muxes: streamers that interleave the items of other streamers (pescador 3.0's ``mux``).

``StochasticMux``
    Keeps ``n_active`` streams active, draws items among them at random, and
    replaces a stream when its quota (expected ``rate`` items) is used up.
    Modes ``with_replacement``, ``single_active`` and ``exhaustive``.
``ShuffledMux``
    Interleaves items of all streamers at random, restarting them.
``RoundRobinMux``
    Iterates over all streamers in strict order.
``ChainMux``
    Runs the streamers one after another, like ``itertools.chain``.
``Mux``
    pescador 1.x's name for the stochastic mux (deprecated).

With the same ``random_state`` (an int or a ``RandomState``) every mux yields
exactly the sequence pescador 3.0 yields over the same streamers.  The draws
are the same draws, made cheaper: the per-item ``RandomState.choice(n, p=...)``
is replaced by one ``random_sample()`` and a bisection of a cached cumulative
distribution, which is what ``choice`` computes.

The base class is a template: ``BaseMux.iterate`` runs the loop, subclasses
override small hooks (``_activate``, ``_next_sample_index``,
``_on_stream_exhausted``, ``_replace_stream``, ``_new_stream``,
``_streamers_available``).
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from typing import Any, cast

import numpy as np

from . import core
from .exceptions import PescadorError
from .util import Deprecated, Draws, RandomLike, cdf_of, get_rng, rename_kw

__all__ = ["BaseMux", "StochasticMux", "ShuffledMux", "RoundRobinMux", "ChainMux", "Mux"]

STOCHASTIC_MODES = ("with_replacement", "single_active", "exhaustive")
DISTRIBUTIONS = ("constant", "binomial", "poisson")
ROUND_ROBIN_MODES = ("exhaustive", "cycle", "permuted_cycle")
CHAIN_MODES = ("exhaustive", "cycle")


def _counter_view(counts: Any) -> Any:
    """A fast writable view of ``stream_counts_`` for the per-item increment.

    ``counts[idx] += 1`` on an int ndarray costs ~0.5 us (numpy scalars); a
    memoryview of the same buffer writes through at list speed.  Anything else
    (a list, a read-only or non-contiguous or non-integer array) is returned as is.
    """
    if (
        isinstance(counts, np.ndarray)
        and counts.ndim == 1
        and counts.dtype.kind in "iu"
        and counts.flags.c_contiguous
        and counts.flags.writeable
    ):
        return counts.data  # the array's memoryview
    return counts


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise PescadorError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...], owner: str) -> str:
    if value not in allowed:
        raise PescadorError(f"{value} is not a valid {name} for {owner}: expected one of {list(allowed)}")
    return value


def _check_weights(weights: Any, n_streams: int, *, as_float64: bool) -> np.ndarray:
    """Validated, normalised weights: the same floats pescador computes, but checked early."""
    if weights is None:
        w = 1.0 / n_streams * np.ones(n_streams)
    else:
        try:
            w = np.array(np.atleast_1d(weights), copy=True)
        except Exception as exc:
            raise PescadorError(f"weights={weights!r} is not an array of numbers: {exc}") from None
        if w.dtype == object or w.dtype.kind not in "biuf":
            raise PescadorError(f"weights={weights!r} must be numbers")
        if as_float64 or w.dtype.kind != "f":
            w = w.astype(np.float64)
        if w.ndim != 1 or len(w) != n_streams:
            raise PescadorError(
                f"`weights` must be the same length as `streamers`: got {w.shape} weights for {n_streams} streamers"
            )
        if not np.isfinite(w).all():
            raise PescadorError(f"weights={weights!r} must be finite (no NaN or inf)")
        if (w < 0).any():
            raise PescadorError(f"weights={weights!r} must be non-negative")
        if not (w > 0.0).any():
            raise PescadorError("`weights` must contain at least one positive value")
    w /= np.sum(w)
    return w


class _GlobalRandom:
    """Stands for the global ``np.random`` in a pickled mux (a module does not pickle)."""


class BaseMux(core.Streamer):
    """The interface of a mux: a ``Streamer`` over several ``Streamer`` objects.

    When activated, a mux chooses its active substreams; each item comes from
    one of them; exhausted substreams are handled by the subclass (restarted,
    replaced, dropped).

    Parameters
    ----------
    streamers : iterable of Streamer or iterables
        The streamers; plain iterables are wrapped in ``Streamer``.
    random_state : None, int, np.random.RandomState or np.random.Generator
        ``None`` uses the global ``np.random``; an int seeds a new
        ``RandomState``.  A ``Generator`` is accepted too (pescador refuses
        one): sequences are then zarrmux's own, still reproducible.
    """

    #: the active streams; ``None`` until activated
    streams_: list[Any] | None
    #: items drawn from each active stream: a list, or an int array (ShuffledMux)
    stream_counts_: Any

    def __init__(self, streamers: Iterable[Any], random_state: RandomLike = None) -> None:
        try:
            self.streamers: Any = [s if isinstance(s, core.Streamer) else core.Streamer(s) for s in streamers]
        except TypeError:
            self.streamers = streamers
        self.rng = get_rng(random_state)
        self._reset()
        self.active_count_ = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> "BaseMux":
        cls = self.__class__
        result = cls.__new__(cls)
        memo[id(self)] = result
        for k, v in self.__dict__.items():
            # the global np.random module cannot be copied: share it, as pescador does
            if k == "rng" and v is np.random:
                setattr(result, k, v)
            else:
                setattr(result, k, copy.deepcopy(v, memo))
        return result

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if state.get("rng") is np.random:
            state["rng"] = _GlobalRandom  # unpickled as the receiving process's np.random
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("rng") is _GlobalRandom:
            state["rng"] = np.random
        self.__dict__.update(state)

    @property
    def is_activated_copy(self) -> bool:
        return self.streams_ is not None

    @property
    def n_streams(self) -> int:
        """The number of streamers."""
        return len(self.streamers)

    def _activate(self) -> None:
        """Choose the active streams: set ``streams_`` and ``stream_counts_``."""
        raise NotImplementedError()

    def _reset(self) -> None:
        """Clear the activation state."""
        self.streams_ = None

    def iterate(self, max_iter: float | None = None) -> Iterator[Any]:
        """Yield items from the mux, handling exhaustion and replacement of streams.

        Parameters
        ----------
        max_iter : None or int > 0
            Maximum number of items; ``None`` runs until the mux is exhausted.
        """
        limit = math.inf if max_iter is None else max_iter
        with self as mux:
            n = 0
            available = mux._streamers_available
            next_index = mux._next_sample_index
            streams, counts = mux.streams_, _counter_view(mux.stream_counts_)
            assert streams is not None, "an activated mux has its streams"
            while n < limit and available():
                idx = next_index()
                try:
                    item = next(streams[idx])
                except StopIteration:
                    mux._on_stream_exhausted(idx)
                    mux._replace_stream(idx)
                    streams, counts = mux.streams_, _counter_view(mux.stream_counts_)
                    assert streams is not None, "an activated mux has its streams"
                    continue
                yield item
                n += 1
                counts[idx] += 1

    def _streamers_available(self) -> bool:
        """Whether the main loop may draw another item."""
        return True

    def _on_stream_exhausted(self, idx: int) -> None:
        """Called when active stream ``idx`` is exhausted, before it is replaced."""

    def _replace_stream(self, idx: int) -> None:
        """Replace exhausted active stream ``idx``."""
        raise NotImplementedError("_replace_stream() must be implemented in a child class.")

    def _new_stream(self, idx: int) -> None:
        """Activate a new stream at active position ``idx``."""
        raise NotImplementedError("_new_stream() must be implemented in a child class.")

    def _next_sample_index(self) -> int:
        """The active position to draw the next item from."""
        raise NotImplementedError("_next_sample_index() must be implemented in a child class.")


class StochasticMux(BaseMux):
    """Keep ``n_active`` streams active and draw items among them at random.

    1. Select ``n_active`` streams at random.
    2. Give each activated stream a quota of items with expected value ``rate``.
    3. Yield items from the active streams, chosen at random by their weights.
    4. When a stream is exhausted (or its quota used up), activate another.

    Parameters
    ----------
    streamers : iterable of Streamer
        The streamers to multiplex.
    n_active : int > 0
        The number of streams active at any time.  Modes other than
        ``with_replacement`` need ``n_active <= len(streamers)``.
    rate : float >= 1 or None
        Expected number of items drawn from a stream per activation
        (any float > 0 for ``dist='constant'``).  ``None`` runs each stream to
        exhaustion.
    weights : array-like of float >= 0, or None
        Sampling proportion of each streamer (``len(streamers)`` values, at
        least one positive; integers welcome).  ``None``: uniform.
    mode : {"with_replacement", "single_active", "exhaustive"}
        ``with_replacement``: streams are drawn independently, possibly
        several copies of one stream at once.  ``single_active``: a stream is
        active at most once at a time, and revived when exhausted.
        ``exhaustive``: each stream is run at most once.
    prune_empty_streams : bool
        Disable streamers that produce no data.
    dist : {"constant", "binomial", "poisson"}
        Distribution of the per-activation quota; its mean is ``rate``.
    random_state : None, int, np.random.RandomState or np.random.Generator
        See :class:`BaseMux`.

    Raises
    ------
    PescadorError
        At construction, for an empty collection or an invalid ``n_active``,
        ``rate``, ``weights``, ``mode``, ``dist`` or ``random_state``, naming
        the parameter and value.  Unlike pescador, integer weights are
        accepted and ``rate`` out of range fails here rather than with a
        numpy error at the first activation.

    Examples
    --------
    >>> streams = [core.Streamer(c) for c in "abc"]
    >>> mux = StochasticMux(streams, n_active=2, rate=5, random_state=0)
    >>> len(list(mux(max_iter=9)))
    9
    """

    def __init__(
        self,
        streamers: Iterable[Any],
        n_active: int,
        rate: float | None,
        weights: Any = None,
        mode: str = "with_replacement",
        prune_empty_streams: bool = True,
        dist: str = "binomial",
        random_state: RandomLike = None,
    ) -> None:
        self.mode = _check_choice("mode", mode, STOCHASTIC_MODES, "StochasticMux")
        self.n_active = _check_int("n_active", n_active)
        self.dist = _check_choice("dist", dist, DISTRIBUTIONS, "StochasticMux")
        self.rate = self._check_rate(rate)
        self.prune_empty_streams = prune_empty_streams
        super().__init__(streamers, random_state=random_state)
        if not self.n_streams:
            raise PescadorError("Cannot mux an empty collection")
        if self.mode != "with_replacement" and self.n_active > self.n_streams:
            raise PescadorError(
                f"mode={mode} requires that n_active={n_active} be at most the number of streamers={self.n_streams}"
            )
        self.weights = _check_weights(weights, self.n_streams, as_float64=False)

    def _check_rate(self, rate: Any) -> float | None:
        if rate is None:
            return None
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not math.isfinite(rate):
            raise PescadorError(f"rate={rate!r} must be a finite number or None")
        low = 0 if self.dist == "constant" else 1
        if rate <= 0 or rate < low:
            raise PescadorError(f"rate={rate!r} must be > 0 (and >= 1 for dist={self.dist!r}), or None")
        return cast(float, rate)  # any real number, kept as given (as pescador does)

    def _reset(self) -> None:
        self.distribution_ = np.zeros(self.n_streams)
        self.valid_streams_ = np.zeros(self.n_streams)
        self.streams_ = None
        self.stream_idxs_: Any = None
        self.stream_counts_ = None
        self.stream_weights_: Any = None
        self.weight_norm_: Any = None
        self._draws: Draws | None = None
        self._cdf: list[float] = []  # cdf of stream_weights_ / weight_norm_
        self._dist_cdf: list[float] | None = None  # cdf of distribution_; None when stale
        self._dist_unit = False  # distribution_ unchanged since its sum was found exactly 1.0, entries > 0
        self._norm_fresh = False  # weight_norm_ is the sum of stream_weights_ as they are now
        self._float64 = False  # weights are float64: Python floats repeat numpy's arithmetic exactly
        self._live = False

    def _initial_stream_weights(self) -> np.ndarray:
        """The weights of the first ``n_active`` streams (pescador 3.0 draws them)."""
        try:
            return self.rng.choice(
                self.weights,
                size=self.n_active,
                p=(self.weights / np.sum(self.weights)),
                replace=(self.mode == "with_replacement"),
            )
        except ValueError:
            # only zero weights remain: harmless, as in pescador
            return np.zeros(self.n_active)

    def _activate(self) -> None:
        self._draws = Draws(self.rng)
        self.distribution_ = 1.0 / self.n_streams * np.ones(self.n_streams)
        self._dist_changed()
        self._norm_fresh = False
        self.valid_streams_ = np.ones(self.n_streams, dtype=bool)
        self.streams_ = [None] * self.n_active
        self.stream_weights_ = self._initial_stream_weights()
        self._float64 = self.stream_weights_.dtype == np.float64 and self.weights.dtype == np.float64
        self.stream_counts_ = [0] * self.n_active
        self.stream_idxs_ = np.zeros(self.n_active, dtype=int)
        for idx in range(self.n_active):
            if not (self.distribution_ > 0).any():
                break
            self._new_stream(idx)
        self._set_weight_norm()

    def _dist_changed(self) -> None:
        """Forget what was derived from ``distribution_`` (call after changing it)."""
        self._dist_cdf = None
        self._dist_unit = False

    def _set_weight_norm(self) -> None:
        """Recompute the total weight, the loop condition and the draw's cdf."""
        self.weight_norm_ = self.stream_weights_.sum()
        self._norm_fresh = True
        self._live = bool(self.weight_norm_ > 0.0 and self.valid_streams_.any())
        if self._live:
            self._cdf = cdf_of(self.stream_weights_ / self.weight_norm_)

    def _streamers_available(self) -> bool:
        return self._live

    def _next_sample_index(self) -> int:
        # == rng.choice(n_active, p=stream_weights_ / weight_norm_), same draw
        return bisect_right(self._cdf, self._draws.uniform())  # type: ignore[union-attr]

    def iterate(self, max_iter: float | None = None) -> Iterator[Any]:
        """Yield items from the mux, handling exhaustion and replacement of streams.

        Parameters
        ----------
        max_iter : None or int > 0
            Maximum number of items; ``None`` runs until the mux is exhausted.
        """
        cls = type(self)
        if (
            cls._next_sample_index is not StochasticMux._next_sample_index
            or cls._streamers_available is not StochasticMux._streamers_available
        ):
            yield from super().iterate(max_iter)  # a subclass changed the loop's hooks
            return
        # BaseMux.iterate with both hooks inlined: the per-item path is one
        # draw, one bisection, one next()
        limit = math.inf if max_iter is None else max_iter
        with self as mux:
            n = 0
            uniform = mux._draws.uniform  # type: ignore[union-attr]
            streams, counts, cdf, live = mux.streams_, _counter_view(mux.stream_counts_), mux._cdf, mux._live
            while n < limit and live:
                idx = bisect_right(cdf, uniform())
                try:
                    item = next(streams[idx])  # type: ignore[index]
                except StopIteration:
                    mux._on_stream_exhausted(idx)
                    mux._replace_stream(idx)
                    streams, counts, cdf, live = mux.streams_, _counter_view(mux.stream_counts_), mux._cdf, mux._live
                    continue
                yield item
                n += 1
                counts[idx] += 1

    def _on_stream_exhausted(self, idx: int) -> None:
        if self.prune_empty_streams is True and self.stream_counts_[idx] == 0:
            self.distribution_[self.stream_idxs_[idx]] = 0.0
            self._dist_changed()
            self.valid_streams_[self.stream_idxs_[idx]] = False
            self._live = bool(self._live and self.valid_streams_.any())
        if self.mode == "single_active":
            self._dist_changed()
            # revive the stream with the largest current probability
            if self.distribution_.any():
                self.distribution_[self.stream_idxs_[idx]] = np.max(self.distribution_)
            else:
                self.distribution_[self.stream_idxs_[idx]] = 1.0

    def _n_samples_to_stream(self, weight: float, old_idx: int) -> Any:
        """The quota of a newly activated stream of weight ``weight`` at position ``old_idx``."""
        if self.rate is None:
            return None
        if self.dist == "constant":
            return self.rate
        if self.dist == "poisson":
            return 1 + self.rng.poisson(lam=self.rate - 1)
        # binomial: Bin((rate-1) / (1-p), 1-p), p = chance of drawing this stream among the active
        if self._float64:
            # pescador's float64 arithmetic in Python floats (the same IEEE operations,
            # in the same order), with the cached total when it is current
            sw = self.stream_weights_
            total = self.weight_norm_ if self._norm_fresh else sw.sum()
            denom = float(total) - float(sw[old_idx]) + float(weight)
            if denom > 0.0:
                p = float(weight) / denom
                if p > 0.9999:
                    return 1 + self.rng.poisson(lam=self.rate - 1)
                return 1 + self.rng.binomial((self.rate - 1) / (1 - p), 1 - p)
        with np.errstate(invalid="ignore"):
            p = weight / (self.stream_weights_.sum() - self.stream_weights_[old_idx] + weight)
        if p > 0.9999 or np.isnan(p):
            return 1 + self.rng.poisson(lam=self.rate - 1)
        return 1 + self.rng.binomial((self.rate - 1) / (1 - p), 1 - p)

    def _activate_stream(self, idx: int, old_idx: int) -> tuple[Iterator[Any], float]:
        """Start streamer ``idx`` at active position ``old_idx``; returns (stream, weight)."""
        weight = self.weights[idx]
        streamer = self.streamers[idx].iterate(max_iter=self._n_samples_to_stream(weight, old_idx))
        if self.mode != "with_replacement":
            # drawn without replacement: unavailable until revived
            self.distribution_[idx] = 0.0
            self._dist_changed()
            if (self.distribution_ > 0).any():
                self.distribution_[:] /= self.distribution_.sum()
        return streamer, weight

    def _new_stream(self, idx: int) -> None:
        # == rng.choice(n_streams, p=distribution_), same draw
        if self._dist_cdf is None:
            self._dist_cdf = cdf_of(self.distribution_)
        k = bisect_right(self._dist_cdf, self._draws.uniform())  # type: ignore[union-attr]
        self.stream_idxs_[idx] = k
        stream, weight = self._activate_stream(k, idx)
        self.streams_[idx] = stream  # type: ignore[index]
        sw = self.stream_weights_
        if sw[idx] != weight:
            sw[idx] = weight
            self._norm_fresh = False
        self.stream_counts_[idx] = 0

    def _replace_stream(self, idx: int) -> None:
        # pescador: if (distribution_ > 0).any(): distribution_ /= sum; new stream; else weight 0.
        # The checks are skipped while distribution_ is known positive with a sum of exactly 1.0
        # (dividing by 1.0 changes nothing), which is always, in mode with_replacement.
        if not self._dist_unit:
            dist = self.distribution_
            if not (dist > 0).any():
                self.stream_weights_[idx] = 0.0
                self._set_weight_norm()
                return
            total = dist.sum()
            if total != 1.0:
                dist /= total
                self._dist_cdf = None
            else:
                self._dist_unit = True
        old_weight = self.stream_weights_[idx]
        self._new_stream(idx)
        if self.stream_weights_[idx] != old_weight:
            self._set_weight_norm()
        # else: same weights, same sum, same cdf: nothing to recompute


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
        self.weights = _check_weights(weights, self.n_streams, as_float64=True)

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


class RoundRobinMux(BaseMux):
    """Iterate over all streamers in strict order.

    Parameters
    ----------
    streamers : iterable of Streamer
        The streamers.
    mode : {"exhaustive", "cycle", "permuted_cycle"}
        ``exhaustive`` stops when every stream is exhausted; ``cycle``
        restarts them all; ``permuted_cycle`` restarts them in a new random
        order.
    random_state : None, int, np.random.RandomState or np.random.Generator
        See :class:`BaseMux`.

    Raises
    ------
    PescadorError
        For an empty collection, or an invalid ``mode`` (pescador silently
        treats an unknown mode as ``exhaustive``).
    """

    def __init__(self, streamers: Iterable[Any], mode: str = "exhaustive", random_state: RandomLike = None) -> None:
        self.mode = _check_choice("mode", mode, ROUND_ROBIN_MODES, "RoundRobinMux")
        super().__init__(streamers, random_state=random_state)
        if not self.n_streams:
            raise PescadorError("Cannot mux an empty collection")

    def _activate(self) -> None:
        self._setup_streams(False)

    def _reset(self) -> None:
        self.active_index_: Any = None
        self.streams_ = None
        self.stream_idxs_: Any = None
        self.stream_counts_ = None

    def _setup_streams(self, permute: bool = False) -> None:
        self.active_index_ = 0
        self.streams_ = [None] * self.n_streams
        self.stream_idxs_ = np.arange(self.n_streams, dtype=int)
        if permute:
            self.rng.shuffle(self.stream_idxs_)
        self.stream_counts_ = [0] * self.n_streams
        for idx in range(self.n_streams):
            self._new_stream(idx)

    def _streamers_available(self) -> bool:
        return any(x is not None for x in self.streams_)  # type: ignore[union-attr]

    def _next_sample_index(self) -> int:
        streams = self.streams_
        assert streams is not None
        n = len(streams)
        idx = self.active_index_
        self.active_index_ = (idx + 1) % n
        while streams[idx] is None:
            idx = self.active_index_
            self.active_index_ = (idx + 1) % n
        return idx

    def _new_stream(self, idx: int) -> None:
        self.streams_[idx] = self.streamers[self.stream_idxs_[idx]].iterate()  # type: ignore[index]
        self.stream_counts_[idx] = 0

    def _replace_stream(self, idx: int) -> None:
        self.streams_[idx] = None  # type: ignore[index]
        if not self._streamers_available():
            if self.mode == "cycle":
                self._setup_streams(permute=False)
            elif self.mode == "permuted_cycle":
                self._setup_streams(permute=True)


class ChainMux(BaseMux):
    """Run the streamers one after another, like ``itertools.chain``.

    Parameters
    ----------
    streamers : list or generator of Streamer
        The streamers, in order.
    mode : {"exhaustive", "cycle"}
        ``exhaustive`` stops after the last streamer; ``cycle`` starts again
        from the first.
    random_state : None, int, np.random.RandomState or np.random.Generator
        See :class:`BaseMux` (unused, kept for the common signature).

    Raises
    ------
    PescadorError
        For an invalid ``mode``.
    """

    #: a ``Streamer`` over all the streamers; ``None`` until activated
    chain_streamer_: Any
    chain_generator_: Any

    def __init__(self, streamers: Iterable[Any], mode: str = "exhaustive", random_state: RandomLike = None) -> None:
        super().__init__(streamers, random_state=random_state)
        if mode not in CHAIN_MODES:
            raise PescadorError(f"Invalid ChainMux mode '{mode}': expected one of {list(CHAIN_MODES)}")
        self.mode = mode

    def _activate(self) -> None:
        self.chain_streamer_ = core.Streamer(self.streamers)
        self.stream_generator_ = self.chain_streamer_.iterate()
        self.streams_ = [None]
        self.stream_counts_ = [0]
        self._new_stream()

    def _reset(self) -> None:
        self.chain_streamer_ = None
        self.chain_generator_ = None
        self.streams_ = None
        self.stream_counts_ = None

    def _streamers_available(self) -> bool:
        return bool(self.chain_streamer_.active)

    def _next_sample_index(self) -> int:
        return 0

    def _replace_stream(self, idx: int | None = None) -> None:
        self._new_stream()

    def _new_stream(self, idx: int | None = None) -> None:
        try:
            next_stream = next(self.stream_generator_)
        except StopIteration:
            if self.mode == "cycle":
                self.stream_generator_ = self.chain_streamer_.iterate()
                next_stream = next(self.stream_generator_)
            else:
                next_stream = None
        if next_stream is not None:
            self.streams_[0] = next_stream.iterate()  # type: ignore[index]
            self.stream_counts_[0] = 0


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
        See :class:`BaseMux`.
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
