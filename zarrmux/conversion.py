"""Convert NPZ/NPY archives into one chunked, sharded Zarr v3 corpus.

How a conversion runs
---------------------
1. **Scan** (coordinator, headers only): find the sources, group NPY files
   into entries, parse every header, and check everything before the store
   is touched: names, keys, dtypes, trailing shapes, row counts, and, for an
   existing corpus, agreement with it (:mod:`zarrmux.source_discovery`,
   :mod:`zarrmux.source_headers`, :mod:`zarrmux.key_specs`).  Entries already
   in the store whose fingerprint (``size:mtime_ns``) or checksum matches are
   *unchanged* and skipped; a name that exists with different data is an
   error unless ``overwrite=True`` (:mod:`zarrmux.resume`).
2. **Plan** (:func:`zarrmux.convert_units.plan_units`): the entries to
   convert, in source order, are grouped greedily into *units* of
   consecutive entries holding at least ``2 * shard_rows`` rows.  Each unit starts on a shard boundary, so concurrent writers never
   touch the same shard, and the plan (hence the data) is the same whatever
   the number of workers.  The plan is prefix-stable: a resumed run plans the
   remaining entries exactly as the interrupted run did.
3. **Convert units** (:func:`zarrmux.convert_units.convert_unit`; in this
   process, or by :mod:`zarrmux.unit_runners` in a process pool or as Dask
   tasks): stream row blocks from the sources straight into a shard-sized
   buffer per key, write whole shards (one zarr write per shard), checksum
   each entry.
4. **Commit** finished units strictly in plan order
   (:func:`zarrmux.index_commit.commit_entries`; the root-attributes write
   is the commit point).  A killed run leaves committed entries complete
   and the rest absent; data written beyond the last commit is trimmed by
   the next run (or by this one when it stops on an error).

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
  entries and is recreated (:mod:`zarrmux.destination`).
* Pool workers watch a pipe only the coordinator can write: when it is
  gone (even ``kill -9``) they exit at once, and the forkserver and the
  resource tracker follow (:mod:`zarrmux.unit_runners`).  They share the
  writer lock, so a new writer never overlaps an orphaned worker.
* Ctrl-C (``KeyboardInterrupt``): units already finished are committed, the
  rest dropped, and :class:`ConversionInterrupted` (a ``KeyboardInterrupt``)
  says how many entries were committed and kept; rerunning resumes.
* An ``OSError`` on the corpus (out of space, file size limit, EIO) becomes
  :class:`~zarrmux.writer_lock.StoreIOError` (exit code 8) after the
  uncommitted data is dropped: the store stays valid, rerun to resume.

Codec per key
-------------
``codec='auto'`` (the default) chooses each key's codec when a corpus is
created, from a small sample of the key's sources (:mod:`zarrmux.key_specs`);
appending keeps each key's stored codec.  Progress and the final
:class:`ConversionReport`: :mod:`zarrmux.conversion_report`.

Memory is bounded by one shard buffer per key per worker (``shard_rows``
rows of each key, ~32 MiB for the widest key by default) plus one read block.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import layout
from .conversion_report import ConversionInterrupted, ConversionReport, Progress
from .convert_units import UnitResult, UnitTask, convert_unit, plan_units
from .destination import cleanup, committed_entries, create_atomically, open_existing, stored_bytes, trim
from .entry_names import NAME_RULES
from .exceptions import CorpusError, PescadorError
from .index_commit import commit_entries, interrupts_deferred
from .key_codecs import AUTO, CODECS
from .key_specs import check_entry, check_options, choose_codecs, new_key_specs
from .resume import match_stored
from .source_discovery import discover
from .source_headers import scan
from .sources import SourceEntry, SourceError
from .unit_runners import run_dask, run_pool
from .writer_lock import StoreIOError, WriterLock

# ConversionReport: zarrmux/__init__.py exports it lazily from this module
__all__ = ["convert", "ConversionReport"]

_log = logging.getLogger("zarrmux")


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
    connect_timeout: float | None = None,
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
        (grouped into entries by ``group``; see :mod:`zarrmux.source_discovery`).
    dest : str or os.PathLike
        The corpus: a local directory or an fsspec URL.  Created if absent;
        entries are appended to an existing corpus.
    keys : sequence of str or comma-separated str, optional
        Convert only these keys (default: all keys of the first entry, or of
        the existing corpus).
    chunk_rows, shard_rows : int > 0, optional
        Rows per inner chunk (all keys) and per shard; ``shard_rows`` must be a
        multiple of ``chunk_rows``.  Defaults: :func:`zarrmux.chunking.default_chunk_rows`
        (~32 KiB chunks) and :func:`~zarrmux.chunking.default_shard_rows` (~32 MiB shards).
        Only for a new corpus.
    codec : {'auto', 'lz4', 'zstd', 'none'}
        ``'auto'`` (default): chosen per key when the corpus is created.
        blosc-lz4 (level ``level``, byte shuffle) is measured on a sample of
        the key (at most 1 MiB, from the starts of the first 4 entries:
        :data:`zarrmux.key_specs.SAMPLE_ENTRIES`, :data:`~zarrmux.key_specs.SAMPLE_BLOCK_BYTES`);
        a key it shrinks by less than :data:`zarrmux.key_codecs.AUTO_MIN_SAVING` (25 %: compressed / raw
        > 0.75), or by less than :data:`~zarrmux.key_codecs.AUTO_MIN_CORPUS_SAVING` (2 %) of the
        corpus's bytes, is stored uncompressed, any other with lz4.  The choice and
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
    connect_timeout : float > 0, optional
        Seconds to reach a scheduler address before failing
        (default: :data:`zarrmux.distributed.DEFAULT_CONNECT_TIMEOUT`, 10).
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
        How entry names are derived from file names (:mod:`zarrmux.entry_names`):
        ``'strict'`` (default) refuses names with odd characters and
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
    if codec != AUTO and codec not in CODECS:
        raise ValueError(f"codec={codec!r} is not one of {(AUTO, *CODECS)}")
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
                    workers=workers, scheduler=scheduler, connect_timeout=connect_timeout, overwrite=overwrite, on_error=on_error, progress=progress,
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
        raise ConversionInterrupted(dest, report.entries, report.planned, committed_entries(dest)) from exc


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
    connect_timeout: float | None,
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

    root, partial = open_existing(dest)
    meta = layout.read_meta(root) if root is not None else None
    if meta is not None:
        check_options(meta, dest, keys=keys, shard_rows=shard_rows, codec=codec, chunk_rows=chunk_rows)
        specs, shard = meta.keys, meta.shard_rows
        ref = f"corpus {dest}"
    else:
        specs, shard, ref = {}, 0, ""

    valid: list[SourceEntry] = []
    for e in entries:
        try:
            if not specs:
                specs, shard = new_key_specs([e], chunk_rows, shard_rows)
                ref = f"the first entry {e.name!r} ({e.where})"
            check_entry(e, specs, ref)
        except SourceError as err:
            bad(err)
            continue
        valid.append(e)

    # ---- resume / append / overwrite
    todo: list[SourceEntry] = valid
    updates_for: dict[str, int] = {}
    if root is not None and meta is not None and meta.n_entries:
        try:
            index = layout.read_index(root, meta.n_entries)
        except Exception as exc:  # noqa: BLE001 - a corrupt index chunk raises many types
            raise CorpusError(
                f"the index of {dest} cannot be read ({type(exc).__name__}: {exc}); run zarrmux verify {dest}"
            ) from None
        resume = match_stored(valid, index, dest, overwrite=overwrite, bad=bad)
        todo, updates_for = resume.todo, resume.updates_for
        report.skipped += resume.skipped
    report.errors = [str(e) for e in errors]
    report.planned = len(todo)

    created = False
    if todo:
        if root is None:
            specs = choose_codecs(specs, todo, codec, level)
            report.lz4_ratios = {k: s.lz4_ratio for k, s in specs.items() if s.lz4_ratio is not None}
            root = create_atomically(dest, specs, shard_rows=shard, codec=codec, level=level, partial=partial)
            created = True
        meta = layout.read_meta(root)
        trim(root, meta)  # garbage of an interrupted run
    if root is None or meta is None:
        report.seconds = time.perf_counter() - t0
        report.total_entries = meta.n_entries if meta else 0
        return report
    report.codecs = {k: meta.key_codec(k) for k in meta.keys}

    stored_before = stored_bytes(root, list(meta.keys))
    plan = plan_units(todo, meta.rows_allocated, meta.shard_rows, unit_rows=unit_rows)
    tasks = [UnitTask(i, dest, s, e, meta.shard_rows, tuple(items), on_error) for i, (s, e, items) in enumerate(plan)]
    report.units = len(tasks)
    if tasks:
        for k, spec in meta.keys.items():
            layout.array_at(root, k).resize((tasks[-1].end, *spec.trailing_shape))

    bar = Progress(progress, len(todo), sum(e.nbytes for e in todo))
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
        with interrupts_deferred():  # the commit and its record here, both or neither
            commit_entries(root, new, rows_allocated=tasks[ready[-1].index].end, updates=upd)
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
            results: Iterator[UnitResult] = run_dask(tasks, scheduler, workers, connect_timeout)
        elif not in_process:
            results = run_pool(tasks, min(workers, len(tasks)), lock)
        else:  # in this process, one unit after another, progress per entry
            results = (convert_unit(t, on_entry=lambda e: bar.advance(1, e.nbytes)) for t in tasks)
        for res in results:
            finished[res.index] = res
            commit_ready()
        commit_ready(force=True)
    except BaseException:
        try:  # keep the units that did finish, then drop everything uncommitted
            commit_ready(force=True)
        except Exception as exc:  # noqa: BLE001 - the original error matters more
            _log.warning("while stopping, committing the finished entries failed too: %s: %s", type(exc).__name__, exc)
        cleanup(dest, root, created)
        raise
    finally:
        bar.close()
    meta = layout.read_meta(root)
    report.total_entries = meta.n_entries
    report.bytes_written = max(0, stored_bytes(root, list(meta.keys)) - stored_before)
    report.seconds = time.perf_counter() - t0
    return report
