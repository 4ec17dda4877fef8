"""What an input pipeline did, and where its time went: :class:`LoaderStats`.

A :class:`~zarrmux.sampler.WindowSampler` keeps one :class:`LoaderStats`
(``sampler.stats()``); the torch loader sums its workers' (``+``).  Counting
costs a few clock reads per *batch*, never per window, so it stays on.

Times are wall seconds:

* ``read_seconds``: spent reading batches (summed over reading threads, so it
  can exceed ``elapsed_seconds`` when threads read in parallel);
* ``wait_seconds``: the consumer waited for a batch (asked, and it was not
  ready);
* ``consumer_seconds``: the consumer's own time between batches (a training
  step);
* ``elapsed_seconds``: from the first request to the last batch handed over.

``ready_ahead`` counts batches that were already read when the consumer asked
for them (a prefetch queue that kept up); ``queue_depth_mean`` is the mean
number of batches read and waiting for the consumer when it asked (Dask:
tasks in flight).

Storage counters are the differences of the corpus's counters
(:meth:`zarrmux.corpus.Corpus.io_counters`) over the same period: bytes and
requests fetched from storage, retries, decoded-chunk hits and misses.

:meth:`LoaderStats.bound` says what bounds the throughput, for
``zarrmux bench`` and for people.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

__all__ = ["LoaderStats", "StatsRecorder", "StatsBoard", "COUNTERS", "READING", "with_reading", "batch_windows"]

T = TypeVar("T")

#: storage counters a corpus reports (``Corpus.io_counters()``), summed as they come
COUNTERS = ("bytes_read", "requests", "retries", "chunk_hits", "chunk_misses")
#: what the reading processes measure (the rest is measured where the batches are delivered)
READING = ("read_seconds", *COUNTERS)


def batch_windows(batch: Any) -> int:
    """Windows in a batch ``{key: array or tensor (windows, n, ...)}`` (0 for an empty one or another kind of item)."""
    return int(len(next(iter(batch.values())))) if isinstance(batch, Mapping) and batch else 0


@dataclasses.dataclass
class LoaderStats:
    """Counters and times of one sampler (or the sum of several); see the module docstring."""

    batches: int = 0
    windows: int = 0
    bytes_read: int = 0
    requests: int = 0
    retries: int = 0
    chunk_hits: int = 0
    chunk_misses: int = 0
    read_seconds: float = 0.0
    wait_seconds: float = 0.0
    consumer_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    ready_ahead: int = 0
    queue_depth_sum: int = 0

    # ------------------------------------------------------------------ derived
    @property
    def windows_per_second(self) -> float:
        """Windows delivered per second of ``elapsed_seconds``."""
        return self.windows / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def mb_per_second(self) -> float:
        """Megabytes (1e6) fetched from storage per second of ``elapsed_seconds``."""
        return self.bytes_read / 1e6 / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def queue_depth_mean(self) -> float:
        """Mean batches read and waiting when the consumer asked for one."""
        return self.queue_depth_sum / self.batches if self.batches else 0.0

    @property
    def stall_fraction(self) -> float:
        """Share of ``elapsed_seconds`` the consumer spent waiting for batches."""
        return min(1.0, self.wait_seconds / self.elapsed_seconds) if self.elapsed_seconds > 0 else 0.0

    @property
    def chunk_hit_rate(self) -> float:
        """Decoded-chunk hits over lookups (0 when no chunk was looked up)."""
        looked = self.chunk_hits + self.chunk_misses
        return self.chunk_hits / looked if looked else 0.0

    def __add__(self, other: "LoaderStats") -> "LoaderStats":
        """The sum of two loaders' statistics (times add up; ``elapsed_seconds`` is the longer one)."""
        if not isinstance(other, LoaderStats):
            return NotImplemented
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        summed = {k: mine[k] + theirs[k] for k in mine}
        summed["elapsed_seconds"] = max(self.elapsed_seconds, other.elapsed_seconds)
        return LoaderStats(**summed)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: every counter and the derived figures."""
        out: dict[str, Any] = dataclasses.asdict(self)
        out.update(
            windows_per_second=self.windows_per_second,
            mb_per_second=self.mb_per_second,
            queue_depth_mean=self.queue_depth_mean,
            stall_fraction=self.stall_fraction,
            chunk_hit_rate=self.chunk_hit_rate,
            bound=self.bound(),
        )
        return out

    # ------------------------------------------------------------------ verdict
    def bound(self) -> str:
        """One line: what bounds the throughput and what to change.

        * The consumer waited for less than a tenth of the time: the loader
          keeps up; the consumer (the training step) bounds the throughput.
        * Otherwise the loader does.  When less than half the waiting was
          spent reading, the rest is overhead (start-up, planning, hand-offs
          between processes).  Else where a batch's read time goes tells
          which part: with few bytes per second fetched and reads much longer
          than the CPU could need (many requests per batch), storage latency
          (more ``prefetch`` and ``threads``); a low decoded-chunk hit rate on
          compressed data (at least one decode per batch), decoding (an uncompressed corpus,
          ``convert --codec none``, or more ``cache_bytes``); otherwise the
          reading itself on this machine's CPU (more Dask workers or
          DataLoader workers).
        """
        if not self.batches:
            return "nothing read yet"
        if self.stall_fraction < 0.1 and self.consumer_seconds > self.wait_seconds:
            return (
                f"the consumer: it waited for batches {100 * self.stall_fraction:.0f}% of the time; "
                "the loader keeps up (a faster training step would get more)"
            )
        per_batch = self.read_seconds / self.batches
        if self.read_seconds < 0.5 * self.wait_seconds:
            return (
                f"overhead outside reading: {self.wait_seconds - self.read_seconds:.2f} of the {self.wait_seconds:.2f} s "
                "waited went to start-up, planning or handing batches between processes; run longer, "
                "or use fewer workers"
            )
        if self.requests and per_batch > 0.005 and self.requests / self.batches >= 1:
            return (
                f"storage latency: {per_batch * 1e3:.1f} ms per batch over "
                f"{self.requests / self.batches:.1f} requests; raise prefetch and threads"
            )
        if self.chunk_misses >= self.batches and self.chunk_hit_rate < 0.5:
            return (
                f"decoding: {100 * (1 - self.chunk_hit_rate):.0f}% of chunk lookups decode a chunk; "
                "convert with --codec none (or auto) or raise cache_bytes"
            )
        return (
            f"reading on this CPU: {per_batch * 1e3:.2f} ms per batch; "
            "spread it over DataLoader or Dask workers"
        )

    def __str__(self) -> str:
        rows = [
            ("batches / windows", f"{self.batches:,} / {self.windows:,}"),
            ("windows/s", f"{self.windows_per_second:,.0f}"),
            ("fetched", f"{self.bytes_read / 1e6:,.1f} MB in {self.requests:,} requests ({self.mb_per_second:,.1f} MB/s)"),
            ("retries", f"{self.retries:,}"),
            ("decoded chunks", f"{self.chunk_hits:,} hits, {self.chunk_misses:,} misses"),
            ("reading", f"{self.read_seconds:.3f} s"),
            ("consumer waited", f"{self.wait_seconds:.3f} s ({100 * self.stall_fraction:.0f}% of {self.elapsed_seconds:.3f} s)"),
            ("consumer worked", f"{self.consumer_seconds:.3f} s"),
            ("ready when asked", f"{self.ready_ahead:,} of {self.batches:,}; queue depth {self.queue_depth_mean:.1f}"),
            ("bound by", self.bound()),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def with_reading(delivered: LoaderStats, readers_now: LoaderStats, readers_base: LoaderStats) -> LoaderStats:
    """``delivered`` with its :data:`READING` fields taken from the readers: ``readers_now - readers_base``.

    A loader with worker processes measures batches, windows and the
    consumer's time itself, and learns the reading from its workers (a
    :class:`StatsBoard` total, counted since ``readers_base``).
    """
    for name in READING:
        setattr(delivered, name, getattr(readers_now, name) - getattr(readers_base, name))
    return delivered


class StatsRecorder:
    """Fills a :class:`LoaderStats` as a sampler runs.

    Parameters
    ----------
    counters : callable returning a mapping, optional
        The storage counters now (keys of :data:`COUNTERS`); the statistics
        report their growth since the last :meth:`reset`.
    """

    def __init__(self, counters: Callable[[], Mapping[str, int]] | None = None) -> None:
        self._counters = counters
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Start counting from zero (the storage counters from their current values)."""
        self.stats = LoaderStats()
        self._base = dict(self._counters()) if self._counters is not None else {}
        self._start = 0.0
        self._read_done = 0  #: batches read so far (by :meth:`timed`), for the queue depth
        self._handed = 0  #: batches handed to the consumer so far

    def snapshot(self) -> LoaderStats:
        """A copy of the statistics now, storage counters included."""
        out = dataclasses.replace(self.stats)
        if self._counters is not None:
            now = self._counters()
            for k in COUNTERS:
                setattr(out, k, int(now.get(k, 0)) - int(self._base.get(k, 0)))
        return out

    def timed(self, fn: Callable[[Any], T]) -> Callable[[Any], T]:
        """``fn`` that adds its wall time to ``read_seconds`` and counts the batch read (thread-safe)."""
        clock = time.perf_counter
        lock = self._lock

        def run(task: Any) -> T:
            t0 = clock()
            try:
                return fn(task)
            finally:
                took = clock() - t0
                with lock:
                    self.stats.read_seconds += took
                    self._read_done += 1

        return run

    def delivered(
        self, batches: Iterator[T], windows_of: Callable[[T], int] = batch_windows, depth: Callable[[], int] | None = None
    ) -> Iterator[T]:
        """Yield from ``batches``, counting each batch and the consumer's waiting and working time.

        ``depth()``, if given, is read when the consumer asks for a batch
        (the batches ready or in flight then); by default, the batches read by
        :meth:`timed` and not yet handed over.
        """
        if depth is None:
            depth = lambda: max(0, self._read_done - self._handed)  # noqa: E731
        try:
            yield from self._deliver(batches, windows_of, depth)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:  # stop the reader now (threads, Dask tasks), not when collected
                close()

    def _deliver(self, batches: Iterator[T], windows_of: Callable[[T], int], depth: Callable[[], int]) -> Iterator[T]:
        clock = time.perf_counter
        handed = 0.0
        while True:
            asked = clock()
            if not self._start:
                self._start = asked
            st = self.stats
            if handed:
                st.consumer_seconds += asked - handed
            queued = depth()
            try:
                batch = next(batches)
            except StopIteration:
                st.elapsed_seconds = asked - self._start
                return
            handed = clock()
            waited = handed - asked
            st.wait_seconds += waited
            st.batches += 1
            st.windows += windows_of(batch)
            st.queue_depth_sum += queued
            self._handed += 1
            if queued and waited < 1e-4:
                st.ready_ahead += 1
            st.elapsed_seconds = handed - self._start
            yield batch


