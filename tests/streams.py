"""Stream definitions shared by the differential tests (module-level, so they pickle and copy)."""

from __future__ import annotations

from typing import Any

import numpy as np


def finite(stream_id: int, length: int) -> Any:
    """``length`` tagged items; an empty stream when ``length == 0``."""
    for j in range(length):
        yield (stream_id, j)


def noisy(stream_id: int, seed: int) -> Any:
    """An endless stream with its own RandomState (copied on every activation, as pescador does)."""
    rng = np.random.RandomState(seed)
    while True:
        yield (stream_id, int(rng.randint(1000)))


def global_noise(stream_id: int) -> Any:
    """An endless stream drawing from the global np.random (shared with muxes using random_state=None)."""
    while True:
        yield (stream_id, int(np.random.randint(1000)))


def make(lib: Any, lengths: list[int]) -> list[Any]:
    return [lib.Streamer(finite, i, n) for i, n in enumerate(lengths)]
