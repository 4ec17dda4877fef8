"""The stored form of a chunk: Zarr v3 ``sharding_indexed`` shards, inner codecs, crc32c.

One module for the byte format that the converter writes and every reader
parses, so the rules live in one place:

* **Shard index.**  A shard object holds its inner chunks, then (``index_location
  = "end"``, what zarrmux writes) or before them (``"start"``) an index of
  ``chunks_per_shard`` little-endian ``(offset, nbytes)`` uint64 pairs,
  followed by the crc32c of those bytes when the index codecs are
  ``[bytes, crc32c]``.  ``(EMPTY, EMPTY)`` marks an absent inner chunk (it
  reads as the fill value).
* **Inner chunks.**  ``bytes`` (little- or big-endian), then at most one
  compressor (blosc, zstd or gzip), then optionally ``crc32c``: the stored
  chunk ends with the crc32c (little-endian) of the bytes before it.
* **Uncompressed keys** (``bytes`` [+ ``crc32c``]): each inner chunk is the
  raw rows (``chunk_rows * row_bytes`` bytes) plus the crc; zarrmux writes
  them back to back in chunk order, so inner chunk ``i`` of a shard starts at
  byte ``i * stride`` (:func:`is_contiguous`), which lets a reader serve an
  exact window without decoding anything.

Functions raise :class:`FormatError` with what is wrong with the bytes;
readers add where the bytes came from (entry, key, object).
"""

from __future__ import annotations

import ctypes
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from crc32c import crc32c as _crc32c

__all__ = [
    "EMPTY",
    "blocks_intact",
    "CRC_BYTES",
    "FormatError",
    "InnerCodecs",
    "inner_codecs",
    "index_crc",
    "index_nbytes",
    "parse_index",
    "is_contiguous",
    "crc32c",
    "crc32c_many",
    "check_crc",
    "split_crc",
    "decode_chunk",
    "shard_encoder",
    "encode_shard",
]

#: the shard-index marker of an absent inner chunk (offset and nbytes)
EMPTY = 2**64 - 1
#: bytes of a crc32c checksum
CRC_BYTES = 4
#: bytes per inner chunk in a shard index
INDEX_ENTRY_BYTES = 16
#: inner chunks bigger than this are refused as a corrupt index entry
MAX_CHUNK_NBYTES = 1 << 40


class FormatError(ValueError):
    """Stored bytes that do not follow the format (the message says how)."""


# ----------------------------------------------------------------------------- codec chains


@dataclass(frozen=True)
class InnerCodecs:
    """What an inner chunk's codec chain does, in the terms readers need."""

    compressor: str  #: ``'none'``, ``'blosc'``, ``'zstd'`` or ``'gzip'``
    byteorder: str  #: ``'<'`` or ``'>'``: the byte order of the decoded rows
    crc: bool  #: the stored chunk ends with a crc32c


def _endian(codec: Any) -> str:
    e = codec.endian
    return "<" if e is None or getattr(e, "value", e) == "little" else ">"


def inner_codecs(codecs: Sequence[Any]) -> InnerCodecs | None:
    """The :class:`InnerCodecs` of a zarr v3 codec chain, or ``None`` if readers cannot take the fast path."""
    from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, ZstdCodec

    chain = list(codecs)
    crc = bool(chain) and isinstance(chain[-1], Crc32cCodec)
    if crc:
        chain = chain[:-1]
    if not chain or not isinstance(chain[0], BytesCodec) or len(chain) > 2:
        return None
    order = _endian(chain[0])
    if len(chain) == 1:
        return InnerCodecs("none", order, crc)
    kinds = {BloscCodec: "blosc", ZstdCodec: "zstd", GzipCodec: "gzip"}
    kind = next((name for cls, name in kinds.items() if isinstance(chain[1], cls)), None)
    return None if kind is None else InnerCodecs(kind, order, crc)


def index_crc(index_codecs: Sequence[Any]) -> bool | None:
    """True if a shard index is ``[bytes(little), crc32c]``, False for ``[bytes(little)]``, None otherwise."""
    from zarr.codecs import BytesCodec, Crc32cCodec

    ic = list(index_codecs)
    if not ic or not isinstance(ic[0], BytesCodec) or _endian(ic[0]) != "<":
        return None
    if len(ic) == 1:
        return False
    if len(ic) == 2 and isinstance(ic[1], Crc32cCodec):
        return True
    return None


