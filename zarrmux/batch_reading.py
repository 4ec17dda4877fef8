"""How a sampler reads its planned batches, in plan order: inline, in threads, or adaptively.

A batch is read by :func:`read_block`: one :meth:`Corpus.read_windows` call
for its ``(entries, starts)``, a pure function of the plan (no state but the
corpus's chunk cache), so it may run in any thread and the batches never
depend on how they were read.  :func:`read_in_order` chooses how a sequence
of planned batches is read ahead of the consumer:

* ``prefetch=0``: in the consumer's thread, one at a time;
* a local corpus: ahead only when the consumer leaves time between batches
  (:func:`zarrmux.adaptive.adaptive_map`), since its reads are mostly CPU work;
* a remote store: the same, and also ahead, many at a time, while reads
  send requests (they mostly wait for the network); once every byte the
  reads need is held already (a server without Range whose objects were
  downloaded whole, a corpus that fits in the chunk cache) they are CPU work
  again and come back to the consumer's thread.

The defaults (:func:`reading_defaults`) differ for local and remote corpora
for the same reasons.  Reading on Dask is :mod:`zarrmux.distributed`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .adaptive import AdaptiveStats, adaptive_map

if TYPE_CHECKING:
    from .corpus import Corpus

__all__ = [
    "read_block",
    "BlockReader",
    "read_in_order",
    "reading_defaults",
    "DEFAULT_PREFETCH",
    "DEFAULT_THREADS",
    "DEFAULT_REMOTE_PREFETCH",
    "DEFAULT_REMOTE_THREADS",
    "DEFAULT_BATCHES_PER_TASK",
]

#: batches read ahead by default (Dask: tasks in flight)
DEFAULT_PREFETCH = 4
#: reading threads by default for a local corpus, when prefetch runs ahead (see ``threads``)
DEFAULT_THREADS = 1
#: batches read ahead by default for a remote (high-latency) store
DEFAULT_REMOTE_PREFETCH = 32
#: most reading threads by default for a remote store: each waits for its batch's round
#: trips (2-5 of them), so 16 keep more batches in flight than 2 cores can decode,
#: and contend less for the GIL than 32 (tools/bench_latency.py prints 8 and 32 against 16)
DEFAULT_REMOTE_THREADS = 16
#: batches per Dask task by default (a task costs ~15-25 ms of scheduling; see tools/bench_latency.py)
DEFAULT_BATCHES_PER_TASK = 16


def reading_defaults(
    prefetch: int | None, threads: int | None, batches_per_task: int | None, *, remote: bool
) -> tuple[int, int, int]:
    """``(prefetch, threads, batches_per_task)`` with the defaults of a local or ``remote`` corpus
    filled in for ``None`` (the values are checked already)."""
    if prefetch is None:
        prefetch = DEFAULT_REMOTE_PREFETCH if remote else DEFAULT_PREFETCH
    if threads is None:
        threads = max(1, min(prefetch, DEFAULT_REMOTE_THREADS)) if remote else DEFAULT_THREADS
    if batches_per_task is None:
        batches_per_task = DEFAULT_BATCHES_PER_TASK
    return prefetch, threads, batches_per_task


def read_block(corpus: "Corpus", n: int, keys: Sequence[str] | None, entries: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    """Read one planned batch: ``{key: array (len(entries), n, ...)}``.  Pure: no state but the corpus cache."""
    return corpus.read_windows(entries, starts, n, keys)


class BlockReader:
    """:func:`read_block` bound to a corpus, for the reading threads (a task is anything with
    ``entries`` and ``starts``: a :class:`~zarrmux.plan.Block` or a :class:`~zarrmux.global_stream.Step`)."""

    def __init__(self, corpus: "Corpus", n: int, keys: tuple[str, ...] | None) -> None:
        self.corpus, self.n, self.keys = corpus, n, keys

    def __call__(self, blk: Any) -> dict[str, np.ndarray]:
        return read_block(self.corpus, self.n, self.keys, blk.entries, blk.starts)


def read_in_order(
    reader: Any, steps: Iterable[Any], *, prefetch: int, threads: int, sends: Callable[[], int] | None = None
) -> tuple[Iterator[tuple[Any, dict[str, np.ndarray]]], AdaptiveStats | None]:
    """``(step, reader(step))`` for each of ``steps``, in order, read as the module docstring says.

    ``sends``: for a remote corpus, the count of requests it has sent
    (see :func:`zarrmux.adaptive.adaptive_map`).  Returns the pairs and, for
    ``prefetch > 0``, the statistics of what the adaptive read does (filled
    in as it runs), else None.
    """
    if prefetch == 0:
        return ((step, reader(step)) for step in steps), None
    stats = AdaptiveStats()
    return adaptive_map(reader, steps, depth=prefetch, threads=threads, name="zarrmux-sampler", stats=stats, sends=sends), stats
