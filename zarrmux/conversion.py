"""Convert NPZ/NPY archives into one chunked, sharded Zarr v3 corpus.

How a conversion runs
---------------------
1. **Scan** (coordinator, headers only): find the sources, group NPY files
   into entries, parse every header, and check everything before the store
   is touched: names, keys, dtypes, trailing shapes, row counts, and, for an
   existing corpus, agreement with it.  Entries already in the store whose
   fingerprint (``size:mtime_ns``) or checksum matches are *unchanged* and
   skipped; a name that exists with different data is an error unless
   ``overwrite=True``.
2. **Plan**: the entries to convert, in source order, are grouped greedily
   into *units* of consecutive entries holding at least ``2 * shard_rows``
   rows.  Each unit starts on a shard boundary, so concurrent writers never
   touch the same shard, and the plan (hence the data) is the same whatever
   the number of workers.  The plan is prefix-stable: a resumed run plans the
   remaining entries exactly as the interrupted run did.
3. **Convert units** (workers: in-process, a process pool, or Dask tasks):
   stream row blocks from the sources straight into a shard-sized buffer per
   key, write whole shards (one zarr write per shard), checksum each entry.
4. **Commit** finished units strictly in plan order
   (:func:`zarrmux.layout.commit_entries`; the root-attributes write is the
   commit point).  A killed run leaves committed entries complete and the
   rest absent; data written beyond the last commit is trimmed by the next
   run (or by this one when it stops on an error).

One writer, atomic creation, clean failures
-------------------------------------------
* The whole run holds the destination's writer lock
  (:mod:`zarrmux.writer_lock`): a second writer is refused at once
  (:class:`~zarrmux.writer_lock.DestinationBusyError`, naming host, pid and
  since when) or waits (``wait=``); a lock left by a killed writer is free.
* A new local corpus is created complete beside ``dest``
  (``<dest>.zarrmux-new-<pid>``) and renamed into place: a run killed while
  creating leaves nothing at ``dest``.  A zarrmux root left without all its
  arrays by an interrupted creation (remote, or an older zarrmux) holds no
  entries and is recreated.
* Pool workers watch a pipe only the coordinator can write: when it is
  gone (even ``kill -9``) they exit at once, and the forkserver and the
  resource tracker follow (``_worker_init``).  They share the writer lock,
  so a new writer never overlaps an orphaned worker.
* Ctrl-C (``KeyboardInterrupt``): units already finished are committed, the
  rest dropped, and :class:`ConversionInterrupted` (a ``KeyboardInterrupt``)
  says how many entries were committed and kept; rerunning resumes.
* An ``OSError`` on the corpus (out of space, file size limit, EIO) becomes
  :class:`~zarrmux.writer_lock.StoreIOError` (exit code 8) after the
  uncommitted data is dropped: the store stays valid, rerun to resume.

Codec per key
-------------
``codec='auto'`` (the default) chooses each key's codec when a corpus is
created: before anything is written, the coordinator reads a small sample of
every key (:data:`SAMPLE_BLOCK_BYTES` from the start of each of the first
:data:`SAMPLE_ENTRIES` entries, at most ``SAMPLE_ENTRIES * SAMPLE_BLOCK_BYTES``
= 1 MiB per key, through the same streaming readers), measures what
blosc-lz4 would save (:func:`zarrmux.layout.measure_lz4_ratio`) and stores the
key uncompressed if that is less than
:data:`zarrmux.layout.AUTO_MIN_SAVING` (25 %), else with lz4.  Appending
keeps each key's stored codec.

Memory is bounded by one shard buffer per key per worker (``shard_rows``
rows of each key, ~32 MiB for the widest key by default) plus one read block.
"""

from __future__ import annotations

import errno
import glob
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import zarr

from . import layout
from .exceptions import CorpusError, PescadorError
from .sources import SourceEntry, SourceError, discover, open_reader, scan, source_checksum
from .convert_units import UnitResult, UnitTask, convert_unit, plan_units
from .writer_lock import DestinationBusyError, InheritedFd, StoreIOError, WriterLock

__all__ = [
    "convert",
    "ConversionReport",
    "UnitTask",
    "UnitResult",
    "plan_units",
    "convert_unit",
    "StoreIOError",
    "DestinationBusyError",
    "ConversionInterrupted",
]

#: the ``zarrmux`` logger: ``codec='auto'`` logs the codec it chose per key at INFO
log = logging.getLogger("zarrmux")



#: ``codec='auto'``: entries sampled per key (the first ones, in source order)
SAMPLE_ENTRIES = 4
#: ``codec='auto'``: the sample of one key is this many bytes per sampled entry
#: (``SAMPLE_ENTRIES * SAMPLE_BLOCK_BYTES`` in all, split over the entries there are)
SAMPLE_BLOCK_BYTES = 256 * 1024


