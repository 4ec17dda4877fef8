"""The byte order a corpus stores and checksums values in: little-endian (:func:`store_dtype`).

One small rule shared by the on-disk layout (:mod:`zarrmux.layout`), the
arrays check (:mod:`zarrmux.corpus_arrays`), the converter and the entry
checksum (:mod:`zarrmux.entry_checksum`).  It lives here, apart from them,
so that modules reading sources can use it without importing zarr.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["store_dtype"]


def store_dtype(dtype: Any) -> np.dtype:
    """The dtype a corpus stores ``dtype`` as: the same kind and size, little-endian.

    ``'>f4'`` -> ``'<f4'``; one-byte and native little-endian dtypes are unchanged.
    """
    return np.dtype(dtype).newbyteorder("<")
