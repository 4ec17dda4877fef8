"""Exact windows of uncompressed keys, copied straight from memory-mapped shards.

An uncompressed key (inner codecs ``bytes`` [+ ``crc32c``], what ``zarrmux
convert --codec auto`` picks for float features) stores each inner chunk as
its raw rows, back to back in chunk order (:func:`zarrmux.shard_format.is_contiguous`).
So row ``r`` of shard ``s`` lies at a fixed byte offset of the shard file,
and a window of ``n`` rows is one contiguous run of bytes (two when it
crosses an inner chunk boundary, since each chunk ends with its crc32c).

:class:`ExactWindows` serves a whole batch of windows of one key with one
vectorised computation of every row's address in the shard files, mapped
read-only, and one numpy gather of those rows into the batch array: no
decode, no cache, no per-window or per-chunk Python.  A shard whose chunks
were all found present and sound when it was mapped is read without any
further check; windows in other shards check the chunks they need first.  (The mapped files are
seen through one array spanning their addresses; only rows of verified
chunks inside their file's data are ever indexed.)  A shard file is mapped
with ``MAP_POPULATE`` the first time a window needs it: the kernel reads it
in one sequential pass outside the GIL, so the disk reads of a cold corpus
overlap across reading threads, and no page fault is taken per 4 KiB page.

What is checked, and when
-------------------------
* When a shard is first mapped: its index (crc32c), that every present inner
  chunk sits where the contiguous layout puts it, and that the file holds
  them all (a truncated shard raises).  For a corpus the converter wrote
  (:meth:`~zarrmux.array_reader.ArrayReader.require`), also that the shard
  file exists, that its index lists every chunk its entries' rows need, and
  that the file is exactly that long
  (:meth:`~zarrmux.array_reader.ArrayReader.check_shard`): a deleted or
  misplaced shard raises instead of reading as the fill value.
* When an inner chunk is first read by this process: its crc32c, over the
  whole chunk (:meth:`~zarrmux.array_reader.ArrayReader.check_crc`, the rule
  every reader follows).  A mismatch raises :class:`ChunkFault`, which the
  corpus reports as a :class:`~zarrmux.exceptions.DataError` naming entry,
  key and chunk.  A checked chunk is remembered in the reader's bit set (one
  bit per inner chunk) and later windows of it are copied without a check.
* A chunk absent from its shard's index, or a shard that is not laid out
  contiguously (written by another tool), sends the batch through the
  general chunk path of :mod:`zarrmux.chunk_loader` (which reads an absent
  chunk as the fill value, or raises for a corpus the converter wrote).

Memory: the reader's bit set (``n_chunks / 8`` bytes), two int64 per shard,
and at most :data:`MAX_MAPS` mapped files per key.  Mapped pages are the page cache's: they count in the
process's resident size as shared file pages, not as its own (anonymous)
memory, and the kernel reclaims them like any cached file.
"""

from __future__ import annotations

import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _forksafe
from . import shard_format as fmt
from .array_reader import ArrayReader
from .local_io import LocalIO

__all__ = ["ExactWindows", "MAX_MAPS", "supports"]

#: mapped shard files kept per key (32 MiB each by default: 128 GiB of address space, not memory)
MAX_MAPS = 4096
#: shard files a batch maps at once (their disk reads overlap)
MAP_THREADS = 4



def supports(reader: ArrayReader) -> bool:
    """Whether ``reader``'s array can be read as exact windows: uncompressed, sharded, in local files."""
    return reader.mode == "shard" and reader.uncompressed and isinstance(reader.io, LocalIO)


#: the place of a shard that cannot be read straight away (not mapped here; or, in ``_Mapped.ready_at``,
#: not every chunk of it present and checked)
UNREADY = np.iinfo(np.int64).min


