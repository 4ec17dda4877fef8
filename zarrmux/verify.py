"""Inspect (:func:`info`) and check (:func:`verify`) a zarrmux corpus.

Both give a clear :class:`~zarrmux.exceptions.CorpusError` (exit code 4 on the
command line) naming the file for a store that is not a corpus, metadata
that cannot be read (bad JSON in a ``zarr.json``) or a corpus whose creation
was interrupted; everything :func:`verify` finds wrong in the data (corrupt
chunks, a damaged index, an array's ``zarr.json`` whose data type or shape
was changed, sources that differ) is a :class:`Mismatch` (exit code 1).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import zarr

from . import layout
from .corpus_arrays import array_disagreement, array_dtype, open_parts
from .entry_checksum import EntryHasher
from .exceptions import CorpusError
from .key_codecs import AUTO, DEFAULT_LEVEL
from .member_reader import source_checksum
from .source_discovery import discover
from .source_headers import scan
from .sources import SourceError

__all__ = ["info", "verify", "Mismatch", "VerifyReport", "open_store"]


#: the access modes of :func:`zarr.open_group`
OpenMode = Literal["r", "r+", "a", "w", "w-"]


def open_store(store: Any, mode: OpenMode = "r") -> zarr.Group:
    """The root group of the corpus at ``store``; :class:`CorpusError` if there is none."""
    path = os.fspath(store) if isinstance(store, (str, os.PathLike)) else store
    if isinstance(path, str) and "://" not in path and not os.path.isdir(path):
        import glob

        hint = ""
        if glob.glob(glob.escape(os.path.realpath(path).rstrip(os.sep)) + ".zarrmux-new-*"):
            hint = "; a convert was killed while creating it: rerun the convert command"
        raise CorpusError(f"{path}: no such corpus (not a directory){hint}")
    try:
        root = zarr.open_group(path, mode=mode)
    except Exception as exc:  # noqa: BLE001 - zarr raises several types
        doc = f"{str(path).rstrip('/')}/zarr.json" if isinstance(path, str) else "its root zarr.json"
        raise CorpusError(f"{path}: not a zarrmux corpus (reading {doc}: {type(exc).__name__}: {exc})") from None
    layout.read_meta(root)
    return root


def _index_error(arrays: dict[str, Any], n: int, exc: Exception) -> list[str]:
    """Which index arrays cannot be read (each named with the failure), after ``read_index`` failed."""
    out = []
    for f in layout.INDEX_FIELDS:
        try:
            np.asarray(arrays[f"{layout.INDEX_GROUP}/{f}"][:n])
        except Exception as e:  # noqa: BLE001 - codec errors of corrupt chunks vary
            out.append(f"{layout.INDEX_GROUP}/{f}: cannot be read (chunk {layout.INDEX_GROUP}/{f}/c/...): {type(e).__name__}: {e}")
    return out or [f"{layout.INDEX_GROUP}: cannot be read: {type(exc).__name__}: {exc}"]


def _read_index(root: zarr.Group, meta: layout.CorpusMeta, arrays: dict[str, Any]) -> tuple[dict[str, np.ndarray] | None, list[str]]:
    """``(index, problems)``: the committed index, or ``None`` and what is wrong with it."""
    n = meta.n_entries
    try:
        idx = layout.read_index(root, n)
    except Exception as exc:  # noqa: BLE001 - a corrupt index chunk raises many types
        return None, _index_error(arrays, n, exc)
    problems = []
    for f, values in idx.items():
        if len(values) != n:
            problems.append(f"{layout.INDEX_GROUP}/{f}: holds {len(values)} values, the corpus has {n} entries")
    for f in ("start", "rows"):
        if not problems and idx[f].dtype.kind not in "iu":
            problems.append(f"{layout.INDEX_GROUP}/{f}: has data type {idx[f].dtype}, not integers")
    return (None if problems else idx), problems


def info(store: Any, *, entries: bool = False) -> dict[str, Any]:
    """A summary of the corpus: entries, rows, keys (dtype, shape, chunking, codec), bytes, ratios.

    With ``entries=True`` it also lists every entry, in index order, under
    ``"entry_list"``: ``{"name", "rows", "start", "source"}`` each, where
    ``source`` is the file(s) the entry was converted from (absolute paths,
    ``;``-separated; ``None`` when the index records none).

    ``stored_bytes`` counts every object under each array (data and index);
    ``ratio`` is decoded entry bytes / stored data bytes.  Each key has its
    ``codec`` (``'lz4'``, ``'zstd'`` or ``'none'``), ``level`` (``None`` when
    uncompressed) and ``lz4_ratio``: the blosc-lz4 ratio (raw / compressed)
    measured on a sample of the sources when ``codec='auto'`` chose the
    codec (``None`` when a codec was forced).  The top-level ``codec`` is the
    corpus codec: one codec for every key, or ``'auto'`` (chosen per key:
    uncompressed when lz4 saved less than
    :data:`zarrmux.key_codecs.AUTO_MIN_SAVING` of the bytes); ``codecs`` maps
    each key to its codec.
    """
    root = open_store(store)
    meta = layout.read_meta(root)
    arrays = open_parts(root, meta)
    idx, problems = _read_index(root, meta, arrays)
    if idx is None:
        raise CorpusError(f"{store}: the index is damaged ({'; '.join(problems)}); run zarrmux verify")
    rows = int(np.sum(idx["rows"])) if meta.n_entries else 0
    keys: dict[str, Any] = {}
    data_stored = decoded = 0
    for k, spec in meta.keys.items():
        arr = arrays[k]
        stored = int(arr.nbytes_stored())
        dec = rows * spec.row_bytes
        keys[k] = {
            "dtype": str(np.dtype(spec.dtype)),
            "trailing_shape": list(spec.trailing_shape),
            "shape": list(arr.shape),
            "chunk_rows": spec.chunk_rows,
            "chunk_bytes": spec.chunk_rows * spec.row_bytes,
            "shard_rows": meta.shard_rows,
            "shard_bytes": meta.shard_rows * spec.row_bytes,
            "decoded_bytes": dec,
            "stored_bytes": stored,
            "ratio": round(dec / stored, 3) if stored else None,
            "codec": meta.key_codec(k),
            "level": meta.key_level(k),
            "lz4_ratio": round(spec.lz4_ratio, 3) if spec.lz4_ratio is not None else None,
        }
        data_stored += stored
        decoded += dec
    index_stored = sum(int(arrays[f"{layout.INDEX_GROUP}/{f}"].nbytes_stored()) for f in layout.INDEX_FIELDS)
    return {
        "store": str(store),
        "format": meta.format,
        "entries": meta.n_entries,
        "rows": rows,
        "rows_allocated": meta.rows_allocated,
        "shard_rows": meta.shard_rows,
        "codec": meta.codec,
        "level": _corpus_level(meta),
        "codecs": {k: v["codec"] for k, v in keys.items()},
        "keys": keys,
        "decoded_bytes": decoded,
        "stored_bytes": data_stored + index_stored,
        "index_bytes": index_stored,
        "ratio": round(decoded / data_stored, 3) if data_stored else None,
    } | ({"entry_list": _entry_list(idx)} if entries else {})


def _entry_list(idx: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Every committed entry: name, rows, start row and source (``None`` if not recorded)."""
    return [
        {"name": str(n), "rows": int(r), "start": int(st), "source": str(src) or None}
        for n, r, st, src in zip(idx["name"], idx["rows"], idx["start"], idx["source"])
    ]


