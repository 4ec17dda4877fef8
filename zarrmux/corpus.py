"""Reading corpora: :func:`open_corpus` and :class:`Corpus` (:class:`Entry` views one entry).

A corpus is a list of *entries* (songs, recordings, ...), each a set of
arrays (*keys*) sharing their leading axis ("rows").  Two kinds of store open
(:mod:`zarrmux.entry_tables`): a **zarrmux corpus** (:mod:`zarrmux.layout`:
one array per key holding every entry's rows, plus an index; opening never
lists the store, so it works over HTTP), and **plain Zarr data** written by
others (a group whose arrays share their leading axis is one entry, a group
of such groups a corpus).

All reads go through :meth:`Corpus.read_windows`, which sends each key of a
whole batch to one reader (:mod:`zarrmux.window_reads`; the readers are
chosen on open by :mod:`zarrmux.key_readers`): a key of a zarrmux
corpus stored uncompressed in local files is gathered straight from its
memory-mapped shards (:mod:`zarrmux.exact_windows`); any other key of a
zarrmux corpus is decoded into its chunk arena, bounded by ``cache_bytes``
(:mod:`zarrmux.chunk_arena`); plain Zarr data (one array per entry) goes
through decoded chunks fetched together and a byte-bounded cache
(:mod:`zarrmux.chunk_loader`).  A failed read is reported by
:mod:`zarrmux.read_faults`; views of entries (:class:`Entry`,
:class:`LazyArray`) live in :mod:`zarrmux.entry_view`.

What is checked, and when
-------------------------
**On open** (a zarrmux corpus; vectorised over the index, with no extra read
unless something looks wrong): the index arrays hold ``n_entries`` values
each; no entry has a negative start or row count or an empty name (a missing
``index/name`` chunk reads as empty names); an ``index/rows`` chunk that reads
as all zeros exists (a missing one reads so); entries' rows lie inside the
arrays and never overlap (a missing ``index/start`` chunk reads as zeros).
Failures raise :class:`CorpusError` naming the entries and the missing index
object.

**On read**: each inner chunk's crc32c on the chunk's first read by the
process, each shard index's crc32c, and that its chunks lie inside the
object (:mod:`zarrmux.array_reader`).  For the keys of a corpus
:func:`zarrmux.convert` wrote (it stores every chunk of every entry's rows;
see :func:`zarrmux.index_checks.written_whole`), also: a missing shard object (deleted, never
uploaded, answered 404) or an inner chunk absent from its shard's index
raises :class:`DataError` naming the entry, key and object instead of reading
as the fill value, locally and remotely; and a shard's index must list every
chunk its position's entry rows need and account for the object's size
exactly, so a truncated or padded shard, or a shorter shard put where a full
one belongs, is refused before any of it is read.  Plain Zarr data and data
written through zarr-python (:func:`zarrmux.testing.write_corpus`) keep Zarr's
rule: an absent chunk is the fill value (zarr-python leaves all-fill chunks
out).

**Only by** :meth:`Corpus.verify` (and ``zarrmux verify``): that an entry's
rows are the rows converted, by its stored sha256.  Two shards holding as
many chunks swapped with each other (any two full shards), or a longer shard
put where a shorter one belongs, are internally valid and fit their new
positions: nothing stored at conversion binds a shard to its position except
the entries' checksums, so reads cannot tell.
"""

from __future__ import annotations

import logging
import operator
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from . import index_checks, layout
from .array_reader import ArrayReader
from .byte_io import make_io
from .chunk_cache import DEFAULT_CACHE_BYTES, ChunkCache
from .entry_checksum import checksum_arrays
from .entry_tables import open_tables
from .entry_view import Entry, LazyArray
from .exceptions import ClosedError, CorpusError, DataError, UnknownKeyError
from .key_readers import key_readers
from .params import check_choice, check_int
from .stores import BACKENDS, is_remote, open_root
from .window_reads import WindowReads

#: what is worth knowing but not an error
log = logging.getLogger("zarrmux")

__all__ = ["open_corpus", "is_remote", "Corpus", "Entry", "LazyArray", "UnknownKeyError", "DEFAULT_CACHE_BYTES"]