@dataclass
class ConversionReport:
    """What a :func:`convert` call did."""

    dest: str
    entries: int = 0  #: entries converted (appended or overwritten) by this run
    rows: int = 0  #: rows converted by this run
    bytes_read: int = 0  #: source array bytes read and converted
    bytes_written: int = 0  #: growth of the stored bytes of the corpus
    seconds: float = 0.0
    appended: list[str] = field(default_factory=list)  #: names of new entries
    overwritten: list[str] = field(default_factory=list)  #: names replaced (``overwrite=True``)
    skipped: list[str] = field(default_factory=list)  #: names already stored unchanged (resume)
    errors: list[str] = field(default_factory=list)  #: bad sources left out (``on_error='skip'``)
    units: int = 0
    workers: int = 1
    total_entries: int = 0  #: committed entries in the corpus afterwards
    #: the codec of every key of the corpus (``{key: 'lz4' | 'zstd' | 'none'}``)
    codecs: dict[str, str] = field(default_factory=dict)
    #: lz4 ratios (raw / compressed) measured by ``codec='auto'`` in this run, per key
    lz4_ratios: dict[str, float] = field(default_factory=dict)
    #: entries this run set out to convert (new or replaced; the rest were unchanged or bad)
    planned: int = 0

    @property
    def mb_per_s(self) -> float:
        return self.bytes_read / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: entries, rows, bytes in and out, seconds, MB/s.

        Bytes are decimal megabytes (1 MB = 10**6 bytes), as on the progress bar.
        """
        s = (
            f"converted {self.entries} entries, {self.rows} rows, "
            f"{self.bytes_read / 1e6:.1f} MB in, {self.bytes_written / 1e6:.1f} MB out, "
            f"{self.seconds:.2f} s, {self.mb_per_s:.1f} MB/s"
        )
        if self.skipped:
            s += f"; {len(self.skipped)} unchanged skipped"
        if self.errors:
            s += f"; {len(self.errors)} bad sources skipped"
        return s + f" -> {self.dest} ({self.total_entries} entries)"


class ConversionInterrupted(KeyboardInterrupt):
    """:func:`convert` was interrupted (Ctrl-C): a :class:`KeyboardInterrupt` that says what was kept.

    Units finished before the interrupt are committed, the rest dropped; the
    store stays valid and rerunning the same conversion resumes.
    """

    def __init__(self, dest: str, converted: int, planned: int, committed: int | None) -> None:
        super().__init__(dest, converted, planned, committed)
        self.dest = dest
        self.converted = converted  #: entries this run committed before the interrupt
        self.planned = planned  #: entries this run set out to convert
        self.committed = committed  #: committed entries of the corpus now (``None``: none there)

    def __str__(self) -> str:
        if self.planned:
            done = f"interrupted: {self.converted} of the {self.planned} entries to convert were committed"
        else:
            done = "interrupted before converting any entry"
        held = (
            f"{self.dest} holds {self.committed} entries, each complete" if self.committed is not None
            else f"nothing was written to {self.dest}"
        )
        return f"{done}; {held}; rerun the same command to resume (entries already converted are skipped)"


# ---------------------------------------------------------------- helpers


def _is_local(dest: str) -> bool:
    return "://" not in dest


def _stored_bytes(root: zarr.Group, keys: Sequence[str]) -> int:
    total = 0
    for k in [*keys, *[f"{layout.INDEX_GROUP}/{f}" for f in layout.INDEX_FIELDS]]:
        try:
            total += int(layout.array_at(root, k).nbytes_stored())
        except Exception:  # noqa: BLE001 - a store that cannot list: report 0
            pass
    return total


#: suffix of the directory a new local corpus is created in before it is renamed into place
NEW_SUFFIX = ".zarrmux-new-"


def _new_dirs(dest: str) -> list[str]:
    """Leftover creation directories of ``dest`` (``<dest>.zarrmux-new-<pid>``)."""
    return glob.glob(glob.escape(os.path.realpath(dest).rstrip(os.sep)) + NEW_SUFFIX + "*")


def _open_existing(dest: str) -> tuple[zarr.Group | None, bool]:
    """``(root, partial)``: the corpus at ``dest``, or ``(None, False)`` if nothing is there.

    ``(None, True)``: a store whose creation was interrupted (a zarrmux root
    without all its arrays and no committed entries): nothing to keep, the
    run recreates it.  :class:`CorpusError` if something else is there.
    Called while holding the writer lock, which also makes it safe to remove
    leftover creation directories of a killed run.
    """
    if _is_local(dest):
        for leftover in _new_dirs(dest):
            shutil.rmtree(leftover, ignore_errors=True)
        if not os.path.exists(dest):
            return None, False
        if os.path.isdir(dest) and not os.listdir(dest):
            return None, False
        if not os.path.isdir(dest):
            raise CorpusError(f"destination {dest} exists and is not a directory (not a zarrmux corpus)")
    try:
        root = zarr.open_group(dest, mode="r+")
    except Exception as exc:  # noqa: BLE001 - zarr raises several types here
        if not _is_local(dest) and isinstance(exc, FileNotFoundError):
            return None, False
        raise CorpusError(
            f"destination {dest} exists and is not a zarrmux corpus (reading {dest.rstrip('/')}/zarr.json: "
            f"{type(exc).__name__}: {exc})"
        ) from None
    meta = layout.read_meta(root)  # CorpusError if not a corpus
    try:
        layout.open_parts(root, meta)
    except layout.IncompleteCorpusError as exc:
        if exc.n_entries:
            raise
        return None, True
    return root, False


def _create(
    dest: str, specs: Mapping[str, layout.KeySpec], *, shard_rows: int, codec: str, level: int | None, partial: bool
) -> zarr.Group:
    """Create the corpus at ``dest``, atomically for a local one: built aside, then renamed into place.

    A run killed while creating leaves nothing at ``dest`` (only a
    ``<dest>.zarrmux-new-<pid>`` directory, removed by the next writer).  A
    remote store is created in place (an object store has no rename); a
    creation interrupted there is recognised and redone (``partial``).
    """
    if not _is_local(dest):
        return layout.create_corpus(dest, specs, shard_rows=shard_rows, codec=codec, level=level)
    real = os.path.realpath(dest).rstrip(os.sep)
    tmp = f"{real}{NEW_SUFFIX}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        layout.create_corpus(tmp, specs, shard_rows=shard_rows, codec=codec, level=level)
        if partial:  # an interrupted creation of an older zarrmux: nothing committed, replace it
            shutil.rmtree(real)
        elif os.path.isdir(real):
            os.rmdir(real)  # empty (checked by _open_existing, under the lock)
        os.rename(tmp, real)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return zarr.open_group(dest, mode="r+")


def _trim(root: zarr.Group, meta: layout.CorpusMeta) -> None:
    """Shrink data arrays to the committed end, deleting shards written by uncommitted units."""
    for k, spec in meta.keys.items():
        arr = layout.array_at(root, k)
        if arr.shape[0] > meta.rows_allocated:
            arr.resize((meta.rows_allocated, *spec.trailing_shape))


def _key_specs(
    entries: Sequence[SourceEntry], chunk_rows: int | None, shard_rows: int | None
) -> tuple[dict[str, layout.KeySpec], int]:
    first = entries[0]
    specs: dict[str, layout.KeySpec] = {}
    for k, m in first.members.items():
        cr = chunk_rows or layout.default_chunk_rows(m.row_bytes)
        if shard_rows and not chunk_rows:
            cr = math.gcd(cr, shard_rows)
        specs[k] = layout.KeySpec(m.store_dtype, tuple(m.shape[1:]), int(cr))
    if shard_rows is None:
        shard_rows = layout.default_shard_rows([s.row_bytes for s in specs.values()], [s.chunk_rows for s in specs.values()])
        if chunk_rows:
            shard_rows = layout.shard_ceil(shard_rows, chunk_rows)
    for k, s in specs.items():
        if shard_rows % s.chunk_rows:
            raise ValueError(f"shard_rows={shard_rows} is not a multiple of chunk_rows={s.chunk_rows} (key {k!r})")
    return specs, int(shard_rows)


def _check_against(entry: SourceEntry, specs: Mapping[str, layout.KeySpec], ref: str) -> None:
    """:class:`SourceError` if ``entry``'s keys, dtypes or trailing shapes disagree with ``specs``."""
    have, want = set(entry.members), set(specs)
    if have != want:
        parts = []
        if want - have:
            parts.append(f"lacks key(s) {sorted(want - have)}")
        if have - want:
            parts.append(f"has extra key(s) {sorted(have - want)}")
        raise SourceError(entry.where, f"entry {entry.name!r} {' and '.join(parts)} (keys of {ref}: {sorted(want)}; use keys= / --keys to pick)")
    for k, m in entry.members.items():
        s = specs[k]
        if layout.store_dtype(m.dtype) != layout.store_dtype(s.dtype):  # byte order does not matter
            raise SourceError(m.where, f"key {k!r} has dtype {np.dtype(m.dtype)}, {ref} has {np.dtype(s.dtype)}")
        if tuple(m.shape[1:]) != tuple(s.trailing_shape):
            raise SourceError(m.where, f"key {k!r} has trailing shape {tuple(m.shape[1:])}, {ref} has {tuple(s.trailing_shape)}")


