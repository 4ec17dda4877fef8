"""Reporting a failed read: a reader's :class:`~zarrmux.chunk_fault.ChunkFault` as a :class:`~zarrmux.exceptions.DataError`.

A reader knows the array and the chunks or object at fault; the user needs
the corpus, the entries whose windows touch those chunks, and the key.
:func:`fault_error` finds them from the corpus's entry tables
(:class:`zarrmux.entry_tables.EntryTables`) and the batch being read.  It runs
only when a read failed, so it may take its time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .array_reader import ArrayReader
from .chunk_fault import ChunkFault
from .exceptions import DataError

__all__ = ["fault_error"]


def fault_error(
    fault: ChunkFault,
    path: Any,
    names: Sequence[str],
    readers: Sequence[ArrayReader],
    rid: dict[str, np.ndarray],
    off: dict[str, np.ndarray],
    sel: Sequence[str],
    ent: np.ndarray,
    st: np.ndarray,
    n: int,
) -> DataError:
    """The error of ``fault`` met reading windows ``[st[b], st[b] + n)`` of entries ``ent`` (keys ``sel``) of corpus ``path``.

    ``names``, ``readers``, ``rid`` and ``off`` are the corpus's entry tables.
    A missing object says "missing data", anything else "corrupt data".
    """
    reader: ArrayReader | None = fault.reader
    assert reader is not None
    key = next((k for k in sel if reader.uid in {readers[j].uid for j in set(rid[k].tolist())}), reader.label)
    hit: list[str] = []
    if key in rid:
        rids = rid[key][ent]
        g = off[key][ent] + st
        cr = reader.chunk_rows
        for b in range(len(ent)):
            if readers[int(rids[b])] is not reader:
                continue
            lo, hi = int(g[b]) // cr, (int(g[b]) + n - 1) // cr
            if any(lo <= c <= hi for c in fault.chunks):
                nm = names[int(ent[b])]
                if nm not in hit:
                    hit.append(nm)
    who = f"entry {hit[0]!r}" if len(hit) == 1 else (f"entries {hit}" if hit else "entry <unknown>")
    if fault.missing:
        return DataError(f"missing data in corpus {path!r}: {who}, key {key!r}, object {fault.where}: {fault.message}")
    return DataError(f"corrupt data in corpus {path!r}: {who}, key {key!r}, chunk {fault.where}: {fault.message}")
