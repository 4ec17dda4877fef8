"""Sources of a conversion: finding archives, naming entries, reading headers and row blocks.

Discovery
---------
A *source* is an NPZ file, an NPY file, a directory (searched recursively, in
sorted order, for ``*.npz`` and ``*.npy``) or a glob pattern (``**`` allowed).
A ``(name, path)`` pair gives an entry an explicit name.

Entries
-------
* An NPZ archive is one entry, named after its file (the file name without
  ``.npz``); its members are the entry's keys (member name without ``.npy``).
* NPY files are grouped into entries by a *grouping rule*: a regular
  expression with the named groups ``entry`` and ``key``, searched in the
  file's path (``/`` separators).  Built-in rules:

  ``"suffix"`` (default)
      ``song1_X.npy`` + ``song1_Y.npy`` -> entry ``song1``, keys ``X`` and ``Y``
      (the key is the text after the last ``_``).
  ``"dir"``
      ``X/song1.npy`` + ``Y/song1.npy`` -> entry ``song1``, keys ``X`` and ``Y``
      (the key is the parent directory's name).

Names
-----
Entry names and key names come from file and member names, so they are
checked: an entry name is one or more ``/``-separated components of
``[A-Za-z0-9_.-]`` that start with a letter, digit or ``_`` (so no ``..``, no
absolute paths, no spaces or odd characters); a key name is a single such
component and never a name the store uses itself (``index``, ``zarr.json``,
``.zarray``, ...: :data:`zarrmux.layout.RESERVED_NAMES`, ignoring case), so a
member named ``zarr.json.npy`` cannot overwrite the corpus metadata.  Two
entries whose names differ only by case are rejected too (they would collide
on case-insensitive file systems).

How entry names are derived from file names is the *naming rule*
(``names=``, :data:`NAME_RULES`; ``zarrmux convert --names``):

``"strict"`` (default)
    The name as found (file name without ``.npz``, or the grouping rule's
    ``entry``); a name with odd characters, or two files giving one name,
    is refused, and the message says which rule would fix it.
``"sanitize"``
    The same name with every odd character replaced by ``_``
    (:func:`sanitize_entry_name`: ``"Song 1 (live)"`` -> ``"Song_1__live_"``;
    a component's leading ``.`` or ``-`` becomes ``_``, so ``..`` is ``_.``;
    empty and ``.`` components are dropped, so no name is absolute).  Valid
    names are unchanged.
``"relative"``
    The file's path relative to the *root* of the sources, sanitised per
    component and keeping ``/``: ``a/x.npz`` and ``b/x.npz`` become ``a/x``
    and ``b/x``.  The root is the common directory of the source arguments
    (a directory itself, a file's directory, a glob's directory before its
    first wildcard), so rerunning the same command gives the same names.
    NPY files: the grouping rule is searched in that relative path, and the
    name is the directories above what it matched, then its ``entry``
    (``a/song1_X.npy`` -> ``a/song1``).

Whatever the rule, a derived name is checked like any other, and names that
collide (also after sanitising, also ignoring case) are refused, never
merged: two files whose names sanitise to one name are an error even when
they would otherwise form one NPY entry (and :func:`zarrmux.convert`
refuses a source already stored under another name, e.g. by another rule).
Explicit names (``(name, path)`` pairs) are used as given and checked.
Every entry's original source path is kept in the corpus index
(``index/source``, :attr:`SourceEntry.source`).

Reading
-------
Headers are parsed with :mod:`numpy.lib.format` without reading data; row
blocks are read incrementally with ``readinto`` (NPY files through a plain
file, NPZ members through :meth:`zipfile.ZipFile.open`, which streams both
stored and deflated members), so memory stays bounded by the block size.
Pickles are never loaded: object dtypes are an error.

Values, not bytes
-----------------
Any byte order is read: a corpus stores every key little-endian
(:func:`zarrmux.layout.store_dtype`), and row blocks of a big-endian source
are byte-swapped as they are read (:meth:`_Reader.read_values`), so the
stored values are the source's values.  Fortran-ordered arrays with more
than one column cannot be streamed by rows and are refused.

Sizes
-----
Sizes computed from headers use Python integers (no overflow) and must be
backed by bytes that exist: an NPY file must hold what its header promises;
an NPZ member's size must match its header, and its compressed size must fit
in the archive (a stored member's sizes agree; a deflated one cannot expand
more than deflate can, :data:`MAX_DEFLATE_RATIO`).  Encrypted members are refused.
"""

from __future__ import annotations

