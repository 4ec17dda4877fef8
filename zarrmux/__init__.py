"""zarrmux: out-of-core training-data sampling from chunked Zarr corpora.

The streaming core (``Streamer``, the muxes, the maps) is pescador 3.0's API,
so ``import zarrmux as pescador`` keeps pescador code running.  Storage
(``convert``, ``open_corpus``), sampling (``window_streamer``,
``WindowSampler``) and execution (``Prefetcher``) are imported on first use,
so ``import zarrmux`` alone loads neither zarr nor dask.
"""

from __future__ import annotations

import importlib
from typing import Any

from .core import Streamer, streamable
from .exceptions import ConversionError, CorpusError, DataError, PescadorError, SchedulerError, ZarrmuxError
from .maps import buffer_stream, cache, keras_tuples, tuples
from .mux import BaseMux, ChainMux, Mux, RoundRobinMux, ShuffledMux, StochasticMux
from .version import version as __version__

#: public name -> module that defines it, imported lazily
_LAZY = {
    "convert": "conversion",
    "ConversionReport": "conversion",
    "open_corpus": "corpus",
    "Corpus": "corpus",
    "Entry": "corpus",
    "window_streamer": "streamers",
    "WindowSampler": "sampler",
    "Prefetcher": "prefetch",
    "ZMQStreamer": "zmq_stream",
}

__all__ = [
    "Streamer",
    "streamable",
    "BaseMux",
    "StochasticMux",
    "ShuffledMux",
    "RoundRobinMux",
    "ChainMux",
    "Mux",
    "buffer_stream",
    "tuples",
    "keras_tuples",
    "cache",
    "PescadorError",
    "DataError",
    "ZarrmuxError",
    "CorpusError",
    "ConversionError",
    "SchedulerError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zarrmux' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
