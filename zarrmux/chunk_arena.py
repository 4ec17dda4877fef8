"""Decoded chunks of one array in one block of memory, and windows gathered from it.

A :class:`ChunkArena` holds the decoded row chunks of one array (one key of a
zarrmux corpus) in ``n_slots`` fixed-size slots of a single preallocated
array, slots reused in ring order (first in, first out).  Which chunk sits in which slot
is kept in numpy tables, so serving a batch is vectorised end to end:

1. the chunks the batch's windows touch are looked up in the table at once;
2. the missing ones are fetched together (:func:`zarrmux.chunk_loader.fetch_stored`)
   and decoded straight into their slots, outside the GIL (blosc), so the
   sampler's reading threads decode in parallel;
3. every window row is then one row of the arena: one numpy fancy index
   copies the whole batch out.

The only per-chunk Python is the decode call of a miss; a hit costs nothing
per chunk.  A batch whose chunks are all decoded already is copied out with
no lock at all, and kept only if no slot was given to another chunk while it
was copied (a count of evictions, bumped before a slot is rewritten).  Any
other batch pins the slots it uses until its rows are copied, so threads can
share an arena: a slot is never reused under a reader, and a chunk being
decoded by one thread is waited for, not decoded twice.

Memory: the arena (``n_slots * chunk_nbytes``, decided by the corpus's
``cache_bytes``) plus two int32 per row chunk of the array for the tables.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from . import _forksafe
from .array_reader import ArrayReader
from .local_io import LocalIO
from .chunk_loader import fetch_stored

__all__ = ["ChunkArena", "slots_for"]


#: slots of an arena whatever the budget (a batch of 32 windows touches up to ~40 chunks of a key)
MIN_SLOTS = 128


#: shards whose index and mapping an arena of local shards keeps at hand (at most 16 KiB of index
#: each for 1,024 chunks per shard); beyond it the table starts again empty
MAX_SHARDS_HELD = 256


def slots_for(budget: int, reader: ArrayReader) -> int:
    """Slots for an arena of ``reader`` within ``budget`` bytes: at least :data:`MIN_SLOTS`, at most every chunk."""
    want = max(int(budget) // max(1, reader.chunk_nbytes), MIN_SLOTS)
    return max(1, min(want, reader.n_chunks))


class ChunkArena:
    """The decoded chunks of one array (see the module docstring).

    Parameters
    ----------
    reader : ArrayReader
        The array (any mode).
    n_slots : int > 0
        Chunks held.  A batch needing more chunks than this is refused.
    """

    def __init__(self, reader: ArrayReader, n_slots: int) -> None:
        self.reader = reader
        self.n_slots = int(n_slots)
        self.rows_per_chunk = reader.chunk_rows
        # np.empty: a slot's pages are touched when a chunk is first decoded into it
        self.memory = np.empty((self.n_slots, reader.chunk_nbytes), dtype=np.uint8)
        self._rows = self.memory.reshape(self.n_slots * reader.chunk_rows, reader.row_bytes)
        #: the same rows as single elements: a gather copies each with one memcpy (several times faster)
        self._row_items = self.memory.reshape(-1).view(np.dtype((np.void, reader.row_bytes)))
        self._slot_of = np.zeros(reader.n_chunks, dtype=np.int32)  #: chunk -> slot + 1 (0: not held)
        self._chunk_in = np.full(self.n_slots, -1, dtype=np.int64)  #: slot -> chunk (-1: free)
        self._pins = np.zeros(self.n_slots, dtype=np.int32)  #: slot -> batches reading it now
        self._ready = np.zeros(self.n_slots, dtype=bool)  #: slot holds its decoded chunk
        self._hand = 0  #: the next slot to reuse (slots are reused in ring order, skipping pinned ones)
        #: every chunk has its own slot (slot c holds chunk c, nothing is ever evicted): once a
        #: batch's chunks are loaded, reading it is one fancy index, with no claim at all
        self.resident = self.n_slots == reader.n_chunks
        #: chunk -> slot + 1 once its decoded rows are in the slot (0: not there, or not yet): a batch whose
        #: chunks are all there is copied out with no claim, then kept only if no slot was reused meanwhile
        self._ready_slot = np.zeros(reader.n_chunks, dtype=np.int32)
        self._evictions = 0  #: slots given to other chunks so far
        #: shard -> (its index, its mapped file) for local shards: looked up once per shard, not per batch
        self._shards: dict[int, tuple[np.ndarray, tuple[memoryview, int]]] = {}
        self._arange = np.arange(0, dtype=np.int64)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        _forksafe.register(self)
        #: chunk lookups of windows served without decoding, and chunks decoded
        self.hits = 0
        self.misses = 0

    # ------------------------------------------------------------------ slots
    def _claim(self, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, bool] | None:
        """Pin slots for the distinct ``chunks``: ``(slots, mine, need, pending)``.

        ``mine`` marks the ``need`` slots this call must fill; ``pending``
        says that some of the other slots were still being filled by another
        thread (the caller waits for them).  ``None`` when other threads hold
        too many slots right now: the caller reads its batch another way
        rather than wait (many threads reading a remote store at once must
        not queue behind each other's slots).
        """
        k = len(chunks)
        with self._changed:
            slots = self._slot_of[chunks] - 1
            held = slots >= 0
            need = k - int(np.count_nonzero(held))
            pending = False
            if need < k:
                ours = slots[held]
                self._pins[ours] += 1  # our hits first, so they are not taken for our misses
                pending = bool(k - need - np.count_nonzero(self._ready[ours]))
            mine = ~held
            if need:
                free = chunks[mine] if self.resident else self._victims(need)
                if free is None:
                    if need < k:
                        self._pins[ours] -= 1
                    return None
                old = self._chunk_in[free]
                gone = old[old >= 0]
                if len(gone):
                    self._slot_of[gone] = 0
                    self._ready_slot[gone] = 0
                    self._evictions += 1  # before the slots are written: readers copying out see it
                new = chunks[mine]
                self._chunk_in[free] = new
                self._slot_of[new] = free + 1
                self._ready[free] = False
                self._pins[free] += 1
                slots[mine] = free
                self.misses += need
        return slots, mine, need, pending

    def _victims(self, need: int) -> np.ndarray | None:
        """``need`` unpinned slots, the next ones in ring order (first in, first out); None if too few."""
        n = self.n_slots
        ahead = (self._hand + np.arange(min(n, 2 * need + 256))) % n  # pinned slots are few
        free = ahead[self._pins[ahead] == 0][:need]
        if len(free) < need:
            free = np.flatnonzero(self._pins == 0)[:need]
            if len(free) < need:
                return None
        self._hand = (int(free[-1]) + 1) % n
        return free

    def _release(self, slots: np.ndarray) -> None:
        with self._changed:
            self._pins[slots] -= 1
            self._changed.notify_all()

    def _fill(self, chunks: np.ndarray, slots: np.ndarray) -> None:
        """Fetch and decode ``chunks`` into ``slots`` (claimed by this call); on failure free them and re-raise."""
        r = self.reader
        try:
            if r.mode == "zarr":
                for c, s in zip(chunks.tolist(), slots.tolist()):
                    a = r.read_zarr_chunk(c)  # the last chunk may be short
                    self._rows[s * r.chunk_rows : s * r.chunk_rows + len(a)] = a.reshape(len(a), -1).view(np.uint8)
            elif r.mode == "shard" and isinstance(r.io, LocalIO):
                self._fill_mapped(chunks, slots)
            else:
                raws = fetch_stored([(r, c) for c in chunks.tolist()])
                self._decode(list(zip(chunks.tolist(), slots.tolist(), raws)))
        except BaseException:
            with self._changed:
                self._slot_of[chunks] = 0
                self._ready_slot[chunks] = 0
                self._chunk_in[slots] = -1
                self._ready[slots] = True  # waiters wake, find the chunk gone and load it themselves
                self._changed.notify_all()
            raise
        with self._changed:
            self._ready[slots] = True
            self._ready_slot[chunks] = slots + 1
            self._changed.notify_all()

    def _fill_mapped(self, chunks: np.ndarray, slots: np.ndarray) -> None:
        """:meth:`_fill` for shards in local files: each chunk decoded from its mapped shard, by address.

        The lean loop of the local compressed path: per chunk, its index
        entry, then its crc32c on first read and one decode call outside the
        GIL.  (Sharing a batch's decodes with a second thread measured slower
        on 2 cores, 19k against 25k windows/s on the lz4 corpus of
        ``tools/bench_sampler.py``: the threads queue for the GIL between
        decodes.  Reading threads of the sampler still decode in parallel.)
        """
        r = self.reader
        cps, nbytes = r.chunks_per_shard, r.chunk_nbytes
        chunk_list = chunks.tolist()
        memory, memory_at = self.memory, self.memory.ctypes.data
        shards = self._shards
        shard = -1
        index: np.ndarray = np.zeros((0, 2), dtype=np.uint64)
        mapped: tuple[memoryview, int] | None = None
        for c, slot in zip(chunk_list, slots.tolist()):  # in chunk order: a shard's chunks come together
            if c // cps != shard:
                shard = c // cps
                got = shards.get(shard)
                if got is None:
                    cached = r.cached_index(shard)
                    index = cached if cached is not None else r.load_index(shard)
                    mapped = r.io.mapping(r.object_key(shard))  # None: no such object (all its chunks absent?)
                    if mapped is not None:
                        if len(shards) >= MAX_SHARDS_HELD:
                            shards.clear()
                        shards[shard] = (index, mapped)
                else:
                    index, mapped = got
            if mapped is None:
                if r.chunk_range(index, c) is None:
                    memory[slot] = r.fill_chunk().reshape(-1).view(np.uint8)
                    continue
                raise r.fault(c, "shard object disappeared after its index was read")
            if not r.decode_mapped(c, index, mapped, memory[slot], memory_at + slot * nbytes):
                memory[slot] = r.fill_chunk().reshape(-1).view(np.uint8)

    def _decode(self, jobs: list[tuple[int, int, Any]]) -> None:
        r = self.reader
        for c, s, raw in jobs:
            if raw is None:
                self.memory[s] = r.fill_chunk().reshape(-1).view(np.uint8)
            else:
                r.decode_into(raw, c, self.memory[s])

    def _wait_ready(self, slots: np.ndarray, chunks: np.ndarray) -> bool:
        """Wait until other threads have filled ``slots``; ``False`` if one of them gave its chunk up."""
        with self._changed:
            while not self._ready[slots].all():
                self._changed.wait()
        return bool((self._chunk_in[slots] == chunks).all())  # pinned: the table cannot change under us

    # ------------------------------------------------------------------ reading
    def _steps(self, n: int) -> np.ndarray:
        steps = self._arange
        if len(steps) != n:
            steps = self._arange = np.arange(n, dtype=np.int64)
        return steps

    def read(self, starts: np.ndarray, n: int) -> np.ndarray | None:
        """Windows ``[starts[b], starts[b] + n)`` (array rows) as ``(len(starts), n, *trailing)``.

        ``None`` if the batch needs more than half the slots, or other threads
        hold too many of them now (the caller reads it another way).  Raises :class:`~zarrmux.array_reader.ChunkFault`
        for corrupt data.
        """
        r = self.reader
        cr = self.rows_per_chunk
        g = np.asarray(starts, dtype=np.int64)
        rows = g[:, None] + self._steps(n)
        chunk = rows // cr
        seen = self._evictions
        held = self._ready_slot[chunk]
        if not np.count_nonzero(held == 0):  # every chunk decoded in its slot: no claim needed
            if self.resident:
                out = self._row_items[rows]  # slot c holds chunk c: arena row = array row
            else:
                at = (held - 1) * cr
                at += rows - chunk * cr
                out = self._row_items[at]
            if self._evictions == seen:  # no slot was given to another chunk while we copied
                self.hits += len(rows) + int(np.count_nonzero(chunk[:, 0] != chunk[:, -1]))  # chunk lookups
                out = out.view(r.store_dtype).reshape(len(rows), n, *r.trailing)
                return out if out.dtype == r.dtype else out.astype(r.dtype)
        # a window of at most cr + 1 rows lies in its first and last chunk
        ends = np.concatenate((g, g + (n - 1))) // cr if n <= cr + 1 else chunk.flatten()  # a copy: sorted in place below
        ends.sort()
        chunks = ends[np.concatenate(((True,), ends[1:] != ends[:-1]))]  # np.unique, a few times cheaper here
        if 2 * len(chunks) > self.n_slots and not self.resident:
            return None
        while True:
            claimed = self._claim(chunks)
            if claimed is None:
                return None
            slots, mine, need, pending = claimed
            self.hits += len(rows) + int(np.count_nonzero(chunk[:, 0] != chunk[:, -1])) - need
            try:
                if need:
                    self._fill(chunks[mine], slots[mine])
                # Slots filled by this call, or ready when pinned, cannot change under the pin; a slot
                # another thread was filling may have been given up by that thread if its load failed.
                if not pending or self._wait_ready(slots, chunks):
                    at = (self._slot_of[chunk] - 1) * cr + (rows - chunk * cr)
                    out = self._row_items[at]
                    break
                # another thread's load of one of our chunks failed: load it ourselves (and raise its error)
            finally:
                self._release(slots)
        out = out.view(r.store_dtype).reshape(len(rows), n, *r.trailing)
        return out if out.dtype == r.dtype else out.astype(r.dtype)
