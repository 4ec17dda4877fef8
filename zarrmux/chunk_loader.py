"""Decoded row chunks for a whole batch at once: :func:`load_chunks`.

A batch asks for a set of ``(reader, chunk)`` pairs.  They are served in
three rounds, whatever their number:

1. the decoded-chunk cache (:class:`~zarrmux.chunk_cache.ChunkCache`), under
   one lock acquisition;
2. one ``read_many`` call per byte reader for the shard indexes not cached
   yet (an index another thread is reading right now is waited for, not read
   again), then one for the chunks' bytes;
3. decoding: blosc runs outside the GIL, so the reading threads of a
   sampler decode in parallel.  (A separate pool splitting one batch's
   decodes over two threads measured slower on a 2-core machine, so there
   is none.)

Memory held: the cache's budget plus the chunks of the calls in flight.
Corrupt data raises :class:`~zarrmux.chunk_fault.ChunkFault`.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from .array_reader import ArrayReader
from .byte_requests import ByteRequest
from .chunk_cache import ChunkCache

__all__ = ["load_chunks", "fetch_stored"]

def load_chunks(wanted: Sequence[tuple[ArrayReader, int]], cache: ChunkCache) -> dict[tuple[int, int], np.ndarray]:
    """Decoded row chunks ``{(reader.uid, c): array}`` for every ``(reader, c)`` in ``wanted``.

    Raises :class:`~zarrmux.chunk_fault.ChunkFault` on corrupt data.
    """
    keys = [(reader.uid, c) for reader, c in wanted]
    got: dict[tuple[int, int], np.ndarray] = {}
    misses: dict[ArrayReader, list[int]] = {}
    for (reader, c), key, a in zip(wanted, keys, cache.get_many(keys)):
        if a is None:
            misses.setdefault(reader, []).append(c)
        else:
            got[key] = a
    if not misses:
        return got

    for reader in [r for r in misses if r.mode == "zarr"]:  # zarr-python fallback
        for c in misses.pop(reader):
            a = reader.read_zarr_chunk(c)
            cache.put_many([((reader.uid, c), a)])
            got[(reader.uid, c)] = a
    items = [(reader, c) for reader, cs in misses.items() for c in cs]
    raws = fetch_stored(items)
    todo = []
    for (reader, c), raw in zip(items, raws):
        if raw is None:
            got[(reader.uid, c)] = reader.fill_chunk()
        else:
            todo.append((reader, c, raw))
    if todo:
        _decode_all(todo, got, cache)
    return got


def fetch_stored(items: Sequence[tuple[ArrayReader, int]]) -> list[Any]:
    """The stored bytes of every row chunk ``(reader, c)`` of ``items``, in order; ``None`` for an absent chunk.

    Readers must be in 'shard' or 'chunk' mode.  One round of shard-index
    reads (for indexes not cached), then one ``read_many`` per byte reader.
    Raises :class:`~zarrmux.chunk_fault.ChunkFault` for a bad index entry,
    a truncated range, or a shard that vanished after its index was read.
    """
    by_reader: dict[ArrayReader, list[int]] = {}
    for reader, c in items:
        by_reader.setdefault(reader, []).append(c)
    indexes = load_indexes(by_reader)
    out: list[Any] = [None] * len(items)
    requests: dict[Any, list[tuple[int, ArrayReader, int, ByteRequest]]] = defaultdict(list)
    for j, (reader, c) in enumerate(items):
        if reader.mode == "shard":
            s = c // reader.chunks_per_shard
            idx = indexes.get((reader.uid, s))
            if idx is None:  # evicted by another thread meanwhile: read it again
                idx = reader.cached_index(s)
                if idx is None:
                    idx = reader.load_index(s)
                indexes[(reader.uid, s)] = idx
            req = reader.chunk_request(idx, c)
            if req is not None:
                requests[reader.io].append((j, reader, c, req))
        else:
            requests[reader.io].append((j, reader, c, ByteRequest(reader.object_key(c), "full")))
    for io, reqs in requests.items():
        for (j, reader, c, req), raw in zip(reqs, io.read_many([r[3] for r in reqs])):
            if raw is None:
                if reader.mode == "shard":
                    raise reader.fault(c, "shard object disappeared after its index was read")
            elif req.kind == "range" and len(raw) != req.length:
                raise reader.fault(c, f"truncated: read {len(raw)} of {req.length} bytes at offset {req.start}")
            out[j] = raw
    return out


def load_indexes(misses: dict[ArrayReader, list[int]]) -> dict[tuple[int, int], np.ndarray]:
    """The shard indexes the missing chunks need ``{(uid, shard): index}``, read together."""
    reads: dict[Any, list[tuple[ArrayReader, int]]] = defaultdict(list)
    waits: list[tuple[ArrayReader, int, threading.Event]] = []
    indexes: dict[tuple[int, int], np.ndarray] = {}
    for reader, cs in misses.items():
        if reader.mode != "shard":
            continue
        for s in {c // reader.chunks_per_shard for c in cs}:
            idx = reader.cached_index(s)
            if idx is not None:
                indexes[(reader.uid, s)] = idx  # held for this call even if evicted
                continue
            ev, mine = reader.claim_index(s)
            if mine:
                reads[reader.io].append((reader, s))
            else:
                waits.append((reader, s, ev))
    try:
        for io, items in reads.items():
            reqs = [reader.index_request(s) for reader, s in items]
            for (reader, s), raw in zip(items, io.read_many(reqs)):
                indexes[(reader.uid, s)] = reader.accept_index(s, raw)
    finally:
        for items in reads.values():
            for reader, s in items:
                reader.release_index(s)
    for reader, s, ev in waits:
        ev.wait()
        idx = reader.cached_index(s)
        indexes[(reader.uid, s)] = idx if idx is not None else reader.load_index(s)
    return indexes


def _decode_all(items: Sequence[tuple[ArrayReader, int, Any]], got: dict, cache: ChunkCache) -> None:
    """Decode ``(reader, c, raw)`` items into ``got`` and the cache."""
    part = [((reader.uid, c), reader.decode_into(raw, c, cache.take(reader.chunk_nbytes))) for reader, c, raw in items]
    got.update(part)
    cache.put_many(part)
