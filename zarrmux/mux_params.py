"""The muxes' parameter rules, with pescador's messages: a bad value raises ``PescadorError``.

Part of the streaming core: imports numpy and the exceptions only.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .exceptions import PescadorError

__all__ = ["check_count", "check_option", "normalised_weights"]


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer (not a bool) ``>= minimum``.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : object
        The value to check.
    minimum : int
        The smallest value allowed.

    Raises
    ------
    PescadorError
        Naming the parameter and the value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise PescadorError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def check_option(name: str, value: Any, allowed: tuple[str, ...], owner: str) -> str:
    """``value`` if it is one of ``allowed``; ``owner`` names the class in the message.

    Raises
    ------
    PescadorError
        Naming the parameter, the value and the choices.
    """
    if value not in allowed:
        raise PescadorError(f"{value} is not a valid {name} for {owner}: expected one of {list(allowed)}")
    return value


def normalised_weights(weights: Any, n_streams: int, *, as_float64: bool) -> np.ndarray:
    """Validated weights divided by their sum: the floats pescador computes, checked early.

    Parameters
    ----------
    weights : array-like of float >= 0, or None
        ``n_streams`` numbers, at least one positive; ``None``: uniform.
    n_streams : int > 0
        The number of streamers.
    as_float64 : bool
        Convert float weights of another precision to float64 (integers
        always are), as ``ShuffledMux`` does.

    Returns
    -------
    np.ndarray
        A new array (the caller's is never modified).

    Raises
    ------
    PescadorError
        For anything but ``n_streams`` finite non-negative numbers with a
        positive one, naming the value.
    """
    if weights is None:
        w = 1.0 / n_streams * np.ones(n_streams)
    else:
        try:
            w = np.array(np.atleast_1d(weights), copy=True)
        except Exception as exc:
            raise PescadorError(f"weights={weights!r} is not an array of numbers: {exc}") from None
        if w.dtype == object or w.dtype.kind not in "biuf":
            raise PescadorError(f"weights={weights!r} must be numbers")
        if as_float64 or w.dtype.kind != "f":
            w = w.astype(np.float64)
        if w.ndim != 1 or len(w) != n_streams:
            raise PescadorError(
                f"`weights` must be the same length as `streamers`: got {w.shape} weights for {n_streams} streamers"
            )
        if not np.isfinite(w).all():
            raise PescadorError(f"weights={weights!r} must be finite (no NaN or inf)")
        if (w < 0).any():
            raise PescadorError(f"weights={weights!r} must be non-negative")
        if not (w > 0.0).any():
            raise PescadorError("`weights` must contain at least one positive value")
    w /= np.sum(w)
    return w
