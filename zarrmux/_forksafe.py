"""Locks that survive ``fork``: objects registered here get fresh locks in a forked child.

A lock held by another thread at fork time would otherwise stay locked
forever in the child (DataLoader workers and ``multiprocessing`` fork).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["register"]

_OBJECTS: "weakref.WeakSet[Any]" = weakref.WeakSet()


def register(obj: Any) -> None:
    """Re-arm ``obj._lock`` (and clear ``obj._pending``, waits of the parent's threads) in a forked child."""
    _OBJECTS.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_OBJECTS):
        obj._lock = threading.Lock()
        if hasattr(obj, "_pending"):  # reads of the parent's threads never finish here
            obj._pending = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
