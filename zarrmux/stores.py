"""Which store a corpus path, URL or store object opens: :func:`open_root`, and :func:`is_remote`.

A local path or ``file://`` URL opens a read-only ``LocalStore`` (read
through memory maps); an ``http(s)``, ``s3``, ``gs`` or Azure URL opens an
obstore ``ObjectStore`` when obstore is installed (``backend='auto'``) and
fsspec otherwise (``backend='fsspec'`` forces it); a store object is used as
given.  Failures are :class:`~zarrmux.exceptions.CorpusError` naming what was
asked for.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlparse

from .exceptions import CorpusError

__all__ = ["open_root", "is_remote", "describe", "OBSTORE_SCHEMES", "BACKENDS"]


def is_remote(target: Any) -> bool:
    """Whether a corpus target is high-latency: a URL other than ``file://``, or a store object
    other than a ``LocalStore`` (the one rule the sampler's defaults and Dask workers follow)."""
    if isinstance(target, os.PathLike):
        return False
    if isinstance(target, str):
        return "://" in target and not target.startswith("file://")
    return type(target).__name__ != "LocalStore"


#: URL schemes that obstore reads (``backend='auto'`` prefers it for these when installed)
OBSTORE_SCHEMES = frozenset({"http", "https", "s3", "s3a", "gs", "az", "abfs", "abfss", "adl", "azure"})
BACKENDS = ("auto", "obstore", "fsspec")


def _obstore_available() -> bool:
    try:
        import obstore  # noqa: F401
    except ImportError:
        return False
    return True


def _url_store(url: str, backend: str, storage_options: dict[str, Any] | None) -> Any:
    """The zarr store for a remote URL: a ``zarr.storage.ObjectStore`` (obstore) or the URL itself (fsspec)."""
    scheme = urlparse(url).scheme.lower()
    if backend == "fsspec" or (backend == "auto" and (scheme not in OBSTORE_SCHEMES or not _obstore_available())):
        return url
    try:
        import obstore.store
    except ImportError:
        raise CorpusError(f"backend='obstore' needs obstore: pip install 'zarrmux[cloud]' (or pip install obstore), to read {url}") from None
    from zarr.storage import ObjectStore

    opts = dict(storage_options or {})
    if scheme == "http":
        client = dict(opts.pop("client_options", None) or {})
        client.setdefault("allow_http", True)
        opts["client_options"] = client
    try:
        ostore = obstore.store.from_url(url.rstrip("/"), **opts)
    except Exception as exc:
        raise CorpusError(f"cannot open {url} with obstore: {type(exc).__name__}: {exc}") from exc
    return ObjectStore(ostore, read_only=True)


def describe(target: Any) -> str:
    """How a target is named in messages."""
    return str(target) if isinstance(target, (str, os.PathLike)) else repr(target)


def open_root(target: Any, backend: str = "auto", storage_options: dict[str, Any] | None = None) -> Any:
    """The root ``zarr.Group`` of ``target`` (a path, URL or store object), opened read-only."""
    import zarr
    from zarr.storage import LocalStore

    what = describe(target)
    if isinstance(target, str) and (target.startswith("file://") or "://" not in target):
        local = unquote(urlparse(target).path) if target.startswith("file://") else target
        if not os.path.exists(local):
            raise CorpusError(f"no corpus at {what}: the path does not exist")
        if not os.path.isdir(local):
            raise CorpusError(f"no corpus at {what}: not a directory")
        if not os.access(local, os.R_OK | os.X_OK):
            raise CorpusError(f"cannot read the corpus at {what}: permission denied")
        store: Any = LocalStore(local, read_only=True)
    elif isinstance(target, str):
        store = _url_store(target, backend, storage_options)
    else:
        store = target
    try:
        kwargs: dict[str, Any] = {"mode": "r"}
        if isinstance(store, str) and storage_options:
            kwargs["storage_options"] = storage_options
        root = zarr.open_group(store, **kwargs)
    except Exception as exc:
        raise CorpusError(f"cannot open {what} as a Zarr group: {type(exc).__name__}: {exc}") from exc
    return root
