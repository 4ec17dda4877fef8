"""The on-disk layout of a zarrmux corpus: one Zarr v3 group, a few arrays.

This module is the contract between the writer (:mod:`zarrmux.conversion`) and
the readers (:mod:`zarrmux.corpus`): the paths, attributes and index arrays
of a corpus, its metadata documents, creating one and reading its index.
Parts of the contract with a module of their own: the entry checksum
(:mod:`zarrmux.entry_checksum`), the little-endian storage rule
(:mod:`zarrmux.byte_order`), and opening the arrays checked against the
metadata (:mod:`zarrmux.corpus_arrays`).

Layout
------
::

    corpus.zarr/
      zarr.json            root group; attributes["zarrmux"] = CorpusMeta
      X/                   one array per key, all entries' rows concatenated
      Y/                   along axis 0 ("row"), sharded, blosc-compressed or not (per key),
                           a crc32c per inner chunk
      index/               the entry index, one 1-D array per field, dim "entry"
        name  start  rows  source  checksum  fingerprint

* Every key is one array of shape ``(rows_total, *trailing_shape)`` with
  ``dimension_names = ("row", "<key>_1", ...)``.  An entry is the row range
  ``[start, start + rows)`` of every key.  Opening a corpus reads a constant
  number of objects (root, one metadata document and one chunk per array),
  and stored objects grow with bytes (shards), not with entries.
* Entries are written in *units*: runs of consecutive entries whose region
  starts on a shard boundary, so concurrent writers never share a shard.
  Rows between units are never written (they hold the fill value and take no
  storage) and belong to no entry.
* ``index/*`` arrays hold at least ``n_entries`` elements; only the first
  ``n_entries`` are valid.  Entry position ``i`` is index row ``i``.
* ``checksum`` is ``"sha256:<hex>"`` over every key in sorted key order: the
  key name, dtype string and shape, then the C-order bytes of the data
  (see :mod:`zarrmux.entry_checksum`).  Dtype and bytes are taken in little-endian
  byte order (:func:`zarrmux.byte_order.store_dtype`), so the checksum covers *values*, dtype
  and shape whatever the byte order of a source; for the little-endian data
  every corpus holds this is the rule corpora were always written with.
  ``verify`` hashes the stored rows with the dtype and shape of the stored
  array's own ``zarr.json``, so a changed ``data_type`` or shape fails it.
* Stored data is always little-endian: a key's dtype is the source dtype in
  little-endian byte order (a big-endian ``'>f4'`` source is stored as
  ``'<f4'`` values).  ``fingerprint`` is ``"<size>:<mtime_ns>"`` of
  the source file(s), used to skip unchanged sources on a rerun.

Codecs
------
Inner chunks are ``bytes`` (little-endian), then blosc or nothing, then a
``crc32c``.  Each key has its own codec, recorded in :attr:`KeySpec.codec`; a
key without one (metadata that records no per-key codec) uses
:attr:`CorpusMeta.codec`.  The codecs, their chains and how ``codec='auto'``
chooses: :mod:`zarrmux.key_codecs`.  Chunk and shard sizes:
:mod:`zarrmux.chunking`.

Commit protocol
---------------
Data first, then the index rows, then the root attributes with the new
``n_entries``: the commit point (:mod:`zarrmux.index_commit`).  Each
metadata document is replaced atomically by the store (zarr's
``LocalStore`` writes a temporary file and renames it; object stores replace
whole objects), so a writer killed at any moment leaves every entry either
committed (complete, indexed) or absent.

Creation
--------
A new local corpus is created complete (root, every array, the index) in a
sibling directory ``<dest>.zarrmux-new-<pid>`` and renamed into place, so a
killed first run leaves nothing at ``dest`` (the next writer removes the
leftover directory).  A store whose creation was interrupted otherwise (a
remote destination, or a corpus written by an older zarrmux) has its root
attributes but lacks an array: :func:`zarrmux.corpus_arrays.open_parts` refuses it with
:class:`~zarrmux.corpus_arrays.IncompleteCorpusError` (it has no committed entries; rerunning the
conversion recreates it).

Writers
-------
One writer at a time per destination: :mod:`zarrmux.writer_lock`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import zarr

from .byte_order import store_dtype
from .entry_checksum import EntryHasher, checksum_arrays, entry_hasher
from .exceptions import CorpusError
from .key_codecs import AUTO, CODECS, DEFAULT_LEVEL, make_compressors

# README.md documents the ``codec='auto'`` threshold as zarrmux.layout.AUTO_MIN_SAVING
from .key_codecs import AUTO_MIN_SAVING

__all__ = [
    "ATTR_KEY",
    "FORMAT_VERSION",
    "INDEX_GROUP",
    "INDEX_FIELDS",
    "KeySpec",
    "CorpusMeta",
    "EntryRecord",
    "AUTO_MIN_SAVING",
    "create_corpus",
    "read_meta",
    "write_meta",
    "read_index",
    "UPDATES_KEY",
    # the checksum rule and the byte order: part of this contract, defined in zarr-free modules
    # (so reading sources needs no zarr) and named here too
    "entry_hasher",
    "EntryHasher",
    "checksum_arrays",
    "store_dtype",
    "array_at",
    "group_at",
    "store_name",
    "RESERVED_NAMES",
]

ATTR_KEY = "zarrmux"
FORMAT_VERSION = 1
INDEX_GROUP = "index"
#: index field -> numpy dtype used for the index arrays
INDEX_FIELDS: dict[str, Any] = {
    "name": str,
    "start": np.int64,
    "rows": np.int64,
    "source": str,
    "checksum": str,
    "fingerprint": str,
}
#: names a key can never have (casefolded): the index group and Zarr's metadata
#: documents (``zarr.json`` and the Zarr v2 names), which a key's array would overwrite
RESERVED_NAMES = frozenset({INDEX_GROUP, "zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})
INDEX_CHUNK = 1 << 17  # entries per index chunk: one object per 131072 entries



@dataclass(frozen=True)
class KeySpec:
    """What every entry stores under one key, and how.

    ``codec`` and ``lz4_ratio`` are optional (metadata that records no per-key
    codec has neither): a key without a codec uses :attr:`CorpusMeta.codec`
    (see :meth:`CorpusMeta.key_codec`).
    """

    dtype: str  #: numpy dtype string, e.g. ``"<f4"``
    trailing_shape: tuple[int, ...]  #: shape of one row
    chunk_rows: int  #: rows per inner chunk
    #: the key's codec (one of :data:`~zarrmux.key_codecs.CODECS`); ``None``: the corpus codec
    codec: str | None = None
    #: raw / compressed bytes of blosc-lz4 on a sample of the sources, measured by
    #: ``codec='auto'``; ``None`` when not measured (a forced codec)
    lz4_ratio: float | None = None

    @property
    def row_bytes(self) -> int:
        return int(np.dtype(self.dtype).itemsize * int(np.prod(self.trailing_shape, dtype=np.int64)))

    def to_json(self) -> dict[str, Any]:
        """The JSON form; ``codec`` and ``lz4_ratio`` appear only when set (older readers ignore them)."""
        d: dict[str, Any] = {"dtype": self.dtype, "trailing_shape": list(self.trailing_shape), "chunk_rows": self.chunk_rows}
        if self.codec is not None:
            d["codec"] = self.codec
        if self.lz4_ratio is not None:
            d["lz4_ratio"] = float(self.lz4_ratio)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "KeySpec":
        ratio = d.get("lz4_ratio")
        return cls(
            d["dtype"],
            tuple(int(s) for s in d["trailing_shape"]),
            int(d["chunk_rows"]),
            codec=d.get("codec"),
            lz4_ratio=None if ratio is None else float(ratio),
        )


@dataclass
class CorpusMeta:
    """The root group's ``attributes["zarrmux"]``.

    ``codec`` is the codec the corpus was created with: one of :data:`~zarrmux.key_codecs.CODECS`
    (every key), or ``"auto"`` (chosen per key, recorded in each
    :attr:`KeySpec.codec`).  ``level`` applies to every compressed key.
    """

    keys: dict[str, KeySpec]
    shard_rows: int
    codec: str = "lz4"
    level: int | None = None
    n_entries: int = 0  #: committed entries; index rows beyond this are ignored
    rows_allocated: int = 0  #: end of the last committed unit
    format: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def key_codec(self, key: str) -> str:
        """The codec ``key`` is stored with: its own, else the corpus codec (older corpora)."""
        spec = self.keys[key]
        return spec.codec if spec.codec is not None else self.codec

    def key_level(self, key: str) -> int | None:
        """The compression level of ``key`` (``None`` for an uncompressed key)."""
        codec = self.key_codec(key)
        if codec not in DEFAULT_LEVEL or codec == "none":
            return None
        return self.level if self.level is not None else DEFAULT_LEVEL[codec]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["keys"] = {k: v.to_json() for k, v in self.keys.items()}
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "CorpusMeta":
        keys = {k: KeySpec.from_json(v) for k, v in d["keys"].items()}
        return cls(
            keys=keys,
            shard_rows=int(d["shard_rows"]),
            codec=d.get("codec", "lz4"),
            level=d.get("level"),
            n_entries=int(d["n_entries"]),
            rows_allocated=int(d["rows_allocated"]),
            format=int(d.get("format", FORMAT_VERSION)),
            extra=dict(d.get("extra", {})),
        )


@dataclass(frozen=True)
class EntryRecord:
    """One row of the index."""

    name: str
    start: int
    rows: int
    source: str = ""
    checksum: str = ""
    fingerprint: str = ""


def store_name(root: zarr.Group) -> str:
    """How messages name the store of ``root`` (no trailing slash)."""
    return str(root.store).rstrip("/")


def _node_name(group: zarr.Group, path: str) -> str:
    prefix = f"{group.path}/" if group.path else ""
    return f"{store_name(group)}/{prefix}{path}"


def _node_at(group: zarr.Group, path: str, kind: type[Any]) -> Any:
    """The node at ``path`` under ``group`` (zarr's ``group[path]``) if it is a ``kind``.

    Raises ``KeyError`` when nothing is stored at ``path`` (as ``group[path]``
    does), :class:`CorpusError` naming its ``zarr.json`` when it is the other kind.
    """
    node = group[path]
    if not isinstance(node, kind):
        other = "group" if kind is zarr.Array else "array"
        raise CorpusError(f"{_node_name(group, path)}/zarr.json: expected an {'array' if kind is zarr.Array else 'group'}, found a{'' if other == 'group' else 'n'} {other}")
    return node


def array_at(group: zarr.Group, path: str) -> zarr.Array:
    """The array at ``path`` under ``group`` (typed; see :func:`_node_at`)."""
    return _node_at(group, path, zarr.Array)


def group_at(group: zarr.Group, path: str) -> zarr.Group:
    """The group at ``path`` under ``group`` (typed; see :func:`_node_at`)."""
    return _node_at(group, path, zarr.Group)


def create_corpus(
    dest: Any,
    keys: Mapping[str, KeySpec],
    *,
    shard_rows: int,
    codec: str = "lz4",
    level: int | None = None,
) -> zarr.Group:
    """Create an empty corpus at ``dest`` (a path or any zarr ``StoreLike``).

    Parameters
    ----------
    dest : str, os.PathLike or zarr StoreLike
        Where to create it (replacing anything there).
    keys : mapping of str to KeySpec
        The keys; each is stored with its own :attr:`KeySpec.codec`, or with
        ``codec`` when that is ``None``.
    shard_rows : int > 0
        Rows per shard, a multiple of every key's ``chunk_rows``.
    codec : {'lz4', 'zstd', 'none', 'auto'}
        Recorded as :attr:`CorpusMeta.codec`.  ``'auto'`` means the codecs
        were chosen per key (see :func:`zarrmux.key_codecs.auto_codec`): every ``KeySpec`` must
        then carry its codec.
    level : int, optional
        Compression level of every compressed key (default :data:`zarrmux.key_codecs.DEFAULT_LEVEL`).
    """
    if not keys:
        raise ValueError("a corpus needs at least one key")
    if codec != AUTO and codec not in CODECS:
        raise ValueError(f"codec={codec!r} is not one of {(AUTO, *CODECS)}")
    for k, spec in keys.items():
        if shard_rows % spec.chunk_rows:
            raise ValueError(
                f"shard_rows={shard_rows} must be a multiple of chunk_rows={spec.chunk_rows} (key {k!r})"
            )
        if spec.codec is None and codec == AUTO:
            raise ValueError(f"key {k!r} has no codec: with codec='auto' every KeySpec needs its chosen codec")
        if spec.codec is not None and spec.codec not in CODECS:
            raise ValueError(f"key {k!r}: codec={spec.codec!r} is not one of {CODECS}")
    meta = CorpusMeta(keys=dict(keys), shard_rows=shard_rows, codec=codec, level=level)
    root = zarr.open_group(dest, mode="w", zarr_format=3, attributes={ATTR_KEY: meta.to_json()})
    for k, spec in keys.items():
        dt = np.dtype(spec.dtype)
        root.create_array(
            k,
            shape=(0, *spec.trailing_shape),
            dtype=dt,
            chunks=(spec.chunk_rows, *spec.trailing_shape),
            shards=(shard_rows, *spec.trailing_shape),
            compressors=make_compressors(spec.codec if spec.codec is not None else codec, level, dt.itemsize),
            fill_value=np.zeros((), dtype=dt).item() if dt.kind != "b" else False,
            dimension_names=("row", *[f"{k}_{i}" for i in range(1, 1 + len(spec.trailing_shape))]),
        )
    index = root.create_group(INDEX_GROUP)
    for fname, dt in INDEX_FIELDS.items():
        index.create_array(fname, shape=(0,), dtype=dt, chunks=(INDEX_CHUNK,), dimension_names=("entry",))
    return root


def read_meta(root: zarr.Group) -> CorpusMeta:
    """The corpus metadata of an open root group; :class:`CorpusError` if it is not a corpus."""
    d = root.attrs.get(ATTR_KEY)
    if not isinstance(d, Mapping) or "keys" not in d:
        raise CorpusError(f"{root.store} is not a zarrmux corpus (no '{ATTR_KEY}' attribute in its root group)")
    try:
        meta = CorpusMeta.from_json(d)
    except Exception as exc:  # noqa: BLE001 - a damaged attribute: any field may be wrong
        raise CorpusError(
            f"{store_name(root)}/zarr.json: the '{ATTR_KEY}' attribute is damaged ({type(exc).__name__}: {exc})"
        ) from None
    if meta.format > FORMAT_VERSION:
        raise CorpusError(f"{root.store}: corpus format {meta.format} is newer than this zarrmux ({FORMAT_VERSION})")
    return meta


def write_meta(root: zarr.Group, meta: CorpusMeta) -> None:
    """Rewrite the root attributes: the commit point of every change."""
    root.attrs.update({ATTR_KEY: meta.to_json()})


def read_index(root: zarr.Group, n_entries: int | None = None) -> dict[str, np.ndarray]:
    """The first ``n_entries`` (default: the committed count) rows of every index field."""
    if n_entries is None:
        n_entries = read_meta(root).n_entries
    index = group_at(root, INDEX_GROUP)
    out: dict[str, np.ndarray] = {}
    for fname in INDEX_FIELDS:
        arr = array_at(index, fname)
        out[fname] = np.asarray(arr[:n_entries]) if n_entries else np.empty(0, dtype=arr.dtype.to_native_dtype() if hasattr(arr.dtype, "to_native_dtype") else object)
    attr: Any = root.attrs.get(ATTR_KEY, {})  # JSON; read_meta checked its shape
    journal = attr.get("extra", {}).get(UPDATES_KEY)
    if journal:  # committed row updates whose index rows may not all be written yet
        for p, rec in journal.items():
            p = int(p)
            if p < n_entries:
                for fname in INDEX_FIELDS:
                    if out[fname].dtype.kind == "U":  # fixed width: avoid truncating
                        out[fname] = out[fname].astype(object)
                    out[fname][p] = rec[fname]
    return out


#: ``meta.extra`` key of the index-update journal (see :func:`zarrmux.index_commit.commit_entries`)
UPDATES_KEY = "index_updates"
