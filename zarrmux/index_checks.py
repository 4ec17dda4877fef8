"""What is checked when a zarrmux corpus opens: its entry index, and which keys must be complete.

* :func:`check_index`: the entry index, vectorised (counts, no empty names,
  no negative starts or rows, missing index objects told apart from
  zeros, no overlapping entries); a :class:`~zarrmux.exceptions.CorpusError`
  names the entries and the index object.
* :func:`written_whole` and :func:`required_rows`: which keys the converter
  wrote whole (there a missing chunk is an error, not the fill value) and,
  per shard, the rows entries occupy (what a shard must hold).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import layout
from . import shard_format as fmt
from .array_reader import ArrayReader
from .byte_requests import ByteRequest
from .exceptions import CorpusError

__all__ = ["check_index", "index_object", "absent", "written_whole", "required_rows", "COMPLETE_FLAG"]


def index_object(root: Any, fname: str, position: int) -> str:
    """The store key of the ``index/<fname>`` chunk holding entry ``position`` (zarr v3 default keys,
    as :func:`zarrmux.layout.create_corpus` makes them)."""
    prefix = f"{root.path}/" if getattr(root, "path", "") else ""
    return f"{prefix}{layout.INDEX_GROUP}/{fname}/c/{position // layout.INDEX_CHUNK}"

def absent(io: Any, keys: Sequence[str]) -> list[str]:
    """Those of the store ``keys`` that do not exist (one round of reads through the byte reader)."""
    got = io.read_many([ByteRequest(k, "range", 0, 1) for k in keys])
    return [k for k, raw in zip(keys, got) if raw is None]

def check_index(
    root: Any, io: Any, what: str, meta: layout.CorpusMeta, names: list[str], starts: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Check the entry index of a zarrmux corpus on open (vectorised); return its non-empty row spans, sorted.

    The index arrays hold ``n_entries`` values each; no entry has a
    negative start or row count; no entry is named ``""`` (a missing
    ``index/name`` chunk reads as empty names); an ``index/rows`` chunk
    that reads as all zeros exists (a missing one reads so); and no two
    entries share a row (a missing ``index/start`` chunk reads as zeros,
    so its entries would all start at row 0).  Raises
    :class:`CorpusError` naming the entries and, when one is missing,
    the index object.  Returns ``(starts, ends)`` of the entries with
    rows, in row order.
    """
    n = meta.n_entries
    if not len(names) == len(starts) == len(rows) == n:
        raise CorpusError(
            f"{what}: the entry index holds {len(names)} names, {len(starts)} starts and {len(rows)} row counts "
            f"for {n} committed entries: the index is damaged"
        )
    if not n:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if "" in names:
        i = names.index("")
        obj = index_object(root, "name", i)
        note = " (that object is missing: deleted, or answered 404)" if absent(io, [obj]) else ""
        raise CorpusError(f"{what}: the entry at index position {i} has no name; index object {obj!r}{note}: the index is damaged")
    bad = (starts < 0) | (rows < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise CorpusError(f"{what}: entry {names[i]!r} has start {int(starts[i])} and {int(rows[i])} rows: the index is damaged")
    blocks = range(0, n, layout.INDEX_CHUNK)
    zero = [i for i in blocks if not rows[i : i + layout.INDEX_CHUNK].any()]
    if zero:  # rows all 0 there: legitimate only if the object exists
        gone = absent(io, [index_object(root, "rows", i) for i in zero])
        if gone:
            raise CorpusError(
                f"{what}: index object {gone[0]!r} is missing (deleted, or answered 404): the row counts of its "
                f"entries (from {names[zero[0]]!r}) would read as 0"
            )
    keep = np.flatnonzero(rows > 0)
    order = keep[np.argsort(starts[keep], kind="stable")]
    s, e = starts[order], starts[order] + rows[order]
    overlap = s[1:] < e[:-1]
    if overlap.any():
        j = int(np.argmax(overlap))
        a, b = int(order[j]), int(order[j + 1])
        objs = sorted({index_object(root, "start", a), index_object(root, "start", b)})
        gone = absent(io, objs)
        why = f"index object {gone[0]!r} is missing (deleted, or answered 404), so its starts read as 0" if gone else "the index is damaged"
        raise CorpusError(
            f"{what}: entries {names[a]!r} (rows {int(starts[a])}:{int(starts[a] + rows[a])}) and {names[b]!r} "
            f"(rows {int(starts[b])}:{int(starts[b] + rows[b])}) overlap: {why}"
        )
    return s, e


#: ``CorpusMeta.extra`` flag a writer may record: ``True``, every inner chunk of entry rows is stored
#: (as :func:`zarrmux.convert` writes); ``False``, absent chunks are the fill value.  Without it,
#: :func:`written_whole` decides from the key's metadata.
COMPLETE_FLAG = "chunks_complete"


def written_whole(meta: layout.CorpusMeta, key: str, reader: ArrayReader) -> bool:
    """Whether every inner chunk holding entry rows of ``key`` is stored, so an absent one is an error.

    True for a key :func:`zarrmux.convert` wrote: its ``KeySpec`` records its
    codec (the converter records one per key, since before that it always
    wrote whole shards itself), and its array is one the converter's shard
    encoder writes (:func:`zarrmux.shard_format.shard_encoder`; zarr-python,
    which writes the others, leaves all-fill chunks out).  False for fixtures
    of :func:`zarrmux.testing.write_corpus` (no codec recorded: written through
    zarr-python) and for corpora whose metadata records no per-key codec: there a
    missing chunk reads as the fill value, as in any Zarr array.  An explicit
    ``meta.extra[COMPLETE_FLAG]`` overrides the rule.
    """
    if reader.mode != "shard":
        return False
    flag = meta.extra.get(COMPLETE_FLAG)
    if isinstance(flag, bool):
        return flag
    spec = meta.keys.get(key)
    return spec is not None and spec.codec is not None and fmt.shard_encoder(reader.array, reader.trailing) is not None


def required_rows(starts: np.ndarray, ends: np.ndarray, n_rows: int, shard_rows: int) -> np.ndarray:
    """Per shard, the rows from its first row that entries occupy (``starts``/``ends``: disjoint, sorted spans).

    The last entry starting before a shard's end ends furthest into it
    (the spans are disjoint and sorted, so their ends are sorted too).
    """
    n_shards = -(-int(n_rows) // int(shard_rows))
    first = np.arange(n_shards, dtype=np.int64) * shard_rows
    if not len(starts):
        return np.zeros(n_shards, dtype=np.int64)
    j = np.searchsorted(starts, first + shard_rows, side="left") - 1
    last = np.where(j >= 0, ends[np.maximum(j, 0)], 0)
    return np.clip(last - first, 0, shard_rows)
