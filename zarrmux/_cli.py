"""The ``zarrmux`` command line: parses arguments and calls one library function.

Each subcommand lives in a small module of its own (``_cli_*.py``) exposing
``register(subparsers)``; this module only assembles them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zarrmux`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("zarrmux: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