class _Mapped:
    """One generation of mapped shards: replaced as a whole, never emptied, so readers in flight keep theirs.

    ``rows`` sees the address range of every mapped shard as one array with
    one element per possible row start, so a gather copies each row with one
    memcpy.  Row ``r`` of the array, in shard ``s``, is
    ``rows[at_of[s] + r * row_bytes + (r // chunk_rows) * crc_bytes]``
    (each inner chunk is its rows followed by its crc32c).  ``at_of[s]``
    is :data:`UNREADY` for a shard not mapped; ``ready_at`` is ``at_of`` for the
    shards whose chunks are all present and checked, and :data:`UNREADY` for
    the others, whose windows take the slow way (chunk by chunk).  Tables are
    per shard: their size is the corpus's divided by about 32 MiB.
    """

    __slots__ = ("rows", "lo", "at_of", "ready_at", "arrays", "present")

    def __init__(self, n_shards: int) -> None:
        self.rows: np.ndarray | None = None
        self.lo = 0  #: address of ``rows[0]``
        self.at_of = np.full(n_shards, UNREADY, dtype=np.int64)
        self.ready_at = np.full(n_shards, UNREADY, dtype=np.int64)
        self.arrays: dict[int, np.ndarray] = {}  #: shard -> mapped file (keeps the map alive)
        self.present: dict[int, np.ndarray] = {}  #: shard -> inner chunks present in its index

    def with_shard(self, s: int, arr: np.ndarray | None, present: np.ndarray, at: int, ready: bool, row_bytes: int) -> "_Mapped":
        """A new generation with shard ``s`` added (``at``: its ``at_of`` were ``rows`` to start at
        address 0); this one is left as it was."""
        new = _Mapped.__new__(_Mapped)
        new.arrays = dict(self.arrays)
        new.present = dict(self.present)
        new.present[s] = present
        new.at_of, new.ready_at = self.at_of.copy(), self.ready_at.copy()
        new.rows, new.lo = self.rows, self.lo
        if arr is None:
            return new
        new.arrays[s] = arr
        lo = min(a.ctypes.data for a in new.arrays.values())
        hi = max(a.ctypes.data + len(a) for a in new.arrays.values())
        span = (ctypes.c_char * (hi - lo)).from_address(lo)
        new.rows = np.ndarray((hi - lo - row_bytes + 1,), dtype=np.dtype((np.void, row_bytes)), buffer=memoryview(span), strides=(1,))
        new.lo = lo
        if self.rows is not None and lo != self.lo:
            for table in (new.at_of, new.ready_at):
                table[table != UNREADY] += self.lo - lo
        new.at_of[s] = at - lo
        if ready:
            new.ready_at[s] = at - lo
        return new


