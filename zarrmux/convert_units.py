"""One unit of conversion work, as a worker process runs it: :func:`convert_unit`.

:func:`plan_units` cuts the entries to convert into units, each a run of
whole shards of the destination (so no two workers write one shard object);
:func:`convert_unit` reads a unit's sources block by block and writes its
shards (:class:`_ShardWriter` buffers one shard per key), hashing each
entry's values as it goes.  The coordinator (:mod:`zarrmux.conversion`)
commits what units report, in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import zarr

from . import layout
from . import shard_format as fmt
from .byte_order import store_dtype
from .chunking import shard_ceil
from .entry_checksum import EntryHasher
from .member_reader import MemberReader, open_reader
from .sources import SourceEntry, SourceError

__all__ = ["UnitTask", "UnitResult", "plan_units", "convert_unit", "READ_BLOCK_BYTES"]

#: bytes read per ``readinto`` call (bounds the temporary of deflated members)
READ_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class UnitTask:
    """One unit of work: consecutive entries written from shard-aligned ``start``."""

    index: int
    dest: str
    start: int
    end: int
    shard_rows: int
    entries: tuple[tuple[SourceEntry, int], ...]  #: (entry, start row)
    on_error: str = "raise"


@dataclass
class UnitResult:
    index: int
    records: list[layout.EntryRecord]
    errors: list[str]
    bytes_read: int
    seconds: float


# ---------------------------------------------------------------- plan


def plan_units(
    entries: Sequence[SourceEntry], start_row: int, shard_rows: int, *, unit_rows: int | None = None
) -> list[tuple[int, int, list[tuple[SourceEntry, int]]]]:
    """Greedy, prefix-stable plan: ``[(start, end, [(entry, entry_start), ...]), ...]``.

    A unit closes once it holds ``unit_rows`` (default ``2 * shard_rows``)
    rows; the next one starts at the following shard boundary.
    """
    target = unit_rows or 2 * shard_rows
    units: list[tuple[int, int, list[tuple[SourceEntry, int]]]] = []
    ustart = shard_ceil(start_row, shard_rows)
    pos = ustart
    cur: list[tuple[SourceEntry, int]] = []
    for e in entries:
        cur.append((e, pos))
        pos += e.rows
        if pos - ustart >= target:
            units.append((ustart, pos, cur))
            ustart = pos = shard_ceil(pos, shard_rows)
            cur = []
    if cur:
        units.append((ustart, pos, cur))
    return units


# ---------------------------------------------------------------- worker side


class _ShardWriter:
    """Buffers one shard of one key and writes it as one object (one zarr write, or one store put)."""

    def __init__(self, arr: zarr.Array, shard_rows: int, dtype: np.dtype, trailing: tuple[int, ...]) -> None:
        self.arr = arr
        self.fast = fmt.shard_encoder(arr, trailing)
        self.shard_rows = shard_rows
        self.dtype = dtype
        self.trailing = trailing
        self.row_bytes = int(dtype.itemsize * int(np.prod(trailing, dtype=np.int64)))
        self.block_rows = max(1, READ_BLOCK_BYTES // max(1, self.row_bytes))
        self.buf: np.ndarray | None = None
        self.buf_start = -1
        self.hi = 0  # rows of the buffer holding data

    def _at(self, row: int) -> int:
        shard = row - row % self.shard_rows
        if shard != self.buf_start:
            self.flush()
            if self.buf is None:  # np.empty: pages are touched only when filled
                self.buf = np.empty((self.shard_rows, *self.trailing), dtype=self.dtype)
            self.buf_start, self.hi = shard, 0
        return row - shard

    def fill(self, reader: MemberReader, row: int, n: int, hasher: EntryHasher) -> None:
        """Read ``n`` rows from ``reader`` into rows ``[row, row + n)``, hashing them."""
        while n > 0:
            off = self._at(row)
            take = min(n, self.shard_rows - off, self.block_rows)
            assert self.buf is not None
            view = self.buf[off : off + take]
            if off > self.hi:  # a hole (skipped entry): keep fill-value zeros there
                self.buf[self.hi : off] = 0
            reader.read_values(view)  # the source's values, little-endian
            hasher.update(view)
            self.hi = max(self.hi, off + take)
            row += take
            n -= take

    def clear(self, row: int, n: int) -> None:
        """Zero rows ``[row, row + n)`` still in the buffer (an entry that failed)."""
        if self.buf is None:
            return
        lo = max(row, self.buf_start) - self.buf_start
        hi = min(row + n, self.buf_start + self.hi) - self.buf_start
        if hi > lo:
            self.buf[lo:hi] = 0

    def flush(self) -> None:
        if self.buf is not None and self.hi:
            if self.fast is None:
                self.arr[self.buf_start : self.buf_start + self.hi] = self.buf[: self.hi]
            else:
                from zarr.core.buffer import default_buffer_prototype
                from zarr.core.sync import sync

                chunk_rows, blosc, chunk_crc = self.fast
                data = fmt.encode_shard(self.buf[: self.hi], chunk_rows, self.shard_rows, blosc, chunk_crc)
                key = self.arr.metadata.encode_chunk_key((self.buf_start // self.shard_rows,) + (0,) * len(self.trailing))
                sync((self.arr.store_path / key).set(default_buffer_prototype().buffer.from_bytes(data)))
        self.hi = 0


def convert_unit(task: UnitTask, on_entry: Callable[[SourceEntry], None] | None = None) -> UnitResult:
    """Convert one unit (runs in a worker).  Returns the unit's index records, uncommitted."""
    t0 = time.perf_counter()
    root = zarr.open_group(task.dest, mode="r+")
    meta = layout.read_meta(root)
    writers = {
        k: _ShardWriter(layout.array_at(root, k), task.shard_rows, store_dtype(spec.dtype), tuple(spec.trailing_shape))
        for k, spec in meta.keys.items()
    }
    records: list[layout.EntryRecord] = []
    errors: list[str] = []
    nread = 0
    for entry, start in task.entries:
        try:
            h = EntryHasher()
            for key in sorted(entry.members):
                m = entry.members[key]
                h.begin_key(key, np.dtype(m.store_dtype), m.shape)
                with open_reader(m) as r:
                    writers[key].fill(r, start, m.rows, h)
                    r.finish()
        except SourceError as err:
            if task.on_error == "raise":
                raise
            errors.append(str(err))
            for w in writers.values():
                w.clear(start, entry.rows)
            continue
        nread += entry.nbytes
        records.append(layout.EntryRecord(entry.name, start, entry.rows, entry.source, h.hexdigest(), entry.fingerprint))
        if on_entry is not None:
            on_entry(entry)
    for w in writers.values():
        w.flush()
    return UnitResult(task.index, records, errors, nread, time.perf_counter() - t0)
