"""Exact windows of uncompressed keys from a remote store: one byte range per window.

The remote counterpart of :mod:`zarrmux.exact_windows`.  An uncompressed
key stores each inner chunk as its raw rows (plus a crc32c) back to back in
chunk order, so a window of ``n`` rows is one run of bytes of its shard
object (spanning a crc32c where it crosses a chunk boundary).
:class:`RemoteWindows` fetches exactly those runs, all of a batch in one
``read_many`` call (runs of one object that touch or overlap are merged,
and gaps are merged only while the bytes fetched stay within 1.5x of the
bytes asked for; see :class:`zarrmux.store_io.StoreIO`), and copies the rows
into the batch array: no whole 32 KiB chunk per 2 KiB window, no decode,
no arena.

What is checked
---------------
* Each shard index (read once per shard and cached, through
  :func:`zarrmux.chunk_loader` rules: crc32c, bounds, completeness), and
  that the shard is laid out contiguously (otherwise the key goes through
  the chunk path for good, as locally).
* A window whose chunks are absent from their shard's index goes, with its
  batch, through the chunk path (fill value, or the missing-object error of
  a complete array).
* Rows read this way are not checked against their chunk's crc32c, which
  covers the whole chunk: checking it would mean fetching whole chunks, 16
  times the bytes of a 16-row window of 256-row chunks (the network
  transfer has checks of its own; :meth:`zarrmux.Corpus.verify` checks an
  entry's sha256).

Because of that last point it is opt-in:
``open_corpus(url, exact_remote=True)``; by default remote uncompressed keys
are read through whole chunks, each checked.
"""

from __future__ import annotations

import numpy as np

from . import shard_format as fmt
from .array_reader import ArrayReader
from .byte_requests import ByteRequest
from .local_io import LocalIO

__all__ = ["RemoteWindows", "supports"]


def supports(reader: ArrayReader) -> bool:
    """Whether ``reader``'s array can be read as remote exact windows: uncompressed, sharded, not in local files."""
    return reader.mode == "shard" and reader.uncompressed and reader.io is not None and not isinstance(reader.io, LocalIO)


class RemoteWindows:
    """Reads windows of one uncompressed sharded key of a remote store (see the module docstring).

    Parameters
    ----------
    reader : ArrayReader
        The key's array; :func:`supports` must hold.
    """

    def __init__(self, reader: ArrayReader) -> None:
        if not supports(reader):
            raise ValueError(f"array {reader.label!r} cannot be read as remote exact windows")
        assert reader.codecs is not None
        self.reader = reader
        self.io = reader.io
        self.rows_per_chunk = reader.chunk_rows
        self.row_bytes = reader.row_bytes
        self.crc = reader.codecs.crc
        self.stride = reader.stored_stride
        self.first = reader.data_start
        #: False once a shard turned out not to be contiguous: the key goes through the chunk path
        self.enabled = True
        #: bytes mapped from local files (none: the byte reader counts what it fetches)
        self.bytes_mapped = 0
        self._contiguous: set[int] = set()

    def _indexes(self, shards: list[int]) -> dict[int, np.ndarray] | None:
        from .chunk_loader import load_indexes

        r = self.reader
        got = load_indexes({r: [s * r.chunks_per_shard for s in shards]})
        out = {}
        for s in shards:
            idx = got[(r.uid, s)]
            if s not in self._contiguous:
                if not fmt.is_contiguous(idx, self.stride, self.first):
                    self.enabled = False
                    return None
                self._contiguous.add(s)
            out[s] = idx
        return out

    def read(self, starts: np.ndarray, n: int) -> np.ndarray | None:
        """Windows ``[starts[b], starts[b] + n)`` (array rows) as ``(len(starts), n, *trailing)``.

        ``None`` when the batch must go through the chunk path (an absent
        chunk, a shard not laid out contiguously, windows longer than a
        shard).  Raises :class:`~zarrmux.chunk_fault.ChunkFault` for corrupt
        or truncated data.
        """
        r = self.reader
        cr, rb, sr = self.rows_per_chunk, self.row_bytes, r.shard_rows
        g = np.asarray(starts, dtype=np.int64)
        B = len(g)
        if n > sr or not self.enabled:
            return None
        s0, s1 = g // sr, (g + n - 1) // sr
        shards = np.unique(np.concatenate((s0, s1))).tolist()
        idx = self._indexes(shards)
        if idx is None:
            return None
        # pieces: (window, first row, rows) within one shard each
        pieces = [(b, int(a), int(min(n, (int(a) // sr + 1) * sr - int(a)))) for b, a in enumerate(g.tolist())]
        pieces += [(b, int(s1[b]) * sr, int(g[b]) + n - int(s1[b]) * sr) for b in np.flatnonzero(s1 != s0).tolist()]
        reqs: list[ByteRequest] = []
        places = []
        for b, a, m in pieces:
            s = a // sr
            lr0, lr1 = a - s * sr, a - s * sr + m - 1  # rows within the shard
            c0, c1 = lr0 // cr, lr1 // cr
            index = idx[s]
            if not (index[c0 : c1 + 1, 1] != fmt.EMPTY).all():
                return None  # an absent chunk: the chunk path says what it reads as
            lo = self.first + c0 * self.stride + (lr0 - c0 * cr) * rb
            hi = self.first + c1 * self.stride + (lr1 - c1 * cr + 1) * rb
            bounds = r.shard_bounds(s)
            if bounds is not None and hi > bounds[1]:
                raise r.fault(s * r.chunks_per_shard + c1, "shard object is shorter than its index says")
            reqs.append(ByteRequest(r.object_key(s), "range", lo, hi - lo))
            places.append((b, a - int(g[b]), m, lr0, c0, c1))
        raws = self.io.read_many(reqs)
        out = np.empty((B, n * rb), dtype=np.uint8)
        for (b, at, m, lr0, c0, c1), raw, req in zip(places, raws, reqs):
            if raw is None or len(raw) != req.length:
                s = (int(g[b]) + at) // sr
                got = "no object" if raw is None else f"{len(raw)} of {req.length} bytes"
                raise r.fault(s * r.chunks_per_shard + c0, f"truncated: read {got} at offset {req.start}")
            buf = np.frombuffer(raw, dtype=np.uint8)
            dst = out[b, at * rb : (at + m) * rb]
            if c0 == c1:
                dst[:] = buf
                continue
            # rows cross chunk boundaries: skip each chunk's crc32c
            pos, row, done = 0, lr0, 0
            while done < m:
                take = min(m - done, cr - row % cr)
                dst[done * rb : (done + take) * rb] = buf[pos : pos + take * rb]
                pos += take * rb + (self.stride - self.rows_per_chunk * rb if (row + take) % cr == 0 else 0)
                row += take
                done += take
        a = out.view(r.store_dtype).reshape(B, n, *r.trailing)
        return a if a.dtype == r.dtype else a.astype(r.dtype)

