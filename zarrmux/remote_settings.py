"""Settings of remote requests: :class:`RemoteConfig`, :func:`configure`, ``ZARRMUX_REMOTE_*``.

What the remote byte readers (:mod:`zarrmux.store_io`, :mod:`zarrmux.obstore_io`)
and their requests (:mod:`zarrmux.remote_io`) and the whole-object cache of
servers without Range (:mod:`zarrmux.range_cache`) are tuned by.  Settings
come from :func:`configure` (this process; also reachable as
``zarrmux.remote_io.configure``) or environment variables (inherited by
worker processes, Dask's included), read when a reader is made:

=================================  ==========================================
``ZARRMUX_REMOTE_TIMEOUT``          seconds, default 30
``ZARRMUX_REMOTE_RETRIES``          default 4
``ZARRMUX_REMOTE_BACKOFF``          first backoff in seconds, default 0.1 (doubles, at most 5 s)
``ZARRMUX_REMOTE_MAX_REQUESTS``     requests in flight per reader, default 128
``ZARRMUX_WHOLE_OBJECT_CACHE_BYTES`` budget of whole objects (Range-less servers), default 1 GiB
``ZARRMUX_WHOLE_OBJECT_CACHE_DIR``  keep them in files under this directory instead of memory
=================================  ==========================================
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

__all__ = ["RemoteConfig", "configure", "current_config"]


@dataclasses.dataclass(frozen=True)
class RemoteConfig:
    """How remote requests are made (see :mod:`zarrmux.remote_io`).

    Parameters
    ----------
    timeout : float > 0
        Seconds a request may take to answer.
    retries : int >= 0
        Retries of a transient failure.
    backoff : float >= 0
        Seconds before the first retry; doubled each time, at most ``max_backoff``.
    max_backoff : float >= 0
    max_requests : int > 0
        Requests in flight per reader.
    start_requests : int > 0
        The limit at the start (it grows by one per request completed while others wait).
    whole_cache_bytes : int >= 0
        Budget of whole objects kept for servers that ignore Range.
    whole_cache_dir : str or None
        Keep whole objects in files under this directory rather than in memory.
    """

    timeout: float = 30.0
    retries: int = 4
    backoff: float = 0.1
    max_backoff: float = 5.0
    #: 128 against 64: 1.7x the windows/s over obstore from an aiohttp server with 20 ms per request, the
    #: same from a threaded stdlib server (bound by its CPU); 256 overran the stdlib server (tools/bench_latency.py)
    max_requests: int = 128
    start_requests: int = 8
    whole_cache_bytes: int = 1 << 30
    whole_cache_dir: str | None = None


_ENV = {
    "timeout": "ZARRMUX_REMOTE_TIMEOUT",
    "retries": "ZARRMUX_REMOTE_RETRIES",
    "backoff": "ZARRMUX_REMOTE_BACKOFF",
    "max_requests": "ZARRMUX_REMOTE_MAX_REQUESTS",
    "whole_cache_bytes": "ZARRMUX_WHOLE_OBJECT_CACHE_BYTES",
    "whole_cache_dir": "ZARRMUX_WHOLE_OBJECT_CACHE_DIR",
}
_overrides: dict[str, Any] = {}


def _check(name: str, value: Any, where: str) -> Any:
    field = {f.name: f for f in dataclasses.fields(RemoteConfig)}.get(name)
    if field is None:
        raise TypeError(f"unknown remote setting {name!r}; settings: {[f.name for f in dataclasses.fields(RemoteConfig)]}")
    if name == "whole_cache_dir":
        return None if value in (None, "") else os.fspath(value)
    kind = float if name in ("timeout", "backoff", "max_backoff") else int
    try:
        v = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}={value!r} must be a number") from None
    low_ok = v > 0 if name in ("timeout", "max_requests", "start_requests") else v >= 0
    if not low_ok:
        raise ValueError(f"{where}={value!r} must be {'> 0' if name in ('timeout', 'max_requests', 'start_requests') else '>= 0'}")
    return v


def configure(**settings: Any) -> None:
    """Set remote settings for the readers made from now on in this process (``None`` resets one).

    Keywords are the fields of :class:`RemoteConfig`; they win over the
    environment variables.  Worker processes (Dask, DataLoader workers)
    do not see them: set the environment variables for those.
    """
    for name, value in settings.items():
        if value is None:
            if name not in {f.name for f in dataclasses.fields(RemoteConfig)}:
                _check(name, 1, name)  # raises: names the settings
            _overrides.pop(name, None)
        else:
            _overrides[name] = _check(name, value, name)


def current_config() -> RemoteConfig:
    """The settings in force: :func:`configure`, else the environment, else the defaults."""
    kw: dict[str, Any] = {}
    for name, var in _ENV.items():
        raw = os.environ.get(var)
        if raw is not None and raw != "":
            kw[name] = _check(name, raw, var)
    kw.update(_overrides)
    return RemoteConfig(**kw)
