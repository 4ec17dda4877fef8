"""The command line's exit codes, in one table: what each means and which failure maps to it.

Every subcommand (``convert``, ``info``, ``verify``, ``bench``) prints a failure
as one ``zarrmux: error: ...`` line and exits with :func:`exit_code_for`;
the ``--help`` epilogs are made from :data:`EXIT_CODES` (:func:`epilog`), and
the README lists the same table (a test compares them).  Imports no zarr.
"""

from __future__ import annotations

import sys

from .exceptions import ClosedError, ConfigError, ConversionError, CorpusError, DataError, PescadorError, SchedulerError
from .writer_lock import DestinationBusyError, StoreIOError

__all__ = ["EXIT_CODES", "FAILURES", "exit_code_for", "fail", "epilog"]

OK, MISMATCH, USAGE, BAD_INPUT, STORE, SKIPPED, SCHEDULER, BUSY, IO, INTERRUPTED = 0, 1, 2, 3, 4, 5, 6, 7, 8, 130

#: every documented exit code and what it means
EXIT_CODES = {
    OK: "success",
    MISMATCH: "verify found mismatches",
    USAGE: "usage error (bad command-line arguments or option values)",
    BAD_INPUT: "bad input: a source could not be converted (nothing partial is left), or stored data is corrupt",
    STORE: "destination/store problem: not a zarrmux corpus, unreadable, damaged metadata, or incompatible options",
    SKIPPED: "converted, but some bad sources were skipped (--on-error skip)",
    SCHEDULER: "the Dask scheduler (--scheduler) cannot be reached",
    BUSY: "the destination is being written by another convert (one writer at a time; --wait waits)",
    IO: "I/O error writing the corpus (out of space, file too large, EIO, a worker killed); committed entries are kept",
    INTERRUPTED: "interrupted (Ctrl-C); committed entries are kept, rerun to resume",
}

#: what a failure maps to, first match wins
_EXIT_FOR: tuple[tuple[type[BaseException], int], ...] = (
    (ConversionError, BAD_INPUT),
    (DataError, BAD_INPUT),
    (DestinationBusyError, BUSY),
    (StoreIOError, IO),
    (CorpusError, STORE),
    (SchedulerError, SCHEDULER),
    (ConfigError, USAGE),
    (ClosedError, USAGE),
    (OSError, IO),
    (ValueError, USAGE),
    (ImportError, USAGE),  # an optional dependency a flag needs (the message says how to install it)
    (PescadorError, USAGE),
)

#: the exceptions a subcommand turns into a message and an exit code (``except FAILURES``)
FAILURES: tuple[type[BaseException], ...] = tuple(cls for cls, _ in _EXIT_FOR)


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code of a failure (one of :data:`FAILURES`)."""
    return next(code for cls, code in _EXIT_FOR if isinstance(exc, cls))


def fail(exc: BaseException) -> int:
    """Print ``exc`` as one ``zarrmux: error: ...`` line and return its exit code."""
    print(f"zarrmux: error: {exc}", file=sys.stderr)
    return exit_code_for(exc)


def epilog(codes: tuple[int, ...] | None = None) -> str:
    """``exit codes: 0 success; ...`` for a ``--help`` epilog (``codes``: those a subcommand can return)."""
    chosen = EXIT_CODES if codes is None else {c: EXIT_CODES[c] for c in codes}
    return "exit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in chosen.items())
