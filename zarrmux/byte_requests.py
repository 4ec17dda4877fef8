"""What a byte reader is asked for: :class:`ByteRequest`, one read of one stored object.

Every byte reader (:class:`zarrmux.local_io.LocalIO`,
:class:`zarrmux.store_io.StoreIO`, :class:`zarrmux.obstore_io.ObstoreIO`;
:func:`zarrmux.byte_io.make_io` picks one) takes a batch of these in one
``read_many`` call and returns the bytes (or ``None`` for an absent object)
in the same order.  The type lives apart from the readers so that the
callers planning reads (:mod:`zarrmux.array_reader`, the window and chunk
readers, :mod:`zarrmux.index_checks`) and the readers share it without
importing one another.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ByteRequest"]


class ByteRequest(NamedTuple):
    """One read: ``kind`` is ``'range'`` (start, length), ``'suffix'`` (length) or ``'full'``."""

    key: str
    kind: str
    start: int = 0
    length: int = 0
