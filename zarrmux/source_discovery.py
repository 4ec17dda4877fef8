"""Finding the files of a conversion and grouping them into named entries: :func:`discover`.

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

Entry names follow the naming rule ``names=`` (:mod:`zarrmux.entry_names`);
``names='relative'`` names them after their path relative to the common
directory of the source arguments, which this module finds.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .entry_names import NAME_RULES, RELATIVE_HINT, check_entry_name, check_key_name, sanitize_entry_name
from .sources import SourceError

__all__ = ["GROUP_RULES", "discover"]

#: built-in NPY grouping rules (regular expressions with groups ``entry`` and ``key``)
GROUP_RULES: dict[str, str] = {
    "suffix": r"(?:^|/)(?P<entry>[^/]+)_(?P<key>[^/_]+)\.npy$",
    "dir": r"(?:^|/)(?P<key>[^/]+)/(?P<entry>[^/]+)\.npy$",
}
_GLOB_CHARS = re.compile(r"[*?\[]")


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
    ``'relative'``; see :mod:`zarrmux.entry_names`), checked
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
