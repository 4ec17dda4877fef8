"""Views of one entry of a corpus: :class:`Entry` (name, rows, keys) and :class:`LazyArray` (one key of it).

Both are thin handles on a :class:`zarrmux.corpus.Corpus` and a position:
they hold no data, read nothing until sliced, and read through the corpus's
public API (:meth:`~zarrmux.corpus.Corpus.read_rows`,
:meth:`~zarrmux.corpus.Corpus.key_reader`), so every read shares the
corpus's readers, caches and checks.  An entry pickles as its corpus (path
and options) and position.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the corpus makes entries: at run time it imports this module, not the reverse
    from .corpus import Corpus

__all__ = ["Entry", "LazyArray"]


class Entry:
    """One entry of a :class:`Corpus`: ``name``, ``rows``, ``keys()`` and ``entry[key]``."""

    __slots__ = ("corpus", "position")

    def __init__(self, corpus: Corpus, position: int) -> None:
        self.corpus = corpus
        self.position = int(position)

    @property
    def name(self) -> str:
        return self.corpus.entry_name(self.position)

    @property
    def source(self) -> str | None:
        """The file(s) this entry was converted from (absolute paths, ``;``-separated); None if not recorded."""
        return self.corpus.entry_source(self.position)

    @property
    def rows(self) -> int:
        return int(self.corpus.rows[self.position])

    def keys(self) -> tuple[str, ...]:
        return self.corpus.keys

    def __getitem__(self, key: str) -> "LazyArray":
        return LazyArray(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.corpus.keys

    def __len__(self) -> int:
        return self.rows

    def __reduce__(self) -> tuple[Any, ...]:
        return (_entry_at, (self.corpus, self.position))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and other.corpus is self.corpus and other.position == self.position

    def __hash__(self) -> int:
        return hash((id(self.corpus), self.position))

    def __repr__(self) -> str:
        return f"<zarrmux.Entry {self.name!r}: {self.rows} rows, keys {list(self.keys())}>"


def _entry_at(corpus: Corpus, position: int) -> Entry:
    return Entry(corpus, position)


class LazyArray:
    """One key of one entry: ``shape``, ``dtype``, ``len()`` and numpy-style slicing.

    Slicing reads only the rows it needs (through the corpus's cache) and
    returns numpy.  The leading index may be an int or a slice (any step);
    further indices apply to the rows read.
    """

    __slots__ = ("entry", "key", "_reader")

    def __init__(self, entry: Entry, key: str) -> None:
        self._reader = entry.corpus.key_reader(key, entry.position)  # UnknownKeyError first
        self.entry = entry
        self.key = key

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.entry.rows, *self._reader.trailing)

    @property
    def dtype(self) -> np.dtype:
        return self._reader.dtype

    @property
    def ndim(self) -> int:
        return 1 + len(self._reader.trailing)

    def __len__(self) -> int:
        return self.entry.rows

    def _rows(self, start: int, stop: int) -> np.ndarray:
        return self.entry.corpus.read_rows(self.entry.position, self.key, start, stop)

    def __getitem__(self, item: Any) -> np.ndarray:
        rest: tuple[Any, ...] = ()
        if isinstance(item, tuple):
            if not item:
                item = slice(None)
            else:
                if item[0] is Ellipsis:
                    return self[:][item]
                item, rest = item[0], item[1:]
        rows = self.entry.rows
        if isinstance(item, slice):
            start, stop, step = item.indices(rows)
            if step == 1:
                out = self._rows(start, max(start, stop))
            else:
                idx = range(start, stop, step)
                if len(idx) == 0:
                    out = self._rows(0, 0)
                else:
                    lo, hi = min(idx[0], idx[-1]), max(idx[0], idx[-1]) + 1
                    out = self._rows(lo, hi)[idx[0] - lo :: step] if step > 0 else self._rows(lo, hi)[idx[0] - lo :: step]
        elif item is Ellipsis:
            out = self._rows(0, rows)
            return out[(Ellipsis, *rest)] if rest else out
        else:
            try:
                i = operator.index(item)
            except TypeError:
                raise TypeError(f"cannot index {self!r} with {type(item).__name__}; use an int or a slice") from None
            if not -rows <= i < rows:
                raise IndexError(f"row {i} out of range for key {self.key!r} of entry {self.entry.name!r} ({rows} rows)")
            i %= rows
            return self._rows(i, i + 1)[0][rest] if rest else self._rows(i, i + 1)[0]
        return out[(slice(None), *rest)] if rest else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self[:]
        return a.astype(dtype) if dtype is not None else a

    def __repr__(self) -> str:
        return f"<zarrmux.LazyArray {self.entry.name!r}[{self.key!r}] shape={self.shape} dtype={self.dtype}>"
