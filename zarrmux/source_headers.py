"""Reading the headers of the sources, without their data: :func:`scan`.

Headers are parsed with :mod:`numpy.lib.format` (NPY files through a plain
file, NPZ members through :meth:`zipfile.ZipFile.open`).  Pickles are never
loaded: object dtypes are an error, as are structured dtypes, 0-d arrays,
arrays without rows, and Fortran-ordered arrays with more than one column
(they cannot be streamed by rows).

Sizes
-----
Sizes computed from headers use Python integers (no overflow) and must be
backed by bytes that exist: an NPY file must hold what its header promises;
an NPZ member's size must match its header, and its compressed size must fit
in the archive (a stored member's sizes agree; a deflated one cannot expand
more than deflate can, :data:`MAX_DEFLATE_RATIO`).  Encrypted members are refused.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from typing import IO, Any

import numpy as np
from numpy.lib import format as npformat

from .entry_names import check_key_name
from .sources import Member, SourceEntry, SourceError, fingerprint

__all__ = ["MAX_DEFLATE_RATIO", "read_header", "scan"]

#: dtype kinds a corpus can hold: bool, signed/unsigned ints, floats, complex
_KINDS = "biufc"
#: the most deflate can expand (1032:1), plus slack: a member claiming more is corrupt or hostile
MAX_DEFLATE_RATIO = 1100


def read_header(fp: IO[bytes], where: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """Parse an NPY header from ``fp``: ``(dtype, shape, fortran_order, header_bytes)``."""
    start = fp.tell() if fp.seekable() else 0
    try:
        version = npformat.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(fp)
        else:
            shape, fortran, dtype = npformat._read_array_header(fp, version)  # type: ignore[attr-defined]
    except (zipfile.BadZipFile, zlib.error) as exc:
        raise SourceError(where, f"corrupt data: {exc}") from None
    except RuntimeError as exc:  # zipfile: an encrypted member
        raise SourceError(where, f"cannot be read: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - numpy's header parser raises many types (TokenError, ...)
        raise SourceError(where, f"not a valid NPY array (bad header: {type(exc).__name__}: {exc})") from None
    header_bytes = (fp.tell() - start) if fp.seekable() else _header_len(version, fp)
    return np.dtype(dtype), tuple(int(s) for s in shape), bool(fortran), header_bytes


def _header_len(version: tuple[int, int], fp: Any) -> int:  # pragma: no cover - ZipExtFile is seekable
    raise SourceError(str(fp), "cannot determine header length of a non-seekable stream")


def _check_member(dtype: np.dtype, shape: tuple[int, ...], fortran: bool, where: str) -> None:
    if dtype.hasobject:
        raise SourceError(where, f"object dtype {dtype} is not converted (pickles are never loaded: allow_pickle=False)")
    if dtype.fields is not None or dtype.kind not in _KINDS or dtype.subdtype is not None:
        raise SourceError(where, f"dtype {dtype} is not supported (numeric and bool dtypes only)")
    if len(shape) == 0:
        raise SourceError(where, "is a 0-d scalar; arrays need a row axis")
    if any(s < 0 for s in shape):
        raise SourceError(where, f"header has a negative dimension (shape {shape})")
    if shape[0] == 0:
        raise SourceError(where, f"has zero rows (shape {shape})")
    if fortran and len(shape) > 1 and math.prod(shape[1:]) > 1:
        raise SourceError(where, f"is stored in Fortran order (shape {shape}); resave it in C order to stream rows")


def _scan_npy(path: str, key: str) -> Member:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            dtype, shape, fortran, hdr = read_header(f, path)
    except OSError as exc:
        raise SourceError(path, f"cannot read ({exc.strerror or exc})") from None
    _check_member(dtype, shape, fortran, path)
    need = hdr + math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if size < need:
        raise SourceError(path, f"is truncated: {size} bytes, the header promises {need}")
    return Member(key, path, None, dtype.str, shape, fortran, hdr)


def _check_zip_sizes(info: zipfile.ZipInfo, archive_size: int, where: str) -> None:
    """:class:`SourceError` unless the member's sizes are backed by bytes of the archive."""
    if info.compress_size > archive_size:
        raise SourceError(where, f"member claims {info.compress_size} compressed bytes in an archive of {archive_size} (corrupt)")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise SourceError(where, f"stored member claims {info.file_size} bytes but holds {info.compress_size} (corrupt)")
    if info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1) + 1024:
        raise SourceError(
            where, f"member claims {info.file_size} bytes from {info.compress_size} compressed: more than deflate can expand (corrupt or a zip bomb)"
        )