class StatsBoard:
    """Shared memory where worker processes publish their :class:`LoaderStats` (one row each).

    Made in the parent before the workers start (they receive it with the
    dataset); each worker overwrites its row after every batch, and the parent
    sums the rows.  No lock: a row is read while it may be half written, which
    can skew a total by one batch, never more.

    Parameters
    ----------
    workers : int > 0
    context : multiprocessing context or None
        The workers' start method (``DataLoader.multiprocessing_context``).
    """

    _FIELDS = tuple(f.name for f in dataclasses.fields(LoaderStats))

    def __init__(self, workers: int, context: Any = None) -> None:
        import multiprocessing

        ctx = context if context is not None else multiprocessing
        if isinstance(ctx, str):
            ctx = multiprocessing.get_context(ctx)
        self.workers = int(workers)
        self._rows = ctx.RawArray("d", self.workers * len(self._FIELDS))

    def publish(self, worker: int, stats: LoaderStats) -> None:
        """Worker ``worker``'s statistics now."""
        k = len(self._FIELDS)
        self._rows[worker * k : (worker + 1) * k] = [float(getattr(stats, f)) for f in self._FIELDS]

    def total(self) -> LoaderStats:
        """The sum over the workers (``elapsed_seconds``: the longest)."""
        k = len(self._FIELDS)
        out = LoaderStats()
        for w in range(self.workers):
            row = self._rows[w * k : (w + 1) * k]
            out = out + LoaderStats(**{f: (int(v) if isinstance(getattr(out, f), int) else v) for f, v in zip(self._FIELDS, row)})
        return out
