"""numpy's ``Generator(Philox(...))`` draws, replayed on its raw outputs: :class:`Draws`.

Every random number of a plan is what numpy's ``Generator(Philox(...))`` of
the block gives, exactly as in the first version of the planner (kept in
``tests/plan_reference.py``), so saved states resume the same.  Asking numpy
for each of a block's few dozen small draws costs microseconds of call
overhead apiece, so a block draws the raw 64-bit outputs of its Philox
stream in one call and :class:`Draws` replays numpy's arithmetic on them
(doubles, binomial inversion, Lemire's bounded integers); anything else is
left to numpy itself.  :func:`uniform_starts` draws a batch's window starts.
Pure: imports numpy and ``binomial_inversion`` only.
"""

from __future__ import annotations

import sys

import numpy as np

from .binomial_inversion import inversion_count, inversion_plan

__all__ = ["Draws", "uniform_starts", "PHILOX_BUFFER_SIZE", "TWO_M53"]

#: Philox's output buffer (4 words of 64 bits); ``buffer_pos`` at this value means empty
PHILOX_BUFFER_SIZE = 4
_LOW32 = 0xFFFFFFFF
_LITTLE = sys.byteorder == "little"

TWO_M53 = 1.0 / 9007199254740992.0  # next_double(): (output >> 11) * 2**-53


def _halves(a: np.ndarray) -> np.ndarray:
    """The 32-bit halves of the uint64 array ``a``: low, high, low, high, ..."""
    return a.view(np.uint32) if _LITTLE else a.astype("<u8").view("<u4")