def _sample_key(entries: Sequence[SourceEntry], key: str) -> list[np.ndarray]:
    """The first bytes of ``key`` in the first :data:`SAMPLE_ENTRIES` entries, as flat arrays.

    ``SAMPLE_ENTRIES * SAMPLE_BLOCK_BYTES`` bytes at most, split evenly over
    the sampled entries, read through :func:`zarrmux.sources.open_reader`
    (never a whole member).  An entry that cannot be read is left out of the
    sample; the conversion proper reports it.
    """
    first = list(entries[:SAMPLE_ENTRIES])
    if not first:
        return []
    per_entry = SAMPLE_ENTRIES * SAMPLE_BLOCK_BYTES // len(first)
    out: list[np.ndarray] = []
    for e in first:
        m = e.members[key]
        dt = np.dtype(m.store_dtype)
        items = min(m.nbytes, per_entry) // dt.itemsize
        if items < 1:
            continue
        block = np.empty(items, dtype=dt)
        try:
            with open_reader(m) as r:
                r.read_values(block)
        except SourceError:
            continue
        out.append(block)
    return out


def _choose_codecs(
    specs: Mapping[str, layout.KeySpec], entries: Sequence[SourceEntry], codec: str, level: int | None
) -> dict[str, layout.KeySpec]:
    """``specs`` with each key's codec set: ``codec`` itself, or for ``'auto'`` the measured choice."""
    out: dict[str, layout.KeySpec] = {}
    for k, spec in specs.items():
        if codec != layout.AUTO:
            out[k] = replace(spec, codec=codec, lz4_ratio=None)
            continue
        sample = _sample_key(entries, k)
        ratio = layout.measure_lz4_ratio(sample, spec.chunk_rows * spec.row_bytes, level)
        chosen = layout.auto_codec(ratio)
        out[k] = replace(spec, codec=chosen, lz4_ratio=None if ratio is None else round(ratio, 4))
        if ratio is None:
            log.info("codec auto: key %r -> %s (no sample could be read to measure lz4)", k, chosen)
        else:
            log.info(
                "codec auto: key %r -> %s (blosc-lz4 ratio %.2f on a %d-byte sample: saves %.0f%%, %s %.0f%%)",
                k, chosen, ratio, sum(b.nbytes for b in sample), 100 * (1 - 1 / ratio),
                "under" if chosen == "none" else "at least", 100 * layout.AUTO_MIN_SAVING,
            )
    return out


