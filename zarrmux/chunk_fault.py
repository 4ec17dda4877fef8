"""What a reader raises for bad stored data: :class:`ChunkFault`, and the words for a missing object.

Kept apart from :mod:`zarrmux.array_reader` because every read path raises
or catches it (the readers, :mod:`zarrmux.chunk_loader`,
:mod:`zarrmux.exact_windows`, :mod:`zarrmux.chunk_arena`) and the corpus
turns it into a :class:`~zarrmux.exceptions.DataError` naming the entry and
key (:mod:`zarrmux.read_faults`).  A fault pickles without its reader, so it
crosses Dask and process boundaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ChunkFault", "MISSING"]

#: what a missing object means for an array of a corpus the converter wrote
MISSING = (
    "the object does not exist in the store (deleted, never uploaded, or the server answered 404 Not Found); "
    "a corpus written by zarrmux.convert stores every chunk of its entries' rows, so this is never the fill value"
)


class ChunkFault(Exception):
    """Corrupt, missing or unreadable stored data in one object of one array.

    Attributes
    ----------
    reader : zarrmux.array_reader.ArrayReader or None
        The array (``None`` once the fault has been pickled: a reader holds
        locks and mappings, so it does not travel with the fault).
    chunks : list of int
        The row chunks that could not be produced.
    where : str
        The stored object (store key, and inner chunk when sharded).
    missing : bool
        The object or inner chunk does not exist (deleted, never uploaded,
        answered 404), in an array whose every chunk of entry rows is stored.
    """

    def __init__(self, reader: Any, chunks: Sequence[int], where: str, message: str, missing: bool = False) -> None:
        super().__init__(f"{where}: {message}")
        self.reader = reader
        self.chunks = list(chunks)
        self.where = where
        self.message = message
        self.missing = missing

    def __reduce__(self) -> tuple[Any, ...]:
        # Dask pickles an exception's __cause__ chain (tblib): without the reader, a fault pickles
        return _chunk_fault, (self.chunks, self.where, self.message, self.missing)


def _chunk_fault(chunks: list[int], where: str, message: str, missing: bool) -> ChunkFault:
    return ChunkFault(None, chunks, where, message, missing)
