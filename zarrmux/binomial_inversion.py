"""numpy's binomial draw by inversion, replayed on a source of uniforms: one rule for every replay.

numpy draws ``binomial(n, p)`` by inversion when ``n * min(p, 1 - p) <= 30``
(``random_binomial_inversion`` in its ``distributions.c``; ``RandomState``
and ``Generator`` share it).  The draw consumes one uniform, or more when it
restarts past its bound, so replaying it exactly means the same IEEE
arithmetic in the same order: :func:`inversion_plan` computes what numpy
computes once per ``(n, p)``, :func:`inversion_count` the loop over the
uniforms.  Used by ``philox`` (the sampler's plans) and ``draw_blocks`` (the
mux's draws).  Pure: imports nothing of zarrmux.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

__all__ = ["inversion_plan", "inversion_count", "InversionPlan"]

#: (flip, p', q', q'**n, bound): the count is ``n - x`` if ``flip``, with ``x``
#: the inversion's count for the success chance ``p' = min(p, 1 - p)``
InversionPlan = tuple[bool, float, float, float, int]


@functools.lru_cache(maxsize=1024)
def inversion_plan(n: int, p: float, strict: bool = True) -> InversionPlan | None:
    """How numpy's ``binomial(n, p)`` (``n >= 0``, ``0 <= p <= 1``) draws by inversion.

    Parameters
    ----------
    n : int >= 0
    p : float in [0, 1]
    strict : bool
        Also return None when numpy's ``bound`` could come out otherwise in
        C: a fused multiply-add (where numpy's C is compiled with one) could
        move a value within a few ulps of an integer across it.  The bound
        only matters for a count over ten standard deviations out.

    Returns
    -------
    InversionPlan or None
        None when numpy uses its BTPE algorithm instead (``n * min(p, 1 - p) > 30``),
        or, if ``strict``, when the bound is in doubt.
    """
    if n > 1 << 53:
        return None
    flip = p > 0.5
    if flip:
        p = 1.0 - p
    if not p * n <= 30.0:
        return None
    q = 1.0 - p
    qn = math.exp(n * math.log(q))
    mean = n * p
    b = mean + 10.0 * math.sqrt(mean * q + 1)
    if strict and abs(b - round(b)) <= 1e-9 * max(1.0, b):
        return None
    return flip, p, q, qn, int(min(n, b))


def inversion_count(n: int, plan: InversionPlan, uniform: Callable[[], float]) -> int:
    """numpy's ``binomial(n, p)`` for ``plan = inversion_plan(n, p)``, drawing from ``uniform()``.

    Draws the uniforms numpy draws: one, and one more at each restart.
    """
    flip, p, q, qn, bound = plan
    x = 0
    px = qn
    u = uniform()
    while u > px:
        x += 1
        if x > bound:
            x = 0
            px = qn
            u = uniform()
        else:
            u -= px
            px = ((n - x + 1) * p * px) / (x * q)
    return n - x if flip else x
