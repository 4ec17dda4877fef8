"""The codec a key is stored with: codec names, the chain each gives, and the ``codec='auto'`` rule.

Inner chunks are ``bytes`` (little-endian), then blosc (``lz4`` or ``zstd``,
byte shuffle, ``typesize`` = itemsize) unless the key is stored uncompressed
(``none``), then a ``crc32c`` (see :func:`make_compressors`).  Each key has
its own codec, recorded in :attr:`zarrmux.layout.KeySpec.codec`; a key
without one (metadata that records no per-key codec) uses
:attr:`zarrmux.layout.CorpusMeta.codec`.

``codec='auto'`` (the default of :func:`zarrmux.convert`) chooses per key:
blosc-lz4 is tried on a small sample of the key's source data
(:func:`measure_lz4_ratio`; the sample is taken by
:mod:`zarrmux.key_specs`), and if it saves less than
:data:`AUTO_MIN_SAVING` (25 %) of the bytes, i.e. compressed / raw > 0.75
(ratio raw / compressed below 1.33), the key is stored uncompressed: no
blosc work to write or read it, for bytes lz4 would have cut by under a
quarter.  So is a key whose saving would be under
:data:`AUTO_MIN_CORPUS_SAVING` (2 %) of the whole corpus's bytes (labels
beside wide features): compressing it saves next to nothing on disk, while
every window read from a compressed key decodes whole chunks, and its
decoded chunks take memory.  Any other key is stored with lz4
(:func:`auto_codec`).  The measured
ratio is kept in :attr:`zarrmux.layout.KeySpec.lz4_ratio` and the corpus
records ``CorpusMeta.codec == "auto"``.

The blosc settings of a codec have one definition here, so what
``codec='auto'`` measures is what the writer stores.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from zarr.codecs import BloscCodec, Crc32cCodec

__all__ = [
    "CODECS",
    "DEFAULT_LEVEL",
    "AUTO",
    "AUTO_MIN_SAVING",
    "AUTO_MIN_CORPUS_SAVING",
    "make_compressors",
    "measure_lz4_ratio",
    "auto_codec",
]

#: the codecs a key can be stored with (``"none"``: uncompressed, crc32c only)
CODECS = ("lz4", "zstd", "none")
#: blosc level of each codec when ``level`` is not given
DEFAULT_LEVEL = {"lz4": 5, "zstd": 3, "none": 0}
#: ``codec='auto'``: choose each key's codec from :data:`CODECS` by measuring lz4 on a sample
AUTO = "auto"
#: ``codec='auto'`` stores a key uncompressed when blosc-lz4 saves less than this
#: fraction of its bytes (compressed / raw > 1 - AUTO_MIN_SAVING), else with lz4
AUTO_MIN_SAVING = 0.25
#: ... or less than this fraction of the bytes of all keys (a row's bytes of every key)
AUTO_MIN_CORPUS_SAVING = 0.02


def _blosc_settings(codec: str, level: int | None, itemsize: int) -> dict[str, Any]:
    """The blosc parameters of ``codec`` (``'lz4'`` or ``'zstd'``): one definition for writers and :func:`measure_lz4_ratio`."""
    clevel = DEFAULT_LEVEL[codec] if level is None else int(level)
    return {"cname": codec, "clevel": clevel, "typesize": max(1, int(itemsize))}


def make_compressors(codec: str, level: int | None, itemsize: int) -> tuple[Any, ...]:
    """The bytes-to-bytes chain for ``codec`` in ``{'lz4', 'zstd', 'none'}``: blosc, then a crc32c.

    ``'none'`` gives the crc32c alone: inner chunks are the raw little-endian
    bytes followed by their checksum.

    The crc32c (4 bytes per inner chunk) lets readers refuse a corrupt chunk
    instead of decoding garbage; blosc frames carry no checksum of their own.
    A key whose chain has no crc32c is read without that check.

    Parameters
    ----------
    codec : {'lz4', 'zstd', 'none'}
        One key's codec (``'auto'`` is resolved per key before this is called).
    level : int or None
        Blosc compression level; ``None``: :data:`DEFAULT_LEVEL` of ``codec``.
    itemsize : int > 0
        Bytes per element: blosc's ``typesize`` for the byte shuffle.
    """
    if codec not in CODECS:
        raise ValueError(f"codec={codec!r} is not one of {CODECS}")
    if codec == "none":
        return (Crc32cCodec(),)
    return (BloscCodec(shuffle="shuffle", **_blosc_settings(codec, level, itemsize)), Crc32cCodec())


def measure_lz4_ratio(samples: Iterable[np.ndarray], chunk_bytes: int, level: int | None = None) -> float | None:
    """Raw / compressed bytes blosc-lz4 achieves on ``samples``, as :func:`make_compressors` would store them.

    Each sample is encoded in pieces of ``chunk_bytes`` (the key's inner
    chunk) with the settings of ``make_compressors('lz4', level, itemsize)``:
    clevel 5 unless ``level`` is given, byte shuffle, ``typesize`` = the
    samples' itemsize.  The crc32c is left out (it is the same 4 bytes per
    chunk whatever the codec).

    Parameters
    ----------
    samples : iterable of numpy.ndarray
        Blocks of one key's data (any shape; C-contiguous bytes are used).
    chunk_bytes : int > 0
        Decoded bytes of one inner chunk of the key.
    level : int, optional
        lz4 level (default :data:`DEFAULT_LEVEL` ``['lz4']``, 5).

    Returns
    -------
    float or None
        ``raw / compressed`` (> 1: lz4 saves bytes), ``None`` if ``samples`` hold no bytes.
    """
    from numcodecs import Blosc

    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes={chunk_bytes} must be > 0")
    raw = packed = 0
    codecs: dict[int, Any] = {}
    for sample in samples:
        flat = np.ascontiguousarray(sample).reshape(-1)
        if not flat.size:
            continue
        itemsize = flat.dtype.itemsize
        blosc = codecs.get(itemsize)
        if blosc is None:
            blosc = codecs[itemsize] = Blosc(shuffle=Blosc.SHUFFLE, **_blosc_settings("lz4", level, itemsize))
        step = max(1, chunk_bytes // itemsize)
        for i in range(0, flat.size, step):
            piece = flat[i : i + step]
            raw += piece.nbytes
            packed += len(blosc.encode(piece))
    return raw / packed if raw else None


def auto_codec(ratio: float | None, share: float = 1.0) -> str:
    """The codec ``codec='auto'`` gives a key whose measured lz4 ratio (raw / compressed) is ``ratio``.

    ``'none'`` when lz4 saves less than :data:`AUTO_MIN_SAVING` of the key's
    bytes (``1 - 1 / ratio < 0.25``, i.e. ``ratio < 1.33``), or less than
    :data:`AUTO_MIN_CORPUS_SAVING` of the corpus's bytes, the key being
    ``share`` (0 to 1) of them; else ``'lz4'``.  ``'lz4'`` when nothing could
    be measured (``ratio is None``).
    """
    if ratio is None:
        return "lz4"
    saving = 1.0 - 1.0 / ratio
    return "none" if saving < AUTO_MIN_SAVING or saving * share < AUTO_MIN_CORPUS_SAVING else "lz4"
