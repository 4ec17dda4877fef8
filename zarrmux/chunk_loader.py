"""Decoded row chunks for a whole batch at once: :func:`load_chunks`.

A batch asks for a set of ``(reader, chunk)`` pairs.  They are served in
three rounds, whatever their number:

1. the decoded-chunk cache (:class:`~zarrmux.chunk_cache.ChunkCache`), under
   one lock acquisition;
2. one ``read_many`` call per byte reader for the shard indexes not cached
   yet (an index another thread is reading right now is waited for, not read
   again), then one for the chunks' bytes;
3. decoding, split between the calling thread and a small pool of threads
   sized to the cores: blosc runs outside the GIL, so decodes overlap.

Memory held: the cache's budget plus the chunks of the calls in flight.
Corrupt data raises :class:`~zarrmux.array_reader.ChunkFault`.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .array_reader import ArrayReader
from .byte_io import ByteRequest
from .chunk_cache import ChunkCache

__all__ = ["load_chunks", "PARALLEL_DECODE_MIN"]

#: fewer chunk decodes than this in one call run in the calling thread (a hand-off costs ~30 us)
PARALLEL_DECODE_MIN = 8

_pool: ThreadPoolExecutor | None = None
_pool_pid = -1
_pool_lock = threading.Lock()


def _decode_pool() -> ThreadPoolExecutor | None:
    """The shared decode threads of this process (``cores - 1`` of them; ``None`` on one core)."""
    global _pool, _pool_pid
    workers = (os.cpu_count() or 1) - 1
    if workers < 1:
        return None
    if _pool is None or _pool_pid != os.getpid():  # a forked child has none of the parent's threads
        with _pool_lock:
            if _pool is None or _pool_pid != os.getpid():
                _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zarrmux-decode")
                _pool_pid = os.getpid()
    return _pool


def load_chunks(wanted: Sequence[tuple[ArrayReader, int]], cache: ChunkCache) -> dict[tuple[int, int], np.ndarray]:
    """Decoded row chunks ``{(reader.uid, c): array}`` for every ``(reader, c)`` in ``wanted``.

    Raises :class:`~zarrmux.array_reader.ChunkFault` on corrupt data.
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
    if not misses:
        return got

    indexes = _load_indexes(misses)
    requests: dict[Any, list[tuple[ArrayReader, int, ByteRequest]]] = defaultdict(list)
    for reader, cs in misses.items():
        reqs = requests[reader.io]
        if reader.mode == "shard":
            cps, uid = reader.chunks_per_shard, reader.uid
            for c in cs:
                s = c // cps
                idx = indexes.get((uid, s))
                if idx is None:  # evicted by another thread meanwhile: read it again
                    idx = indexes[(uid, s)] = reader.cached_index(s)
                    if idx is None:
                        idx = indexes[(uid, s)] = reader.load_index(s)
                req = reader.chunk_request(idx, c)
                if req is None:
                    got[(uid, c)] = reader.fill_chunk()
                else:
                    reqs.append((reader, c, req))
        else:
            reqs.extend((reader, c, ByteRequest(reader.object_key(c), "full")) for c in cs)
    for io, items in requests.items():
        if items:
            raws = io.read_many([it[2] for it in items])
            _decode_all(items, raws, got, cache)
    return got


def _load_indexes(misses: dict[ArrayReader, list[int]]) -> dict[tuple[int, int], np.ndarray]:
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
            for (reader, s), req, raw in zip(items, reqs, io.read_many(reqs)):
                idx = reader.decode_index(raw, s)
                reader.note_size(s, io.take_size(req.key))
                indexes[(reader.uid, s)] = idx
                reader.cache_index(s, idx)
    finally:
        for items in reads.values():
            for reader, s in items:
                reader.release_index(s)
    for reader, s, ev in waits:
        ev.wait()
        idx = reader.cached_index(s)
        indexes[(reader.uid, s)] = idx if idx is not None else reader.load_index(s)
    return indexes


def _decode_some(
    items: Sequence[tuple[ArrayReader, int, ByteRequest]], raws: Sequence[Any], cache: ChunkCache, got: dict
) -> list[tuple[tuple[int, int], np.ndarray]]:
    """Decode ``items``; absent chunks of unsharded arrays go to ``got`` as fill, decoded ones are returned."""
    out = []
    for (reader, c, req), raw in zip(items, raws):
        if raw is None:
            if reader.mode == "shard":
                raise reader.fault(c, "shard object disappeared after its index was read")
            got[(reader.uid, c)] = reader.fill_chunk()
            continue
        if req.kind == "range" and len(raw) != req.length:
            raise reader.fault(c, f"truncated: read {len(raw)} of {req.length} bytes at offset {req.start}")
        out.append(((reader.uid, c), reader.decode_into(raw, c, cache.take(reader.chunk_nbytes))))
    return out


def _decode_all(items: Sequence[tuple[ArrayReader, int, ByteRequest]], raws: Sequence[Any], got: dict, cache: ChunkCache) -> None:
    """Decode ``items`` into ``got`` (and the cache): half in a pool thread when there are many."""
    pool = _decode_pool() if len(items) >= PARALLEL_DECODE_MIN else None
    if pool is None:
        parts = [_decode_some(items, raws, cache, got)]
    else:
        half = len(items) // 2
        future = pool.submit(_decode_some, items[half:], raws[half:], cache, got)
        try:
            mine = _decode_some(items[:half], raws[:half], cache, got)
        finally:
            theirs = future.result()  # waits even if ours failed: its buffers must not be in use
        parts = [mine, theirs]
    for part in parts:
        got.update(part)
        cache.put_many(part)
