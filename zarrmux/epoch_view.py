"""One rank's batches of one epoch by index: :class:`EpochView`, a map-style data source.

Frameworks that index a data source (``len(source)``, ``source[i]``) get one
from :meth:`zarrmux.WindowSampler.epoch_view`.  The view holds nothing but
its sampler and epoch: the windows of batch ``i`` come from the sampler's
global stream (planned from the nearest kept plan state), and reading them
is one :func:`~zarrmux.batch_reading.read_block` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .batch_reading import read_block
from .params import check_int

if TYPE_CHECKING:
    from .corpus import Corpus

__all__ = ["EpochView", "IndexedBatches"]


class IndexedBatches(Protocol):
    """What a view needs of its sampler (:class:`~zarrmux.sampler.WindowSampler` has it)."""

    @property
    def corpus(self) -> "Corpus": ...

    @property
    def n(self) -> int: ...

    @property
    def keys(self) -> Sequence[str]: ...

    def batches_per_epoch(self, epoch: int | None = None) -> int: ...

    def batch_windows(self, epoch: int, i: int) -> tuple[np.ndarray, np.ndarray]: ...


class EpochView:
    """One rank's batches of one epoch by index: ``len(view)``, ``view[i]`` (a map-style data source).

    ``view[i]`` is ``{key: array}`` of the rank's batch ``i`` of the epoch,
    global batch ``(rank + i * world_size) % G`` -- what iterating the epoch
    from its start yields ``i``-th.  Reading costs what iterating costs;
    finding the windows costs planning from the nearest kept plan state (at
    most :data:`zarrmux.global_stream.CHECKPOINT_EVERY` batches once the
    epoch, or the part of it up to ``i``, has been planned once; see
    ``tools/bench_plan.py --random-access``).  The view does not move the sampler.
    """

    def __init__(self, sampler: IndexedBatches, epoch: int) -> None:
        self.sampler, self.epoch = sampler, int(epoch)

    def __len__(self) -> int:
        return self.sampler.batches_per_epoch(self.epoch)

    def windows(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``(entries, starts)`` of batch ``i`` (negative ``i`` counts from the end)."""
        i = check_int("batch index", i, minimum=None)
        i = int(i)
        if i < 0:
            i += len(self)
        return self.sampler.batch_windows(self.epoch, i)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        entries, starts = self.windows(i)
        s = self.sampler
        return read_block(s.corpus, s.n, s.keys, entries, starts)

    def __repr__(self) -> str:
        return f"<zarrmux.EpochView epoch={self.epoch} of {self.sampler!r}>"
