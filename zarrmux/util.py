"""Utilities with pescador's names: random-state handling, deprecation helpers, batch length."""

from __future__ import annotations

import functools
import inspect
import numbers
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from .exceptions import PescadorError

__all__ = ["Deprecated", "rename_kw", "moved", "deprecated", "batch_length", "get_rng", "RandomLike", "is_legacy_rng"]

F = TypeVar("F", bound=Callable[..., Any])

#: what every ``random_state`` parameter accepts
RandomLike = None | int | np.integer | np.random.RandomState | np.random.Generator


class Deprecated:
    """A placeholder default that marks a deprecated keyword as not given."""

    def __repr__(self) -> str:
        return "<DEPRECATED parameter>"


def rename_kw(
    old_name: str,
    old_value: Any,
    new_name: str,
    new_value: Any,
    version_deprecated: str,
    version_removed: str,
) -> Any:
    """Handle a renamed keyword argument.

    Returns ``new_value`` if ``old_value`` is a :class:`Deprecated` placeholder;
    otherwise warns (``DeprecationWarning`` naming the replacement) and returns
    ``old_value``.
    """
    if isinstance(old_value, Deprecated):
        return new_value
    caller = inspect.stack()[1][3]
    warnings.warn(
        f"{caller}() keyword argument '{old_name}' has been renamed to '{new_name}' in version "
        f"{version_deprecated}.\n\tThis alias will be removed in version {version_removed}.",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value


def _warns(message: Callable[[Callable[..., Any]], str]) -> Callable[[F], F]:
    """A decorator that emits ``DeprecationWarning(message(func))`` on every call."""

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            warnings.warn(message(func), DeprecationWarning, stacklevel=2)
            return func(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


def moved(moved_from: str, version: str, version_removed: str) -> Callable[[F], F]:
    """Mark a function as moved from ``moved_from``: calling it warns, then proceeds."""
    return _warns(
        lambda func: f"{moved_from}\n\tThis function was moved to '{func.__module__}.{func.__name__}' in "
        f"version {version}.\n\tThis alias will be removed in version {version_removed}."
    )


def deprecated(version: str, version_removed: str) -> Callable[[F], F]:
    """Mark a function as deprecated: calling it warns, then proceeds."""
    return _warns(
        lambda func: f"{func.__module__}.{func.__name__}\n\tDeprecated as of version {version}."
        f"\n\tIt will be removed in version {version_removed}."
    )


def batch_length(batch: Mapping[Any, Any]) -> int | None:
    """The number of samples in a batch.

    Parameters
    ----------
    batch : dict
        Every value implements ``len`` and all lengths are equal.

    Returns
    -------
    n : int >= 0 or None
        ``None`` if the batch has no fields.

    Raises
    ------
    PescadorError
        If two values have unequal length.
    """
    n = None
    for value in batch.values():
        if n is None:
            n = len(value)
        elif len(value) != n:
            raise PescadorError("Unequal field lengths")
    return n


def get_rng(random_state: RandomLike) -> Any:
    """A random number generator from a seed or an existing generator.

    Parameters
    ----------
    random_state : None, int, np.random.RandomState or np.random.Generator
        ``None``: the global ``np.random`` module (as pescador).
        int (numpy integers too): seed of a new ``RandomState``.
        ``RandomState``: used as is; sequences match pescador's.
        ``Generator``: used as is; sequences are zarrmux's own, still reproducible.

    Returns
    -------
    rng : np.random.RandomState, np.random.Generator or the np.random module

    Raises
    ------
    PescadorError
        For anything else, naming the value.
    """
    if random_state is None:
        return np.random
    if isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        return random_state
    if isinstance(random_state, numbers.Integral):
        try:
            return np.random.RandomState(seed=int(random_state))
        except ValueError as exc:
            raise PescadorError(f"Invalid random_state={random_state!r}: {exc}") from None
    raise PescadorError(
        f"Invalid random_state={random_state!r}: expected None, an int, "
        "a numpy.random.RandomState or a numpy.random.Generator"
    )


def is_legacy_rng(rng: Any) -> bool:
    """True for a ``RandomState`` or the ``np.random`` module (pescador-compatible draws)."""
    return rng is np.random or isinstance(rng, np.random.RandomState)


class Draws:
    """The handful of random draws the muxes make, for either kind of generator.

    With a ``RandomState`` (or the global ``np.random``) every draw consumes the
    generator exactly as the pescador 3.0 call it replaces, so sequences match.
    :class:`~zarrmux.draw_blocks.BlockDraws` makes the same draws in blocks.
    """

    __slots__ = ("rng", "uniform", "legacy", "binomial", "poisson")  # the muxes bisect a cached cdf with ``uniform()``

    def __init__(self, rng: Any) -> None:
        self.rng = rng
        self.legacy = is_legacy_rng(rng)
        #: one float in [0, 1): what ``RandomState.choice(p=...)`` draws for a scalar
        self.uniform = rng.random_sample if self.legacy else rng.random
        self.binomial = rng.binomial
        self.poisson = rng.poisson


def cdf_of(p: np.ndarray) -> list[float]:
    """The cumulative distribution ``RandomState.choice(len(p), p=p)`` builds from ``p``.

    ``bisect_right(cdf_of(p), rng.random_sample())`` is that ``choice``: the same
    index from the same single draw.  ``p`` must be valid probabilities.
    """
    cdf = p.cumsum()
    cdf /= cdf[-1]
    return cdf.tolist()