class Draws:
    """The draws of one block, in the order its ``numpy.random.Generator`` would make them.

    ``random()``, ``binomial(n, p)``, ``poisson(lam)`` and ``words(count)``
    give what the generator's ``random()``, ``binomial(n, p)``,
    ``poisson(lam)`` and ``bit_generator.random_raw(count)`` would at this
    point of the stream.  They read the stream's outputs drawn in advance
    (more are drawn when they run out); when numpy itself must draw (Poisson
    quotas, binomials by BTPE, window spans of ``2**32`` or more), the
    generator is first moved to the current point of the stream
    (:meth:`to_generator`) and draws everything after that.

    Parameters
    ----------
    gen : numpy.random.Generator
        The block's generator, with its bit generator just after ``raw``.
    raw : uint64 array
        The stream's first outputs (a multiple of 4 of them).
    start : int >= 0
        How many of them are used already.
    counter : list of int
        The last three words of the block's Philox counter (the first is 0).
    key : int
        The Philox key (the seed).
    """

    __slots__ = ("gen", "raw", "vals", "start", "i", "counter", "key")

    def __init__(self, gen: np.random.Generator, raw: np.ndarray, start: int, counter: list[int], key: int) -> None:
        self.gen = gen
        self.raw: np.ndarray | None = raw  # None once ``gen`` draws
        self.vals: list[int] = raw[start:].tolist()  # the outputs from ``start`` on, as ints
        self.start = start
        self.i = start  # outputs used
        self.counter = counter
        self.key = key

    def _more(self, count: int) -> None:
        """Draw ``count`` (rounded up to a multiple of 4) more outputs in advance."""
        more = self.gen.bit_generator.random_raw(-(-count // 4) * 4)
        assert self.raw is not None
        self.raw = np.concatenate([self.raw, more])
        self.vals += more.tolist()

    def next_raw(self) -> int:
        """The next 64-bit output."""
        if self.raw is None:
            return int(self.gen.bit_generator.random_raw())
        i = self.i
        if i == len(self.raw):
            self._more(4)
        self.i = i + 1
        return self.vals[i - self.start]

    def random(self) -> float:
        """The next double in ``[0, 1)``, as ``Generator.random()``."""
        if self.raw is None:
            return float(self.gen.random())
        i = self.i
        if i == len(self.raw):
            self._more(4)
        self.i = i + 1
        return (self.vals[i - self.start] >> 11) * TWO_M53

    def binomial(self, n: int, p: float) -> int:
        """As ``Generator.binomial(n, p)``: numpy's inversion algorithm when it applies."""
        if n == 0 or p == 0.0:
            return 0  # no draw
        plan = inversion_plan(n, p) if self.raw is not None and 0.0 < p <= 1.0 else None
        if plan is None:
            self.to_generator()
            return int(self.gen.binomial(n, p))
        return inversion_count(n, plan, self.random)

    def random_array(self, count: int) -> np.ndarray:
        """The next ``count`` doubles in ``[0, 1)``, as ``Generator.random(count)``."""
        return (self.words(count) >> 11) * TWO_M53

    def poisson(self, lam: float) -> int:
        """As ``Generator.poisson(lam)`` (numpy draws)."""
        self.to_generator()
        return int(self.gen.poisson(lam))

    def words(self, count: int) -> np.ndarray:
        """The next ``count`` 64-bit outputs (uint64), as ``bit_generator.random_raw(count)``."""
        if self.raw is None:
            return self.gen.bit_generator.random_raw(count)
        i = self.i
        if i + count > len(self.raw):
            self._more(i + count - len(self.raw))
        self.i = i + count
        return self.raw[i : i + count]

    def to_generator(self) -> None:
        """Move the generator to the current point of the stream; it draws from now on.

        Output ``j`` of a fresh Philox stream is word ``j % 4`` of the block
        computed for counter word ``j // 4 + 1``, kept in a buffer until used.
        """
        if self.raw is None:
            return
        q, r = divmod(self.i, 4)
        self.gen.bit_generator.state = {
            "bit_generator": "Philox",
            "state": {"counter": [q + (r > 0), *self.counter], "key": [self.key, 0]},
            "buffer": self.raw[4 * q : 4 * q + 4].tolist() if r else [0, 0, 0, 0],
            "buffer_pos": r if r else PHILOX_BUFFER_SIZE,
            "has_uint32": 0,
            "uinteger": 0,
        }
        self.raw = None


def uniform_starts(draws: list[Draws], sizes: list[int], spans: np.ndarray, bound: int | None) -> np.ndarray:
    """The blocks' window starts: each block's ``integers(0, spans)``, concatenated (int64).

    Parameters
    ----------
    draws : list of Draws
        One per block, each at the point of its stream where the starts are
        drawn (with no 32-bit half pending: nothing has drawn 32-bit words).
    sizes : list of int >= 0
        Windows per block.
    spans : uint64 array of values >= 1, of length ``sum(sizes)``
        Number of valid starts of each window.
    bound : int or None
        An upper bound of ``spans`` if every span is known to lie in
        ``[2, 2**32)`` (then the vectorised pass applies), else None.

    Notes
    -----
    numpy's ``Generator.integers(0, high)`` with an array ``high`` draws each
    value in turn with Lemire's method on 32-bit words: ``span == 1`` takes
    no word; a span in ``[2, 2**32)`` takes a word ``x`` (the low, then the
    high half of each 64-bit output) and gives ``(x * span) >> 32``, unless
    ``(x * span) mod 2**32 < (2**32 - span) % span``: then ``x`` is rejected
    and the next word tried.  Usually every span is in ``[2, 2**32)`` and no
    word comes near rejection (every ``(x * span) mod 2**32 >= bound``, which
    fails with odds about ``bound / 2**32`` per window): one vectorised pass
    over all the blocks.  Otherwise the blocks concerned replay their words
    one by one in Python (:func:`_uniform_starts_exact`), and spans of
    ``2**32`` or more are left to numpy.
    """
    if not draws:
        return np.zeros(0, dtype=np.int64)
    if bound is not None:
        raws = [d.words((n + 1) >> 1) for d, n in zip(draws, sizes)]
        if all(not n & 1 for n in sizes):
            words = _halves(np.concatenate(raws))
        else:
            words = np.concatenate([_halves(w)[:n] for w, n in zip(raws, sizes)])
        m = _halves(words * spans)  # low and high halves of x * span
        low, high = m[0::2], m[1::2]
        if not len(low) or int(low.min()) >= bound:  # no word near rejection
            return high.astype(np.int64)
    out = np.empty(len(spans), dtype=np.int64)
    o = 0
    for i, (d, n) in enumerate(zip(draws, sizes)):
        sp = spans[o : o + n]
        if bound is not None:
            if min(low[o : o + n].tolist(), default=bound) >= bound:
                out[o : o + n] = high[o : o + n]
            else:
                out[o : o + n] = _uniform_starts_exact(d, sp.tolist(), _halves(raws[i]).tolist())
        elif n and int(sp.max()) > _LOW32:
            d.to_generator()
            out[o : o + n] = d.gen.integers(0, sp.astype(np.int64))
        else:
            out[o : o + n] = _uniform_starts_exact(d, sp.tolist(), [])
        o += n
    return out


def _uniform_starts_exact(draws: Draws, spans: list[int], words: list[int]) -> list[int]:
    """Lemire's bounded draws as numpy makes them, one by one (see :func:`uniform_starts`).

    ``spans`` are in ``[1, 2**32)``; ``words`` are the 32-bit words already
    drawn (in order, possibly none); more are drawn as needed.
    """
    out = []
    i = 0
    for span in spans:
        if span == 1:
            out.append(0)
            continue
        threshold = (_LOW32 + 1 - span) % span
        while True:
            if i == len(words):
                raw = draws.next_raw()
                words += [raw & _LOW32, raw >> 32]
            m = words[i] * span
            i += 1
            if m & _LOW32 >= threshold:
                break
        out.append(m >> 32)
    return out
