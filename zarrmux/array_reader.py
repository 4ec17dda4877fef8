"""One stored array seen as row chunks: :class:`ArrayReader`.

zarr-python costs a few hundred microseconds per ``arr[i:j]`` call, so the
readers bypass it for the arrays they understand and read stored objects
themselves.  The unit is a *row chunk*: rows ``[c * chunk_rows, (c + 1) *
chunk_rows)`` with all trailing axes.  An :class:`ArrayReader` knows, from the
array's metadata, how such a chunk is stored (:attr:`ArrayReader.mode`):

``'shard'``
    Sharded v3 arrays (what :func:`zarrmux.layout.create_corpus` writes):
    the shard index of each needed shard is read once (crc32c-checked) and
    cached; the inner chunks are byte ranges of the shard object.
``'chunk'``
    Unsharded v3 arrays with the same codecs: one object per chunk.
``'zarr'``
    Anything else (zarr v2 arrays, transposes, chunks that split the
    trailing axes, unusual codecs): the chunk's rows are read through
    zarr-python slicing.  Correct, slower.

What a reader checks (the rules of every read path)
----------------------------------------------------
* Each shard index when it is read: its crc32c and length, and, once the
  object's size is known, that every inner chunk it lists lies inside the
  object (a truncated shard is never read).
* Each inner chunk on its first read by the process: its crc32c
  (:meth:`ArrayReader.check_crc`).
* An absent shard object or inner chunk reads as the fill value, as Zarr
  says, unless the array is declared *complete* (:meth:`ArrayReader.require`,
  done by :class:`zarrmux.Corpus` for the keys :func:`zarrmux.convert` wrote,
  which stores every chunk of every entry's rows): then it raises
  :class:`~zarrmux.chunk_fault.ChunkFault` with ``missing=True``, and each
  shard index must list every chunk its entries' rows need and account for
  the object's size exactly (:meth:`ArrayReader.check_shard`).
* A :class:`ChunkFault` names the stored object; the corpus turns it into a
  :class:`~zarrmux.exceptions.DataError` naming the entry and key too.
  Shards swapped with others of the same size pass all of this: only
  :meth:`zarrmux.Corpus.verify` (the entries' sha256) sees them.

The byte format (index layout, codecs, crc) is :mod:`zarrmux.shard_format`;
which mode an array gets, from its metadata, is :mod:`zarrmux.array_layout`;
the fault a reader raises is :mod:`zarrmux.chunk_fault`; the shard indexes it
keeps are :mod:`zarrmux.shard_index_cache`; fetching bytes is
:mod:`zarrmux.byte_io`; which chunks a batch needs and decoding them is
:mod:`zarrmux.chunk_loader`; exact windows of uncompressed keys are
:mod:`zarrmux.exact_windows`.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import numpy as np

from . import _forksafe
from . import shard_format as fmt
from .array_layout import stored_layout
from .byte_io import make_io
from .byte_requests import ByteRequest
from .chunk_fault import MISSING, ChunkFault
from .shard_completeness import index_problem, required_chunks
from .shard_index_cache import ShardIndexCache

#: ChunkFault, raised by the reader, is importable from here too: callers catch it beside ArrayReader
__all__ = ["ArrayReader", "ChunkFault", "FALLBACK_BLOCK_BYTES"]

#: fallback (zarr-slicing) reads are cut into row blocks of at most this many bytes
FALLBACK_BLOCK_BYTES = 4 * 1024 * 1024

_uid = itertools.count()


class ArrayReader:
    """Reads row chunks of one zarr array (see the module docstring for the modes).

    Parameters
    ----------
    array : zarr.Array
        An open array with at least one dimension.
    label : str
        How errors name the array (its path in the store).
    io : object, optional
        A byte reader from :func:`zarrmux.byte_io.make_io` for the array's
        store (shared by the arrays of one corpus); made here when omitted.
    """

    mode: str  #: 'shard', 'chunk' or 'zarr'
    codecs: fmt.InnerCodecs | None  #: how an inner chunk is stored ('shard' and 'chunk' modes)

    def __init__(self, array: Any, label: str, io: Any = None) -> None:
        self.array = array
        self.label = label
        self.uid = next(_uid)
        self.shape: tuple[int, ...] = tuple(int(s) for s in array.shape)
        if not self.shape:
            raise ValueError(f"array {label!r} is 0-dimensional")
        self.trailing = self.shape[1:]
        self.dtype = np.dtype(array.dtype)
        self.row_bytes = int(self.dtype.itemsize * int(np.prod(self.trailing, dtype=np.int64)))
        self._fill: np.ndarray | None = None
        self._lock = threading.Lock()  # guards the fill chunk
        _forksafe.register(self)
        self.mode = "zarr"
        self.codecs = None
        self.chunk_rows = max(1, int(array.chunks[0]) if array.chunks else max(1, self.shape[0]))
        self.store_dtype = self.dtype
        self.io = io
        #: the shard indexes read, where shards' chunk data lies, index reads in progress
        self.index_cache = ShardIndexCache()
        #: per shard: rows (from its first row) that entries occupy, whose chunks must be stored;
        #: ``None``: absent objects and chunks read as the fill value (see :meth:`require`)
        self.required: np.ndarray | None = None
        self._analyse()
        if self.mode == "zarr":
            # cut big chunks into row blocks so one window does not fetch a huge block
            cap = max(1, FALLBACK_BLOCK_BYTES // max(1, self.row_bytes))
            self.chunk_rows = max(1, min(self.chunk_rows, cap))
        if self.io is None and self.mode != "zarr":
            self.io = make_io(array.store_path.store)

    # -- analysis of the metadata
    def _analyse(self) -> None:
        lay = stored_layout(self.array, self.trailing, self.dtype)
        if lay is None:
            return
        self._prefix = lay.prefix
        self._keys: dict[int, str] = {}
        self._meta = lay.meta
        self._ndim = len(self.shape)
        self.chunk_rows = lay.chunk_rows
        if lay.mode == "shard":
            self.shard_rows = lay.shard_rows
            self.chunks_per_shard = lay.chunks_per_shard
            self._index_crc = lay.index_crc
            self.index_nbytes = lay.index_nbytes
            self.index_at_end = lay.index_at_end
        self.mode = lay.mode
        self.codecs = lay.codecs
        self.store_dtype = self.dtype.newbyteorder(lay.codecs.byteorder) if self.dtype.itemsize > 1 else self.dtype
        #: one bit per row chunk: this process has checked it (see :meth:`check_crc`)
        self.verified = bytearray(self.n_chunks // 8 + 1)
        self._verified_bits = np.frombuffer(self.verified, dtype=np.uint8)  # the same memory

    # -- geometry and names
    @property
    def n_chunks(self) -> int:
        return -(-self.shape[0] // self.chunk_rows)

    @property
    def chunk_nbytes(self) -> int:
        """Decoded bytes of one row chunk."""
        return self.chunk_rows * self.row_bytes

    @property
    def stored_stride(self) -> int:
        """Bytes between stored chunks of an uncompressed shard laid out contiguously (rows plus crc32c)."""
        crc = self.codecs is not None and self.codecs.crc
        return self.chunk_nbytes + (fmt.CRC_BYTES if crc else 0)

    @property
    def data_start(self) -> int:
        """Where a shard's first chunk starts in its object (after the index when it comes first)."""
        return 0 if self.index_at_end else self.index_nbytes

    @property
    def uncompressed(self) -> bool:
        """Stored chunks are the raw rows (plus a crc32c): exact windows can be read without decoding."""
        return self.codecs is not None and self.codecs.compressor == "none"

    def object_key(self, outer_index: int) -> str:
        """The store key of outer chunk (shard) ``outer_index``."""
        key = self._keys.get(outer_index)
        if key is None:
            coords = (outer_index,) + (0,) * (self._ndim - 1)
            key = self._prefix + self._meta.encode_chunk_key(coords)
            if len(self._keys) < 65536:
                self._keys[outer_index] = key
        return key

    def describe_chunk(self, c: int) -> str:
        """How errors name row chunk ``c``: store key, inner chunk and rows."""
        r0, r1 = c * self.chunk_rows, min(self.shape[0], (c + 1) * self.chunk_rows)
        if self.mode == "shard":
            s = c // self.chunks_per_shard
            return f"{self.object_key(s)} (inner chunk {c % self.chunks_per_shard}, rows {r0}:{r1} of {self.label!r})"
        if self.mode == "chunk":
            return f"{self.object_key(c)} (rows {r0}:{r1} of {self.label!r})"
        return f"rows {r0}:{r1} of {self.label!r}"

    def fault(self, c: int, message: str) -> ChunkFault:
        """A :class:`ChunkFault` for row chunk ``c``."""
        return ChunkFault(self, [c], self.describe_chunk(c), message)

    def fill_chunk(self) -> np.ndarray:
        """A read-only chunk of the fill value (shared)."""
        if self._fill is None:
            with self._lock:
                if self._fill is None:
                    fv = getattr(self.array, "fill_value", None)
                    a = np.zeros((self.chunk_rows, *self.trailing), dtype=self.store_dtype)
                    if fv is not None:
                        a[...] = fv
                    a.flags.writeable = False
                    self._fill = a
        return self._fill

    # -- completeness: arrays of a corpus the converter wrote
    @property
    def complete(self) -> bool:
        """Whether every inner chunk holding entry rows is stored (:meth:`require`): an absent one is an error."""
        return self.required is not None

    def require(self, rows: np.ndarray) -> None:
        """Declare the array complete: shard ``s`` stores at least the inner chunks of its first ``rows[s]`` rows.

        What :func:`zarrmux.convert` writes: every entry's rows, each shard
        holding the inner chunks ``0 .. ceil(written rows / chunk_rows)`` and
        nothing else but its index (:func:`zarrmux.shard_format.encode_shard`,
        which stores all-fill chunks too).  From then on a missing shard
        object, or an inner chunk the entries' rows need that is absent from
        its shard's index, raises :class:`ChunkFault` (``missing=True``)
        instead of reading as the fill value, and each shard index is checked
        against its position and the object's size (:meth:`check_shard`).
        Only for ``'shard'`` mode.

        Parameters
        ----------
        rows : numpy.ndarray of int, shape (n_shards,)
            Per shard, the rows from its first row that entries occupy (0 to ``shard_rows``).
        """
        if self.mode != "shard":
            raise ValueError(f"array {self.label!r} is not sharded ({self.mode!r} mode): it cannot be declared complete")
        self.required = np.asarray(rows, dtype=np.int64)

    def required_chunks(self, shard: int) -> int:
        """Inner chunks of ``shard`` that must be stored (0 when the array is not complete)."""
        return required_chunks(self.required, shard, self.chunk_rows)

    def _shard_fault(self, shard: int, where: str, message: str, missing: bool = False) -> ChunkFault:
        first = shard * self.chunks_per_shard
        return ChunkFault(self, range(first, first + self.chunks_per_shard), where, message, missing)

    def missing_shard(self, shard: int) -> ChunkFault:
        """The :class:`ChunkFault` of a complete array's shard object that does not exist."""
        r0 = shard * self.shard_rows
        r1 = r0 + (int(self.required[shard]) if self.required is not None and shard < len(self.required) else self.shard_rows)
        return self._shard_fault(shard, f"{self.object_key(shard)} (shard {shard} of {self.label!r}, rows {r0}:{r1})", MISSING, True)

    def check_shard(self, shard: int, index: np.ndarray, size: int | None) -> None:
        """Check that a complete array's shard index describes a shard written for this position.

        Once per shard index read (the rule: :func:`zarrmux.shard_completeness.index_problem`):
        every inner chunk the position's entry rows need (:meth:`required_chunks`) is present, and,
        when the object's size is known, the present chunks fill the chunk
        data exactly (no bytes missing, none added).  A shard written for a
        position holding fewer rows (the last shard of a conversion unit put
        where a full one belongs), or one with chunks cut out or bytes added,
        raises :class:`ChunkFault` naming the shard, and nothing of it is
        read.  (Shards holding as many chunks swapped with each other pass:
        only :meth:`zarrmux.Corpus.verify` sees those.)
        """
        req = self.required
        if req is None:
            return
        rows = int(req[shard]) if 0 <= shard < len(req) else 0
        problem = index_problem(index, self.required_chunks(shard), shard * self.shard_rows, rows, size, self.index_nbytes)
        if problem is not None:
            raise self._shard_fault(shard, f"{self.object_key(shard)} (shard index of {self.label!r})", *problem)

    # -- shard indexes
    def index_request(self, shard: int) -> ByteRequest:
        """The byte request of shard ``shard``'s index."""
        kind = "suffix" if self.index_at_end else "range"
        return ByteRequest(self.object_key(shard), kind, 0, self.index_nbytes)

    def cached_index(self, shard: int) -> np.ndarray | None:
        """The index of ``shard`` if it is cached (:attr:`index_cache`)."""
        return self.index_cache.indexes.get(shard)

    def cache_index(self, shard: int, index: np.ndarray) -> None:
        """Keep a shard index (see :meth:`ShardIndexCache.put <zarrmux.shard_index_cache.ShardIndexCache.put>`)."""
        self.index_cache.put(shard, index)

    def claim_index(self, shard: int) -> tuple[threading.Event, bool]:
        """``(event, True)`` if the caller must read shard ``shard``'s index (then :meth:`release_index`),
        ``(event, False)`` if another thread is reading it: wait for ``event``."""
        return self.index_cache.claim(shard)

    def release_index(self, shard: int) -> None:
        """The index read claimed with :meth:`claim_index` is over (done or failed): wake the waiters."""
        self.index_cache.release(shard)

    def note_size(self, shard: int, size: int | None) -> None:
        """Remember where shard ``shard``'s inner chunks may lie, given its object size (if known)."""
        if size is None:
            return
        lo, hi = (0, size - self.index_nbytes) if self.index_at_end else (self.index_nbytes, size)
        self.index_cache.set_bounds(shard, lo, hi)

    def decode_index(self, raw: Any, shard: int) -> np.ndarray:
        """Offsets and lengths ``(chunks_per_shard, 2)`` of a shard; all-empty if absent."""
        try:
            return fmt.parse_index(raw, self.chunks_per_shard, self._index_crc)
        except fmt.FormatError as exc:
            chunks = range(shard * self.chunks_per_shard, (shard + 1) * self.chunks_per_shard)
            raise ChunkFault(self, chunks, f"{self.object_key(shard)} (shard index of {self.label!r})", str(exc)) from None

    def accept_index(self, shard: int, raw: Any) -> np.ndarray:
        """The index of ``shard`` from its stored bytes (just read by :attr:`io`, ``None``: no such object): checked, bounded, cached.

        For a complete array (:meth:`require`), a missing shard object whose
        rows entries need, or an index failing :meth:`check_shard`, raises
        :class:`ChunkFault`.
        """
        if raw is None and self.required_chunks(shard):
            raise self.missing_shard(shard)
        idx = self.decode_index(raw, shard)
        size = self.io.take_size(self.object_key(shard))
        if raw is not None:
            self.check_shard(shard, idx, size)
        self.note_size(shard, size)
        self.cache_index(shard, idx)
        return idx

    def load_index(self, shard: int) -> np.ndarray:
        """Read, check and cache the index of one shard."""
        (raw,) = self.io.read_many([self.index_request(shard)])
        return self.accept_index(shard, raw)

    def chunk_request(self, index: np.ndarray, c: int) -> ByteRequest | None:
        """The byte range of row chunk ``c`` given its shard's index; ``None`` for an absent chunk (the fill value).

        Raises :class:`ChunkFault` for an index entry that cannot be right,
        and for an absent chunk of a complete array (:meth:`require`).
        """
        got = self.chunk_range(index, c)
        return None if got is None else ByteRequest(self.object_key(c // self.chunks_per_shard), "range", *got)

    def chunk_range(self, index: np.ndarray, c: int) -> tuple[int, int] | None:
        """``(offset, nbytes)`` of row chunk ``c`` in its shard given the shard's index (see :meth:`chunk_request`)."""
        s, i = divmod(c, self.chunks_per_shard)
        off, nb = index[i].tolist()
        if off == fmt.EMPTY and nb == fmt.EMPTY:
            if self.required is not None:
                raise ChunkFault(self, [c], self.describe_chunk(c), "the inner chunk is absent from its shard's index: " + MISSING, True)
            return None
        if off == fmt.EMPTY or nb == fmt.EMPTY or nb > fmt.MAX_CHUNK_NBYTES:
            raise self.fault(c, f"bad shard index entry (offset {off}, nbytes {nb})")
        bounds = self.index_cache.bounds.get(s)  # shard_bounds(s), without a call
        if bounds is not None and (off < bounds[0] or off + nb > bounds[1]):
            raise self.fault(
                c,
                f"shard index entry (offset {off}, nbytes {nb}) lies outside the shard's chunk data "
                f"(bytes {bounds[0]}:{bounds[1]}): the shard is truncated or its index is wrong",
            )
        return off, nb

    # -- checksums
    def shard_bounds(self, s: int) -> tuple[int, int] | None:
        """Where the chunk data of shard ``s`` lies in its object (``(lo, hi)`` bytes), once its index was read."""
        return self.index_cache.bounds.get(s)

    def verified_mask(self, chunks: np.ndarray) -> np.ndarray:
        """Which of ``chunks`` (an int array) this process has checked (:meth:`check_crc`, :meth:`mark_verified`)."""
        return (self._verified_bits[chunks >> 3] >> (chunks & 7).astype(np.uint8)) & 1 == 1

    def mark_verified(self, c: int) -> None:
        """Remember that chunk ``c`` was checked (a lost race between threads only means checking again)."""
        self.verified[c >> 3] |= 1 << (c & 7)

    def mark_verified_many(self, chunks: np.ndarray) -> None:
        """:meth:`mark_verified` for an int array of chunks."""
        np.bitwise_or.at(self._verified_bits, chunks >> 3, (1 << (chunks & 7)).astype(np.uint8))

    def check_crc(self, raw: Any, c: int) -> Any:
        """The bytes of stored chunk ``c`` without its crc32c, checked on the chunk's first read by this process.

        The rule of every reader: a chunk's crc32c is checked the first time
        this process reads the chunk; later reads of it (the same stored
        bytes, from the page cache or the store) are trusted.  A mismatch
        raises :class:`ChunkFault` naming the chunk.
        """
        if self.codecs is None or not self.codecs.crc:
            self.mark_verified(c)
            return raw
        if self.verified[c >> 3] & (1 << (c & 7)):
            return raw[: max(0, len(raw) - fmt.CRC_BYTES)]
        try:
            body = fmt.split_crc(raw)
        except fmt.FormatError as exc:
            raise self.fault(c, str(exc)) from None
        self.mark_verified(c)
        return body

    # -- decoding
    def decode_into(self, raw: Any, c: int, out: np.ndarray) -> np.ndarray:
        """Check (:meth:`check_crc`) and decode the stored bytes of row chunk ``c`` into ``out`` (uint8); the chunk as rows.

        Raises :class:`ChunkFault` naming the chunk for corrupt bytes.
        """
        assert self.codecs is not None
        try:
            fmt.decode_chunk(self.codecs, self.check_crc(raw, c), out)
        except fmt.FormatError as exc:
            raise self.fault(c, str(exc)) from None
        a = out.view(self.store_dtype).reshape(self.chunk_rows, *self.trailing)
        a.flags.writeable = False
        return a

    def decode_mapped(self, c: int, index: np.ndarray, mapped: tuple[memoryview, int], out: np.ndarray, out_address: int) -> bool:
        """Decode row chunk ``c`` from its shard mapped in memory (``(view, address)``, see
        :meth:`zarrmux.local_io.LocalIO.mapping`) into ``out`` at ``out_address``, given the shard's index.

        The checks of :meth:`chunk_range` and :meth:`check_crc`, with no slice
        made for a chunk already checked.  ``False`` (nothing written) for a
        chunk absent from its shard.  Raises :class:`ChunkFault`.
        """
        where = self.chunk_range(index, c)
        if where is None:
            return False
        view, base = mapped
        off, nb = where
        if off + nb > len(view):
            raise self.fault(c, f"truncated: read {max(0, len(view) - off)} of {nb} bytes at offset {off}")
        codecs = self.codecs
        assert codecs is not None
        if codecs.crc:
            if not self.verified[c >> 3] & (1 << (c & 7)):
                self.check_crc(view[off : off + nb], c)
            nb -= fmt.CRC_BYTES
        try:
            fmt.decode_mapped(codecs, view, off, nb, base, out, out_address)
        except fmt.FormatError as exc:
            raise self.fault(c, str(exc)) from None
        return True

    def read_zarr_chunk(self, c: int) -> np.ndarray:
        """Row chunk ``c`` through zarr-python (the fallback mode)."""
        r0, r1 = c * self.chunk_rows, min(self.shape[0], (c + 1) * self.chunk_rows)
        try:
            a = np.asarray(self.array[r0:r1])
        except Exception as exc:  # noqa: BLE001 - zarr raises many types for bad data
            raise self.fault(c, f"zarr cannot read it: {type(exc).__name__}: {exc}") from exc
        a = np.ascontiguousarray(a)
        a.flags.writeable = False
        return a
