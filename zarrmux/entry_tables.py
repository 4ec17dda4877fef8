"""Opening a store into entry tables: its entries, and where each key's rows of each entry lie.

:func:`open_tables` turns an open root group into an :class:`EntryTables`,
the form :class:`zarrmux.corpus.Corpus` reads from whatever the store is:

* a **zarrmux corpus** (:mod:`zarrmux.layout`): one array per key holding
  every entry's rows, plus an index.  Opening reads a constant number of
  objects (root, key metadata, index) and never lists the store, so it works
  over HTTP.  The index is checked on open, vectorised and with no extra read
  unless something looks wrong (:func:`zarrmux.index_checks.check_index`);
  each key's entry rows must lie inside its array; and the keys the
  converter wrote whole are told which rows each shard must hold
  (:meth:`zarrmux.array_reader.ArrayReader.require`).
* **plain Zarr data** written by others (zarr-python, ``xarray.Dataset.to_zarr``):
  a group whose arrays share their leading axis is one entry
  (:func:`entry_arrays`); a group of such groups is a corpus of entries.
  Finding the arrays lists the store (or uses consolidated metadata).

Then ``keys=`` and ``entries=`` choose what is read.  Every failure is a
:class:`~zarrmux.exceptions.CorpusError` (an unknown key an
:class:`~zarrmux.exceptions.UnknownKeyError`) naming the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import index_checks, layout
from .array_reader import ArrayReader
from .corpus_arrays import open_parts
from .exceptions import CorpusError, UnknownKeyError

__all__ = ["EntryTables", "open_tables", "entry_arrays"]


@dataclass
class EntryTables:
    """Entries and keys of an opened store; reader ``rid[key][e]`` holds key ``key`` of entry ``e`` from row ``off[key][e]``."""

    names: list[str]  #: per entry
    rows: np.ndarray  #: per entry, read-only ``int64``
    keys: tuple[str, ...]  #: the keys read
    readers: list[ArrayReader]  #: every array read
    rid: dict[str, np.ndarray]  #: per key, per entry: its reader's position in ``readers``
    off: dict[str, np.ndarray]  #: per key, per entry: its first row in its reader's array
    stored_at: np.ndarray  #: per entry: its position in the whole store (its row of ``index/*``)
    sources: list[str] | None  #: per stored entry: the files it came from (zarrmux corpora)
    meta: layout.CorpusMeta | None  #: the metadata of a zarrmux corpus; ``None`` for plain Zarr data


def open_tables(
    root: Any, io: Any, target: Any, keys: tuple[str, ...] | None, entries: tuple[str, ...] | None
) -> EntryTables:
    """The entry tables of the store at ``root`` (opened from ``target``, named so in messages).

    ``io`` is the store's byte reader (:func:`zarrmux.byte_io.make_io`);
    ``keys`` and ``entries`` are what the caller asked for (``None``: every one).
    """
    try:
        is_zarrmux = layout.ATTR_KEY in root.attrs
    except Exception as exc:
        raise CorpusError(f"cannot read the attributes of {target!r}: {exc}") from exc
    tables = _zarrmux_tables(root, io, target, keys) if is_zarrmux else _plain_tables(root, io, target, keys)
    if entries is not None:
        _choose_entries(tables, target, entries)
    return tables


def _chosen_keys(target: Any, keys: tuple[str, ...] | None, available: Sequence[str]) -> tuple[str, ...]:
    if keys is None:
        return tuple(available)
    for k in keys:
        if k not in available:
            raise UnknownKeyError(f"key {k!r} is not in corpus {target!r}; available keys: {list(available)}")
    if not keys:
        raise CorpusError(f"keys=() selects no key of corpus {target!r}")
    return tuple(keys)


def _zarrmux_tables(root: Any, io: Any, target: Any, req_keys: tuple[str, ...] | None) -> EntryTables:
    try:
        meta = layout.read_meta(root)
    except CorpusError as exc:
        raise CorpusError(f"{target!r}: {exc}") from exc
    parts = open_parts(root, meta)  # every array there, agreeing with the metadata
    keys = _chosen_keys(target, req_keys, list(meta.keys))
    try:
        index = layout.read_index(root, meta.n_entries)
    except Exception as exc:
        raise CorpusError(f"cannot read the entry index of corpus {target!r}: {type(exc).__name__}: {exc}") from exc
    names = [str(x) for x in index["name"]]
    sources = [str(x) for x in index["source"]] if "source" in index else None
    starts = np.asarray(index["start"], dtype=np.int64)
    rows = np.asarray(index["rows"], dtype=np.int64)
    spans = index_checks.check_index(root, io, f"corpus {target!r}", meta, names, starts, rows)
    readers: list[ArrayReader] = []
    rid: dict[str, np.ndarray] = {}
    off: dict[str, np.ndarray] = {}
    required: dict[tuple[int, int], np.ndarray] = {}
    for k in keys:
        reader = ArrayReader(parts[k], k, io)
        if len(rows) and int((starts + rows).max()) > reader.shape[0]:
            i = int(np.argmax(starts + rows))
            raise CorpusError(
                f"corpus {target!r}: entry {names[i]!r} (rows {starts[i]}:{starts[i] + rows[i]}) lies beyond "
                f"the end of array {k!r} ({reader.shape[0]} rows)"
            )
        if index_checks.written_whole(meta, k, reader):
            geometry = (reader.shape[0], reader.shard_rows)
            if geometry not in required:
                required[geometry] = index_checks.required_rows(*spans, *geometry)
            reader.require(required[geometry])
        rid[k] = np.full(len(names), len(readers), dtype=np.int64)
        off[k] = starts
        readers.append(reader)
    return _tables(names, rows, keys, readers, rid, off, sources, meta)


def _plain_tables(root: Any, io: Any, target: Any, req_keys: tuple[str, ...] | None) -> EntryTables:
    try:
        own = entry_arrays(root)
        if own:
            base = str(target).rstrip("/").split("/")[-1] if isinstance(target, str) else "entry"
            if base.endswith(".zarr"):
                base = base[: -len(".zarr")]
            groups = [(base or "entry", own)]
        else:
            groups = []
            for name, g in sorted(root.groups(), key=lambda t: t[0]):
                arrs = entry_arrays(g)
                if arrs:
                    groups.append((name, arrs))
    except CorpusError:
        raise
    except Exception as exc:
        raise CorpusError(f"cannot list the arrays of {target!r}: {type(exc).__name__}: {exc}") from exc
    if not groups:
        raise CorpusError(
            f"{target!r} is not a corpus: it holds no zarrmux index, no arrays and no groups of arrays"
        )
    common = [k for k in groups[0][1] if all(k in arrs for _, arrs in groups)]
    available = sorted(set().union(*[arrs.keys() for _, arrs in groups]))
    if req_keys is None:
        keys = tuple(common)
        if not keys:
            raise CorpusError(f"the entries of {target!r} share no key; keys seen: {available}")
    else:
        for k in req_keys:
            missing = [name for name, arrs in groups if k not in arrs]
            if missing:
                raise UnknownKeyError(
                    f"key {k!r} is not in entry {missing[0]!r} of corpus {target!r}; "
                    f"keys common to every entry: {common}"
                )
        keys = _chosen_keys(target, req_keys, common)
    readers: list[ArrayReader] = []
    rid = {k: np.zeros(len(groups), dtype=np.int64) for k in keys}
    off = {k: np.zeros(len(groups), dtype=np.int64) for k in keys}
    rows = np.zeros(len(groups), dtype=np.int64)
    for i, (_name, arrs) in enumerate(groups):
        for k in keys:
            arr = arrs[k]
            reader = ArrayReader(arr, f"{arr.path}", io)
            rid[k][i] = len(readers)
            readers.append(reader)
        rows[i] = arrs[keys[0]].shape[0]
    return _tables([n for n, _ in groups], rows, keys, readers, rid, off, None, None)


def _tables(
    names: list[str],
    rows: np.ndarray,
    keys: tuple[str, ...],
    readers: list[ArrayReader],
    rid: dict[str, np.ndarray],
    off: dict[str, np.ndarray],
    sources: list[str] | None,
    meta: layout.CorpusMeta | None,
) -> EntryTables:
    rows = np.asarray(rows, dtype=np.int64)
    rows.flags.writeable = False
    stored_at = np.arange(len(names), dtype=np.int64)
    return EntryTables(names, rows, keys, readers, rid, off, stored_at, sources, meta)


def _choose_entries(tables: EntryTables, target: Any, entries: tuple[str, ...]) -> None:
    """Narrow ``tables`` to ``entries=`` (names, in that order), each in the store once."""
    pos = {nm: i for i, nm in enumerate(tables.names)}
    unknown = [nm for nm in entries if nm not in pos]
    if unknown:
        raise CorpusError(
            f"entries=: {len(unknown)} name(s) not in corpus {target!r}, first {unknown[0]!r}"
            + ("" if len(unknown) == 1 else f", then {unknown[1:4]!r}")
        )
    if len(set(entries)) != len(entries):
        dup = next(nm for i, nm in enumerate(entries) if nm in entries[:i])
        raise CorpusError(f"entries=: entry {dup!r} is listed twice")
    at = np.array([pos[nm] for nm in entries], dtype=np.int64)
    tables.names = list(entries)
    tables.rows = tables.rows[at]
    tables.rows.flags.writeable = False
    tables.rid = {k: v[at] for k, v in tables.rid.items()}
    tables.off = {k: v[at] for k, v in tables.off.items()}
    tables.stored_at = at


def _dim0(arr: Any) -> str | None:
    names = getattr(arr.metadata, "dimension_names", None)
    if names:
        return names[0]
    dims = arr.attrs.get("_ARRAY_DIMENSIONS") if hasattr(arr, "attrs") else None
    if isinstance(dims, (list, tuple)) and dims:
        return str(dims[0])
    return None


def entry_arrays(group: Any) -> dict[str, Any]:
    """The arrays of ``group`` that share its leading axis (by dimension name and length).

    The most common (leading dimension name, length) pair wins; ties go to the
    longer axis.  0-d arrays are ignored.
    """
    arrs = {name: a for name, a in group.arrays() if len(a.shape) >= 1}
    if not arrs:
        return {}
    sig = {name: (_dim0(a), int(a.shape[0])) for name, a in arrs.items()}
    counts = Counter(sig.values())
    best = max(counts, key=lambda s: (counts[s], s[1]))
    return {name: arrs[name] for name in sorted(arrs) if sig[name] == best}
