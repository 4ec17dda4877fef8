"""Muxes: streamers that interleave the items of other streamers (pescador 3.0's ``mux``).

``StochasticMux`` (:mod:`zarrmux.stochastic_mux`)
    Keeps ``n_active`` streams active, draws items among them at random, and
    replaces a stream when its quota (expected ``rate`` items) is used up.
    Modes ``with_replacement``, ``single_active`` and ``exhaustive``.
``ShuffledMux`` (:mod:`zarrmux.shuffled_mux`)
    Interleaves items of all streamers at random, restarting them.
``RoundRobinMux``, ``ChainMux`` (:mod:`zarrmux.ordered_mux`)
    Iterate over all streamers in strict order; run them one after another,
    like ``itertools.chain``.
``Mux`` (:mod:`zarrmux.legacy_mux`)
    pescador 1.x's name for the stochastic mux (deprecated).
``BaseMux`` (:mod:`zarrmux.mux_base`)
    The interface and main loop they share.

With the same ``random_state`` (an int or a ``RandomState``) every mux yields
exactly the sequence pescador 3.0 yields over the same streamers.  This module
keeps pescador's layout: ``from zarrmux.mux import StochasticMux`` (or
``pescador.mux``'s other names) works as in pescador.
"""

from __future__ import annotations

from .legacy_mux import Mux
from .mux_base import BaseMux, GlobalRandom
from .ordered_mux import CHAIN_MODES as CHAIN_MODES
from .ordered_mux import ROUND_ROBIN_MODES as ROUND_ROBIN_MODES
from .ordered_mux import ChainMux, RoundRobinMux
from .shuffled_mux import ShuffledMux
from .stochastic_mux import DISTRIBUTIONS as DISTRIBUTIONS
from .stochastic_mux import STOCHASTIC_MODES as STOCHASTIC_MODES
from .stochastic_mux import StochasticMux

__all__ = ["BaseMux", "StochasticMux", "ShuffledMux", "RoundRobinMux", "ChainMux", "Mux"]

#: the name a mux pickled with the global ``np.random`` refers to, in pickles made when this module held the classes
_GlobalRandom = GlobalRandom