# ----------------------------------------------------------------------------- shard index


def index_nbytes(chunks_per_shard: int, crc: bool) -> int:
    """Stored bytes of a shard index."""
    return INDEX_ENTRY_BYTES * chunks_per_shard + (CRC_BYTES if crc else 0)


def parse_index(raw: Any, chunks_per_shard: int, crc: bool) -> np.ndarray:
    """The ``(chunks_per_shard, 2)`` uint64 ``(offset, nbytes)`` table of a stored shard index.

    ``raw`` of ``None`` (an absent shard) gives an all-:data:`EMPTY` table.
    Raises :class:`FormatError` for a short index or a crc32c mismatch.
    """
    if raw is None:
        return np.full((chunks_per_shard, 2), EMPTY, dtype=np.uint64)
    raw = bytes(raw)
    want = index_nbytes(chunks_per_shard, crc)
    if len(raw) != want:
        raise FormatError(f"shard object too short for its index ({len(raw)} of {want} bytes)")
    body = raw[: INDEX_ENTRY_BYTES * chunks_per_shard]
    if crc:
        stored, computed = raw[-CRC_BYTES:], struct.pack("<I", crc32c(body))
        if stored != computed:
            raise FormatError(f"shard index crc32c mismatch (stored {stored.hex()}, computed {computed.hex()})")
    return np.frombuffer(body, dtype="<u8").reshape(chunks_per_shard, 2)


def is_contiguous(index: np.ndarray, stride: int, first: int = 0) -> bool:
    """Whether every present inner chunk ``i`` lies at ``first + i * stride`` and is ``stride`` bytes long."""
    present = index[:, 1] != EMPTY
    expected = first + np.arange(len(index), dtype=np.uint64) * np.uint64(stride)
    return bool(np.all(index[present, 0] == expected[present]) and np.all(index[present, 1] == stride))


# ----------------------------------------------------------------------------- checksums


def crc32c_many(buffer: Any, starts: Sequence[int], length: int) -> np.ndarray:
    """The crc32c of ``buffer[s : s + length]`` for every ``s`` of ``starts`` (uint32).

    One tight loop; each sum releases the GIL, so several threads sum the
    chunks of a freshly mapped shard in parallel.
    """
    mv = memoryview(buffer).cast("B")
    return np.array([_crc32c(mv[s : s + length], 0, 1) for s in starts], dtype=np.uint32)


def blocks_intact(buffer: Any, start: int, count: int, stride: int) -> bool:
    """Whether the ``count`` blocks of ``stride`` bytes from ``start`` all end with the crc32c of the rest.

    Each block is an inner chunk followed by its little-endian crc32c (the
    contiguous layout of an uncompressed shard).  One sum over all the
    blocks, outside the GIL, instead of one per block: CRC-32C is affine, so
    summing an intact block takes the running sum from ``x`` to the same
    value whatever the block's contents (its crc32c makes it so), and the sum
    of ``count`` intact blocks is a constant of ``count`` and ``stride``
    (:func:`_intact_sum`).  False means at least one block is corrupt; the
    caller then checks them one by one (:func:`crc32c_many`) to name it.
    A corruption is missed with the odds of any CRC-32C, about 2**-32.
    """
    if count <= 0:
        return True
    mv = memoryview(buffer).cast("B")[start : start + count * stride]
    return len(mv) == count * stride and int(_crc32c(mv, 0, 1)) == _intact_sum(count, stride)


#: stride -> the crc32c of 0, 1, 2, ... intact blocks of that stride
_INTACT: dict[int, list[int]] = {}
_INTACT_LOCK = threading.Lock()


def _intact_sum(count: int, stride: int) -> int:
    """The crc32c of ``count`` intact blocks of ``stride`` bytes (any contents: zeros here), cached."""
    with _INTACT_LOCK:
        sums = _INTACT.setdefault(stride, [0])
        if len(sums) <= count:
            block = bytearray(stride)
            block[stride - CRC_BYTES :] = struct.pack("<I", _crc32c(bytes(stride - CRC_BYTES), 0, 0))
            while len(sums) <= count:
                sums.append(int(_crc32c(block, sums[-1], 0)))
        return sums[count]


def crc32c(data: Any) -> int:
    """The crc32c of any contiguous buffer (bytes, memoryview, a slice of a mapped file), without a copy.

    The ``crc32c`` package (SSE 4.2 / ARMv8 instructions) takes any buffer;
    google-crc32c, which zarr uses, takes only ``bytes``, which would cost a
    copy of every chunk read from a memory-mapped shard.
    """
    return int(_crc32c(data, 0, 1))  # 1: release the GIL while summing


