"""``StochasticMux``: keep ``n_active`` streams active and draw items among them at random.

With the same ``random_state`` (an int or a ``RandomState``) it yields exactly
the sequence pescador 3.0's ``StochasticMux`` yields over the same streamers.
The draws are the same draws, made cheaper: the per-item
``RandomState.choice(n, p=...)`` is replaced by one ``random_sample()`` and a
bisection of a cached cumulative distribution, which is what ``choice``
computes.

Part of the streaming core: imports numpy, ``core``, ``util``, ``mux_params``,
``mux_base`` and ``draw_blocks`` only.
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from itertools import count
from typing import Any, cast

import numpy as np

from . import core
from .draw_blocks import BlockDraws
from .exceptions import PescadorError
from .mux_base import BaseMux, counter_view
from .mux_params import check_count, check_option, normalised_weights
from .util import Draws, RandomLike, cdf_of

__all__ = ["StochasticMux", "STOCHASTIC_MODES", "DISTRIBUTIONS"]

STOCHASTIC_MODES = ("with_replacement", "single_active", "exhaustive")
DISTRIBUTIONS = ("constant", "binomial", "poisson")

#: what ``next(stream, _END)`` returns for an exhausted stream: cheaper than catching StopIteration
_END: Any = object()
#: a streamer not yet asked whether it can start bare
_UNKNOWN: Any = object()


def _item_limit(max_iter: Any) -> tuple[bool, int | None]:
    """``(ok, limit)``: ``n < max_iter`` as ``n < limit`` for ints ``n >= 0``; ``limit=None``: no limit.

    ``ok`` is False for a ``max_iter`` that is not a real number, which the
    general loop of :class:`BaseMux` compares as given.
    """
    if max_iter is None:
        return True, None
    if not isinstance(max_iter, numbers.Real):
        return False, None
    if max_iter != max_iter:  # NaN: no int is smaller
        return True, 0
    if max_iter == math.inf:
        return True, None
    if max_iter == -math.inf:
        return True, 0
    return True, int(math.ceil(max_iter))


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
        self.mode = check_option("mode", mode, STOCHASTIC_MODES, "StochasticMux")
        self.n_active = check_count("n_active", n_active)
        self.dist = check_option("dist", dist, DISTRIBUTIONS, "StochasticMux")
        self.rate = self._check_rate(rate)
        self.prune_empty_streams = prune_empty_streams
        super().__init__(streamers, random_state=random_state)
        if not self.n_streams:
            raise PescadorError("Cannot mux an empty collection")
        if self.mode != "with_replacement" and self.n_active > self.n_streams:
            raise PescadorError(
                f"mode={mode} requires that n_active={n_active} be at most the number of streamers={self.n_streams}"
            )
        self.weights = normalised_weights(weights, self.n_streams, as_float64=False)
        self._small_quotas: tuple[Any, bool] = (None, False)  # (parameters, _quotas_by_inversion's bound holds)
        self._quotas_by_inversion()

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
        self._draws: Draws | BlockDraws | None = None
        self._cdf: list[float] = []  # cdf of stream_weights_ / weight_norm_
        self._dist_cdf: list[float] | None = None  # cdf of distribution_; None when stale
        self._dist_unit = False  # distribution_ unchanged since its sum was found exactly 1.0, entries > 0
        self._norm_fresh = False  # weight_norm_ is the sum of stream_weights_ as they are now
        self._float64 = False  # weights are float64: Python floats repeat numpy's arithmetic exactly
        self._live = False
        #: per active position, (streamer, generator) of a stream started bare, to finish when it
        #: is exhausted; None until the mux's own iterate runs on a copy nobody else sees
        self._bare: list[Any] | None = None
        self._weight_list: list[float] = []  # weights as floats, for _restart_stream
        self._sources: list[Any] = []  # per streamer, its bare_source() once asked (_restart_stream)

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
        self._bare = None
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
        ok, limit = _item_limit(max_iter)
        if (
            not ok
            or cls._next_sample_index is not StochasticMux._next_sample_index
            or cls._streamers_available is not StochasticMux._streamers_available
        ):
            # a subclass changed the loop's hooks, or max_iter is not a number
            yield from super().iterate(max_iter)
            return
        # BaseMux.iterate with both hooks inlined.  The inner loop runs until a
        # stream is exhausted (the only event that changes the draw's cdf or
        # the loop condition): per item one draw (planned in blocks, or one
        # numpy call and a bisection), one next().
        with self as mux:
            n = 0
            bisect, next_item, end = bisect_right, next, _END  # locals: the cheapest lookups
            counts_of = mux.stream_counts_
            streams, counts, cdf, live = mux.streams_, counter_view(counts_of), mux._cdf, mux._live
            assert streams is not None, "an activated mux has its streams"
            # a private copy: its streams may start bare (see core.Streamer.start_bare),
            # its draws may be made in blocks (see draw_blocks)
            bare = mux._bare = [None] * len(streams) if mux is not self else None
            plain = bare is not None and mux._plain_restarts()
            blocks = BlockDraws(mux.rng) if plain and mux._quotas_by_inversion() else None
            if blocks is not None:
                mux._draws = blocks
            uniform = mux._draws.uniform  # type: ignore[union-attr]
            while live and (limit is None or n < limit):
                if blocks is not None:
                    window = blocks.window(cdf, None if limit is None else limit - n)
                    for idx in window:
                        item = next_item(streams[idx], end)
                        if item is end:
                            break
                        yield item
                        counts[idx] += 1
                        n += 1
                    else:
                        blocks.commit(window)
                        continue  # the window ended: the limit, or the next window
                    blocks.commit(window)  # the draw that found stream idx exhausted included
                else:
                    for done in count(n) if limit is None else range(n, limit):
                        idx = bisect(cdf, uniform())
                        item = next_item(streams[idx], end)
                        if item is end:
                            n = done  # items so far
                            break
                        yield item
                        counts[idx] += 1
                    else:
                        return  # limit items
                if bare is not None and bare[idx] is not None:
                    streamer, generator = bare[idx]
                    bare[idx] = None
                    streamer.finish_bare(generator)
                if plain:
                    mux._restart_stream(idx)
                else:
                    mux._on_stream_exhausted(idx)
                    mux._replace_stream(idx)
                streams, cdf, live = mux.streams_, mux._cdf, mux._live
                assert streams is not None, "an activated mux has its streams"
                if mux.stream_counts_ is not counts_of:
                    counts_of = mux.stream_counts_
                    counts = counter_view(counts_of)

    def _plain_restarts(self) -> bool:
        """Whether :meth:`_restart_stream` may replace exhausted streams (and get it ready).

        For this class's own hooks, mode ``with_replacement`` and binomial
        quotas of a finite rate.
        """
        cls = type(self)
        hooks = ("_on_stream_exhausted", "_replace_stream", "_new_stream", "_activate_stream", "_n_samples_to_stream")
        if any(getattr(cls, h) is not getattr(StochasticMux, h) for h in hooks):
            return False
        if self.mode != "with_replacement" or self.dist != "binomial" or self.rate is None:
            return False
        self._weight_list = self.weights.tolist()
        self._sources = [_UNKNOWN] * self.n_streams
        return True

    def _quotas_by_inversion(self) -> bool:
        """Whether every quota this copy draws is a binomial numpy draws by inversion.

        Then :class:`~zarrmux.draw_blocks.BlockDraws` repeats every draw of
        the mux exactly.  With a private generator (not the shared
        ``np.random``), float64 weights all positive and ``rate <= 30``: a
        stream's chance among the active, ``p = w / (w + the others)``, stays
        under 0.9999 (no Poisson quota), and ``n * min(p, 1 - p) <= rate - 1``
        stays under 30 (no BTPE).
        """
        key = (id(self.weights), self.rate, self.n_active)
        if self._small_quotas[0] != key:
            w = self.weights
            small = (
                self.rate is not None
                and self.rate <= 30
                and self.n_active >= 2
                and float(w.min()) > 0
                and (self.n_active - 1) * float(w.min()) > 2e-4 * float(w.max())
            )
            self._small_quotas = (key, small)  # copied to every activated copy
        return (
            self._small_quotas[1]
            and self._float64
            and isinstance(self.rng, (np.random.RandomState, np.random.Generator))
        )

    def _restart_stream(self, idx: int) -> None:
        """Replace exhausted active stream ``idx``: ``_on_stream_exhausted``, then ``_replace_stream``.

        On a private copy that :meth:`_plain_restarts` accepted.  The usual
        case is done here in one call: the stream drew items (nothing to
        prune), ``distribution_`` is known to sum to 1.0 and the float64 total
        is current, so only the new stream changes.  Anything else goes
        through the hooks.
        """
        dist_cdf = self._dist_cdf
        if not (
            dist_cdf is not None
            and self._dist_unit
            and self._norm_fresh
            and self._float64
            and (self.stream_counts_[idx] or self.prune_empty_streams is not True)
        ):
            self._on_stream_exhausted(idx)
            self._replace_stream(idx)
            return
        # _new_stream
        k = bisect_right(dist_cdf, self._draws.uniform())  # type: ignore[union-attr]
        self.stream_idxs_[idx] = k
        # _activate_stream
        weight = self._weight_list[k]
        sw = self.stream_weights_
        old_weight = sw.item(idx)
        quota = self._binomial_quota(weight, float(self.weight_norm_) - old_weight + weight)
        if quota is None:
            quota = self._n_samples_to_stream(weight, idx)
        streamer = self.streamers[k]
        source = self._sources[k]
        if source is _UNKNOWN:
            source = self._sources[k] = streamer.bare_source() if type(streamer) is core.Streamer else None
        started = None if source is None else streamer.start_bare(quota, source)
        if started is None:
            self.streams_[idx] = streamer.iterate(max_iter=quota)  # type: ignore[index]
        else:
            self.streams_[idx] = started[0]  # type: ignore[index]
            self._bare[idx] = (streamer, started[1])  # type: ignore[index]
        self.stream_counts_[idx] = 0
        # _replace_stream: a new weight changes the total and the cdf
        if weight != old_weight:
            sw[idx] = weight
            self._set_weight_norm()

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
            # with the cached total when it is current
            sw = self.stream_weights_
            total = self.weight_norm_ if self._norm_fresh else sw.sum()
            quota = self._binomial_quota(float(weight), float(total) - float(sw[old_idx]) + float(weight))
            if quota is not None:
                return quota
        with np.errstate(invalid="ignore"):
            p = weight / (self.stream_weights_.sum() - self.stream_weights_[old_idx] + weight)
        if p > 0.9999 or np.isnan(p):
            return 1 + self.rng.poisson(lam=self.rate - 1)
        return 1 + self.rng.binomial((self.rate - 1) / (1 - p), 1 - p)

    def _binomial_quota(self, weight: float, denom: float) -> int | None:
        """The binomial quota of a stream of ``weight`` among active weights summing to ``denom``.

        pescador's float64 arithmetic in Python floats: the same IEEE
        operations, in the same order.  ``None`` if ``denom <= 0`` (numpy's
        arithmetic decides then).
        """
        if not denom > 0.0:
            return None
        p = weight / denom
        draws = self._draws if self._draws is not None else Draws(self.rng)
        if p > 0.9999:
            return 1 + draws.poisson(lam=self.rate - 1)  # type: ignore[operator]
        return 1 + draws.binomial((self.rate - 1) / (1 - p), 1 - p)  # type: ignore[operator]

    def _activate_stream(self, idx: int, old_idx: int) -> tuple[Iterator[Any], float]:
        """Start streamer ``idx`` at active position ``old_idx``; returns (stream, weight)."""
        weight = self.weights[idx]
        streamer = self.streamers[idx]
        quota = self._n_samples_to_stream(weight, old_idx)
        bare = self._bare
        started = streamer.start_bare(quota) if bare is not None and type(streamer) is core.Streamer else None
        if started is None:
            stream = streamer.iterate(max_iter=quota)
        else:
            stream = started[0]
            bare[old_idx] = (streamer, started[1])  # type: ignore[index]
        if self.mode != "with_replacement":
            # drawn without replacement: unavailable until revived
            self.distribution_[idx] = 0.0
            self._dist_changed()
            if (self.distribution_ > 0).any():
                self.distribution_[:] /= self.distribution_.sum()
        return stream, weight

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
