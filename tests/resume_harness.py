"""A reusable save/restore check, in the style of torchdata.nodes' ``run_test_save_load_state``.

``check_resume(make, midpoint)``:

1. runs a fresh object uninterrupted for the rest of the current epoch and
   the whole next one (``for`` twice);
2. runs another fresh object for ``midpoint`` items, saves ``state_dict()``
   (through JSON, to prove it serialises), closes it;
3. builds a third fresh object, ``load_state_dict(state)``, and iterates the
   rest of the epoch and the next epoch;

and asserts that head + rest equals the first epoch and the resumed next
epoch equals the uninterrupted next epoch, item for item.  Items are
compared exactly (dicts of arrays by dtype, shape and bytes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np


def snapshot(item: Any) -> Any:
    """An exactly comparable, hashable copy of an item (dict of arrays, array, tuple or scalar)."""
    if isinstance(item, dict):
        return tuple((k, snapshot(v)) for k, v in sorted(item.items()))
    if isinstance(item, np.ndarray):
        return (item.dtype.str, item.shape, item.tobytes())
    if isinstance(item, (tuple, list)):
        return tuple(snapshot(v) for v in item)
    return item


def collect(it: Iterable[Any], limit: int | None = None) -> list[Any]:
    out = []
    for item in it:
        out.append(snapshot(item))
        if limit is not None and len(out) >= limit:
            break
    return out


def check_resume(make: Callable[[], Any], midpoint: int, *, close: bool = True) -> dict[str, Any]:
    """Check exact resume at ``midpoint`` items into the current epoch; returns the saved state.

    ``make()`` returns a fresh object with ``__iter__`` (one epoch per
    ``for``), ``state_dict()``, ``load_state_dict(state)`` and optionally
    ``close()``.
    """
    ref = make()
    epoch_a = collect(ref)
    epoch_b = collect(ref)
    _close(ref, close)
    assert len(epoch_a) > 0 and len(epoch_b) > 0
    assert 0 <= midpoint <= len(epoch_a), (midpoint, len(epoch_a))

    first = make()
    it = iter(first)
    head = [snapshot(next(it)) for _ in range(midpoint)]
    state = json.loads(json.dumps(first.state_dict()))
    # consuming more after saving must not change what was saved
    collect(it, 2)
    _close(first, close)

    second = make()
    second.load_state_dict(state)
    if midpoint == len(epoch_a):  # saved at the epoch's end: the next ``for`` is the next epoch
        rest: list[Any] = []
    else:
        rest = collect(second)
    nxt = collect(second)
    _close(second, close)

    assert head == epoch_a[:midpoint], "the interrupted run diverged before the save point"
    assert len(head) + len(rest) == len(epoch_a), (len(head), len(rest), len(epoch_a))
    assert head + rest == epoch_a, "resumed epoch differs from the uninterrupted one"
    assert nxt == epoch_b, "the epoch after a resume differs from the uninterrupted one"
    return state


def _close(obj: Any, close: bool) -> None:
    if close and hasattr(obj, "close"):
        obj.close()


def write_small_corpus(dest: Any, rows: Iterable[int] = (300, 517, 64, 1000, 250, 20, 777, 401), features: int = 8) -> dict[str, dict[str, np.ndarray]]:
    """Write a small corpus of entries ``e0, e1, ...`` (``X`` float32, ``Y`` int64) at ``dest``.

    Small chunks (16 rows) so windows cross chunk boundaries.  Returns the in-memory entries.
    """
    from zarrmux.testing import make_entry, write_corpus

    entries = {f"e{i}": make_entry(int(r), features, seed=i) for i, r in enumerate(rows)}
    write_corpus(dest, entries, chunk_rows=16, shard_rows=256)
    return entries
