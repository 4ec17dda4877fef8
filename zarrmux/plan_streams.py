"""A plan's random streams: :class:`PlanStreams`.  Pure: imports numpy only (and the plan's draws).

Every random number of a :class:`~zarrmux.plan.WindowPlan` comes from a
counter-based generator,
``Generator(Philox(key=seed, counter=(0, block, epoch, rank << 8 | tag)))``:
block ``b`` of epoch ``e`` on rank ``r`` always draws the same numbers
whoever plans it and in whatever order, so the plan's state between blocks
needs no generator state at all.  The low 8 bits of the counter's last word
say what the stream is for: a block's windows, an epoch's first active
slots, or an 'exhaustive' epoch's order of entries.

Making a ``Philox`` costs 20-30 us, so :class:`PlanStreams` keeps
generators and resets one to exactly the fresh state instead (about 2 us).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .exceptions import ConfigError
from .params import check_int
from .philox import PHILOX_BUFFER_SIZE, Draws

__all__ = ["PlanStreams", "fresh_seed"]

# what each stream is for: the low 8 bits of the Philox counter's last word
_TAG_BLOCK = 1
_TAG_INIT = 2
_TAG_ORDER = 3
_MASK64 = (1 << 64) - 1


def fresh_seed() -> int:
    """A seed from the OS's entropy, for ``seed=None`` (kept in the state, so a run can resume)."""
    return int(np.random.SeedSequence().entropy) & ((1 << 63) - 1)  # type: ignore[arg-type]  # entropy is an int when drawn


class PlanStreams:
    """The Philox streams of one rank's plan, by ``(epoch, block)`` and purpose.

    Parameters
    ----------
    seed : int >= 0 and < 2**64, or None
        The Philox key; ``None`` draws one (:func:`fresh_seed`).  A plan
        resuming a state sets :attr:`seed` to the state's.
    rank : int >= 0
        The rank (part of every counter).
    """

    def __init__(self, seed: int | None, rank: int) -> None:
        if seed is None:
            seed = fresh_seed()
        checked = int(check_int("seed", seed, minimum=0))
        if checked > _MASK64:
            raise ConfigError(f"seed={seed!r} must be < 2**64")
        self.seed = checked
        self.rank = rank
        #: generators by (tag, which), reset for every use (see generator)
        self._gens: dict[tuple[int, int], np.random.Generator] = {}

    def generator(self, epoch: int, block: int, tag: int, which: int = 0) -> np.random.Generator:
        """The fresh generator of stream ``tag`` of block ``block`` of ``epoch``.

        Streams of different tags do not share a generator, so one may be
        drawn from while another is (an epoch's order is computed while a
        block draws), and nor do blocks planned together (``which``: the
        block's place among them), so each can still draw its window starts
        when they are built together.
        """
        gen = self._gens.get((tag, which))
        if gen is None:
            # (any seed: the state is replaced below; a SeedSequence spares gathering OS entropy)
            gen = self._gens[tag, which] = np.random.Generator(np.random.Philox(np.random.SeedSequence(0)))
        gen.bit_generator.state = {
            "bit_generator": "Philox",
            "state": {"counter": [0, block, epoch, (self.rank << 8) | tag], "key": [self.seed, 0]},
            "buffer": [0, 0, 0, 0],
            "buffer_pos": PHILOX_BUFFER_SIZE,  # empty
            "has_uint32": 0,
            "uinteger": 0,
        }
        return gen

    def block_draws(self, epoch: int, first: int, count: int, words: int, used: int) -> tuple[np.ndarray, list[Draws]]:
        """The streams of blocks ``first .. first + count - 1`` of ``epoch``, drawn ahead.

        Returns each block's first ``words`` raw outputs (a multiple of 4), as
        rows of one uint64 array, and its :class:`~zarrmux.philox.Draws` just
        after the first ``used`` of them (which the caller reads from the
        array itself).
        """
        tagword = (self.rank << 8) | _TAG_BLOCK
        gens = [self.generator(epoch, first + w, _TAG_BLOCK, w) for w in range(count)]
        raws = [gen.bit_generator.random_raw(words) for gen in gens]
        draws = [Draws(gen, raw, used, [first + w, epoch, tagword], self.seed) for w, (gen, raw) in enumerate(zip(gens, raws))]
        return np.concatenate(raws).reshape(count, -1), draws

    def init_draws(self, epoch: int, count: int) -> Draws:
        """The stream of ``epoch``'s first active slots, with about ``count`` outputs drawn ahead."""
        gen = self.generator(epoch, 0, _TAG_INIT)
        raw = gen.bit_generator.random_raw(-(-count // 4) * 4)
        return Draws(gen, raw, 0, [0, epoch, (self.rank << 8) | _TAG_INIT], self.seed)

    def order_generator(self, epoch: int) -> np.random.Generator:
        """The generator of an 'exhaustive' ``epoch``'s order of entries."""
        return self.generator(epoch, 0, _TAG_ORDER)

    def __getstate__(self) -> dict[str, Any]:
        # copies and pickles leave the generators out: costly to copy, cheap to make again
        state = self.__dict__.copy()
        state["_gens"] = {}
        return state
