"""How a corpus's rows are cut into inner chunks and shards: the default sizes, shard boundaries.

Inner chunks are small (about :data:`CHUNK_TARGET_BYTES` decoded), so a short
window decodes little; shards are large (about :data:`SHARD_TARGET_BYTES` of
the widest key), so a corpus is few objects.  Every key shares one
``shard_rows``, a multiple of each key's ``chunk_rows`` (the defaults are
powers of two), so a row range starting on a shard boundary (:func:`shard_ceil`) is whole
shard objects of every key: the units of :mod:`zarrmux.convert_units` start
there, and concurrent writers never share a shard.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CHUNK_TARGET_BYTES", "SHARD_TARGET_BYTES", "default_chunk_rows", "default_shard_rows", "shard_ceil"]

#: target decoded size of an inner chunk: small, so a 16-row window decodes little
CHUNK_TARGET_BYTES = 32 * 1024
#: target decoded size of a shard of the widest key: large, few objects
SHARD_TARGET_BYTES = 32 * 1024 * 1024


def _pow2_floor(x: float) -> int:
    x = max(1, int(x))
    return 1 << (x.bit_length() - 1)


def default_chunk_rows(row_bytes: int) -> int:
    """Rows per inner chunk: the power of two nearest below ``CHUNK_TARGET_BYTES``.

    Parameters
    ----------
    row_bytes : int > 0
        Decoded bytes of one row of the key.
    """
    return _pow2_floor(CHUNK_TARGET_BYTES / max(1, row_bytes))


def default_shard_rows(row_bytes: Iterable[int], chunk_rows: Iterable[int]) -> int:
    """Rows per shard, shared by every key: about ``SHARD_TARGET_BYTES`` of the widest key.

    A power of two that is a multiple of every key's ``chunk_rows``.
    """
    widest = max(row_bytes, default=1)
    rows = _pow2_floor(SHARD_TARGET_BYTES / max(1, widest))
    return max([rows, *chunk_rows])


def shard_ceil(row: int, shard_rows: int) -> int:
    """The first shard boundary at or after ``row``."""
    return -(-row // shard_rows) * shard_rows
