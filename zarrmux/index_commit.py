"""Committing entries: steps 3 and 4 of the commit protocol of :mod:`zarrmux.layout`.

1. Data arrays are resized to cover the planned region (metadata write).
2. A unit's rows are written (whole shards where possible).
3. The unit's entries are written to ``index/*`` rows ``[n, n + k)``.
4. The root attributes are rewritten with ``n_entries = n + k``: the commit.

Steps 1 and 2 are the converter's (:mod:`zarrmux.conversion`,
:mod:`zarrmux.convert_units`); :func:`commit_entries` does 3 and 4.  Each
metadata document is replaced atomically by the store, so a writer killed
at any moment leaves every entry either committed or absent.

Replacing existing index rows (``overwrite``) touches several objects, so it
is journalled in the root attributes (``extra[UPDATES_KEY]``) before the rows
are rewritten; :func:`zarrmux.layout.read_index` applies a journal a killed
writer left, and the next commit replays it.

A commit and the writer's record of it must not be split by Ctrl-C, or the
writer would report fewer entries than the store holds and commit them a
second time while cleaning up: :func:`interrupts_deferred` holds a
``SIGINT`` that arrives meanwhile until the block is done.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict

import numpy as np
import zarr

from .layout import (
    INDEX_FIELDS,
    INDEX_GROUP,
    UPDATES_KEY,
    CorpusMeta,
    EntryRecord,
    array_at,
    group_at,
    read_meta,
    write_meta,
)

__all__ = ["commit_entries", "interrupts_deferred"]


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Run the block whole: a ``SIGINT`` that arrives meanwhile is raised again when it ends.

    Only in the main thread (the only one Python delivers signals to), and
    only while the ``SIGINT`` handler is one Python installed.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    held: list[int] = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
        if held:
            signal.raise_signal(signal.SIGINT)  # the handler from before runs now (KeyboardInterrupt)


def _write_index_rows(index: zarr.Group, rows: Mapping[int, EntryRecord]) -> None:
    """Write ``{position: record}`` into the ``index/*`` arrays (contiguous runs in one call)."""
    if not rows:
        return
    positions = sorted(rows)
    runs: list[list[int]] = [[positions[0]]]
    for p in positions[1:]:
        if p == runs[-1][-1] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    for fname in INDEX_FIELDS:
        arr = array_at(index, fname)
        if arr.shape[0] < positions[-1] + 1:
            arr.resize((positions[-1] + 1,))
        for run in runs:
            values = [getattr(rows[p], fname) for p in run]
            arr[run[0] : run[-1] + 1] = np.asarray(
                values, dtype=INDEX_FIELDS[fname] if INDEX_FIELDS[fname] is not str else object
            )


def commit_entries(
    root: zarr.Group,
    records: Sequence[EntryRecord],
    *,
    rows_allocated: int,
    updates: Mapping[int, EntryRecord] | None = None,
) -> CorpusMeta:
    """Append ``records`` to the index and commit them (steps 3 and 4 of the protocol).

    The data of every record must already be written.  Returns the new metadata.

    ``updates`` (``{position: record}``, positions < ``n_entries``) replace
    existing index rows (``overwrite``).  A row update touches several
    objects, so it is journalled: the root attributes commit the appended
    records together with ``extra["index_updates"]``; the index rows are then
    rewritten and the journal cleared.  :func:`zarrmux.layout.read_index` applies a journal
    left by a killed writer, and the next commit replays it.
    """
    meta = read_meta(root)
    n, k = meta.n_entries, len(records)
    index = group_at(root, INDEX_GROUP)
    pending = {int(p): EntryRecord(**r) for p, r in meta.extra.get(UPDATES_KEY, {}).items()}
    if pending:  # replay a journal left by a killed writer
        _write_index_rows(index, pending)
    _write_index_rows(index, {n + i: r for i, r in enumerate(records)})
    meta.n_entries = n + k
    meta.rows_allocated = max(meta.rows_allocated, int(rows_allocated))
    if updates:
        for p in updates:
            if not 0 <= int(p) < n:
                raise ValueError(f"index update position {p} is not a committed entry (n_entries={n})")
        meta.extra[UPDATES_KEY] = {str(int(p)): asdict(r) for p, r in updates.items()}
        write_meta(root, meta)  # the commit point
        _write_index_rows(index, {int(p): r for p, r in updates.items()})
    if UPDATES_KEY in meta.extra:
        del meta.extra[UPDATES_KEY]
        write_meta(root, meta)
    elif k or not updates:
        write_meta(root, meta)
    return meta