def check_crc(body: bytes, stored: bytes) -> None:
    """Raise :class:`FormatError` unless ``stored`` is the little-endian crc32c of ``body``."""
    computed = struct.pack("<I", crc32c(body))
    if stored != computed:
        raise FormatError(f"chunk crc32c mismatch (stored {bytes(stored).hex()}, computed {computed.hex()})")


def split_crc(raw: Any) -> Any:
    """``raw`` without its trailing crc32c, after checking it; :class:`FormatError` on a mismatch."""
    if len(raw) < CRC_BYTES:
        raise FormatError(f"chunk of {len(raw)} bytes is too short for its crc32c")
    body = raw[:-CRC_BYTES]
    check_crc(body, bytes(raw[-CRC_BYTES:]))
    return body


# ----------------------------------------------------------------------------- decoding

_BLOSC_HEADER = struct.Struct("<BBBBIII")


def _check_blosc(raw: Any, expected: int, at: int = 0, length: int | None = None) -> None:
    """Validate a blosc frame's header against its length and the chunk size.

    The frame is ``raw[at : at + length]`` (default: all of ``raw``); blosc
    trusts the header's sizes, so a frame whose header disagrees with the
    bytes it was given is refused before it is decoded.
    """
    if length is None:
        length = len(raw) - at
    if length < _BLOSC_HEADER.size:
        raise FormatError(f"blosc frame of {length} bytes is shorter than its header")
    _v, _vl, _flags, _ts, nbytes, _bs, cbytes = _BLOSC_HEADER.unpack_from(raw, at)
    if cbytes != length:
        raise FormatError(f"blosc header says {cbytes} compressed bytes, the object holds {length}")
    if nbytes != expected:
        raise FormatError(f"blosc header says {nbytes} decoded bytes, expected {expected}")


