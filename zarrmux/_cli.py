"""The ``zarrmux`` command line: parses arguments and calls one library function.

Each subcommand lives in a small module of its own (``_cli_*.py``) exposing
``register(subparsers)``; this module only assembles them.

Logging: while a command runs, records of the ``zarrmux`` logger go to stderr
as ``zarrmux: warning: ...`` lines: warnings and errors always, ``info`` too
with ``-v`` (``-vv``: debug) on commands that offer it
(:func:`add_verbose_option`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from .version import version

#: subcommand modules, each with ``register(subparsers) -> None``
_COMMAND_MODULES = ("_cli_demo", "_cli_convert", "_cli_bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zarrmux",
        description="Convert NPZ/NPY archives into a chunked Zarr corpus and sample training windows from it.",
    )
    parser.add_argument("--version", action="version", version=f"zarrmux {version}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(f".{name}", __package__).register(sub)
    return parser


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{v} must be >= {minimum}")
        return v

    return parse


def seconds(text: str) -> float:
    """An argparse ``type``: a number of seconds >= 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"{v} must be >= 0")
    return v


def positive_number(text: str) -> float:
    """An argparse ``type``: a finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"{v} must be > 0")
    return v


def add_verbose_option(parser: argparse.ArgumentParser) -> None:
    """Add ``-v/--verbose`` (count) to a subcommand: ``-v`` shows the ``zarrmux`` logger's info on stderr."""
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="also show what zarrmux logs at info level on stderr (e.g. the codec --codec auto chose per key); "
             "-vv: debug. Warnings are always shown",
    )


class _StderrHandler(logging.Handler):
    """Writes ``zarrmux: <level>: <message>`` to the *current* ``sys.stderr`` (which tests may swap)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"zarrmux: {record.levelname.lower()}: {record.getMessage()}"
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            print(text, file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


def log_to_stderr(verbose: int = 0) -> Callable[[], None]:
    """Show the ``zarrmux`` logger on stderr: warnings, plus info (``verbose >= 1``) and debug (``>= 2``).

    Returns a function that removes the handler and restores the logger's level.
    """
    logger = logging.getLogger("zarrmux")
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = _StderrHandler(level)
    old_level = logger.level
    if verbose > 0 or old_level == logging.NOTSET or old_level > logging.WARNING:
        logger.setLevel(level)
    logger.addHandler(handler)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(old_level)

    return restore


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zarrmux`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    restore = log_to_stderr(int(getattr(args, "verbose", 0) or 0))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("zarrmux: interrupted", file=sys.stderr)
        return 130
    finally:
        restore()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