def open_corpus(
    path_or_url: Any,
    *,
    keys: Sequence[str] | None = None,
    cache_bytes: int | None = None,
    storage_options: dict[str, Any] | None = None,
    backend: str = "auto",
    entries: Sequence[str] | None = None,
    exact_remote: bool = False,
) -> "Corpus":
    """Open a corpus for reading.

    Parameters
    ----------
    path_or_url : str or os.PathLike or zarr store
        A local path, a ``file://`` URL, a remote URL (``http(s)://``,
        ``s3://``, ``gs://``, ``az://``, or any fsspec URL) or a zarr store
        object (a ``zarr.storage.ObjectStore`` gets the obstore fast path).
    keys : sequence of str, optional
        The keys to read (default: every key of the corpus).
    cache_bytes : int >= 0, optional
        Budget of decoded chunks (the arenas of compressed keys), default
        :data:`~zarrmux.chunk_cache.DEFAULT_CACHE_BYTES` (16 MiB).  0 keeps only what a batch needs.
        Keys read as exact windows (uncompressed, local) do not use it.
    storage_options : dict, optional
        Options of the backend that reads a URL: keyword arguments of
        ``obstore.store.from_url`` (e.g. ``{"config": {...}, "client_options": {...}}``)
        or fsspec storage options.
    backend : {'auto', 'obstore', 'fsspec'}
        What reads a remote URL.  ``'obstore'`` (``pip install 'zarrmux[cloud]'``)
        fetches all the byte ranges a batch needs from one object in one call
        outside the GIL, several times cheaper in CPU per request than fsspec,
        which matters when prefetching hides tens of milliseconds of latency.
        ``'auto'`` (default) uses obstore for ``http``, ``https``, ``s3``,
        ``gs`` and Azure URLs when it is installed, fsspec otherwise.  Plain
        ``http://`` URLs are allowed (obstore's ``allow_http``).  With either
        backend, transient failures (5xx, cut connections) are retried a
        bounded number of times with backoff, a request that does not answer
        within a timeout fails naming the URL, and a server that ignores
        Range requests is detected: see :mod:`zarrmux.remote_io` (settings
        by ``configure(...)`` or ``ZARRMUX_REMOTE_*`` environment variables).
    exact_remote : bool
        Read the uncompressed keys of a remote corpus as exact windows
        (:mod:`zarrmux.remote_windows`: one byte range per window, about 15x
        fewer bytes than whole chunks) instead of through decoded chunks.
        Off by default: a window read this way is not checked against its
        chunk's crc32c (the check covers the whole chunk).
    entries : sequence of str, optional
        Only these entries, in this order (default: every entry).  The
        view is a corpus of its own for every sampler, streamer and the torch
        dataset; :meth:`Corpus.split` and :meth:`Corpus.select` make such views.

    Returns
    -------
    Corpus

    Raises
    ------
    CorpusError
        The store is missing, unreadable or holds no entries, or its entry
        index is damaged (see "What is checked" in the module docstring).
    UnknownKeyError
        A key of ``keys`` is not in the corpus (also a ``KeyError``).
    """
    corpus = Corpus(
        path_or_url, keys=keys, cache_bytes=cache_bytes, storage_options=storage_options, backend=backend,
        entries=entries, exact_remote=exact_remote,
    )
    corpus._load()
    return corpus


