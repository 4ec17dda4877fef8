"""Exception classes, pescador-compatible: ``PescadorError`` is the root.

Every zarrmux exception keeps its type when it is pickled: across Dask
(``WindowSampler(scheduler=...)``, ``convert(scheduler=...)``) and across
processes (``Prefetcher(method='process')``, DataLoader workers).  A zarrmux
exception pickles as its class, its ``args`` and those of its attributes
that pickle, and is rebuilt without calling ``__init__``, so a subclass with
a constructor of its own round-trips too.  (Dask pickles an exception with
its ``__cause__`` and ``__context__`` chain, through tblib; an exception
that fails to pickle, or to unpickle, reaches the client as a bare
``Exception`` holding its repr.  The readers' own causes pickle as well: see
:class:`zarrmux.array_reader.ChunkFault`.)
"""

from __future__ import annotations

import pickle
from typing import Any

__all__ = [
    "PescadorError", "DataError", "ZarrmuxError", "ConversionError", "CorpusError", "UnknownKeyError", "ConfigError", "ClosedError", "SchedulerError",
]


def _rebuild(cls: type, args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    """The exception of class ``cls`` with ``args`` and attributes ``state``, without calling ``__init__``."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    if state:
        exc.__dict__.update(state)
    return exc


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001 - anything that does not pickle is left out
        return False
    return True


class PescadorError(Exception):
    """The root exception class (named as in pescador, so ``except`` clauses keep working).

    Pickles as ``(class, args, picklable attributes)`` and is rebuilt without
    calling ``__init__`` (see the module docstring), so it keeps its type
    across Dask and processes.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v for k, v in self.__dict__.items() if _picklable(v)}
        return _rebuild, (type(self), tuple(self.args), state)


class DataError(PescadorError):
    """Data is not what it should be: not data-like items, or corrupt or missing stored data."""


ZarrmuxError = PescadorError
"""Alias of :class:`PescadorError` under zarrmux's own name."""


class CorpusError(PescadorError):
    """A store is missing, unreadable, or not a corpus zarrmux can read."""


class ConversionError(PescadorError):
    """An archive cannot be converted; the message names the file and the problem."""


class UnknownKeyError(KeyError, CorpusError):
    """A requested key is not in the corpus (both a ``KeyError`` and a ``CorpusError``)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(PescadorError, ValueError, TypeError):
    """A bad parameter: the message names it and the value given.

    Also a ``ValueError`` and a ``TypeError``, so ``except`` clauses written
    for either (or for pescador's ``PescadorError``) keep working.
    """


class ClosedError(PescadorError, ValueError):
    """A closed corpus, sampler or stream was used (also a ``ValueError``, as for a closed file)."""


class SchedulerError(PescadorError, ConnectionError):
    """A Dask scheduler cannot be reached (the message names the address and the timeout)."""
