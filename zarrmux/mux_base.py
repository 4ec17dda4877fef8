"""``BaseMux``: the interface and main loop every mux shares (pescador 3.0's ``mux.BaseMux``).

A mux is a :class:`~zarrmux.core.Streamer` over several streamers.  Activating
it works on a deep copy that chooses its active streams; ``BaseMux.iterate``
runs the loop and subclasses override small hooks (``_activate``,
``_next_sample_index``, ``_on_stream_exhausted``, ``_replace_stream``,
``_new_stream``, ``_streamers_available``).

Part of the streaming core: imports numpy, ``core`` and ``util`` only.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from . import core
from .util import RandomLike, get_rng

__all__ = ["BaseMux", "GlobalRandom", "counter_view"]

#: what ``next(stream, _END)`` returns for an exhausted stream: cheaper than catching StopIteration
_END: Any = object()


def counter_view(counts: Any) -> Any:
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


class GlobalRandom:
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
            state["rng"] = GlobalRandom  # unpickled as the receiving process's np.random
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("rng") is GlobalRandom:
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
            streams, counts = mux.streams_, counter_view(mux.stream_counts_)
            assert streams is not None, "an activated mux has its streams"
            while n < limit and available():
                idx = next_index()
                item = next(streams[idx], _END)
                if item is _END:
                    mux._on_stream_exhausted(idx)
                    mux._replace_stream(idx)
                    streams, counts = mux.streams_, counter_view(mux.stream_counts_)
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