class Corpus:
    """A lazy, read-only corpus of entries (see :func:`open_corpus`).

    Picklable: a pickle holds the path and options only; the other process
    reopens the store on first use.  Safe to read from several threads.
    """

    def __init__(
        self,
        path_or_url: Any,
        *,
        keys: Sequence[str] | None = None,
        cache_bytes: int | None = None,
        storage_options: dict[str, Any] | None = None,
        backend: str = "auto",
        entries: Sequence[str] | None = None,
        exact_remote: bool = False,
    ) -> None:
        check_choice("backend", backend, BACKENDS)
        self._backend = backend
        if isinstance(path_or_url, os.PathLike):
            path_or_url = os.fspath(path_or_url)
        self._target = path_or_url
        self._req_keys = None if keys is None else tuple(keys)
        if isinstance(keys, str):
            self._req_keys = (keys,)
        self._cache_bytes = DEFAULT_CACHE_BYTES if cache_bytes is None else check_int("cache_bytes", cache_bytes, minimum=0)
        self._storage_options = dict(storage_options) if storage_options else None
        if isinstance(entries, str):
            raise CorpusError(f"entries={entries!r} must be a sequence of entry names, not one string")
        self._req_entries = None if entries is None else tuple(str(e) for e in entries)
        self._exact_remote = bool(exact_remote)
        self._loaded = False
        self._closed = False
        self._load_lock = threading.Lock()

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        return {
            "target": self._target,
            "keys": self._req_keys,
            "cache_bytes": self._cache_bytes,
            "storage_options": self._storage_options,
            "backend": self._backend,
            "entries": self._req_entries,
            "exact_remote": self._exact_remote,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["target"],
            keys=state["keys"],
            cache_bytes=state["cache_bytes"],
            storage_options=state["storage_options"],
            backend=state.get("backend", "auto"),
            entries=state.get("entries"),
            exact_remote=state.get("exact_remote", False),
        )

    # ------------------------------------------------------------------ opening
    def _load(self) -> None:
        if self._loaded:
            return
        if self._closed:
            raise ClosedError(f"corpus {self.path!r} is closed")
        with self._load_lock:
            if not self._loaded:
                self._open()
                self._loaded = True

    def _open(self) -> None:
        root = open_root(self._target, self._backend, self._storage_options)
        self._root = root
        self._cache = ChunkCache(self._cache_bytes)
        self._io = make_io(root.store)
        t = open_tables(root, self._io, self._target, self._req_keys, self._req_entries)
        if t.meta is not None:
            self.meta = t.meta
        self._sources = t.sources
        self._stored_at = t.stored_at
        self._names = t.names
        self._rows = t.rows
        self._keys = t.keys
        self._readers = t.readers
        self._rid = t.rid
        self._off = t.off
        by_key = key_readers(t.keys, t.readers, t.rid, self._cache_bytes, self._exact_remote)
        self._single = by_key.single
        self._exact = by_key.exact
        self._arena = by_key.arena
        self._windows = WindowReads(self._target, t, by_key, self._cache)
        self._name_to_pos: dict[str, int] = {}
        for i, nm in enumerate(self._names):
            self._name_to_pos.setdefault(nm, i)

    # ------------------------------------------------------------------ API
    @property
    def path(self) -> Any:
        """What was opened (a path, URL or store): ``open_corpus(corpus.path)`` reopens it."""
        return self._target

    @property
    def names(self) -> list[str]:
        """Entry names, in entry order."""
        self._load()
        return list(self._names)

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys read (every key of the corpus unless ``keys=`` was given)."""
        self._load()
        return self._keys

    @property
    def rows(self) -> np.ndarray:
        """Rows of every entry (read-only ``int64`` array)."""
        self._load()
        return self._rows

    @property
    def cache(self) -> ChunkCache:
        """The decoded-chunk cache of plain Zarr data, one array per entry (statistics: ``hits``, ``misses``, ``nbytes``).

        Keys of a zarrmux corpus are read as exact windows or through their
        chunk arenas (:mod:`zarrmux.chunk_arena`), not through this cache.
        """
        self._load()
        return self._cache

    @property
    def cache_bytes(self) -> int:
        return self._cache_bytes

    def __len__(self) -> int:
        self._load()
        return len(self._names)

    def __iter__(self) -> Iterator["Entry"]:
        self._load()
        for i in range(len(self._names)):
            yield Entry(self, i)

    def __getitem__(self, item: int | str) -> "Entry":
        self._load()
        if isinstance(item, str):
            pos = self._name_to_pos.get(item)
            if pos is None:
                raise KeyError(f"no entry named {item!r} in corpus {self.path!r} ({len(self._names)} entries)")
            return Entry(self, pos)
        try:
            i = operator.index(item)
        except TypeError:
            raise TypeError(f"corpus entries are looked up by name (str) or position (int), not {type(item).__name__}") from None
        n = len(self._names)
        if not -n <= i < n:
            raise IndexError(f"entry position {i} out of range for corpus {self.path!r} with {n} entries")
        return Entry(self, i % n)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._name_to_pos

    def entry_name(self, position: int) -> str:
        """The name of the entry at ``position`` (what :attr:`Entry.name` reads)."""
        self._load()
        return self._names[position]

    def entry_source(self, position: int) -> str | None:
        """The file(s) the entry at ``position`` was converted from; None if not recorded (:attr:`Entry.source`)."""
        self._load()
        sources = self._sources
        if not sources:
            return None
        return sources[int(self._stored_at[position])] or None

    def key_reader(self, key: str, position: int) -> ArrayReader:
        """The reader of the array holding ``key`` of the entry at ``position`` (its dtype and row shape).

        Raises
        ------
        UnknownKeyError
            ``key`` is not a key read.
        """
        self._load()
        (k,) = self._select((key,))
        return self._readers[int(self._rid[k][position])]

    def __repr__(self) -> str:
        if not self._loaded:
            return f"<zarrmux.Corpus {self.path!r} (not loaded)>"
        return f"<zarrmux.Corpus {self.path!r}: {len(self._names)} entries, keys {list(self._keys)}>"

    def close(self) -> None:
        """Release the cache and the store; further reads raise :class:`~zarrmux.exceptions.ClosedError` (a ``ValueError``)."""
        with self._load_lock:
            if self._loaded:
                self._cache.clear()
                close_io = getattr(self._io, "close", None)
                if close_io is not None:
                    close_io()
                try:
                    self._root.store.close()
                except Exception as exc:  # noqa: BLE001 - closing must not fail; say what went wrong
                    log.debug("closing the store of corpus %r: %s: %s", self.path, type(exc).__name__, exc)
                self._readers = []
                self._arena, self._exact = {}, {}
                del self._windows  # it holds the readers, arenas and mappings too
            self._loaded = False
            self._closed = True

    def __enter__(self) -> "Corpus":
        self._load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading
    def _select(self, keys: Sequence[str] | str | None) -> tuple[str, ...]:
        if keys is None:
            return self._keys
        if isinstance(keys, str):
            keys = (keys,)
        for k in keys:
            if k not in self._keys:
                raise UnknownKeyError(f"key {k!r} is not in corpus {self.path!r}; available keys: {list(self._keys)}")
        return tuple(keys)

    def read_windows(
        self,
        entries: Sequence[int] | np.ndarray,
        starts: Sequence[int] | np.ndarray,
        n: int,
        keys: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Read a batch of windows: rows ``[starts[b], starts[b] + n)`` of entry ``entries[b]``.

        All the chunks the batch needs are computed, deduplicated, served from
        the cache or fetched together, decoded and copied into preallocated
        outputs.  Thread-safe; the result does not depend on the cache.

        Parameters
        ----------
        entries : array of int, shape (B,)
            Entry positions, ``0 <= entries[b] < len(corpus)``.
        starts : array of int, shape (B,)
            Window starts, ``0 <= starts[b] <= rows[entries[b]] - n``.
        n : int > 0
            Rows per window.
        keys : sequence of str, optional
            Keys to read (default: :attr:`keys`).

        Returns
        -------
        dict of str to numpy.ndarray
            ``{key: array of shape (B, n, *trailing)}``.

        Raises
        ------
        IndexError
            An entry position is out of range or a window crosses its entry's end.
        DataError
            Stored data is corrupt, or missing from a corpus the converter
            wrote (a deleted shard, a 404); names the entry, key and stored object.
        """
        self._load()
        return self._windows.read(entries, starts, n, self._select(keys))

    def check_keys(self, keys: Sequence[str] | str | None) -> tuple[str, ...] | None:
        """``keys`` as a tuple (``None`` stays ``None``: every key), each checked to be a key read.

        Raises
        ------
        UnknownKeyError
            Naming the key and the keys available.
        """
        if keys is None:
            return None
        if isinstance(keys, str):
            keys = (keys,)
        available = self.keys
        for k in keys:
            if k not in available:
                raise UnknownKeyError(f"key {k!r} is not in corpus {self.path!r}; available keys: {list(available)}")
        return tuple(keys)

    # ------------------------------------------------------------------ views
    def select(self, which: Iterable[str] | Callable[[str], bool]) -> "Corpus":
        """A view of some entries: names (in the order given) or a predicate on the name.

        The view reads the same store with the same options, and every
        sampler, streamer and the torch dataset take it like any corpus
        (it pickles as path, options and names).
        """
        self._load()
        names = [nm for nm in self._names if which(nm)] if callable(which) else [str(nm) for nm in which]
        return Corpus(
            self._target, keys=self._req_keys, cache_bytes=self._cache_bytes,
            storage_options=self._storage_options, backend=self._backend, entries=names,
            exact_remote=self._exact_remote,
        )

    def split(self, fractions: Mapping[str, float], seed: int = 0) -> dict[str, "Corpus"]:
        """Deterministic views by entry: ``corpus.split({"train": 0.9, "val": 0.1}, seed=0)``.

        An entry's side depends on its name and ``seed`` only
        (:func:`zarrmux.splits.split_names`), so entries appended later never
        move an existing entry to another side.  Sizes follow the fractions
        up to sampling noise; the sides are disjoint and cover the corpus.
        """
        from .splits import split_names

        self._load()
        return {side: self.select(names) for side, names in split_names(self._names, fractions, seed).items()}

    def io_counters(self) -> dict[str, int]:
        """Storage counters since the corpus was opened: ``bytes_read``, ``requests``, ``retries``
        (from its byte reader, where it counts them) and decoded-chunk ``chunk_hits`` / ``chunk_misses``
        (arenas and the cache).  :mod:`zarrmux.stats` reports their growth."""
        self._load()
        out = {"bytes_read": 0, "requests": 0, "retries": 0, "chunk_hits": self._cache.hits, "chunk_misses": self._cache.misses}
        for arena in list(self._arena.values()):
            out["chunk_hits"] += arena.hits
            out["chunk_misses"] += arena.misses
        for k, v in getattr(self._io, "counters", dict)().items():
            if k in out:
                out[k] += int(v)
        for ex in list(self._exact.values()):
            out["bytes_read"] += ex.bytes_mapped
        return out

    def streamers(self, n: int, **kwargs: Any) -> list[Any]:
        """One :func:`zarrmux.window_streamer` per entry with at least ``n`` rows.

        See :func:`zarrmux.streamers.streamers` (``kwargs`` are passed on).
        """
        from .streamers import streamers

        return streamers(self, n, **kwargs)

    def read_rows(self, entry: int, key: str, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of ``key`` of the entry at position ``entry`` (a copy)."""
        self._load()
        (k,) = self._select((key,))
        if stop <= start:
            reader = self._readers[int(self._rid[k][entry])]
            return np.empty((0, *reader.trailing), dtype=reader.dtype)
        return self.read_windows([entry], [start], stop - start, keys=(k,))[k][0]

    def verify(self, entry: int | str) -> None:
        """Check an entry of a zarrmux corpus against its stored sha256 checksum.

        Reads every key of the entry (all keys of the corpus, whatever ``keys=``
        selected).  Raises :class:`DataError` on a mismatch, on missing or
        corrupt stored data, or when the ``index/checksum`` object holding the
        entry's checksum is missing; does nothing for entries without a
        checksum (plain Zarr data).  This is the one check that sees shards of
        the same size swapped with each other (see the module docstring).
        """
        e = self[entry]
        if not hasattr(self, "meta"):
            return
        index = layout.read_index(self._root, self.meta.n_entries)
        stored = int(self._stored_at[e.position])
        expected = str(index["checksum"][stored])
        if not expected:
            obj = index_checks.index_object(self._root, "checksum", stored)
            if index_checks.absent(self._io, [obj]):
                raise DataError(
                    f"entry {e.name!r} of corpus {self.path!r} cannot be verified: index object {obj!r} "
                    "holding its checksum is missing (deleted, or answered 404)"
                )
            return
        with Corpus(self._target, cache_bytes=0, storage_options=self._storage_options, backend=self._backend) as full:
            arrays = {k: full.read_rows(stored, k, 0, int(e.rows)) for k in full.keys}
        actual = checksum_arrays(arrays)
        if actual != expected:
            raise DataError(f"entry {e.name!r} of corpus {self.path!r} fails its checksum: stored {expected}, computed {actual}")
