"""Where a :class:`zarrmux.torch.WindowDataset` is in the global stream: :class:`DatasetPosition`.

The dataset's position is a plan state of the global stream
(:mod:`zarrmux.global_stream`): epoch ``e`` and global position ``p``, where
all ranks are together.  In the training process (``num_workers=0``) the
dataset sets it after every batch; with DataLoader workers the position
cannot come from them, so :class:`zarrmux.torch.WindowLoader` opens a
:class:`LoaderPass` where the workers start, counts the batches it delivers
and the position follows from that count (:meth:`DatasetPosition.resolve`).
Loading a state or setting an epoch moves the position and bumps
:attr:`DatasetPosition.generation`, which stops a pass running meanwhile.

No torch here: it is plain bookkeeping over :class:`~zarrmux.plan.WindowPlan`
and :class:`~zarrmux.global_stream.RankStream`.
"""

from __future__ import annotations

import os
from typing import Any

from .global_stream import GlobalStream, RankStream
from .plan import WindowPlan

__all__ = ["DatasetPosition", "LoaderPass"]


class LoaderPass:
    """A WindowLoader pass with workers: where it started and how many batches it delivered."""

    __slots__ = ("start", "delivered", "ended")

    def __init__(self, start: dict[str, Any]) -> None:
        self.start, self.delivered, self.ended = start, 0, False


class DatasetPosition:
    """The position of one rank's dataset in the global stream, and the length of its passes.

    Parameters
    ----------
    plan : WindowPlan
        The global stream's plan (its seed is the dataset's).
    rank, world_size : int
        This rank (checked here against the epoch's length).
    max_iter : int > 0 or None
        Batches of this rank per pass, or ``None``: see ``epochs``.
    epochs : int > 0 or None
        Epochs per pass without ``max_iter``; ``None``: endless.
    """

    def __init__(self, plan: WindowPlan, rank: int, world_size: int, max_iter: int | None, epochs: int | None) -> None:
        self.plan = plan
        self.rank, self.world_size = rank, world_size
        self.max_iter, self.epochs = max_iter, epochs
        self._ranks_cache: tuple[int, RankStream] | None = None
        self.ranks()  # checks rank / world_size against the epoch
        #: the global plan state where the next pass starts (or, with a pass of a WindowLoader
        #: running, started: see :meth:`resolve`)
        self.state: dict[str, Any] = plan.state_dict()
        self._pass: LoaderPass | None = None
        #: moved by :meth:`load` and :meth:`set_epoch`: a running pass stops
        self.generation = 0

    def ranks(self) -> RankStream:
        """This rank's view of the global stream, made once per process (it holds a lock)."""
        pid = os.getpid()
        if self._ranks_cache is None or self._ranks_cache[0] != pid or self._ranks_cache[1].stream.seed != self.plan.seed:
            self._ranks_cache = (pid, RankStream(GlobalStream(self.plan), self.rank, self.world_size))
        return self._ranks_cache[1]

    def resolve(self) -> dict[str, Any]:
        """Fold the batches a WindowLoader delivered into the position; the position."""
        lp = self._pass
        if lp is None:
            return self.state
        ranks = self.ranks()
        e0, p0 = int(lp.start["epoch"]), int(lp.start["batch"])
        if lp.ended:
            e, p = self._pass_end(e0, p0)
        else:
            e, p = ranks.advance(e0, p0, lp.delivered)
        self.state = ranks.stream.state_at(e, p)
        if lp.ended:
            self._pass = None
        return self.state

    def _pass_end(self, epoch: int, position: int) -> tuple[int, int]:
        if self.max_iter is not None:
            return self.ranks().advance(epoch, position, self.max_iter)
        assert self.epochs is not None
        return epoch + self.epochs, 0

    def pass_length(self) -> int:
        """Batches of a pass from here; ``TypeError`` if endless."""
        if self.max_iter is not None:
            return self.max_iter
        if self.epochs is None:
            raise TypeError("an endless WindowDataset (epochs=None) has no length")
        e = int(self.resolve()["epoch"])
        ranks = self.ranks()
        return sum(ranks.remaining(e + i, 0) for i in range(self.epochs))

    def epoch_length(self, epoch: int) -> int:
        """This rank's batches of ``epoch``."""
        return self.ranks().remaining(epoch, 0)

    def epoch_start(self, epoch: int) -> dict[str, Any]:
        """The plan state at the start of ``epoch``."""
        return self.ranks().stream.start_state(epoch)

    # ------------------------------------------------------------------ moves
    def load(self, plan_state: dict[str, Any], check_seed: int | None) -> None:
        """Continue from a saved plan state (checked against the plan; a new seed is taken when ``check_seed`` is None)."""
        cursor = self.plan.copy()
        cursor.load_state_dict(plan_state, check_seed=check_seed)
        if cursor.seed != self.plan.seed:
            self.plan = cursor.copy()
        self.ranks().stream.add_state(cursor.state_dict())
        self.state = cursor.state_dict()
        self._pass = None
        self.generation += 1

    def set_epoch(self, epoch: int) -> None:
        """The next pass starts at the beginning of ``epoch``."""
        self.state = self.epoch_start(epoch)
        self._pass = None
        self.generation += 1

    # ------------------------------------------------------------------ passes of a WindowLoader with workers
    def begin_pass(self) -> LoaderPass:
        """A pass starts here (its workers start from :attr:`state`)."""
        lp = LoaderPass(self.resolve())
        self._pass = lp
        return lp

    def count(self, lp: LoaderPass) -> None:
        """Pass ``lp`` delivered one more batch (ignored once the position moved elsewhere)."""
        if self._pass is lp:
            lp.delivered += 1

    def end_pass(self, lp: LoaderPass) -> None:
        """Pass ``lp`` ran to its end (ignored once the position moved elsewhere)."""
        if self._pass is lp:
            lp.ended = True
            self.resolve()

    def __getstate__(self) -> dict[str, Any]:
        self.resolve()
        d = dict(self.__dict__)
        d["_pass"] = None
        d["_ranks_cache"] = None
        return d