#: the progress bar: source bytes read in decimal MB (``12.3/45.6 MB``, ``MB/s``) and entries
#: (``entries 3/10``), the units of the summary line (:meth:`ConversionReport.summary`)
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} MB [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class _Progress:
    """Adapts ``progress`` (``None``/``False``, ``True`` for a tqdm bar, or a callable)."""

    def __init__(self, progress: Any, n_entries: int, n_bytes: int) -> None:
        self.entries = 0
        self.bytes = 0
        self.n_entries, self.n_bytes = n_entries, n_bytes
        self.bar = None
        self.fn: Callable[[int, int, int, int], None] | None = None
        if progress is True:
            from tqdm import tqdm

            # decimal MB, as the summary line (ConversionReport.summary); entries in the postfix
            self.bar = tqdm(
                total=n_bytes, unit="MB", unit_scale=1e-6, file=sys.stderr, desc="convert",
                dynamic_ncols=True, bar_format=BAR_FORMAT,
            )
            self.bar.set_postfix_str(f"entries 0/{n_entries}")
        elif callable(progress):
            self.fn = progress

    def advance(self, entries: int, nbytes: int) -> None:
        self.entries += entries
        self.bytes += nbytes
        if self.bar is not None:
            self.bar.update(nbytes)
            self.bar.set_postfix_str(f"entries {self.entries}/{self.n_entries}")
        if self.fn is not None:
            self.fn(self.entries, self.n_entries, self.bytes, self.n_bytes)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _worker_init(alive: InheritedFd, lock: InheritedFd | None) -> None:
    """Initializer of a pool worker: exit as soon as the coordinator is gone.

    ``alive`` is the read end of a pipe whose only write end the coordinator
    holds: a daemon thread blocks reading it and, at EOF (the coordinator
    exited or was killed, even by ``kill -9``), ends the worker at once.  So no
    worker outlives its coordinator, and once the workers are gone the
    forkserver and multiprocessing's resource tracker (kept alive only by
    descriptors the workers hold) exit too.  Holding ``lock`` (the
    coordinator's writer lock descriptor) keeps the destination locked until
    the last worker has exited, so a new writer never overlaps an orphan.
    """
    import threading

    global _HELD_LOCK
    _HELD_LOCK = lock  # keep the descriptor open for the life of the worker

    def watch() -> None:
        try:
            while os.read(alive.fd, 1):
                pass
        except OSError:
            pass
        os._exit(70)  # the coordinator is gone: stop now, its uncommitted data is trimmed by the next run

    threading.Thread(target=watch, name="zarrmux-parent-watch", daemon=True).start()


_HELD_LOCK: InheritedFd | None = None


def _run_pool(tasks: Sequence[UnitTask], workers: int, lock: WriterLock | None = None) -> Iterator[UnitResult]:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing.context import BaseContext

    # zarr's async machinery is not fork-safe: a forkserver that has only *imported* zarr is.
    ctx: BaseContext
    try:
        forkserver = mp.get_context("forkserver")
        forkserver.set_forkserver_preload(["zarrmux.conversion"])
        ctx = forkserver
    except ValueError:  # pragma: no cover - platforms without forkserver
        ctx = mp.get_context("spawn")
    alive_r, alive_w = os.pipe()  # workers watch alive_r; only this process holds alive_w
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_worker_init,
        initargs=(InheritedFd(alive_r), lock.share() if lock is not None else None),
    )
    ok = False
    try:
        pending = {pool.submit(convert_unit, t) for t in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                try:
                    result = f.result()
                except BrokenProcessPool:
                    raise StoreIOError(
                        f"a worker process converting into {tasks[0].dest} died unexpectedly (killed by a signal, "
                        "e.g. the out-of-memory killer, or crashed); committed entries are kept and the store stays "
                        "valid, rerun the same command to resume"
                    ) from None
                yield result
        ok = True
    finally:
        # on error or interrupt: drop queued units and wait for running ones, so
        # nobody writes after the coordinator trims uncommitted data
        pool.shutdown(wait=True, cancel_futures=not ok)
        os.close(alive_w)
        os.close(alive_r)


def _run_dask(tasks: Sequence[UnitTask], scheduler: Any, workers: int) -> Iterator[UnitResult]:
    from . import distributed

    for _, result in distributed.run_tasks(scheduler, convert_unit, tasks, n_workers=workers):
        yield result


# ---------------------------------------------------------------- convert


def convert(
    sources: Sequence[Any] | str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    keys: Sequence[str] | str | None = None,
    chunk_rows: int | None = None,
    shard_rows: int | None = None,
    codec: str = "auto",
    level: int | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    overwrite: bool = False,
    on_error: str = "raise",
    progress: bool | Callable[[int, int, int, int], None] | None = None,
    group: str = "suffix",
    unit_rows: int | None = None,
    commit_every: float = 1.0,
    wait: bool | float = False,
    names: str = "strict",
) -> ConversionReport:
    """Convert NPZ/NPY ``sources`` into (or append them to) the corpus at ``dest``.

    Parameters
    ----------
    sources : path, glob, directory, ``(name, path)`` pair, or a sequence of them
        NPZ archives (one entry each, named after the file) and NPY files
        (grouped into entries by ``group``; see :mod:`zarrmux.sources`).
    dest : str or os.PathLike
        The corpus: a local directory or an fsspec URL.  Created if absent;
        entries are appended to an existing corpus.
    keys : sequence of str or comma-separated str, optional
        Convert only these keys (default: all keys of the first entry, or of
        the existing corpus).
    chunk_rows, shard_rows : int > 0, optional
        Rows per inner chunk (all keys) and per shard; ``shard_rows`` must be a
        multiple of ``chunk_rows``.  Defaults: :func:`zarrmux.layout.default_chunk_rows`
        (~32 KiB chunks) and :func:`~zarrmux.layout.default_shard_rows` (~32 MiB shards).
        Only for a new corpus.
    codec : {'auto', 'lz4', 'zstd', 'none'}
        ``'auto'`` (default): chosen per key when the corpus is created.
        blosc-lz4 (level ``level``, byte shuffle) is measured on a sample of
        the key (at most 1 MiB, from the starts of the first 4 entries:
        :data:`SAMPLE_ENTRIES`, :data:`SAMPLE_BLOCK_BYTES`); a key it shrinks by less than
        :data:`zarrmux.layout.AUTO_MIN_SAVING` (25 %: compressed / raw
        > 0.75) is stored uncompressed, any other with lz4.  The choice and
        the measured ratio are recorded per key (``zarrmux info`` shows
        them).  ``'lz4'`` / ``'zstd'`` (blosc with byte shuffle) /
        ``'none'`` (uncompressed) force one codec for every key.  When
        appending, ``'auto'`` keeps each key's stored codec, and a forced
        codec must equal it.
    level : int, optional
        Compression level of the compressed keys (default 5 for lz4, 3 for zstd).
    workers : int > 0, optional
        Parallel local processes (default: the number of cores); ``1`` runs in
        this process.  With ``scheduler``: workers of a ``'local'`` cluster.
    scheduler : distributed.Client, str, optional
        Run the units as Dask tasks: a ``Client``, a scheduler address
        (``tcp://host:8786``), or ``'local'`` for a LocalCluster on 127.0.0.1.
    overwrite : bool
        Replace entries whose name exists with different data (else an error).
    on_error : {'raise', 'skip'}
        ``'raise'``: stop at the first bad source, leaving nothing partial.
        ``'skip'``: leave bad sources out and list them in ``report.errors``.
    progress : bool or callable, optional
        ``True``: a tqdm bar on stderr; a callable gets
        ``(entries_done, entries_total, bytes_done, bytes_total)``.
    group : {'suffix', 'dir'} or str
        NPY grouping rule, or a regex with named groups ``entry`` and ``key``.
    unit_rows : int > 0, optional
        Rows per unit of work (default ``2 * shard_rows``).
    commit_every : float >= 0
        Seconds between commits: finished units are committed together (in
        plan order) at most this often, and at the end.  A commit rewrites
        the index chunks, so committing every small unit would be slow; a
        killed run loses at most this much finished work.
    wait : bool or float >= 0
        One writer at a time per destination (:mod:`zarrmux.writer_lock`):
        ``False`` (default) refuses at once with
        :class:`~zarrmux.writer_lock.DestinationBusyError` naming the holder
        (host, pid, since when) if another conversion is writing ``dest``;
        ``True`` waits until it is done (a line on stderr says for whom);
        a number waits at most that many seconds.  A lock left by a killed
        writer is free at once.  Readers are never blocked.
    names : {'strict', 'sanitize', 'relative'}
        How entry names are derived from file names (:mod:`zarrmux.sources`,
        "Names"): ``'strict'`` (default) refuses names with odd characters and
        names two files share; ``'sanitize'`` replaces odd characters with
        ``_`` (``"Song 1 (live).npz"`` -> ``Song_1__live_``); ``'relative'``
        names entries after their path relative to the common directory of
        the sources (``a/x.npz``, ``b/x.npz`` -> ``a/x``, ``b/x``).  Names that
        still collide are refused, never merged.  Use the same rule when
        rerunning or appending.  Each entry's source path is kept in the
        index (``zarrmux info --entries``).

    Returns
    -------
    ConversionReport

    Raises
    ------
    ConversionError
        A bad source (the message names the file and the problem).
    CorpusError
        ``dest`` exists but is not a zarrmux corpus, or options disagree with it.
    DestinationBusyError
        Another writer holds ``dest`` (a :class:`CorpusError`).
    StoreIOError
        The corpus cannot be written (out of space, I/O error; a
        :class:`CorpusError`); committed entries are kept, rerun to resume.
    ValueError
        A bad option value (named in the message).
    ConversionInterrupted
        Ctrl-C (a :class:`KeyboardInterrupt`): finished units are committed,
        the message says how many entries are kept; rerun to resume.
    """
    t0 = time.perf_counter()
    dest = os.fspath(dest)
    if dest.startswith("file://"):  # a local path: locked, created atomically
        from urllib.parse import unquote, urlparse

        dest = unquote(urlparse(dest).path)
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error={on_error!r} must be 'raise' or 'skip'")
    if codec != layout.AUTO and codec not in layout.CODECS:
        raise ValueError(f"codec={codec!r} is not one of {(layout.AUTO, *layout.CODECS)}")
    from .sources import NAME_RULES

    if names not in NAME_RULES:
        raise ValueError(f"names={names!r} is not one of {NAME_RULES}")
    for pname, pval in (("chunk_rows", chunk_rows), ("shard_rows", shard_rows), ("workers", workers), ("unit_rows", unit_rows)):
        if pval is not None and (not isinstance(pval, (int, np.integer)) or pval < 1):
            raise ValueError(f"{pname}={pval!r} must be an integer > 0")
    if isinstance(keys, str):
        keys = [k for k in keys.split(",") if k]
    if keys is not None:
        keys = list(dict.fromkeys(keys))
        if not keys:
            raise ValueError("keys=[] selects nothing")
    workers = int(workers or os.cpu_count() or 1)
    report = ConversionReport(dest=dest, workers=workers)
    try:
        with WriterLock(dest, wait=wait, notify=_notify) as lock:
            try:
                return _convert_locked(
                    sources, dest, keys=keys, chunk_rows=chunk_rows, shard_rows=shard_rows, codec=codec, level=level,
                    workers=workers, scheduler=scheduler, overwrite=overwrite, on_error=on_error, progress=progress,
                    group=group, unit_rows=unit_rows, commit_every=commit_every, t0=t0, lock=lock, names=names,
                    report=report,
                )
            except OSError as exc:  # the destination (sources' I/O errors are SourceErrors): out of space, EIO, ...
                if isinstance(exc, PescadorError):  # SchedulerError is a ConnectionError: keep it
                    raise
                raise _io_error(dest, exc) from None
    except KeyboardInterrupt as exc:
        if isinstance(exc, ConversionInterrupted):
            raise
        raise ConversionInterrupted(dest, report.entries, report.planned, _committed_entries(dest)) from exc


def _committed_entries(dest: str) -> int | None:
    """Committed entries of the corpus at ``dest`` (``None``: no corpus there, or it cannot be read)."""
    try:
        if _is_local(dest) and not os.path.isdir(dest):
            return None
        return layout.read_meta(zarr.open_group(dest, mode="r")).n_entries
    except Exception:  # noqa: BLE001 - only for a message
        return None


def _notify(message: str) -> None:
    print(f"zarrmux: {message}", file=sys.stderr, flush=True)


def _io_error(dest: str, exc: OSError) -> "StoreIOError":
    what = f" {exc.filename!r}" if exc.filename else ""
    return StoreIOError(
        f"I/O error writing the corpus {dest}: [Errno {exc.errno}] {exc.strerror or exc}{what}"
        f"{' (out of space: free some and rerun)' if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else ''}; "
        "committed entries are kept and the store stays valid, rerun the same command to resume"
    )


def _convert_locked(
    sources: Any,
    dest: str,
    *,
    keys: list[str] | None,
    chunk_rows: int | None,
    shard_rows: int | None,
    codec: str,
    level: int | None,
    workers: int,
    scheduler: Any,
    overwrite: bool,
    on_error: str,
    progress: Any,
    group: str,
    unit_rows: int | None,
    commit_every: float,
    t0: float,
    lock: WriterLock,
    names: str,
    report: ConversionReport,
) -> ConversionReport:
    """The body of :func:`convert`, run while holding the destination's writer lock; fills ``report``."""
    # ---- scan: headers only, nothing is written yet
    grouped, errs = discover(sources, group=group, on_error=on_error, names=names)
    entries, errs2 = scan(grouped, keys=keys, on_error=on_error)
    errors: list[SourceError] = [*errs, *errs2]

    def bad(err: SourceError) -> None:
        if on_error == "raise":
            raise err
        errors.append(err)

    root, partial = _open_existing(dest)
    meta = layout.read_meta(root) if root is not None else None
    if meta is not None:
        if keys is not None and set(keys) != set(meta.keys):
            raise CorpusError(f"keys={sorted(keys)} disagree with the corpus {dest} (keys {sorted(meta.keys)})")
        if shard_rows is not None and shard_rows != meta.shard_rows:
            raise CorpusError(f"shard_rows={shard_rows!r} disagrees with the existing corpus {dest} (shard_rows={meta.shard_rows!r})")
        if codec != layout.AUTO:  # only a forced codec is compared, key by key
            for k in sorted(meta.keys):
                have = meta.key_codec(k)
                if have != codec:
                    ratio = meta.keys[k].lz4_ratio
                    how = (
                        f"the corpus codec is {meta.codec!r}" if meta.codec != layout.AUTO
                        else "chosen by codec='auto'" + (f", measured lz4 ratio {ratio:.2f}" if ratio is not None else "")
                    )
                    raise CorpusError(
                        f"codec={codec!r} disagrees with the existing corpus {dest}: key {k!r} is stored with "
                        f"codec={have!r} ({how}); append with codec='auto' (--codec auto, the default) "
                        "to keep each key's stored codec"
                    )
        if chunk_rows is not None and any(s.chunk_rows != chunk_rows for s in meta.keys.values()):
            raise CorpusError(f"chunk_rows={chunk_rows} disagrees with the existing corpus {dest}")
        specs, shard = meta.keys, meta.shard_rows
        ref = f"corpus {dest}"
    else:
        specs, shard, ref = {}, 0, ""

    valid: list[SourceEntry] = []
    for e in entries:
        try:
            if not specs:
                specs, shard = _key_specs([e], chunk_rows, shard_rows)
                ref = f"the first entry {e.name!r} ({e.where})"
            _check_against(e, specs, ref)
        except SourceError as err:
            bad(err)
            continue
        valid.append(e)

    # ---- resume / append / overwrite
    todo: list[SourceEntry] = []
    updates_for: dict[str, int] = {}
    if root is not None and meta is not None and meta.n_entries:
        try:
            index = layout.read_index(root, meta.n_entries)
        except Exception as exc:  # noqa: BLE001 - a corrupt index chunk raises many types
            raise CorpusError(
                f"the index of {dest} cannot be read ({type(exc).__name__}: {exc}); run zarrmux verify {dest}"
            ) from None
        pos = {str(n): i for i, n in enumerate(index["name"])}
        folded = {str(n).casefold(): str(n) for n in index["name"]}
        by_source = {str(src): str(n) for n, src in zip(index["name"], index["source"]) if str(src)}
        for e in valid:
            i = pos.get(e.name)
            if i is None:
                other = folded.get(e.name.casefold())
                stored_as = by_source.get(e.source)
                if stored_as is not None and other is None:
                    bad(SourceError(
                        e.where, f"entry {e.name!r}: this source is already in {dest} as entry {stored_as!r} "
                        "(converted with another naming rule?); rerun with the --names rule (Python: names=) the "
                        "corpus was converted with"
                    ))
                    continue
                if other is not None:
                    bad(SourceError(
                        e.where, f"entry name {e.name!r} differs only by case from {other!r} already in {dest}; "
                        "rename the file, or use --names relative (Python: names='relative') to name entries after their path"
                    ))
                    continue
                todo.append(e)
                continue
            if str(index["fingerprint"][i]) == e.fingerprint or source_checksum(e) == str(index["checksum"][i]):
                report.skipped.append(e.name)
            elif overwrite:
                updates_for[e.name] = i
                todo.append(e)
            else:
                bad(SourceError(e.where, f"entry {e.name!r} already exists in {dest} with different data (use overwrite=True / --overwrite to replace it)"))
    else:
        todo = valid
    report.errors = [str(e) for e in errors]
    report.planned = len(todo)

    created = False
    if todo:
        if root is None:
            specs = _choose_codecs(specs, todo, codec, level)
            report.lz4_ratios = {k: s.lz4_ratio for k, s in specs.items() if s.lz4_ratio is not None}
            root = _create(dest, specs, shard_rows=shard, codec=codec, level=level, partial=partial)
            created = True
        meta = layout.read_meta(root)
        _trim(root, meta)  # garbage of an interrupted run
    if root is None or meta is None:
        report.seconds = time.perf_counter() - t0
        report.total_entries = meta.n_entries if meta else 0
        return report
    report.codecs = {k: meta.key_codec(k) for k in meta.keys}

    stored_before = _stored_bytes(root, list(meta.keys))
    plan = plan_units(todo, meta.rows_allocated, meta.shard_rows, unit_rows=unit_rows)
    tasks = [UnitTask(i, dest, s, e, meta.shard_rows, tuple(items), on_error) for i, (s, e, items) in enumerate(plan)]
    report.units = len(tasks)
    if tasks:
        for k, spec in meta.keys.items():
            layout.array_at(root, k).resize((tasks[-1].end, *spec.trailing_shape))

    bar = _Progress(progress, len(todo), sum(e.nbytes for e in todo))
    finished: dict[int, UnitResult] = {}
    ready: list[UnitResult] = []  # finished in plan order, not committed yet
    next_unit = 0
    last_commit = time.monotonic()
    in_process = scheduler is None and (workers == 1 or len(tasks) <= 1)

    def commit_ready(force: bool = False) -> None:
        """Commit the finished prefix of the plan, at most every ``commit_every`` seconds."""
        nonlocal next_unit, last_commit
        while next_unit in finished:
            res = finished.pop(next_unit)
            ready.append(res)
            next_unit += 1
            if not in_process:
                bar.advance(len(res.records), res.bytes_read)
        if not ready or not (force or next_unit == len(tasks) or time.monotonic() - last_commit >= commit_every):
            return
        records = [r for res in ready for r in res.records]
        new = [r for r in records if r.name not in updates_for]
        upd = {updates_for[r.name]: r for r in records if r.name in updates_for}
        layout.commit_entries(root, new, rows_allocated=tasks[ready[-1].index].end, updates=upd)
        report.appended += [r.name for r in new]
        report.overwritten += [r.name for r in records if r.name in updates_for]
        report.entries += len(records)
        report.rows += sum(r.rows for r in records)
        report.bytes_read += sum(res.bytes_read for res in ready)
        report.errors += [e for res in ready for e in res.errors]
        ready.clear()
        last_commit = time.monotonic()

    try:
        if scheduler is not None:
            results: Iterator[UnitResult] = _run_dask(tasks, scheduler, workers)
        elif not in_process:
            results = _run_pool(tasks, min(workers, len(tasks)), lock)
        else:  # in this process, one unit after another, progress per entry
            results = (convert_unit(t, on_entry=lambda e: bar.advance(1, e.nbytes)) for t in tasks)
        for res in results:
            finished[res.index] = res
            commit_ready()
        commit_ready(force=True)
    except BaseException:
        try:  # keep the units that did finish, then drop everything uncommitted
            commit_ready(force=True)
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        _cleanup(dest, root, created)
        raise
    finally:
        bar.close()
    meta = layout.read_meta(root)
    report.total_entries = meta.n_entries
    report.bytes_written = max(0, _stored_bytes(root, list(meta.keys)) - stored_before)
    report.seconds = time.perf_counter() - t0
    return report


def _cleanup(dest: str, root: zarr.Group, created: bool) -> None:
    """After a failed run: drop uncommitted data; remove a store this run created and left empty."""
    try:
        meta = layout.read_meta(root)
        if created and meta.n_entries == 0 and _is_local(dest):
            shutil.rmtree(dest, ignore_errors=True)
        else:
            _trim(root, meta)
    except Exception:  # noqa: BLE001 - cleanup is best effort; the next run trims too
        pass