def _blosc_ctx() -> Any:
    """c-blosc's ``blosc_decompress_ctx`` from numcodecs' own build, called through ctypes.

    ctypes releases the GIL for the call, so decodes in several threads run
    in parallel (``numcodecs.blosc.decompress`` measured no faster with two
    threads than with one here).  ``None`` if the symbol is not exported.
    """
    try:
        from numcodecs import blosc as nb

        fn = ctypes.CDLL(nb.__file__).blosc_decompress_ctx
    except (OSError, AttributeError, ImportError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_BLOSC_CTX = _blosc_ctx()


def decode_chunk(info: InnerCodecs, raw: Any, out: np.ndarray) -> None:
    """Decode the stored bytes of one inner chunk (crc already removed) into ``out`` (uint8, the chunk's size).

    Blosc frames are decoded outside the GIL; zstd and gzip through numcodecs.
    Raises :class:`FormatError` for bytes that do not decode to exactly ``out.nbytes``.
    (:func:`decode_mapped` decodes a chunk of a mapped file by address.)
    """
    expected = out.nbytes
    kind = info.compressor
    if kind == "none":
        if len(raw) != expected:
            raise FormatError(f"uncompressed chunk of {len(raw)} bytes, expected {expected}")
        out[:] = np.frombuffer(raw, dtype=np.uint8)
        return
    if kind == "blosc":
        _check_blosc(raw, expected)
        if _BLOSC_CTX is not None:
            _blosc_at(np.frombuffer(raw, dtype=np.uint8).ctypes.data, out.ctypes.data, expected)
            return
        from numcodecs import blosc as nb

        try:
            nb.decompress(raw, out)
        except Exception as exc:  # noqa: BLE001 - numcodecs raises several types
            raise FormatError(f"cannot decode blosc data: {exc}") from exc
        return
    from numcodecs import GZip, Zstd

    try:
        data = (Zstd() if kind == "zstd" else GZip()).decode(raw)
    except Exception as exc:  # noqa: BLE001
        raise FormatError(f"cannot decode {kind} data: {exc}") from exc
    data = memoryview(data).cast("B")
    if len(data) != expected:
        raise FormatError(f"decoded {len(data)} bytes, expected {expected}")
    out[:] = np.frombuffer(data, dtype=np.uint8)


def decode_mapped(info: InnerCodecs, view: Any, at: int, length: int, base: int, out: np.ndarray, out_address: int) -> None:
    """:func:`decode_chunk` of ``view[at : at + length]``, a chunk (crc removed) in a mapped file whose first byte is at address ``base``.

    The lean path of local compressed shards: a blosc frame is checked and
    decoded by address, with no slice made; other codecs go through
    :func:`decode_chunk`.
    """
    if _BLOSC_CTX is not None and info.compressor == "blosc":
        _check_blosc(view, out.nbytes, at, length)
        _blosc_at(base + at, out_address, out.nbytes)
        return
    decode_chunk(info, view[at : at + length], out)


def _blosc_at(src_address: int, out_address: int, expected: int) -> None:
    """Decode the (checked) blosc frame at ``src_address`` into ``expected`` bytes at ``out_address``, outside the GIL."""
    assert _BLOSC_CTX is not None
    got = _BLOSC_CTX(src_address, out_address, expected, 1)
    if got != expected:
        raise FormatError(f"blosc cannot decode the frame (code {got})")


# ----------------------------------------------------------------------------- encoding (the converter)


def shard_encoder(arr: Any, trailing: tuple[int, ...]) -> tuple[int, Any, bool] | None:
    """``(chunk_rows, blosc_or_None, chunk_crc)`` if :func:`encode_shard` can write ``arr``'s shards.

    zarr-python encodes every inner chunk of a shard as a separate thread task
    (~1 ms per 32 KiB chunk), far slower than blosc; for the layout zarrmux
    creates (``sharding_indexed``: ``bytes(little)`` [+ blosc] [+ crc32c]
    inner codecs, index ``bytes(little) + crc32c`` at the end, regular grid)
    the converter builds the shard object itself, byte for byte what zarr
    writes.  Anything else (big-endian data, other codecs) returns ``None``:
    zarr writes it.
    """
    from zarr.codecs import BloscCodec, ShardingCodec
    from zarr.codecs.sharding import ShardingCodecIndexLocation

    md = arr.metadata
    codecs = md.codecs
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return None
    sc = codecs[0]
    if sc.index_location != ShardingCodecIndexLocation.end or tuple(sc.chunk_shape[1:]) != tuple(trailing):
        return None
    info = inner_codecs(sc.codecs)
    if info is None or info.byteorder != "<" or info.compressor not in ("none", "blosc") or index_crc(sc.index_codecs) is not True:
        return None
    dtype = arr.dtype.to_native_dtype() if hasattr(arr.dtype, "to_native_dtype") else arr.dtype
    if np.dtype(dtype).byteorder == ">":
        return None
    second = sc.codecs[1] if info.compressor == "blosc" else None  # inner_codecs checked it is a BloscCodec
    blosc = second._blosc_codec if isinstance(second, BloscCodec) else None
    return int(sc.chunk_shape[0]), blosc, info.crc


def encode_shard(data: np.ndarray, chunk_rows: int, shard_rows: int, blosc: Any, chunk_crc: bool = False) -> bytes:
    """A ``sharding_indexed`` shard object holding rows ``data`` (from the shard's first row).

    Inner chunks are written back to back in chunk order (the layout
    :func:`is_contiguous` checks), an edge chunk whole, padded with zeros (the
    fill value).  ``chunk_crc``: each inner chunk ends with the crc32c
    (little-endian) of its encoded bytes.  The index (at the end) ends with
    its own crc32c.
    """
    n_chunks = shard_rows // chunk_rows
    index = np.full((n_chunks, 2), EMPTY, dtype="<u8")
    parts: list[bytes] = []
    offset = 0
    for c in range(-(-len(data) // chunk_rows)):
        block = data[c * chunk_rows : (c + 1) * chunk_rows]
        if len(block) < chunk_rows:
            pad = np.zeros((chunk_rows, *data.shape[1:]), dtype=data.dtype)
            pad[: len(block)] = block
            block = pad
        enc = bytes(blosc.encode(np.ascontiguousarray(block))) if blosc is not None else np.ascontiguousarray(block).tobytes()
        if chunk_crc:
            enc += struct.pack("<I", crc32c(enc))
        index[c] = (offset, len(enc))
        parts.append(enc)
        offset += len(enc)
    index_bytes = index.reshape((n_chunks,) + (1,) * (data.ndim - 1) + (2,)).tobytes()
    parts.append(index_bytes)
    parts.append(struct.pack("<I", crc32c(index_bytes)))
    return b"".join(parts)