def _corpus_level(meta: layout.CorpusMeta) -> int | None:
    """The level of the corpus codec; for ``'auto'``, that of its compressed keys (``None`` if none is)."""
    if meta.codec != AUTO:
        return meta.level if meta.level is not None else DEFAULT_LEVEL.get(meta.codec)
    return next((lv for lv in (meta.key_level(k) for k in meta.keys) if lv is not None), None)


@dataclass(frozen=True)
class Mismatch:
    """One problem found by :func:`verify`."""

    entry: str
    problem: str

    def __str__(self) -> str:
        return f"{self.entry}: {self.problem}"


def _stored_checksum(arrays: dict[str, Any], meta: layout.CorpusMeta, start: int, rows: int) -> str:
    """Checksum of an entry's stored rows (values, read a shard at a time).

    Dtype and trailing shape are the stored array's own (its ``zarr.json``),
    so an array whose metadata was changed does not match the checksum
    recorded at conversion.
    """
    h = EntryHasher()
    for k in sorted(meta.keys):
        arr = arrays[k]
        try:
            dt = array_dtype(arr)
        except Exception as exc:  # noqa: BLE001
            raise _ReadError(f"key {k!r}: unknown data type in {k}/zarr.json ({exc})") from None
        h.begin_key(k, dt, (rows, *arr.shape[1:]))
        row, end = start, start + rows
        while row < end:
            stop = min(end, row - row % meta.shard_rows + meta.shard_rows)
            try:
                block = np.asarray(arr[row:stop])
            except Exception as exc:  # noqa: BLE001 - codec errors of corrupt chunks vary
                shard = row // meta.shard_rows
                raise _ReadError(f"key {k!r}: cannot decode rows [{row}, {stop}) (shard {k}/c/{shard}/...): {type(exc).__name__}: {exc}") from None
            h.update(block)
            row = stop
    return h.hexdigest()


class _ReadError(Exception):
    pass


