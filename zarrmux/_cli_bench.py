"""``zarrmux bench``: how fast a corpus reads with your sampling parameters, and what bounds it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._cli import int_at_least, positive_number
from .exit_codes import BAD_INPUT, FAILURES, INTERRUPTED, OK, STORE, USAGE, epilog, fail

_EPILOG = epilog((OK, USAGE, BAD_INPUT, STORE, INTERRUPTED))


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
    p.add_argument("-n", "--window", dest="n", type=int_at_least(1), default=16, help="rows per window (default: %(default)s)")
    p.add_argument("--batch-size", type=int_at_least(1), default=32, help="windows per batch (default: %(default)s)")
    p.add_argument("--n-active", type=int_at_least(1), default=32, help="entries active at a time (default: %(default)s)")
    p.add_argument("--rate", type=positive_number, default=16.0, help="expected windows per activation (default: %(default)s)")
    p.add_argument("--threads", type=int_at_least(1), default=None, help="reading threads (default: the sampler's)")
    p.add_argument("--prefetch", type=int_at_least(0), default=None, help="batches read ahead (default: the sampler's)")
    p.add_argument("--keys", nargs="+", default=None, metavar="KEY", help="keys to read (default: all)")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="sampling seed (default: %(default)s)")
    p.add_argument("--seconds", type=positive_number, default=10.0, help="how long to read (default: %(default)s)")
    p.add_argument("--batches", type=int_at_least(1), default=None, help="stop after this many batches (before --seconds if sooner)")
    p.add_argument("--json", action="store_true", help="print the parameters, statistics and timeline as JSON")
    p.add_argument("--plot", metavar="FILE.png", default=None, help="draw windows/s over time (needs matplotlib: zarrmux[plot])")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from .benchmark import bench_corpus, plot_timeline

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
    except FAILURES as exc:
        return fail(exc)
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

