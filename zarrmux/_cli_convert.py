"""``zarrmux convert``, ``zarrmux info`` and ``zarrmux verify``.

Exit codes (all three commands)::

    0    success
    1    verify found mismatches (corrupt data or index, sources that differ)
    2    usage error (bad arguments or option values)
    3    bad input: a source could not be converted (message names file and problem);
         nothing partial is left
    4    destination/store problem: not a zarrmux corpus, unreadable or damaged
         metadata (the file is named), an interrupted creation, incompatible options
    5    converted, but bad sources were skipped (--on-error skip)
    6    the Dask scheduler (--scheduler) cannot be reached
    7    the destination is being written by another convert (one writer at a time;
         the message names host, pid and since when; --wait waits instead)
    8    I/O error on the corpus: out of space, file too large, EIO (the store stays
         valid: committed entries are kept, rerun to resume)
    130  interrupted (Ctrl-C); committed entries are kept (the message says how many),
         rerun the command to resume

Failures are printed as one ``zarrmux: error: ...`` line, never a traceback.
Warnings of the ``zarrmux`` logger are printed on stderr, and with ``-v`` its
info too (e.g. the codec ``--codec auto`` chose per key and the lz4 ratio it measured).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._cli import add_verbose_option, int_at_least, positive_number, seconds
from .exit_codes import FAILURES, INTERRUPTED, MISMATCH, OK, SKIPPED, epilog, fail

#: the ``--codec auto`` threshold, from zarrmux.key_codecs (not imported: it imports zarr, and
#: the CLI parser must stay light); tests check the two agree
AUTO_MIN_SAVING = 0.25
AUTO_MIN_CORPUS_SAVING = 0.02

#: entry naming rules (zarrmux.entry_names.NAME_RULES; not imported: the parser stays light)
NAME_RULES = ("strict", "sanitize", "relative")
_NAMES_HELP = (
    "how entry names are derived from file names: 'strict' (default): as found, refusing odd characters "
    "and names two files share; 'sanitize': odd characters become '_' ('Song 1 (live).npz' -> Song_1__live_); "
    "'relative': the path relative to the common directory of the sources, sanitised ('a/x.npz', 'b/x.npz' -> "
    "a/x, b/x). Names that still collide are refused. Use the same rule to rerun, append or verify"
)

_EPILOG = epilog()


def register(subparsers: Any) -> None:
    """Add the ``convert``, ``info`` and ``verify`` subcommands."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "convert",
        help="convert NPZ/NPY archives into a chunked Zarr corpus",
        description=(
            "Convert NPZ/NPY archives (files, directories, glob patterns) into one chunked, sharded\n"
            "Zarr v3 corpus, or append them to an existing one. Streaming, parallel, resumable:\n"
            "rerun the same command after an interruption to finish the work."
        ),
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="NPZ/NPY files, directories (searched recursively), glob patterns")
    p.add_argument("-o", "--output", required=True, metavar="DEST", help="the corpus directory (created, or appended to)")
    p.add_argument("--keys", metavar="K1,K2", help="convert only these keys (default: all keys of the first archive)")
    p.add_argument("--group", default="suffix", metavar="RULE",
                   help="NPY grouping: 'suffix' (song1_X.npy -> entry song1, key X; default), "
                        "'dir' (X/song1.npy), or a regex with named groups 'entry' and 'key'")
    p.add_argument("--chunk-rows", type=int_at_least(1), help="rows per inner chunk (default: ~32 KiB of the key)")
    p.add_argument("--shard-rows", type=int_at_least(1), help="rows per shard (default: ~32 MiB of the widest key)")
    p.add_argument("--codec", choices=("auto", "lz4", "zstd", "none"), default="auto",
                   help="'auto' (default): per key, measure blosc-lz4 on a sample of the sources (at most 1 MiB "
                        f"per key, from the start of the first 4 entries) and store the key uncompressed if lz4 saves less than "
                        f"{AUTO_MIN_SAVING:.0%}% of its bytes (compressed/raw > {1 - AUTO_MIN_SAVING:.2f}) or less than "
                        f"{AUTO_MIN_CORPUS_SAVING:.0%}% of the corpus's bytes (labels beside wide features), else with lz4; "
                        "'lz4', 'zstd' (blosc, byte shuffle) or 'none' (uncompressed) force one codec for every key. "
                        "Appending keeps each key's stored codec (a forced codec must match it)")
    p.add_argument("--level", type=int, help="compression level of compressed keys (default: 5 for lz4, 3 for zstd)")
    p.add_argument("--workers", type=int_at_least(1), help="parallel processes (default: number of cores)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on dask.distributed: tcp://host:8786 or 'local'")
    p.add_argument("--connect-timeout", type=positive_number, metavar="SECONDS",
                   help="with --scheduler ADDRESS: exit with code 6 if it cannot be reached within SECONDS (default: 10)")
    p.add_argument("--overwrite", action="store_true", help="replace entries whose name exists with different data")
    p.add_argument("--wait", action="store_true",
                   help="if another convert is writing DEST, wait until it is done instead of exiting with code 7 "
                        "(one writer at a time per corpus; readers are never blocked)")
    p.add_argument("--wait-timeout", type=seconds, metavar="SECONDS",
                   help="like --wait, but exit with code 7 after waiting SECONDS")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="'raise': stop at the first bad source (default); 'skip': list bad sources, convert the rest")
    p.add_argument("--names", choices=NAME_RULES, default="strict", help=_NAMES_HELP)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    add_verbose_option(p)
    p.set_defaults(func=cmd_convert)

    p = subparsers.add_parser(
        "info",
        help="describe a corpus",
        description="Print entries, rows, keys, chunking, each key's codec, stored bytes and compression ratio\n"
                    "(and, for keys whose codec --codec auto chose, the lz4 ratio measured on the sources).",
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("store", metavar="STORE")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    p.add_argument("--entries", action="store_true",
                   help="also list every entry: name, rows and the source file(s) it was converted from "
                        "(with --json: under \"entry_list\")")
    add_verbose_option(p)
    p.set_defaults(func=cmd_info)

    p = subparsers.add_parser(
        "verify",
        help="check a corpus (and optionally its sources)",
        description="Recompute every entry's checksum from the stored data; with SOURCES, also compare\nthe sources with the corpus. Lists every mismatch and exits 1 if there is any.",
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("store", metavar="STORE")
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="the archives the corpus was converted from")
    p.add_argument("--group", default="suffix", metavar="RULE", help="NPY grouping rule, as for convert")
    p.add_argument("--names", choices=NAME_RULES, default="strict",
                   help="entry naming rule of the sources, as for convert (use the one the corpus was converted with)")
    add_verbose_option(p)
    p.set_defaults(func=cmd_verify)


def cmd_convert(args: argparse.Namespace) -> int:
    from .conversion import convert
    from .conversion_report import ConversionInterrupted

    show_bar = not args.quiet and sys.stderr.isatty()
    try:
        report = convert(
            args.sources,
            args.output,
            keys=args.keys,
            chunk_rows=args.chunk_rows,
            shard_rows=args.shard_rows,
            codec=args.codec,
            level=args.level,
            workers=args.workers,
            scheduler=args.scheduler,
            connect_timeout=args.connect_timeout,
            overwrite=args.overwrite,
            on_error=args.on_error,
            progress=show_bar,
            group=args.group,
            wait=args.wait_timeout if args.wait_timeout is not None else args.wait,
            names=args.names,
        )
    except ConversionInterrupted as exc:
        print(f"zarrmux: {exc}", file=sys.stderr, flush=True)
        return INTERRUPTED
    except FAILURES as exc:
        return fail(exc)
    for e in report.errors:
        print(f"zarrmux: skipped: {e}", file=sys.stderr)
    if report.lz4_ratios and not args.quiet:
        chosen = ", ".join(
            f"{k} {report.codecs.get(k, '?')} (lz4 ratio {r:.2f})" for k, r in report.lz4_ratios.items()
        )
        print(f"zarrmux: codec auto chose: {chosen}", file=sys.stderr)
    print(report.summary())
    return SKIPPED if report.errors else OK


def cmd_info(args: argparse.Namespace) -> int:
    from .verify import info

    try:
        d = info(args.store, entries=args.entries)
    except FAILURES as exc:
        return fail(exc)
    if args.json:
        print(json.dumps(d, indent=2))
        return OK
    print(f"{d['store']}: {d['entries']} entries, {d['rows']} rows, {_codec_line(d)}")
    print(f"  stored {d['stored_bytes'] / 1e6:.2f} MB (index {d['index_bytes'] / 1e6:.2f} MB), decoded {d['decoded_bytes'] / 1e6:.2f} MB, ratio {d['ratio']}")
    for k, v in d["keys"].items():
        shape = "(rows" + "".join(f", {s}" for s in v["trailing_shape"]) + ")"
        measured = f" (lz4 ratio {v['lz4_ratio']:.2f} measured at conversion)" if v.get("lz4_ratio") is not None else ""
        print(
            f"  {k}: {v['dtype']} {shape}"
            f"  chunk {v['chunk_rows']} rows ({v['chunk_bytes'] / 1024:.0f} KiB), shard {v['shard_rows']} rows"
            f" ({v['shard_bytes'] / 2**20:.1f} MiB), stored {v['stored_bytes'] / 1e6:.2f} MB, ratio {v['ratio']},"
            f" codec {_codec_name(v['codec'], v['level'])}{measured}"
        )
    if args.entries:
        _print_entries(d["entry_list"])
    return OK


def _print_entries(entries: list[dict[str, Any]]) -> None:
    """``info --entries``: one line per entry, aligned columns: name, rows, source."""
    if not entries:
        print("  no entries")
        return
    wn = max(4, *(len(e["name"]) for e in entries))
    wr = max(4, *(len(str(e["rows"])) for e in entries))
    print(f"  {'name':<{wn}}  {'rows':>{wr}}  source")
    for e in entries:
        print(f"  {e['name']:<{wn}}  {e['rows']:>{wr}}  {e['source'] or '-'}")


def _codec_name(codec: str, level: int | None) -> str:
    """``'lz4 level 5'``, ``'none'``."""
    return f"{codec} level {level}" if codec != "none" and level is not None else codec


def _codec_line(d: dict[str, Any]) -> str:
    """The codec part of ``info``'s top line: one codec for the corpus only if every key has it."""
    per_key = {k: _codec_name(v["codec"], v["level"]) for k, v in d["keys"].items()}
    names = set(per_key.values())
    if d["codec"] != "auto" and names == {_codec_name(d["codec"], d["level"])}:
        return f"codec {per_key.popitem()[1]}" + (" (blosc, byte shuffle)" if d["codec"] != "none" else " (uncompressed)")
    if len(names) == 1:
        return f"codec {d['codec']}: {names.pop()} for every key"
    return f"codec {d['codec']}: " + ", ".join(f"{k} {c}" for k, c in per_key.items())


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify

    try:
        problems = verify(args.store, args.sources or None, group=args.group, names=args.names)
    except FAILURES as exc:
        return fail(exc)
    for m in problems:
        print(f"MISMATCH {m}")
    if problems:
        print(problems.summary(args.store), file=sys.stderr)
        return MISMATCH
    print(problems.summary(args.store))
    return OK
