"""Resume, append, overwrite: which source entries a conversion converts into an existing corpus.

Each source entry is matched by name against the entries the corpus holds:

* a new name is converted (appended), unless the corpus already holds the
  same source under another name (converted with another naming rule) or a
  name that differs only by case: both are refused;
* a stored name whose fingerprint (``size:mtime_ns``) or checksum matches is
  *unchanged* and skipped, so rerunning an interrupted conversion resumes it;
* a stored name with different data is refused, or replaced with
  ``overwrite=True`` (its index row is rewritten in place).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .member_reader import source_checksum
from .sources import SourceEntry, SourceError

__all__ = ["Resume", "match_stored"]


@dataclass
class Resume:
    """What to do with each source entry, against a corpus's index."""

    todo: list[SourceEntry] = field(default_factory=list)  #: to convert, in source order
    updates_for: dict[str, int] = field(default_factory=dict)  #: name -> index row it replaces
    skipped: list[str] = field(default_factory=list)  #: names stored unchanged


def match_stored(
    entries: Sequence[SourceEntry],
    index: Mapping[str, np.ndarray],
    dest: str,
    *,
    overwrite: bool,
    bad: Callable[[SourceError], None],
) -> Resume:
    """Match ``entries`` against the committed ``index`` of the corpus at ``dest``.

    A refused entry is passed to ``bad`` (which raises it, or records it and
    returns) and left out.
    """
    out = Resume()
    pos = {str(n): i for i, n in enumerate(index["name"])}
    folded = {str(n).casefold(): str(n) for n in index["name"]}
    by_source = {str(src): str(n) for n, src in zip(index["name"], index["source"]) if str(src)}
    for e in entries:
        i = pos.get(e.name)
        if i is None:
            other = folded.get(e.name.casefold())
            stored_as = by_source.get(e.source)
            if stored_as is not None and other is None:
                bad(SourceError(
                    e.where, f"entry {e.name!r}: this source is already in {dest} as entry {stored_as!r} "
                    "(converted with another naming rule?); rerun with the --names rule (Python: names=) the "
                    "corpus was converted with"
                ))
                continue
            if other is not None:
                bad(SourceError(
                    e.where, f"entry name {e.name!r} differs only by case from {other!r} already in {dest}; "
                    "rename the file, or use --names relative (Python: names='relative') to name entries after their path"
                ))
                continue
            out.todo.append(e)
            continue
        if str(index["fingerprint"][i]) == e.fingerprint or source_checksum(e) == str(index["checksum"][i]):
            out.skipped.append(e.name)
        elif overwrite:
            out.updates_for[e.name] = i
            out.todo.append(e)
        else:
            bad(SourceError(e.where, f"entry {e.name!r} already exists in {dest} with different data (use overwrite=True / --overwrite to replace it)"))
    return out
