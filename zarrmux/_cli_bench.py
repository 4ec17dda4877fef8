"""``zarrmux bench``: how fast a corpus reads with your sampling parameters, and what bounds it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

_EPILOG = """exit codes: 0 ok; 2 usage error (a bad parameter, or --plot without matplotlib);
3 corrupt data; 4 not a zarrmux corpus / unreadable; 130 interrupted"""


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be > 0")
    return v


def _nonnegative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} must be >= 0")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{v} must be > 0")
    return v


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="read a corpus with your sampling parameters; print windows/s, MB/s, stalls and what bounds them",
        description="Read batches of random windows from STORE with a WindowSampler for --seconds (or --batches), "
        "as a training loop with no training step would, and print windows/s, MB/s fetched, where the time went, "
        "and a one-line verdict of what bounds the throughput with what to change. Figures from a shared machine are noisy: "
        "run it a few times.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("store", metavar="STORE", help="corpus path or URL")
    p.add_argument("-n", "--window", dest="n", type=_positive_int, default=16, help="rows per window (default: %(default)s)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="windows per batch (default: %(default)s)")
    p.add_argument("--n-active", type=_positive_int, default=32, help="entries active at a time (default: %(default)s)")
    p.add_argument("--rate", type=_positive_float, default=16.0, help="expected windows per activation (default: %(default)s)")
    p.add_argument("--threads", type=_positive_int, default=None, help="reading threads (default: the sampler's)")
    p.add_argument("--prefetch", type=_nonnegative_int, default=None, help="batches read ahead (default: the sampler's)")
    p.add_argument("--keys", nargs="+", default=None, metavar="KEY", help="keys to read (default: all)")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="sampling seed (default: %(default)s)")
    p.add_argument("--seconds", type=_positive_float, default=10.0, help="how long to read (default: %(default)s)")
    p.add_argument("--batches", type=_positive_int, default=None, help="stop after this many batches (before --seconds if sooner)")
    p.add_argument("--json", action="store_true", help="print the parameters, statistics and timeline as JSON")
    p.add_argument("--plot", metavar="FILE.png", default=None, help="draw windows/s over time (needs matplotlib: zarrmux[plot])")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from .benchmark import bench_corpus, plot_timeline
    from .exceptions import CorpusError, DataError, PescadorError

    bar = None
    if not args.quiet and not args.json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit=" windows", unit_scale=True, file=sys.stderr, desc="reading")
    try:
        result = bench_corpus(
            args.store, n=args.n, batch_size=args.batch_size, n_active=args.n_active, rate=args.rate,
            threads=args.threads, prefetch=args.prefetch, keys=args.keys, seed=args.seed,
            seconds=args.seconds, batches=args.batches, progress=bar.update if bar is not None else None,
        )
        if args.plot:
            plot_timeline(result, args.plot)
    except CorpusError as exc:
        return _fail(exc, 4)
    except DataError as exc:
        return _fail(exc, 3)
    except (PescadorError, ValueError, ImportError) as exc:
        return _fail(exc, 2)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    p = result.params
    print(f"zarrmux bench {args.store}: n={p['n']} batch_size={p['batch_size']} n_active={p['n_active']} "
          f"rate={p['rate']} threads={p['threads']} prefetch={p['prefetch']} seed={p['seed']}")
    print(result.stats)
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def _fail(exc: Exception, code: int) -> int:
    print(f"zarrmux: error: {exc}", file=sys.stderr)
    return code
