"""The destination of a conversion: the corpus already there, creating a new one, dropping what was not committed.

* :func:`open_existing`: the corpus at ``dest``, nothing, or a store whose
  creation was interrupted (it holds no entries and is recreated); anything
  else there is refused.
* :func:`create_atomically`: a new local corpus is created complete beside
  ``dest`` (``<dest>`` + :data:`NEW_SUFFIX` + ``<pid>``) and renamed into
  place, so a run killed while creating leaves nothing at ``dest``; a remote
  one is created in place (an object store has no rename).
* :func:`trim` and :func:`cleanup`: data written beyond the last commit is
  dropped (the commit protocol of :mod:`zarrmux.layout` leaves it unindexed).

Everything here runs while the destination's writer lock is held
(:mod:`zarrmux.writer_lock`), which is what makes removing another run's
leftovers safe.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
from collections.abc import Mapping, Sequence

import zarr

from . import layout
from .corpus_arrays import IncompleteCorpusError, open_parts
from .exceptions import CorpusError

__all__ = [
    "NEW_SUFFIX",
    "is_local",
    "open_existing",
    "create_atomically",
    "trim",
    "cleanup",
    "committed_entries",
    "stored_bytes",
]

_log = logging.getLogger("zarrmux")

#: suffix of the directory a new local corpus is created in before it is renamed into place
NEW_SUFFIX = ".zarrmux-new-"


def is_local(dest: str) -> bool:
    """Whether ``dest`` is a local path (no ``scheme://``): such a corpus is created atomically and cleaned up."""
    return "://" not in dest


def stored_bytes(root: zarr.Group, keys: Sequence[str]) -> int:
    """Stored bytes of the arrays of ``keys`` and of the index (an array whose store cannot list counts 0)."""
    total = 0
    for k in [*keys, *[f"{layout.INDEX_GROUP}/{f}" for f in layout.INDEX_FIELDS]]:
        try:
            total += int(layout.array_at(root, k).nbytes_stored())
        except Exception as exc:  # noqa: BLE001 - a store that cannot list: report 0
            _log.debug("stored size of %r unknown (%s: %s): counted as 0", k, type(exc).__name__, exc)
    return total


def _new_dirs(dest: str) -> list[str]:
    """Leftover creation directories of ``dest`` (``<dest>.zarrmux-new-<pid>``)."""
    return glob.glob(glob.escape(os.path.realpath(dest).rstrip(os.sep)) + NEW_SUFFIX + "*")


def open_existing(dest: str) -> tuple[zarr.Group | None, bool]:
    """``(root, partial)``: the corpus at ``dest``, or ``(None, False)`` if nothing is there.

    ``(None, True)``: a store whose creation was interrupted (a zarrmux root
    without all its arrays and no committed entries): nothing to keep, the
    run recreates it.  :class:`CorpusError` if something else is there.
    Called while holding the writer lock, which also makes it safe to remove
    leftover creation directories of a killed run.
    """
    if is_local(dest):
        for leftover in _new_dirs(dest):
            shutil.rmtree(leftover, ignore_errors=True)
        if not os.path.exists(dest):
            return None, False
        if os.path.isdir(dest) and not os.listdir(dest):
            return None, False
        if not os.path.isdir(dest):
            raise CorpusError(f"destination {dest} exists and is not a directory (not a zarrmux corpus)")
    try:
        root = zarr.open_group(dest, mode="r+")
    except Exception as exc:  # noqa: BLE001 - zarr raises several types here
        if not is_local(dest) and isinstance(exc, FileNotFoundError):
            return None, False
        raise CorpusError(
            f"destination {dest} exists and is not a zarrmux corpus (reading {dest.rstrip('/')}/zarr.json: "
            f"{type(exc).__name__}: {exc})"
        ) from None
    meta = layout.read_meta(root)  # CorpusError if not a corpus
    try:
        open_parts(root, meta)
    except IncompleteCorpusError as exc:
        if exc.n_entries:
            raise
        return None, True
    return root, False


def create_atomically(
    dest: str, specs: Mapping[str, layout.KeySpec], *, shard_rows: int, codec: str, level: int | None, partial: bool
) -> zarr.Group:
    """Create the corpus at ``dest``, atomically for a local one: built aside, then renamed into place.

    A run killed while creating leaves nothing at ``dest`` (only a
    ``<dest>.zarrmux-new-<pid>`` directory, removed by the next writer).  A
    remote store is created in place (an object store has no rename); a
    creation interrupted there is recognised and redone (``partial``).
    """
    if not is_local(dest):
        return layout.create_corpus(dest, specs, shard_rows=shard_rows, codec=codec, level=level)
    real = os.path.realpath(dest).rstrip(os.sep)
    tmp = f"{real}{NEW_SUFFIX}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        layout.create_corpus(tmp, specs, shard_rows=shard_rows, codec=codec, level=level)
        if partial:  # an interrupted creation of an older zarrmux: nothing committed, replace it
            shutil.rmtree(real)
        elif os.path.isdir(real):
            os.rmdir(real)  # empty (checked by open_existing, under the lock)
        os.rename(tmp, real)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return zarr.open_group(dest, mode="r+")


def trim(root: zarr.Group, meta: layout.CorpusMeta) -> None:
    """Shrink data arrays to the committed end, deleting shards written by uncommitted units."""
    for k, spec in meta.keys.items():
        arr = layout.array_at(root, k)
        if arr.shape[0] > meta.rows_allocated:
            arr.resize((meta.rows_allocated, *spec.trailing_shape))


def cleanup(dest: str, root: zarr.Group, created: bool) -> None:
    """After a failed run: drop uncommitted data; remove a store this run created and left empty."""
    try:
        meta = layout.read_meta(root)
        if created and meta.n_entries == 0 and is_local(dest):
            shutil.rmtree(dest, ignore_errors=True)
        else:
            trim(root, meta)
    except Exception as exc:  # noqa: BLE001 - cleanup is best effort; the next run trims too
        _log.warning("could not clean up %s after the failed run (%s: %s); the next run trims it", dest, type(exc).__name__, exc)


def committed_entries(dest: str) -> int | None:
    """Committed entries of the corpus at ``dest`` (``None``: no corpus there, or it cannot be read)."""
    try:
        if is_local(dest) and not os.path.isdir(dest):
            return None
        return layout.read_meta(zarr.open_group(dest, mode="r")).n_entries
    except Exception:  # noqa: BLE001 - only for a message
        return None
