"""How one array's row chunks are stored, read from its zarr metadata: :func:`stored_layout`.

:class:`zarrmux.array_reader.ArrayReader` reads the stored objects of the
arrays it understands itself, bypassing zarr-python.  Which arrays those
are, and how their chunks lie, is decided here once per array from its
metadata alone (no I/O): sharded v3 arrays whose inner chunks hold whole
rows (``'shard'`` mode), unsharded v3 arrays with the same codecs
(``'chunk'`` mode), and ``None`` for anything else (the reader falls back to
zarr-python slicing).  The codecs and the index format themselves are
:mod:`zarrmux.shard_format`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from . import shard_format as fmt

__all__ = ["StoredLayout", "stored_layout"]


@dataclasses.dataclass(frozen=True)
class StoredLayout:
    """The stored form of an array's row chunks ('shard' or 'chunk' mode).

    The shard fields are meaningful in ``'shard'`` mode only.
    """

    mode: str  #: 'shard' or 'chunk'
    chunk_rows: int  #: rows of a stored (inner) chunk
    codecs: fmt.InnerCodecs  #: how an inner chunk is stored
    prefix: str  #: the array's store path followed by '/', or '' at the root
    meta: Any  #: the array's ``ArrayV3Metadata`` (it encodes chunk keys)
    shard_rows: int = 0  #: rows of a shard
    chunks_per_shard: int = 0
    index_crc: bool = False  #: the shard index ends with a crc32c
    index_nbytes: int = 0  #: stored bytes of a shard index
    index_at_end: bool = False  #: the index follows the chunks (else it precedes them)


def stored_layout(array: Any, trailing: tuple[int, ...], dtype: np.dtype) -> StoredLayout | None:
    """How ``array``'s row chunks (rows with all ``trailing`` axes) are stored; ``None``: read it through zarr.

    Parameters
    ----------
    array : zarr.Array
    trailing : tuple of int
        The array's shape after its first axis.
    dtype : numpy.dtype
        The array's dtype.
    """
    from zarr.codecs import ShardingCodec
    from zarr.core.chunk_grids import RegularChunkGrid
    from zarr.core.metadata.v3 import ArrayV3Metadata

    meta = array.metadata
    if not isinstance(meta, ArrayV3Metadata) or not isinstance(meta.chunk_grid, RegularChunkGrid):
        return None
    if dtype.hasobject or dtype.itemsize == 0:
        return None
    outer = tuple(int(s) for s in meta.chunk_grid.chunk_shape)
    if outer[1:] != trailing:
        return None
    codecs = list(meta.codecs)
    base = array.store_path.path
    prefix = f"{base}/" if base else ""
    if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        sc = codecs[0]
        inner = tuple(int(s) for s in sc.chunk_shape)
        if inner[1:] != trailing or outer[0] % inner[0]:
            return None
        crc = fmt.index_crc(sc.index_codecs)
        info = fmt.inner_codecs(sc.codecs)
        if crc is None or info is None:
            return None
        per_shard = outer[0] // inner[0]
        return StoredLayout(
            "shard", inner[0], info, prefix, meta,
            shard_rows=outer[0],
            chunks_per_shard=per_shard,
            index_crc=crc,
            index_nbytes=fmt.index_nbytes(per_shard, crc),
            index_at_end=getattr(sc.index_location, "value", sc.index_location) == "end",
        )
    info = fmt.inner_codecs(codecs)
    if info is None:
        return None
    return StoredLayout("chunk", outer[0], info, prefix, meta)
