"""The muxes without random draws of items: ``RoundRobinMux`` (strict turns) and ``ChainMux`` (one after another).

Same sequences as pescador 3.0's; ``RoundRobinMux(mode='permuted_cycle')``
shuffles the order with the same draw as pescador.

Part of the streaming core: imports numpy, ``core``, ``util``, ``mux_params`` and ``mux_base`` only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from . import core
from .exceptions import PescadorError
from .mux_base import BaseMux
from .mux_params import check_option
from .util import RandomLike

__all__ = ["RoundRobinMux", "ChainMux", "ROUND_ROBIN_MODES", "CHAIN_MODES"]

ROUND_ROBIN_MODES = ("exhaustive", "cycle", "permuted_cycle")
CHAIN_MODES = ("exhaustive", "cycle")


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
        self.mode = check_option("mode", mode, ROUND_ROBIN_MODES, "RoundRobinMux")
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