class VerifyReport(list):  # type: list[Mismatch]
    """What :func:`verify` returns: the list of :class:`Mismatch` (empty: all good), with counts.

    It is a plain list of mismatches (``verify(...) == []`` holds for a good
    corpus) that also says what was checked.
    """

    #: entries whose stored data was checked against its checksum
    entries: int = 0
    #: rows of those entries
    rows: int = 0
    #: source entries compared with the corpus (``sources=``; 0 without)
    sources: int = 0

    def summary(self, store: Any) -> str:
        """One line: ``STORE: ok, 3 entries checked (1,234 rows)[, 3 sources compared]`` or the mismatch count."""
        checked = f"{self.entries} entries checked ({self.rows:,} rows)"
        if self.sources:
            checked += f", {self.sources} source entries compared"
        if not self:
            return f"{store}: ok, {checked}"
        return f"{store}: {len(self)} mismatch(es); {checked}"


def verify(
    store: Any,
    sources: Sequence[Any] | None = None,
    *,
    keys: Sequence[str] | None = None,
    group: str = "suffix",
    names: str = "strict",
) -> VerifyReport:
    """Check a corpus; returns every mismatch found (empty: all good) as a :class:`VerifyReport`.

    Without ``sources``: the index is consistent (names unique, row ranges
    inside the arrays and not overlapping) and every entry's stored data
    decodes and has the checksum recorded at conversion.  With ``sources``
    (as for :func:`zarrmux.convert`, with the same ``group`` and ``names``
    rules): additionally, every source entry is in the corpus and its data's
    checksum equals the stored checksum.  The report's ``entries``,
    ``rows`` and ``sources`` say how much was checked.
    """
    root = open_store(store)
    meta = layout.read_meta(root)
    arrays = open_parts(root, meta, check=False)
    out = VerifyReport()
    for k in meta.keys:
        problem = array_disagreement(arrays[k], meta, k)
        if problem:
            out.append(Mismatch(f"{k}/zarr.json", problem))
    idx, problems = _read_index(root, meta, arrays)
    if idx is None:
        out.extend(Mismatch(f"{layout.INDEX_GROUP}", p) for p in problems)
        return out
    shapes = {k: arrays[k].shape[0] for k in meta.keys}
    entry_names = [str(n) for n in idx["name"]]
    seen: dict[str, int] = {}
    spans = []
    for i, name in enumerate(entry_names):
        if name in seen:
            out.append(Mismatch(name, f"duplicate name (index rows {seen[name]} and {i})"))
        seen[name] = i
        start, rows = int(idx["start"][i]), int(idx["rows"][i])
        for k in meta.keys:
            if start < 0 or rows <= 0 or start + rows > shapes[k]:
                out.append(Mismatch(name, f"rows [{start}, {start + rows}) outside key {k!r} of {shapes[k]} rows"))
        spans.append((start, start + rows, name))
    spans.sort()
    for (s0, e0, n0), (s1, e1, n1) in zip(spans, spans[1:]):
        if s1 < e0:
            out.append(Mismatch(n1, f"rows [{s1}, {e1}) overlap entry {n0!r} [{s0}, {e0})"))
    if sources is not None:
        grouped, _ = discover(sources, group=group, names=names)
        src_entries, _ = scan(grouped, keys=keys if keys is not None else list(meta.keys), on_error="raise")
        out.sources = len(src_entries)
        by_source = {str(src): entry_names[i] for i, src in enumerate(idx["source"]) if str(src)}
        for e in src_entries:
            if e.name not in seen:
                other = by_source.get(e.source)
                hint = (
                    f" (the corpus holds this source as entry {other!r}: pass the --names / names= rule it was converted with)"
                    if other is not None else ""
                )
                out.append(Mismatch(e.name, f"in the sources ({e.where}) but not in the corpus{hint}"))
                continue
            try:
                got = source_checksum(e)
            except SourceError as err:
                out.append(Mismatch(e.name, f"source unreadable: {err}"))
                continue
            want = str(idx["checksum"][seen[e.name]])
            if got != want:
                out.append(Mismatch(e.name, f"source {e.where} differs from the converted data (checksum {got[:20]}... != {want[:20]}...)"))
    for i, name in enumerate(entry_names):
        start, rows = int(idx["start"][i]), int(idx["rows"][i])
        if any(m.entry == name and "outside" in m.problem for m in out):
            continue
        out.entries += 1
        out.rows += rows
        try:
            got = _stored_checksum(arrays, meta, start, rows)
        except _ReadError as exc:
            out.append(Mismatch(name, f"stored data corrupt: {exc}"))
            continue
        want = str(idx["checksum"][i])
        if got != want:
            out.append(Mismatch(name, f"stored data does not match its checksum (rows [{start}, {start + rows}); {got[:20]}... != {want[:20]}...)"))
    return out