import glob
import math
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npformat

from .exceptions import ConversionError

__all__ = [
    "GROUP_RULES",
    "Member",
    "SourceEntry",
    "SourceError",
    "NAME_RULES",
    "check_entry_name",
    "check_key_name",
    "sanitize_entry_name",
    "discover",
    "scan",
    "read_header",
    "iter_blocks",
    "open_reader",
    "source_checksum",
]

#: built-in NPY grouping rules (regular expressions with groups ``entry`` and ``key``)
GROUP_RULES: dict[str, str] = {
    "suffix": r"(?:^|/)(?P<entry>[^/]+)_(?P<key>[^/_]+)\.npy$",
    "dir": r"(?:^|/)(?P<key>[^/]+)/(?P<entry>[^/]+)\.npy$",
}
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
_GLOB_CHARS = re.compile(r"[*?\[]")
#: dtype kinds a corpus can hold: bool, signed/unsigned ints, floats, complex
_KINDS = "biufc"
MAX_NAME = 255
#: the most deflate can expand (1032:1), plus slack: a member claiming more is corrupt or hostile
MAX_DEFLATE_RATIO = 1100
#: key names the store uses itself (casefolded); see :data:`zarrmux.layout.RESERVED_NAMES`
_RESERVED_KEYS = frozenset({"index", "zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})


class SourceError(ConversionError):
    """A source cannot be converted; ``path`` names the file, ``problem`` the reason."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes
        return (type(self), (self.path, self.problem))


#: how entry names are derived from file names (``names=``; see "Names" above)
NAME_RULES = ("strict", "sanitize", "relative")
#: what a refused derived name's message suggests
SANITIZE_HINT = "use --names sanitize (Python: names='sanitize') to replace odd characters with '_'"
RELATIVE_HINT = (
    "use --names relative (Python: names='relative') to name entries after their path relative to the "
    "sources' common directory (a/x.npz -> 'a/x'), or rename one of the files"
)
_ODD_CHAR = re.compile(r"[^A-Za-z0-9_.\-]")


def check_entry_name(name: str, path: str = "<name>", hint: str | None = SANITIZE_HINT) -> str:
    """``name`` if it is a safe entry name, else :class:`SourceError` naming ``path``.

    ``hint`` is appended to the message (default: which naming rule derives a
    safe name); ``None`` leaves it out.
    """
    tail = f"; {hint}" if hint else ""
    if not isinstance(name, str) or not name:
        raise SourceError(path, f"empty entry name {name!r}{tail}")
    if len(name) > MAX_NAME:
        raise SourceError(path, f"entry name {name[:40]!r}... is longer than {MAX_NAME} characters{tail}")
    if name.startswith("/") or re.match(r"[A-Za-z]:[\\/]", name):
        raise SourceError(path, f"entry name {name!r} is an absolute path{tail}")
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise SourceError(path, f"entry name {name!r} would escape the store (component {part!r}){tail}")
        if not _COMPONENT.match(part):
            raise SourceError(
                path,
                f"entry name {name!r} has odd characters (allowed: letters, digits, '_', '.', '-', and '/' between parts){tail}",
            )
    return name


def _sanitize_component(part: str) -> str:
    part = _ODD_CHAR.sub("_", part)
    if part and not _COMPONENT.match(part[0]):  # a leading '.' or '-': '..' -> '_.', '.x' -> '_x'
        part = "_" + part[1:]
    return part


def sanitize_entry_name(name: str) -> str:
    """A safe entry name made from ``name`` (the ``names='sanitize'`` rule); valid names are unchanged.

    Every character other than ``[A-Za-z0-9_.-]`` and ``/`` becomes ``_``
    (one ``_`` per character, so ``"Song 1 (live)"`` -> ``"Song_1__live_"``),
    a component's leading ``.`` or ``-`` becomes ``_`` (``..`` -> ``_.``),
    empty and ``.`` components are dropped (``/abs/x`` -> ``abs/x``), an
    empty result is ``_``, and a name longer than :data:`MAX_NAME` is cut,
    ending with 8 hex digits of its SHA-1.  The result always passes
    :func:`check_entry_name`; different names may give the same result
    (the caller refuses such collisions).
    """
    parts = [_sanitize_component(p) for p in str(name).split("/") if p not in ("", ".")]
    out = "/".join(p for p in parts if p) or "_"
    if len(out) > MAX_NAME:
        import hashlib

        digest = hashlib.sha1(str(name).encode("utf-8", "surrogatepass")).hexdigest()[:8]
        out = out[: MAX_NAME - 9].rstrip("/") + "_" + digest
    return out


def check_key_name(key: str, path: str = "<key>") -> str:
    """``key`` if it is a safe key (array) name, else :class:`SourceError` naming ``path``."""
    if not isinstance(key, str) or not _COMPONENT.match(key) or key in (".", ".."):
        raise SourceError(path, f"key {key!r} is not a valid key name (letters, digits, '_', '.', '-'; not 'index')")
    if key.casefold() in _RESERVED_KEYS:
        raise SourceError(
            path, f"key {key!r} is a name the corpus uses itself (reserved: {', '.join(sorted(_RESERVED_KEYS))}); rename it"
        )
    if len(key) > MAX_NAME:
        raise SourceError(path, f"key {key[:40]!r}... is too long")
    return key


@dataclass(frozen=True)
class Member:
    """One array of an entry: where its bytes are and what they hold."""

    key: str
    path: str  #: the file (NPY, or the NPZ archive)
    member: str | None  #: zip member name for NPZ, ``None`` for NPY
    dtype: str  #: numpy dtype string
    shape: tuple[int, ...]
    fortran_order: bool = False
    data_offset: int = 0  #: byte offset of the data in the NPY file / member

    @property
    def rows(self) -> int:
        return int(self.shape[0])

    @property
    def store_dtype(self) -> str:
        """The dtype the corpus stores this member as (little-endian, :func:`zarrmux.layout.store_dtype`)."""
        return np.dtype(self.dtype).newbyteorder("<").str

    @property
    def row_bytes(self) -> int:
        return np.dtype(self.dtype).itemsize * math.prod(self.shape[1:])

    @property
    def nbytes(self) -> int:
        return self.rows * self.row_bytes

    @property
    def where(self) -> str:
        return f"{self.path}:{self.member}" if self.member else self.path


@dataclass(frozen=True)
class SourceEntry:
    """One entry to convert: a name and its members, keyed by key name."""

    name: str
    paths: tuple[str, ...]  #: the file(s) the entry comes from
    members: dict[str, Member] = field(hash=False)
    fingerprint: str = ""

    @property
    def source(self) -> str:
        """The source recorded in the index: the absolute path(s), ``;``-separated."""
        return ";".join(os.path.abspath(p) for p in self.paths)

    @property
    def rows(self) -> int:
        return next(iter(self.members.values())).rows if self.members else 0

    @property
    def nbytes(self) -> int:
        return sum(m.nbytes for m in self.members.values())

    @property
    def where(self) -> str:
        return ", ".join(self.paths)


def fingerprint(paths: Iterable[str]) -> str:
    """``"<size>:<mtime_ns>"`` of each file, ``,``-separated."""
    out = []
    for p in paths:
        st = os.stat(p)
        out.append(f"{st.st_size}:{st.st_mtime_ns}")
    return ",".join(out)


# ---------------------------------------------------------------- discovery


def _expand(source: Any) -> list[tuple[str | None, str]]:
    """One source argument -> ``[(explicit_name_or_None, file_path)]`` in order."""
    if isinstance(source, tuple):
        name, path = source
        return [(str(name), os.fspath(path))]
    s = os.fspath(source)
    if os.path.isdir(s):
        found: list[tuple[str | None, str]] = []
        for dirpath, dirnames, filenames in os.walk(s):
            dirnames.sort()
            for f in sorted(filenames):
                if f.endswith((".npz", ".npy")):
                    found.append((None, os.path.join(dirpath, f)))
        if not found:
            raise SourceError(s, "directory holds no .npz or .npy files")
        return found
    if os.path.exists(s):
        return [(None, s)]
    if _GLOB_CHARS.search(s):
        matches = sorted(m for m in glob.glob(s, recursive=True) if os.path.isfile(m))
        if not matches:
            raise SourceError(s, "glob pattern matches no files")
        return [(None, m) for m in matches]
    raise SourceError(s, "no such file or directory")


def _group_regex(group: str) -> re.Pattern[str]:
    pattern = GROUP_RULES.get(group, group)
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"group={group!r} is neither {sorted(GROUP_RULES)} nor a valid regular expression: {exc}") from None
    if not {"entry", "key"} <= set(rx.groupindex):
        raise ValueError(f"group={group!r}: the regular expression needs named groups 'entry' and 'key'")
    return rx


def _source_root(source: Any) -> str | None:
    """The directory a source argument names files under (``names='relative'``); ``None`` for a ``(name, path)`` pair."""
    if isinstance(source, tuple):
        return None
    s = os.fspath(source)
    if os.path.isdir(s):
        return os.path.abspath(s)
    if not os.path.exists(s) and _GLOB_CHARS.search(s):
        parts = Path(s).parts
        fixed = next(i for i, part in enumerate(parts) if _GLOB_CHARS.search(part))
        return os.path.abspath(os.path.join(*parts[:fixed]) if fixed else ".")
    return os.path.dirname(os.path.abspath(s))


def _relative_root(sources: Sequence[Any]) -> str | None:
    """The common directory of the source arguments (``names='relative'``)."""
    roots = [r for r in (_source_root(src) for src in sources) if r is not None]
    if not roots:
        return None
    try:
        return os.path.commonpath(roots)
    except ValueError:  # pragma: no cover - different drives (Windows)
        return None


def _relative_posix(path: str, root: str | None) -> str:
    """``path`` relative to ``root`` (``/`` separators); the file name alone if it is not under ``root``."""
    if root is not None:
        rel = os.path.relpath(os.path.abspath(path), root)
        if rel != ".." and not rel.startswith(".." + os.sep):
            return Path(rel).as_posix()
    return Path(path).name


def discover(
    sources: Sequence[Any] | str | os.PathLike[str],
    *,
    group: str = "suffix",
    on_error: str = "raise",
    names: str = "strict",
) -> tuple[list[tuple[str, list[tuple[str | None, str]]]], list[SourceError]]:
    """Expand ``sources`` and group files into named entries, in source order.

    Returns ``([(entry_name, [(key_or_None, path), ...]), ...], errors)``; NPZ
    entries have one ``(None, path)`` item.  Names are derived by the naming
    rule ``names`` (:data:`NAME_RULES`: ``'strict'``, ``'sanitize'``,
    ``'relative'``; see the module docstring), checked
    (:func:`check_entry_name`) and must be unique, also ignoring case and
    after sanitising.  With ``on_error='raise'`` the first problem raises
    :class:`SourceError`; with ``'skip'`` problems are returned and the
    offending files left out.
    """
    if names not in NAME_RULES:
        raise ValueError(f"names={names!r} is not one of {NAME_RULES}")
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    rx = _group_regex(group)
    root = _relative_root(sources) if names == "relative" else None
    collide_hint = RELATIVE_HINT if names != "relative" else "rename one of the files"
    errors: list[SourceError] = []

    def fail(err: SourceError) -> None:
        if on_error == "raise":
            raise err
        errors.append(err)

    groups: dict[str, list[tuple[str | None, str]]] = {}
    origin: dict[str, str] = {}
    raw_of: dict[str, str] = {}  # entry name -> the name before sanitising (NPY files group by it)
    folded: dict[str, str] = {}
    seen_files: set[str] = set()
    for src in sources:
        try:
            files = _expand(src)
        except SourceError as err:
            fail(err)
            continue
        for explicit, path in files:
            real = os.path.realpath(path)
            if real in seen_files:
                continue  # the same file named twice (e.g. a dir and a glob): once
            seen_files.add(real)
            posix = _relative_posix(path, root) if names == "relative" and explicit is None else Path(path).as_posix()
            key: str | None = None
            try:
                if path.endswith(".npy"):
                    m = rx.search(posix)
                    if m is None:
                        raise SourceError(path, f"NPY file name does not match the grouping rule {group!r} ({rx.pattern})")
                    raw = m.group("entry")
                    if names == "relative":
                        head = posix[: m.start()].strip("/")
                        raw = f"{head}/{raw}" if head else raw
                    key = check_key_name(m.group("key"), path)
                elif path.endswith(".npz"):
                    raw = posix.rsplit("/", 1)[-1][:-4] if names != "relative" else posix[:-4]
                else:
                    raw = posix.rsplit("/", 1)[-1] if names != "relative" else posix
                if explicit is not None:
                    name = raw = explicit
                    check_entry_name(name, path, hint="choose another name")
                elif names == "strict":
                    name = check_entry_name(raw, path)
                else:
                    name = check_entry_name(sanitize_entry_name(raw), path, hint=None)
                shown = repr(name) if raw == name else f"{name!r} (from {raw!r})"
                if name in groups:
                    if key is None or groups[name][0][0] is None or raw_of[name] != raw:
                        other = origin[name] + (f" (named {name!r} from {raw_of[name]!r})" if raw_of[name] != name else "")
                        raise SourceError(path, f"entry name {shown} collides with {other}; {collide_hint}")
                    if any(k == key for k, _ in groups[name]):
                        raise SourceError(path, f"entry {name!r} has key {key!r} twice (also {origin[name]}); {collide_hint}")
                    groups[name].append((key, path))
                    continue
                low = name.casefold()
                if low in folded:
                    other = folded[low]
                    was = f", from {raw_of[other]!r}" if raw_of[other] != other else ""
                    raise SourceError(
                        path, f"entry name {shown} differs only by case from {other!r} ({origin[other]}{was}); {collide_hint}"
                    )
            except SourceError as err:
                fail(err)
                continue
            folded[low] = name
            origin[name] = path
            raw_of[name] = raw
            groups[name] = [(key, path)]
    return list(groups.items()), errors


# ---------------------------------------------------------------- headers


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


# ---------------------------------------------------------------- reading rows


class _Reader:
    """An open stream positioned at the data of one member."""

    def __init__(self, m: Member) -> None:
        self.m = m
        self._zf: zipfile.ZipFile | None = None
        try:
            if m.member is None:
                self.fp: IO[bytes] = open(m.path, "rb")
                self.fp.seek(m.data_offset)
            else:
                self._zf = zipfile.ZipFile(m.path)
                self.fp = self._zf.open(m.member)
                self.fp.read(m.data_offset)
        except (OSError, zipfile.BadZipFile, KeyError, zlib.error, RuntimeError, EOFError) as exc:
            self.close()
            raise SourceError(m.where, f"cannot open for reading: {exc}") from None
        self.swap = np.dtype(m.dtype) != np.dtype(m.store_dtype)

    def readinto(self, view: memoryview) -> None:
        want = len(view)
        got = 0
        try:
            while got < want:
                n = self.fp.readinto(view[got:])  # type: ignore[attr-defined]
                if not n:
                    break
                got += n
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise SourceError(self.m.where, f"corrupt data while reading key {self.m.key!r}: {exc}") from None
        if got < want:
            raise SourceError(self.m.where, f"truncated: key {self.m.key!r} ended {want - got} bytes early")

    def read_values(self, out: np.ndarray) -> None:
        """Fill C-contiguous ``out`` (dtype ``m.store_dtype``) with the next rows, as values.

        A big-endian source is byte-swapped in place after reading, so ``out``
        holds the source's values in the corpus's little-endian dtype.
        """
        self.readinto(out.data.cast("B"))  # .data: the array's memoryview
        if self.swap:
            out.byteswap(inplace=True)

    def finish(self) -> None:
        """Read to the end of the member so zipfile checks its CRC."""
        try:
            rest = self.fp.read(1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise SourceError(self.m.where, f"corrupt data (key {self.m.key!r}): {exc}") from None
        if rest and self.m.member is not None:
            raise SourceError(self.m.where, f"member has bytes after its array data (key {self.m.key!r})")

    def close(self) -> None:
        fp = getattr(self, "fp", None)
        if fp is not None:
            fp.close()
        if self._zf is not None:
            self._zf.close()

    def __enter__(self) -> "_Reader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def iter_blocks(m: Member, block_bytes: int = 8 << 20) -> Iterator[np.ndarray]:
    """Yield consecutive row blocks of member ``m`` (fresh arrays of about ``block_bytes``).

    Blocks hold the source's values in the corpus dtype ``m.store_dtype``
    (little-endian).  Reads incrementally; never holds more than one block.
    Raises :class:`SourceError` for truncated or corrupt data (CRC checked at the end).
    """
    rows_per = max(1, block_bytes // max(1, m.row_bytes))
    dt = np.dtype(m.store_dtype)
    with _Reader(m) as r:
        done = 0
        while done < m.rows:
            n = min(rows_per, m.rows - done)
            block = np.empty((n, *m.shape[1:]), dtype=dt)
            r.read_values(block)
            yield block
            done += n
        r.finish()


def open_reader(m: Member) -> _Reader:
    """An open :class:`_Reader` for member ``m`` (use as a context manager)."""
    return _Reader(m)


def source_checksum(entry: SourceEntry, block_bytes: int = 8 << 20) -> str:
    """The :func:`zarrmux.layout.entry_hasher` checksum of an entry's source data, streamed."""
    from .layout import EntryHasher

    h = EntryHasher()
    for key in sorted(entry.members):
        m = entry.members[key]
        h.begin_key(key, np.dtype(m.store_dtype), m.shape)
        for block in iter_blocks(m, block_bytes):
            h.update(block)
    return h.hexdigest()
