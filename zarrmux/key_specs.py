"""The keys of a corpus as a conversion sees them: chosen for a new corpus, checked against an existing one.

A new corpus takes its keys from the first valid entry: each key's dtype
(little-endian) and trailing shape, its chunk rows and the shared shard rows
(:func:`new_key_specs`, defaults from :mod:`zarrmux.chunking`), then its
codec (:func:`choose_codecs`).  Every other entry must agree with them
(:func:`check_entry`), and options given when appending must agree with the
corpus (:func:`check_options`).

Codec per key
-------------
``codec='auto'`` (the default) chooses each key's codec when a corpus is
created: before anything is written, the coordinator reads a small sample of
every key (:data:`SAMPLE_BLOCK_BYTES` from the start of each of the first
:data:`SAMPLE_ENTRIES` entries, at most ``SAMPLE_ENTRIES * SAMPLE_BLOCK_BYTES``
= 1 MiB per key, through the same streaming readers), measures what
blosc-lz4 would save (:func:`zarrmux.key_codecs.measure_lz4_ratio`) and
stores the key uncompressed if that is less than
:data:`zarrmux.key_codecs.AUTO_MIN_SAVING` (25 %) of the key or
:data:`~zarrmux.key_codecs.AUTO_MIN_CORPUS_SAVING` (2 %) of the corpus, else with lz4.  Appending
keeps each key's stored codec.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from . import layout
from .byte_order import store_dtype
from .chunking import default_chunk_rows, default_shard_rows, shard_ceil
from .exceptions import CorpusError
from .key_codecs import AUTO, AUTO_MIN_CORPUS_SAVING, AUTO_MIN_SAVING, auto_codec, measure_lz4_ratio
from .member_reader import open_reader
from .sources import SourceEntry, SourceError

__all__ = [
    "SAMPLE_ENTRIES",
    "SAMPLE_BLOCK_BYTES",
    "new_key_specs",
    "check_entry",
    "check_options",
    "sample_key",
    "choose_codecs",
]

#: the ``zarrmux`` logger: ``codec='auto'`` logs the codec it chose per key at INFO
log = logging.getLogger("zarrmux")

#: ``codec='auto'``: entries sampled per key (the first ones, in source order)
SAMPLE_ENTRIES = 4
#: ``codec='auto'``: the sample of one key is this many bytes per sampled entry
#: (``SAMPLE_ENTRIES * SAMPLE_BLOCK_BYTES`` in all, split over the entries there are)
SAMPLE_BLOCK_BYTES = 256 * 1024


def new_key_specs(
    entries: Sequence[SourceEntry], chunk_rows: int | None, shard_rows: int | None
) -> tuple[dict[str, layout.KeySpec], int]:
    """``(specs, shard_rows)`` of a new corpus whose first entry is ``entries[0]`` (codecs not chosen yet).

    ``chunk_rows`` and ``shard_rows`` default to :mod:`zarrmux.chunking`'s; a
    given ``shard_rows`` without ``chunk_rows`` caps each key's default chunk
    rows to a divisor of it.
    """
    first = entries[0]
    specs: dict[str, layout.KeySpec] = {}
    for k, m in first.members.items():
        cr = chunk_rows or default_chunk_rows(m.row_bytes)
        if shard_rows and not chunk_rows:
            cr = math.gcd(cr, shard_rows)
        specs[k] = layout.KeySpec(m.store_dtype, tuple(m.shape[1:]), int(cr))
    if shard_rows is None:
        shard_rows = default_shard_rows([s.row_bytes for s in specs.values()], [s.chunk_rows for s in specs.values()])
        if chunk_rows:
            shard_rows = shard_ceil(shard_rows, chunk_rows)
    for k, s in specs.items():
        if shard_rows % s.chunk_rows:
            raise ValueError(f"shard_rows={shard_rows} is not a multiple of chunk_rows={s.chunk_rows} (key {k!r})")
    return specs, int(shard_rows)


def check_entry(entry: SourceEntry, specs: Mapping[str, layout.KeySpec], ref: str) -> None:
    """:class:`SourceError` if ``entry``'s keys, dtypes or trailing shapes disagree with ``specs``."""
    have, want = set(entry.members), set(specs)
    if have != want:
        parts = []
        if want - have:
            parts.append(f"lacks key(s) {sorted(want - have)}")
        if have - want:
            parts.append(f"has extra key(s) {sorted(have - want)}")
        raise SourceError(entry.where, f"entry {entry.name!r} {' and '.join(parts)} (keys of {ref}: {sorted(want)}; use keys= / --keys to pick)")
    for k, m in entry.members.items():
        s = specs[k]
        if store_dtype(m.dtype) != store_dtype(s.dtype):  # byte order does not matter
            raise SourceError(m.where, f"key {k!r} has dtype {np.dtype(m.dtype)}, {ref} has {np.dtype(s.dtype)}")
        if tuple(m.shape[1:]) != tuple(s.trailing_shape):
            raise SourceError(m.where, f"key {k!r} has trailing shape {tuple(m.shape[1:])}, {ref} has {tuple(s.trailing_shape)}")


