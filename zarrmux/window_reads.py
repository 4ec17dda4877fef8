"""Reading one batch of windows of a corpus: :class:`WindowReads` sends each key to its reader.

:meth:`zarrmux.corpus.Corpus.read_windows` hands every batch here.  A batch
is checked against its entries' rows, then each key goes to the reader
chosen for it on open (:func:`zarrmux.key_readers.key_readers`):

* a key of a zarrmux corpus reads its windows from its exact-window reader
  (:mod:`zarrmux.exact_windows`, :mod:`zarrmux.remote_windows`) while that
  is enabled, else from its chunk arena (:mod:`zarrmux.chunk_arena`);
* every other key (plain Zarr data, one array per entry), and any key whose
  reader declines the batch (it returns ``None``), goes through decoded
  chunks: the chunks all of them need are fetched together in one
  :func:`zarrmux.chunk_loader.load_chunks` call, through the corpus's
  :class:`~zarrmux.chunk_cache.ChunkCache`, and copied into the windows.

A reader's :class:`~zarrmux.chunk_fault.ChunkFault` becomes a
:class:`~zarrmux.exceptions.DataError` naming the entry, key and stored
object (:func:`zarrmux.read_faults.fault_error`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .array_reader import ArrayReader
from .chunk_cache import ChunkCache
from .chunk_fault import ChunkFault
from .chunk_loader import load_chunks
from .entry_tables import EntryTables
from .exceptions import ConfigError, DataError
from .key_readers import KeyReaders
from .params import check_int
from .read_faults import fault_error

__all__ = ["WindowReads"]


class WindowReads:
    """The batch reads of one opened corpus.

    Parameters
    ----------
    path : str or os.PathLike or zarr store
        What the corpus opened, for messages.
    tables : zarrmux.entry_tables.EntryTables
        Its entries, readers, and where each key's rows of each entry lie.
    by_key : zarrmux.key_readers.KeyReaders
        What reads each key.
    cache : zarrmux.chunk_cache.ChunkCache
        The decoded-chunk cache of keys read through decoded chunks.
    """

    def __init__(self, path: Any, tables: EntryTables, by_key: KeyReaders, cache: ChunkCache) -> None:
        self._path = path
        self._names = tables.names
        self._rows = tables.rows
        self._readers = tables.readers
        self._rid = tables.rid
        self._off = tables.off
        self._uids = [r.uid for r in tables.readers]
        self._chunk_rows = np.array([r.chunk_rows for r in tables.readers], dtype=np.int64)
        self._key_spec = by_key.spec
        self._single = by_key.single
        self._exact = by_key.exact
        self._arena = by_key.arena
        self._cache = cache
        self._last_starts_memo: tuple[int, np.ndarray] | None = None

    def read(
        self, entries: Sequence[int] | np.ndarray, starts: Sequence[int] | np.ndarray, n: int, sel: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """Windows ``[starts[b], starts[b] + n)`` of entries ``entries`` of the keys ``sel`` (known keys).

        What :meth:`zarrmux.corpus.Corpus.read_windows` returns and raises.
        """
        ent = np.asarray(entries, dtype=np.int64).reshape(-1)
        st = np.asarray(starts, dtype=np.int64).reshape(-1)
        if ent.shape != st.shape:
            raise ConfigError(f"entries ({ent.shape[0]}) and starts ({st.shape[0]}) must have the same length")
        n = check_int("n", n, minimum=1)
        if len(ent):  # few numpy calls: this runs for every batch
            ne = len(self._names)
            try:  # as unsigned, a negative position is out of range too
                last = self._last_starts(n)[ent.view(np.uint64)]
            except IndexError:
                i = int(np.argmax((ent < 0) | (ent >= ne)))
                raise IndexError(f"entry position {int(ent[i])} (window {i}) out of range for a corpus of {ne} entries") from None
            if np.count_nonzero((st | (last - st)) < 0):  # st < 0 or st > last
                rows = self._rows[ent]
                i = int(np.argmax((st < 0) | (st + n > rows)))
                e = int(ent[i])
                raise IndexError(
                    f"window {i}: rows {int(st[i])}:{int(st[i]) + n} of entry {self._names[e]!r} (position {e}) "
                    f"fall outside its {int(rows[i])} rows"
                )
        out: dict[str, np.ndarray] = {}
        chunked: list[str] = []
        for k in sel:
            exact = self._exact.get(k)
            reader_of_key = exact if exact is not None and exact.enabled else self._arena.get(k)
            if reader_of_key is not None:
                try:
                    got = reader_of_key.read(self._off[k][ent] + st, n)
                except ChunkFault as fault:
                    raise self._data_error(fault, sel, ent, st, n) from fault
                if got is not None:
                    out[k] = got
                    continue
            chunked.append(k)
        if chunked:
            self._read_chunked(chunked, ent, st, n, out)
        return {k: out[k] for k in sel}

    def _read_chunked(self, sel: Sequence[str], ent: np.ndarray, st: np.ndarray, n: int, out: dict[str, np.ndarray]) -> None:
        """Windows of the keys ``sel`` through decoded chunks (one :func:`load_chunks` call for all of them)."""
        readers = self._readers
        plans = []
        wanted: list[tuple[ArrayReader, int]] = []
        for k in sel:
            rid = self._rid[k][ent]
            g = self._off[k][ent] + st
            cr = self._chunk_rows[rid]
            c0 = g // cr
            c1 = (g + (n - 1)) // cr
            rid_l, g_l, cr_l, c0_l, c1_l = rid.tolist(), g.tolist(), cr.tolist(), c0.tolist(), c1.tolist()
            single = self._single[k]
            if single is not None:  # one array: the chunk numbers say it all
                spans = [c0] + [np.arange(a + 1, z + 1) for a, z in zip(c0_l, c1_l) if z != a]
                wanted.extend((single, c) for c in np.unique(np.concatenate(spans)).tolist())
            else:
                needed: set[tuple[int, int]] = set()
                for r, a, z in zip(rid_l, c0_l, c1_l):
                    for c in range(a, z + 1):
                        needed.add((r, c))
                wanted.extend((readers[r], c) for r, c in needed)
            plans.append((k, rid_l, g_l, cr_l, c0_l, c1_l))
        try:
            chunks = load_chunks(wanted, self._cache)
        except ChunkFault as fault:
            raise self._data_error(fault, sel, ent, st, n) from fault
        B = len(ent)
        for k, rid_l, g_l, cr_l, c0_l, c1_l in plans:
            spec = self._key_spec[k]
            if spec is None:
                specs = {(readers[r].dtype, readers[r].trailing) for r in set(rid_l)}
                if len(specs) > 1:
                    raise ValueError(f"key {k!r} has different dtypes or row shapes across the requested entries")
                r0 = readers[rid_l[0]] if rid_l else readers[int(self._rid[k][0])]
                spec = (r0.dtype, r0.trailing)
            dtype, trailing = spec
            res = np.empty((B, n, *trailing), dtype=dtype)
            uids = self._uids
            for b, (r, gb, crb, a, z) in enumerate(zip(rid_l, g_l, cr_l, c0_l, c1_l)):
                uid = uids[r]
                if a == z:
                    lo = gb - a * crb
                    res[b] = chunks[(uid, a)][lo : lo + n]
                    continue
                end = gb + n
                for c in range(a, z + 1):
                    base = c * crb
                    lo = gb if gb > base else base
                    hi = end if end < base + crb else base + crb
                    res[b, lo - gb : hi - gb] = chunks[(uid, c)][lo - base : hi - base]
            out[k] = res

    def _last_starts(self, n: int) -> np.ndarray:
        """Per entry, the last start of a window of ``n`` rows (negative: none fits); kept for the last ``n``."""
        memo = self._last_starts_memo
        if memo is None or memo[0] != n:
            memo = self._last_starts_memo = (n, self._rows - n)
        return memo[1]

    def _data_error(self, fault: ChunkFault, sel: Sequence[str], ent: np.ndarray, st: np.ndarray, n: int) -> DataError:
        return fault_error(fault, self._path, self._names, self._readers, self._rid, self._off, sel, ent, st, n)
