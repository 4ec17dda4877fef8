"""What a conversion tells its caller: progress as it runs, a report at the end, what an interrupt kept.

:class:`ConversionReport` is what :func:`zarrmux.convert` returns;
:class:`Progress` drives the ``progress=`` option (a tqdm bar in decimal MB,
or a callback) in the units of :meth:`ConversionReport.summary`;
:class:`ConversionInterrupted` is the :class:`KeyboardInterrupt` a Ctrl-C
becomes, saying how many entries were committed and kept.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConversionReport", "ConversionInterrupted", "Progress", "BAR_FORMAT"]


@dataclass
class ConversionReport:
    """What a :func:`zarrmux.convert` call did."""

    dest: str
    entries: int = 0  #: entries converted (appended or overwritten) by this run
    rows: int = 0  #: rows converted by this run
    bytes_read: int = 0  #: source array bytes read and converted
    bytes_written: int = 0  #: growth of the stored bytes of the corpus
    seconds: float = 0.0
    appended: list[str] = field(default_factory=list)  #: names of new entries
    overwritten: list[str] = field(default_factory=list)  #: names replaced (``overwrite=True``)
    skipped: list[str] = field(default_factory=list)  #: names already stored unchanged (resume)
    errors: list[str] = field(default_factory=list)  #: bad sources left out (``on_error='skip'``)
    units: int = 0
    workers: int = 1
    total_entries: int = 0  #: committed entries in the corpus afterwards
    #: the codec of every key of the corpus (``{key: 'lz4' | 'zstd' | 'none'}``)
    codecs: dict[str, str] = field(default_factory=dict)
    #: lz4 ratios (raw / compressed) measured by ``codec='auto'`` in this run, per key
    lz4_ratios: dict[str, float] = field(default_factory=dict)
    #: entries this run set out to convert (new or replaced; the rest were unchanged or bad)
    planned: int = 0

    @property
    def mb_per_s(self) -> float:
        return self.bytes_read / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: entries, rows, bytes in and out, seconds, MB/s.

        Bytes are decimal megabytes (1 MB = 10**6 bytes), as on the progress bar.
        """
        s = (
            f"converted {self.entries} entries, {self.rows} rows, "
            f"{self.bytes_read / 1e6:.1f} MB in, {self.bytes_written / 1e6:.1f} MB out, "
            f"{self.seconds:.2f} s, {self.mb_per_s:.1f} MB/s"
        )
        if self.skipped:
            s += f"; {len(self.skipped)} unchanged skipped"
        if self.errors:
            s += f"; {len(self.errors)} bad sources skipped"
        return s + f" -> {self.dest} ({self.total_entries} entries)"


class ConversionInterrupted(KeyboardInterrupt):
    """:func:`zarrmux.convert` was interrupted (Ctrl-C): a :class:`KeyboardInterrupt` that says what was kept.

    Units finished before the interrupt are committed, the rest dropped; the
    store stays valid and rerunning the same conversion resumes.
    """

    def __init__(self, dest: str, converted: int, planned: int, committed: int | None) -> None:
        super().__init__(dest, converted, planned, committed)
        self.dest = dest
        self.converted = converted  #: entries this run committed before the interrupt
        self.planned = planned  #: entries this run set out to convert
        self.committed = committed  #: committed entries of the corpus now (``None``: none there)

    def __str__(self) -> str:
        if self.planned:
            done = f"interrupted: {self.converted} of the {self.planned} entries to convert were committed"
        else:
            done = "interrupted before converting any entry"
        held = (
            f"{self.dest} holds {self.committed} entries, each complete" if self.committed is not None
            else f"nothing was written to {self.dest}"
        )
        return f"{done}; {held}; rerun the same command to resume (entries already converted are skipped)"


#: the progress bar: source bytes read in decimal MB (``12.3/45.6 MB``, ``MB/s``) and entries
#: (``entries 3/10``), the units of the summary line (:meth:`ConversionReport.summary`)
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} MB [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class Progress:
    """Adapts ``progress`` (``None``/``False``, ``True`` for a tqdm bar, or a callable)."""

    def __init__(self, progress: Any, n_entries: int, n_bytes: int) -> None:
        self.entries = 0
        self.bytes = 0
        self.n_entries, self.n_bytes = n_entries, n_bytes
        self.bar = None
        self.fn: Callable[[int, int, int, int], None] | None = None
        if progress is True:
            from tqdm import tqdm

            # decimal MB, as the summary line (ConversionReport.summary); entries in the postfix
            self.bar = tqdm(
                total=n_bytes, unit="MB", unit_scale=1e-6, file=sys.stderr, desc="convert",
                dynamic_ncols=True, bar_format=BAR_FORMAT,
            )
            self.bar.set_postfix_str(f"entries 0/{n_entries}")
        elif callable(progress):
            self.fn = progress

    def advance(self, entries: int, nbytes: int) -> None:
        self.entries += entries
        self.bytes += nbytes
        if self.bar is not None:
            self.bar.update(nbytes)
            self.bar.set_postfix_str(f"entries {self.entries}/{self.n_entries}")
        if self.fn is not None:
            self.fn(self.entries, self.n_entries, self.bytes, self.n_bytes)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