def _scan_npz(path: str, keys: Sequence[str] | None) -> dict[str, Member]:
    members: dict[str, Member] = {}
    try:
        archive_size = os.path.getsize(path)
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                mname = info.filename
                key = mname[:-4] if mname.endswith(".npy") else mname
                if keys is not None and key not in keys:
                    continue
                where = f"{path}:{mname}"
                if not mname.endswith(".npy"):
                    raise SourceError(path, f"member {mname!r} is not an .npy array")
                check_key_name(key, where)
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise SourceError(where, f"zip compression method {info.compress_type} is not supported (stored or deflated only)")
                if info.flag_bits & 0x1:
                    raise SourceError(where, "member is encrypted (password-protected zip); NPZ members must be plain")
                _check_zip_sizes(info, archive_size, where)
                with zf.open(info) as fp:
                    dtype, shape, fortran, hdr = read_header(fp, where)
                _check_member(dtype, shape, fortran, where)
                need = hdr + math.prod(shape) * dtype.itemsize  # Python ints: no overflow
                if info.file_size != need:
                    raise SourceError(where, f"member is {info.file_size} bytes, its header promises {need} (truncated or corrupt)")
                if key in members:
                    raise SourceError(path, f"key {key!r} appears twice")
                members[key] = Member(key, path, mname, dtype.str, shape, fortran, hdr)
    except zipfile.BadZipFile as exc:
        raise SourceError(path, f"not a valid zip/NPZ archive (truncated or corrupt?): {exc}") from None
    except (zlib.error, EOFError) as exc:
        raise SourceError(path, f"corrupt archive: {exc}") from None
    except OSError as exc:
        raise SourceError(path, f"cannot read ({exc.strerror or exc})") from None
    return members


def scan(
    grouped: Sequence[tuple[str, list[tuple[str | None, str]]]],
    *,
    keys: Sequence[str] | None = None,
    on_error: str = "raise",
) -> tuple[list[SourceEntry], list[SourceError]]:
    """Read the headers of every grouped entry and check each entry on its own.

    Checks: valid NPY/NPZ, no object dtypes, no zero-row or 0-d arrays, the
    same row count for every key of an entry, and every requested ``keys``
    present.  Consistency *across* entries is checked by the caller.
    """
    out: list[SourceEntry] = []
    errors: list[SourceError] = []
    for name, items in grouped:
        try:
            paths = tuple(p for _, p in items)
            if items[0][0] is None and items[0][1].endswith(".npy"):
                raise SourceError(items[0][1], "an explicitly named NPY file needs a key: use the grouping rule")
            if items[0][0] is None:
                path = items[0][1]
                members = _scan_npz(path, keys)
                if not members:
                    raise SourceError(path, "holds no arrays" + (f" with keys {list(keys)}" if keys else ""))
            else:
                members = {}
                for key, path in items:
                    assert key is not None
                    if keys is not None and key not in keys:
                        continue
                    members[key] = _scan_npy(path, key)
            if keys is not None:
                missing = [k for k in keys if k not in members]
                if missing:
                    raise SourceError(", ".join(paths), f"entry {name!r} lacks key(s) {missing}")
            rows = {k: m.rows for k, m in members.items()}
            if len(set(rows.values())) > 1:
                raise SourceError(", ".join(paths), f"entry {name!r}: keys have different row counts {rows}")
            out.append(SourceEntry(name, paths, dict(sorted(members.items())), fingerprint(paths)))
        except SourceError as err:
            if on_error == "raise":
                raise
            errors.append(err)
    return out, errors
