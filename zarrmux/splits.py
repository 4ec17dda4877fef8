"""Deterministic splits of entry names: :func:`split_names`.

Each name goes to a side by a hash of ``(seed, name)`` alone, so a name's side
never depends on the other names: appending entries to a corpus later leaves
every existing entry on its side, and the same seed gives the same split on
any machine (``blake2b``, not Python's salted ``hash``).  The sides' sizes
follow the fractions up to sampling noise (a binomial draw per side), not
exactly; a side may be empty for a tiny corpus.

:meth:`zarrmux.corpus.Corpus.split` and :meth:`~zarrmux.corpus.Corpus.select`
turn names into corpus views that every sampler, streamer and the torch
dataset accept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from .exceptions import ConfigError
from .params import check_int, check_number

__all__ = ["split_names", "side_of"]

#: the hash's resolution: a name's position in [0, 1) is its hash / 2**64
_SCALE = float(2**64)


def _check_fractions(fractions: Mapping[str, float]) -> tuple[list[str], list[float]]:
    if not isinstance(fractions, Mapping) or not fractions:
        raise ConfigError(f"fractions={fractions!r} must be a non-empty mapping of side name to fraction")
    sides = list(fractions)
    values: list[float] = []
    for side in sides:
        if not isinstance(side, str) or not side:
            raise ConfigError(f"fractions: side name {side!r} must be a non-empty string")
        f = fractions[side]
        values.append(check_number(f"fractions[{side!r}]", f, minimum=0.0))
    total = sum(values)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"fractions must sum to 1, not {total!r}: {dict(fractions)!r}")
    return sides, values


def _check_seed(seed: int) -> int:
    return int(check_int("seed", seed, minimum=0))


def _position(name: str, seed: int) -> float:
    """Where ``name`` falls in [0, 1) for ``seed``."""
    digest = hashlib.blake2b(f"{seed}\x00{name}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / _SCALE


def side_of(name: str, fractions: Mapping[str, float], seed: int = 0) -> str:
    """The side of ``fractions`` that ``name`` belongs to (see the module docstring)."""
    sides, values = _check_fractions(fractions)
    return _side(_position(name, _check_seed(seed)), sides, values)


def _side(u: float, sides: list[str], values: list[float]) -> str:
    edge = 0.0
    for side, f in zip(sides, values):
        edge += f
        if u < edge:
            return side
    return next(s for s, f in zip(reversed(sides), reversed(values)) if f > 0)


def split_names(names: Iterable[str], fractions: Mapping[str, float], seed: int = 0) -> dict[str, list[str]]:
    """Split ``names`` into the sides of ``fractions``, keeping their order within each side.

    Parameters
    ----------
    names : iterable of str
        Entry names (unique).
    fractions : mapping of str to float >= 0, summing to 1
        Side name to expected share, e.g. ``{"train": 0.9, "val": 0.1}``.
    seed : int >= 0
        Another seed, another split.

    Returns
    -------
    dict of str to list of str
        Every side of ``fractions`` (possibly empty), in the order given; the
        sides are disjoint and together hold every name.
    """
    sides, values = _check_fractions(fractions)
    seed = _check_seed(seed)
    out: dict[str, list[str]] = {side: [] for side in sides}
    for name in names:
        out[_side(_position(name, seed), sides, values)].append(name)
    return out