class ExactWindows:
    """Reads windows of one uncompressed sharded key (see the module docstring).

    Parameters
    ----------
    reader : ArrayReader
        The key's array; :func:`supports` must hold.
    """

    def __init__(self, reader: ArrayReader) -> None:
        if not supports(reader):
            raise ValueError(f"array {reader.label!r} cannot be read as exact windows")
        assert reader.codecs is not None
        self.reader = reader
        self.io: LocalIO = reader.io
        self.rows_per_chunk = reader.chunk_rows
        self.chunks_per_shard = reader.chunks_per_shard
        self.row_bytes = reader.row_bytes
        self.crc = reader.codecs.crc
        self.stride = reader.stored_stride
        self.first = reader.data_start
        self.n_shards = max(1, -(-reader.shape[0] // reader.shard_rows))
        self._mapped = _Mapped(self.n_shards)
        #: bytes between the rows of two inner chunks (their crc32c)
        self.crc_bytes = self.stride - self.rows_per_chunk * self.row_bytes
        self._lock = threading.Lock()
        _forksafe.register(self)
        #: False once a shard turned out not to be contiguous: the key goes through the chunk path
        self.enabled = True
        self._arange = np.arange(0, dtype=np.int64)
        #: bytes of the shard files mapped (each read once, with MAP_POPULATE), for statistics
        self.bytes_mapped = 0

    def _steps(self, n: int) -> np.ndarray:
        steps = self._arange
        if len(steps) != n:
            steps = self._arange = np.arange(n, dtype=np.int64)
        return steps

    # ------------------------------------------------------------------ mapping
    def _map(self, shards: np.ndarray) -> None:
        """Map the given shards (checking each index and layout, and the crc32c of their chunks) into the current generation.

        Several shards are mapped concurrently: mapping reads a cold file
        outside the GIL, so their disk reads overlap.
        """
        with self._lock:
            todo = [s for s in shards.tolist() if s not in self._mapped.present]
        if not todo:
            return
        if len(todo) > 1:
            with ThreadPoolExecutor(max_workers=min(MAP_THREADS, len(todo)), thread_name_prefix="zarrmux-map") as pool:
                loaded = list(pool.map(self._load, todo))
        else:
            loaded = [self._load(todo[0])]
        r = self.reader
        for s, got in zip(todo, loaded):
            if got is None:
                self.enabled = False
                return
            arr, present, good = got
            r.mark_verified_many(good)
            # ready: every chunk a window may need is present (a complete array stores every chunk its
            # entries' rows need, checked when the shard was mapped) and its crc32c passed
            first_chunk = s * self.chunks_per_shard
            own = present[: max(0, min(len(present), r.n_chunks - first_chunk))]  # chunks of the array's rows
            ids = first_chunk + np.flatnonzero(own)
            ready = arr is not None and (r.complete or bool(own.all())) and bool(r.verified_mask(ids).all())
            at = 0 if arr is None else arr.ctypes.data + self.first - first_chunk * self.stride
            with self._lock:
                mapped = self._mapped
                if s in mapped.present:  # another thread mapped it meanwhile: keep theirs (readers use it)
                    continue
                if len(mapped.arrays) >= MAX_MAPS:
                    mapped = _Mapped(self.n_shards)
                self._mapped = mapped.with_shard(s, arr, present, at, ready, self.row_bytes)
                if arr is not None:
                    self.bytes_mapped += len(arr)

    def _load(self, s: int) -> tuple[np.ndarray | None, np.ndarray, np.ndarray] | None:
        """Map shard ``s`` and check it: ``(mapped file or None if absent, chunks present, chunks whose crc32c
        passed)``; ``None`` if it is not laid out contiguously.  Every present chunk lies inside the file."""
        r = self.reader
        arr = self.io.map_file(r.object_key(s))
        if arr is None:
            if r.required_chunks(s):  # a complete array: entries' rows live there
                raise r.missing_shard(s)
            return None, np.zeros(self.chunks_per_shard, dtype=bool), np.zeros(0, dtype=np.int64)
        size = len(arr)
        raw = arr[max(0, size - r.index_nbytes) :] if r.index_at_end else arr[: r.index_nbytes]
        index = r.decode_index(raw.tobytes(), s)  # a short file: "too short for its index"
        r.check_shard(s, index, size)  # a complete array: the chunks its position needs, nothing more in the file
        if not fmt.is_contiguous(index, self.stride, self.first):
            return None
        present = index[:, 1] != fmt.EMPTY
        limit = size - r.index_nbytes if r.index_at_end else size
        if present.any():
            last = int(np.flatnonzero(present)[-1])
            end = self.first + (last + 1) * self.stride
            if end > limit:
                raise r.fault(
                    s * self.chunks_per_shard + last,
                    f"shard index entry (offset {end - self.stride}, nbytes {self.stride}) lies outside the "
                    f"shard's chunk data (bytes {self.first}:{limit}): the shard is truncated or its index is wrong",
                )
        return arr, present, self._check_shard(s, arr, present)

    # ------------------------------------------------------------------ checks
    def _check_shard(self, s: int, arr: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Check the crc32c of every present chunk of a freshly mapped shard (its bytes were just read).

        Returns the chunks that pass, to be marked; one that fails is left
        unmarked, so the first window that needs it raises the fault naming it
        (:meth:`_verify`), and the shard's other chunks stay readable.  Runs
        in the mapping threads.
        """
        r = self.reader
        first_chunk = s * self.chunks_per_shard
        own = present[: max(0, min(len(present), r.n_chunks - first_chunk))]  # chunks of the array's rows
        ids = first_chunk + np.flatnonzero(own & ~r.verified_mask(first_chunk + np.arange(len(own))))
        if not self.crc:
            good = ids
        elif len(ids) and int(ids[-1] - ids[0]) == len(ids) - 1 and fmt.blocks_intact(
            arr, self.first + int(ids[0] - first_chunk) * self.stride, len(ids), self.stride
        ):
            good = ids  # a run of chunks, all intact: checked in one sum (a fresh shard's usual case)
        else:
            stride, body = self.stride, self.stride - fmt.CRC_BYTES
            at = self.first + (ids - first_chunk) * stride
            stored = arr[(at + body)[:, None] + np.arange(fmt.CRC_BYTES)].view("<u4").ravel()
            computed = fmt.crc32c_many(arr, at.tolist(), body)
            good = ids[stored == computed]
        return good

    def _verify(self, chunks: np.ndarray) -> bool:
        """Map and check ``chunks`` (row chunk numbers) of shards not entirely ready; False if one is absent."""
        r = self.reader
        cps, stride = self.chunks_per_shard, self.stride
        self._map(np.unique(chunks // cps))
        if not self.enabled:
            return False
        chunks = chunks[~r.verified_mask(chunks)]
        for c in chunks.tolist():  # absent, or corrupt: its crc32c failed when the shard was mapped
            s, i = divmod(c, cps)
            mapped = self._mapped
            if s not in mapped.present:  # a new generation started meanwhile: map again
                self._map(np.array([s]))
                mapped = self._mapped
            present = mapped.present.get(s)
            arr = mapped.arrays.get(s)
            if present is None or arr is None or not present[i]:
                return False
            if self.crc:
                at = self.first + i * stride
                r.check_crc(arr[at : at + stride], c)  # a view of the mapped file: no copy
            else:
                r.mark_verified(c)  # present where the layout says: nothing more to check
        return True

    # ------------------------------------------------------------------ reading
    def read(self, starts: np.ndarray, n: int) -> np.ndarray | None:
        """Windows ``[starts[b], starts[b] + n)`` (array rows) as ``(len(starts), n, *trailing)``.

        Returns ``None`` when the batch must go through the chunk path
        (an absent chunk, or a shard not laid out contiguously).  Raises
        :class:`~zarrmux.array_reader.ChunkFault` for corrupt data.
        """
        r = self.reader
        rows = np.asarray(starts, dtype=np.int64)[:, None] + self._steps(n)
        shard = rows // r.shard_rows
        for _attempt in range(3):
            mapped = self._mapped  # holds this generation's mappings while we read
            at = mapped.ready_at[shard]
            if not np.count_nonzero(at == UNREADY):
                break
            # shards not mapped yet, or not all of whose chunks were checked: check what the batch needs
            if not self._verify(np.unique(rows[at == UNREADY] // self.rows_per_chunk)) or not self.enabled:
                return None
            mapped = self._mapped
            at = mapped.at_of[shard]
            if not np.count_nonzero(at == UNREADY):
                break
        else:
            return None  # generations kept changing under us: the chunk path reads the batch
        at += rows * self.row_bytes
        if self.crc_bytes:
            at += (rows // self.rows_per_chunk) * self.crc_bytes
        assert mapped.rows is not None
        out = mapped.rows[at].view(r.store_dtype).reshape(len(rows), n, *r.trailing)
        return out if out.dtype == r.dtype else out.astype(r.dtype)
