"""``zarrmux demo``: the main job on built-in demo data."""

from __future__ import annotations

import argparse
import tempfile
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="make demo archives, convert them, sample them, and print the windows delivered per second",
        description="Make a small corpus of NPZ archives, convert it to a Zarr corpus, "
        "and sample 16-row windows with the seed recipe, the pescador-style streamers and WindowSampler; "
        "each method opens its own data and is asked for the same number of batches, and the figures are "
        "the windows it actually delivered per second (one short run each: noisy).",
    )
    p.add_argument("--dir", default=None, help="working directory (default: a temporary one, removed afterwards)")
    p.add_argument("--archives", type=int, default=24, help="number of NPZ archives (default: %(default)s)")
    p.add_argument("--batches", type=int, default=300, help="batches per sampling method (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of data and samplers (default: %(default)s)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.archives <= 0 or args.batches <= 0:
        raise SystemExit("zarrmux demo: --archives and --batches must be > 0")
    if args.dir:
        run_demo(args.dir, archives=args.archives, batches=args.batches, seed=args.seed)
        print(f"files kept in {args.dir}: the archives in archives/, the corpus in corpus.zarr")
    else:
        with tempfile.TemporaryDirectory(prefix="zarrmux-demo-") as tmp:
            run_demo(tmp, archives=args.archives, batches=args.batches, seed=args.seed)
        print(f"files were in {tmp} and are deleted; --dir DIR keeps them")
    return 0