def sample_key(entries: Sequence[SourceEntry], key: str) -> list[np.ndarray]:
    """The first bytes of ``key`` in the first :data:`SAMPLE_ENTRIES` entries, as flat arrays.

    ``SAMPLE_ENTRIES * SAMPLE_BLOCK_BYTES`` bytes at most, split evenly over
    the sampled entries, read through :func:`zarrmux.member_reader.open_reader`
    (never a whole member).  An entry that cannot be read is left out of the
    sample; the conversion proper reports it.
    """
    first = list(entries[:SAMPLE_ENTRIES])
    if not first:
        return []
    per_entry = SAMPLE_ENTRIES * SAMPLE_BLOCK_BYTES // len(first)
    out: list[np.ndarray] = []
    for e in first:
        m = e.members[key]
        dt = np.dtype(m.store_dtype)
        items = min(m.nbytes, per_entry) // dt.itemsize
        if items < 1:
            continue
        block = np.empty(items, dtype=dt)
        try:
            with open_reader(m) as r:
                r.read_values(block)
        except SourceError:
            continue
        out.append(block)
    return out


def choose_codecs(
    specs: Mapping[str, layout.KeySpec], entries: Sequence[SourceEntry], codec: str, level: int | None
) -> dict[str, layout.KeySpec]:
    """``specs`` with each key's codec set: ``codec`` itself, or for ``'auto'`` the measured choice."""
    out: dict[str, layout.KeySpec] = {}
    row_bytes = sum(s.row_bytes for s in specs.values())  # the keys of an entry share its rows
    for k, spec in specs.items():
        if codec != AUTO:
            out[k] = replace(spec, codec=codec, lz4_ratio=None)
            continue
        sample = sample_key(entries, k)
        ratio = measure_lz4_ratio(sample, spec.chunk_rows * spec.row_bytes, level)
        share = spec.row_bytes / row_bytes if row_bytes else 1.0
        chosen = auto_codec(ratio, share)
        out[k] = replace(spec, codec=chosen, lz4_ratio=None if ratio is None else round(ratio, 4))
        if ratio is None:
            log.info("codec auto: key %r -> %s (no sample could be read to measure lz4)", k, chosen)
        else:
            log.info(
                "codec auto: key %r -> %s (blosc-lz4 ratio %.2f on a %d-byte sample: saves %.0f%% of the key, "
                "%.1f%% of the corpus; thresholds %.0f%% and %.0f%%)",
                k, chosen, ratio, sum(b.nbytes for b in sample), 100 * (1 - 1 / ratio), 100 * share * (1 - 1 / ratio),
                100 * AUTO_MIN_SAVING, 100 * AUTO_MIN_CORPUS_SAVING,
            )
    return out


def check_options(
    meta: layout.CorpusMeta,
    dest: str,
    *,
    keys: Sequence[str] | None,
    shard_rows: int | None,
    codec: str,
    chunk_rows: int | None,
) -> None:
    """:class:`CorpusError` if options given when appending disagree with the corpus at ``dest``.

    ``codec='auto'`` keeps each key's stored codec; a forced codec must be
    the codec of every key.
    """
    if keys is not None and set(keys) != set(meta.keys):
        raise CorpusError(f"keys={sorted(keys)} disagree with the corpus {dest} (keys {sorted(meta.keys)})")
    if shard_rows is not None and shard_rows != meta.shard_rows:
        raise CorpusError(f"shard_rows={shard_rows!r} disagrees with the existing corpus {dest} (shard_rows={meta.shard_rows!r})")
    if codec != AUTO:  # only a forced codec is compared, key by key
        for k in sorted(meta.keys):
            have = meta.key_codec(k)
            if have != codec:
                ratio = meta.keys[k].lz4_ratio
                how = (
                    f"the corpus codec is {meta.codec!r}" if meta.codec != AUTO
                    else "chosen by codec='auto'" + (f", measured lz4 ratio {ratio:.2f}" if ratio is not None else "")
                )
                raise CorpusError(
                    f"codec={codec!r} disagrees with the existing corpus {dest}: key {k!r} is stored with "
                    f"codec={have!r} ({how}); append with codec='auto' (--codec auto, the default) "
                    "to keep each key's stored codec"
                )
    if chunk_rows is not None and any(s.chunk_rows != chunk_rows for s in meta.keys.values()):
        raise CorpusError(f"chunk_rows={chunk_rows} disagrees with the existing corpus {dest}")
