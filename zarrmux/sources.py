"""Sources of a conversion: what an entry is made of, and the error a bad source raises.

A *source* is an NPZ file, an NPY file, a directory or a glob pattern.  The
converter turns sources into :class:`SourceEntry` objects (a name, the files,
one :class:`Member` per key) and reads them with these modules:

* :mod:`zarrmux.source_discovery`: finding the files and grouping them into
  named entries (:func:`~zarrmux.source_discovery.discover`), by the naming
  rules of :mod:`zarrmux.entry_names`;
* :mod:`zarrmux.source_headers`: parsing and checking NPY headers and NPZ
  members without reading data (:func:`~zarrmux.source_headers.scan`);
* :mod:`zarrmux.member_reader`: streaming a member's rows, as values.

Every problem is a :class:`SourceError` naming the file (and member) at
fault.  Each entry's source path(s) are kept in the corpus index
(``index/source``, :attr:`SourceEntry.source`), its :func:`fingerprint` to
skip unchanged sources on a rerun.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .exceptions import ConversionError

__all__ = ["Member", "SourceEntry", "SourceError", "fingerprint"]


class SourceError(ConversionError):
    """A source cannot be converted; ``path`` names the file, ``problem`` the reason."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes
        return (type(self), (self.path, self.problem))


@dataclass(frozen=True)
class Member:
    """One array of an entry: where its bytes are and what they hold."""

    key: str
    path: str  #: the file (NPY, or the NPZ archive)
    member: str | None  #: zip member name for NPZ, ``None`` for NPY
    dtype: str  #: numpy dtype string
    shape: tuple[int, ...]
    fortran_order: bool = False
    data_offset: int = 0  #: byte offset of the data in the NPY file / member

    @property
    def rows(self) -> int:
        return int(self.shape[0])

    @property
    def store_dtype(self) -> str:
        """The dtype the corpus stores this member as (little-endian, :func:`zarrmux.layout.store_dtype`)."""
        return np.dtype(self.dtype).newbyteorder("<").str

    @property
    def row_bytes(self) -> int:
        return np.dtype(self.dtype).itemsize * math.prod(self.shape[1:])

    @property
    def nbytes(self) -> int:
        return self.rows * self.row_bytes

    @property
    def where(self) -> str:
        return f"{self.path}:{self.member}" if self.member else self.path


@dataclass(frozen=True)
class SourceEntry:
    """One entry to convert: a name and its members, keyed by key name."""

    name: str
    paths: tuple[str, ...]  #: the file(s) the entry comes from
    members: dict[str, Member] = field(hash=False)
    fingerprint: str = ""

    @property
    def source(self) -> str:
        """The source recorded in the index: the absolute path(s), ``;``-separated."""
        return ";".join(os.path.abspath(p) for p in self.paths)

    @property
    def rows(self) -> int:
        return next(iter(self.members.values())).rows if self.members else 0

    @property
    def nbytes(self) -> int:
        return sum(m.nbytes for m in self.members.values())

    @property
    def where(self) -> str:
        return ", ".join(self.paths)


def fingerprint(paths: Iterable[str]) -> str:
    """``"<size>:<mtime_ns>"`` of each file, ``,``-separated."""
    out = []
    for p in paths:
        st = os.stat(p)
        out.append(f"{st.st_size}:{st.st_mtime_ns}")
    return ",".join(out)
