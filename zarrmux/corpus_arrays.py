"""Opening the arrays of a zarrmux corpus, checked against its metadata: :func:`open_parts`.

A reader first reads the corpus metadata (:func:`zarrmux.layout.read_meta`),
then opens every array it names with :func:`open_parts`, which turns what
zarr raises for a missing or unreadable ``zarr.json`` into a
:class:`~zarrmux.exceptions.CorpusError` naming the document, and refuses an
array whose data type or row shape disagrees with the metadata
(:func:`array_disagreement`).  A store whose creation was interrupted (its
root attributes written, an array not) is an :class:`IncompleteCorpusError`,
which the converter recognises to recreate the store.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from .byte_order import store_dtype
from .exceptions import CorpusError
from .layout import INDEX_FIELDS, INDEX_GROUP, CorpusMeta, read_meta, store_name

__all__ = ["open_parts", "array_dtype", "array_disagreement", "IncompleteCorpusError"]


class IncompleteCorpusError(CorpusError):
    """A store with a zarrmux root whose creation was interrupted (an array or the index is missing)."""

    def __init__(self, message: str, n_entries: int) -> None:
        super().__init__(message)
        self.n_entries = n_entries

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.n_entries))


def open_parts(root: zarr.Group, meta: CorpusMeta | None = None, *, check: bool = True) -> dict[str, zarr.Array]:
    """Every array of the corpus (``{key: array}`` and ``{"index/<field>": array}``), checked.

    Raises a clear :class:`CorpusError` instead of zarr's ``KeyError`` or a
    JSON traceback: :class:`IncompleteCorpusError` when an array is missing
    (an interrupted creation: the store has no committed entries, rerun the
    conversion), :class:`CorpusError` naming the ``zarr.json`` that cannot be
    read, or an array whose dtype or trailing shape disagrees with the corpus
    metadata (``check=False`` leaves that comparison to the caller, e.g.
    :func:`zarrmux.verify.verify`, which reports it as a mismatch).  Readers
    should call this right after :func:`read_meta`.
    """
    if meta is None:
        meta = read_meta(root)
    where = store_name(root)
    out: dict[str, zarr.Array] = {}
    paths = [*meta.keys, *(f"{INDEX_GROUP}/{f}" for f in INDEX_FIELDS)]
    for path in paths:
        try:
            arr = root[path]
        except KeyError:
            hint = (
                "its creation was interrupted; rerun the convert command to create it"
                if meta.n_entries == 0 else "the store is damaged (run zarrmux verify)"
            )
            raise IncompleteCorpusError(
                f"{where}: incomplete zarrmux corpus: array {path!r} is missing ({path}/zarr.json); {hint}",
                meta.n_entries,
            ) from None
        except Exception as exc:  # noqa: BLE001 - zarr raises JSON, value and type errors here
            raise CorpusError(
                f"{where}/{path}/zarr.json: cannot read the array metadata ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(arr, zarr.Array):
            raise CorpusError(f"{where}/{path}/zarr.json: expected an array, found a group")
        out[path] = arr
    if check:
        for k in meta.keys:
            problem = array_disagreement(out[k], meta, k)
            if problem:
                raise CorpusError(f"{where}/{k}/zarr.json: {problem}")
    return out


def array_dtype(arr: zarr.Array) -> np.dtype:
    """The numpy dtype of a zarr array (zarr 3 data types, or numpy ones)."""
    dt = arr.dtype
    return np.dtype(dt.to_native_dtype() if hasattr(dt, "to_native_dtype") else dt)


def array_disagreement(arr: zarr.Array, meta: CorpusMeta, key: str) -> str | None:
    """Why the array of ``key`` disagrees with the corpus metadata (dtype, trailing shape), or ``None``."""
    spec = meta.keys[key]
    try:
        dt = array_dtype(arr)
    except Exception as exc:  # noqa: BLE001 - an unknown data type
        return f"the array's data type cannot be read ({type(exc).__name__}: {exc})"
    if store_dtype(dt) != store_dtype(spec.dtype):
        return f"the array's data type is {dt}, the corpus metadata says {np.dtype(spec.dtype)} (the array metadata was changed)"
    if tuple(arr.shape[1:]) != tuple(spec.trailing_shape):
        return (
            f"the array's shape {tuple(arr.shape)} disagrees with the corpus metadata "
            f"(rows, {', '.join(map(str, spec.trailing_shape))})"
        )
    return None
