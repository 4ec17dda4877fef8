"""The entry checksum: ``sha256`` over an entry's keys, stored as ``index/checksum``.

The rule (part of the on-disk contract of :mod:`zarrmux.layout`): every key
in sorted key order, first a header of the key name, dtype string and shape,
then the C-order bytes of the data.  Dtype and bytes are taken in
little-endian byte order (:func:`zarrmux.byte_order.store_dtype`), so the
checksum covers values, dtype and shape whatever the byte order of a source.
The converter hashes rows as it writes them, ``verify`` hashes the stored
rows, and :func:`zarrmux.member_reader.source_checksum` hashes a source; all
go through :class:`EntryHasher`, so the rule lives only here.  This module
imports no zarr, so reading sources can use it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from .byte_order import store_dtype

__all__ = ["entry_hasher", "EntryHasher", "checksum_arrays"]


def entry_hasher() -> "EntryHasher":
    """A streaming checksum for one entry (feed keys in sorted order, rows in order)."""
    return EntryHasher()


class EntryHasher:
    """``sha256`` over (key, dtype, shape) headers and C-order data bytes.

    Call :meth:`begin_key` once per key in sorted key order, then
    :meth:`update` with consecutive row blocks of that key.
    """

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def begin_key(self, key: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        """Start key ``key``: its dtype (taken little-endian, :func:`store_dtype`) and whole shape."""
        self._h.update(f"{key}|{store_dtype(dtype).str}|{tuple(int(s) for s in shape)}\n".encode())

    def update(self, block: np.ndarray) -> None:
        """Hash the values of ``block`` (little-endian C-order bytes, whatever its byte order)."""
        block = np.asarray(block)
        le = store_dtype(block.dtype)
        if block.dtype != le:
            block = block.astype(le)
        self._h.update(np.ascontiguousarray(block).data.cast("B"))  # .data: the array's memoryview

    def hexdigest(self) -> str:
        return "sha256:" + self._h.hexdigest()


def checksum_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """The checksum of a whole in-memory entry (``{key: array}``)."""
    h = EntryHasher()
    for key in sorted(arrays):
        a = np.asarray(arrays[key])
        h.begin_key(key, a.dtype, a.shape)
        h.update(a)
    return h.hexdigest()
