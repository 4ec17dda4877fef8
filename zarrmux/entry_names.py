"""The names of entries and keys: which are safe, and how entry names are derived from file names.

Entry names and key names come from file and member names, so they are
checked: an entry name is one or more ``/``-separated components of
``[A-Za-z0-9_.-]`` that start with a letter, digit or ``_`` (so no ``..``, no
absolute paths, no spaces or odd characters); a key name is a single such
component and never a name the store uses itself (``index``, ``zarr.json``,
``.zarray``, ...: :data:`RESERVED_KEYS`, ignoring case), so a
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
"""

from __future__ import annotations

import re

from .sources import SourceError

__all__ = [
    "NAME_RULES",
    "SANITIZE_HINT",
    "RELATIVE_HINT",
    "MAX_NAME",
    "RESERVED_KEYS",
    "check_entry_name",
    "check_key_name",
    "sanitize_entry_name",
]

#: how entry names are derived from file names (``names=``; see the module docstring)
NAME_RULES = ("strict", "sanitize", "relative")
#: what a refused derived name's message suggests
SANITIZE_HINT = "use --names sanitize (Python: names='sanitize') to replace odd characters with '_'"
RELATIVE_HINT = (
    "use --names relative (Python: names='relative') to name entries after their path relative to the "
    "sources' common directory (a/x.npz -> 'a/x'), or rename one of the files"
)
_ODD_CHAR = re.compile(r"[^A-Za-z0-9_.\-]")
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
#: the longest entry or key name
MAX_NAME = 255
#: key names the store uses itself (casefolded): the same set as :data:`zarrmux.layout.RESERVED_NAMES`,
#: kept here so that naming imports no zarr (a test checks the two agree)
RESERVED_KEYS = frozenset({"index", "zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})


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
    if key.casefold() in RESERVED_KEYS:
        raise SourceError(
            path, f"key {key!r} is a name the corpus uses itself (reserved: {', '.join(sorted(RESERVED_KEYS))}); rename it"
        )
    if len(key) > MAX_NAME:
        raise SourceError(path, f"key {key[:40]!r}... is too long")
    return key
