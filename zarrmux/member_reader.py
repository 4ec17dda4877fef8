"""Reading a source member's rows: :class:`MemberReader`, :func:`iter_blocks`, :func:`source_checksum`.

Row blocks are read incrementally with ``readinto`` (NPY files through a
plain file, NPZ members through :meth:`zipfile.ZipFile.open`, which streams
both stored and deflated members), so memory stays bounded by the block
size.  A member is read to its end so that zipfile checks its CRC.

Values, not bytes
-----------------
Any byte order is read: a corpus stores every key little-endian
(:func:`zarrmux.byte_order.store_dtype`), and row blocks of a big-endian source
are byte-swapped as they are read (:meth:`MemberReader.read_values`), so the
stored values are the source's values.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from .entry_checksum import EntryHasher
from .sources import Member, SourceEntry, SourceError

__all__ = ["MemberReader", "open_reader", "iter_blocks", "source_checksum"]


class MemberReader:
    """An open stream positioned at the data of one member."""

    def __init__(self, m: Member) -> None:
        self.m = m
        self._zf: zipfile.ZipFile | None = None
        try:
            if m.member is None:
                self.fp: IO[bytes] = open(m.path, "rb")
                self.fp.seek(m.data_offset)
            else:
                self._zf = zipfile.ZipFile(m.path)
                self.fp = self._zf.open(m.member)
                self.fp.read(m.data_offset)
        except (OSError, zipfile.BadZipFile, KeyError, zlib.error, RuntimeError, EOFError) as exc:
            self.close()
            raise SourceError(m.where, f"cannot open for reading: {exc}") from None
        self.swap = np.dtype(m.dtype) != np.dtype(m.store_dtype)

    def readinto(self, view: memoryview) -> None:
        want = len(view)
        got = 0
        try:
            while got < want:
                n = self.fp.readinto(view[got:])  # type: ignore[attr-defined]
                if not n:
                    break
                got += n
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise SourceError(self.m.where, f"corrupt data while reading key {self.m.key!r}: {exc}") from None
        if got < want:
            raise SourceError(self.m.where, f"truncated: key {self.m.key!r} ended {want - got} bytes early")

    def read_values(self, out: np.ndarray) -> None:
        """Fill C-contiguous ``out`` (dtype ``m.store_dtype``) with the next rows, as values.

        A big-endian source is byte-swapped in place after reading, so ``out``
        holds the source's values in the corpus's little-endian dtype.
        """
        self.readinto(out.data.cast("B"))  # .data: the array's memoryview
        if self.swap:
            out.byteswap(inplace=True)

    def finish(self) -> None:
        """Read to the end of the member so zipfile checks its CRC."""
        try:
            rest = self.fp.read(1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise SourceError(self.m.where, f"corrupt data (key {self.m.key!r}): {exc}") from None
        if rest and self.m.member is not None:
            raise SourceError(self.m.where, f"member has bytes after its array data (key {self.m.key!r})")

    def close(self) -> None:
        fp = getattr(self, "fp", None)
        if fp is not None:
            fp.close()
        if self._zf is not None:
            self._zf.close()

    def __enter__(self) -> "MemberReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def iter_blocks(m: Member, block_bytes: int = 8 << 20) -> Iterator[np.ndarray]:
    """Yield consecutive row blocks of member ``m`` (fresh arrays of about ``block_bytes``).

    Blocks hold the source's values in the corpus dtype ``m.store_dtype``
    (little-endian).  Reads incrementally; never holds more than one block.
    Raises :class:`SourceError` for truncated or corrupt data (CRC checked at the end).
    """
    rows_per = max(1, block_bytes // max(1, m.row_bytes))
    dt = np.dtype(m.store_dtype)
    with MemberReader(m) as r:
        done = 0
        while done < m.rows:
            n = min(rows_per, m.rows - done)
            block = np.empty((n, *m.shape[1:]), dtype=dt)
            r.read_values(block)
            yield block
            done += n
        r.finish()


def open_reader(m: Member) -> MemberReader:
    """An open :class:`MemberReader` for member ``m`` (use as a context manager)."""
    return MemberReader(m)


def source_checksum(entry: SourceEntry, block_bytes: int = 8 << 20) -> str:
    """The :mod:`zarrmux.entry_checksum` checksum of an entry's source data, streamed."""
    h = EntryHasher()
    for key in sorted(entry.members):
        m = entry.members[key]
        h.begin_key(key, np.dtype(m.store_dtype), m.shape)
        for block in iter_blocks(m, block_bytes):
            h.update(block)
    return h.hexdigest()
