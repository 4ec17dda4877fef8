"""Exception classes, pescador-compatible: ``PescadorError`` is the root."""

__all__ = ["PescadorError", "DataError", "ZarrmuxError", "ConversionError", "CorpusError", "SchedulerError"]


class PescadorError(Exception):
    """The root exception class (named as in pescador, so ``except`` clauses keep working)."""


class DataError(PescadorError):
    """Data is not what it should be: not data-like items, or corrupt stored data."""


ZarrmuxError = PescadorError
"""Alias of :class:`PescadorError` under zarrmux's own name."""


class CorpusError(PescadorError):
    """A store is missing, unreadable, or not a corpus zarrmux can read."""


class ConversionError(PescadorError):
    """An archive cannot be converted; the message names the file and the problem."""


class SchedulerError(PescadorError, ConnectionError):
    """A Dask scheduler cannot be reached (the message names the address and the timeout)."""
