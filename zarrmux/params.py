"""Checks of parameters, one rule each: a bad value raises :class:`~zarrmux.exceptions.ConfigError`
naming the parameter and the value.

Part of the streaming core: imports nothing but the exceptions.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from .exceptions import ConfigError

__all__ = ["check_int", "check_number", "check_choice", "REQUIRED", "required"]


def check_int(name: str, value: Any, *, minimum: int | None = 0, maximum: int | None = None, none: bool = False) -> Any:
    """``value`` if it is an int (not a bool) within ``[minimum, maximum]`` (or ``None`` when ``none``)."""
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) and not _is_numpy_int(value):
        raise ConfigError(f"{name}={value!r} must be an integer{_bounds(minimum, maximum)}{' or None' if none else ''}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(f"{name}={value!r} must be an integer{_bounds(minimum, maximum)}{' or None' if none else ''}")
    return value


def check_number(name: str, value: Any, *, positive: bool = False, minimum: float | None = None, none: bool = False) -> Any:
    """``value`` as a float if it is a finite real number (``> 0`` when ``positive``; ``>= minimum``)."""
    if value is None and none:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) or _is_numpy_real(value)
    v = float(value) if ok else math.nan
    if not ok or not math.isfinite(v) or (positive and v <= 0) or (minimum is not None and v < minimum):
        want = " > 0" if positive else (f" >= {minimum}" if minimum is not None else "")
        raise ConfigError(f"{name}={value!r} must be a finite number{want}{' or None' if none else ''}")
    return v


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(map(repr, choices))}")
    return value


def _bounds(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def _is_numpy_int(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "dtype") and value.dtype.kind in "iu" and value.ndim == 0


def _is_numpy_real(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "dtype") and value.dtype.kind in "iuf" and value.ndim == 0


class _Required:
    """The default of a parameter that is required in most uses (shows as such in ``help()``)."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why

    def __repr__(self) -> str:
        return f"<{self.why}>"

    def __reduce__(self) -> str:
        return "REQUIRED"


#: ``n_active``'s default: required in every mode but 'sequential'
REQUIRED = _Required("required unless mode='sequential'")


def required(value: Any) -> Any:
    """``value``, or ``None`` for :data:`REQUIRED` (the plan then says the parameter is missing)."""
    return None if value is REQUIRED else value
