"""Which byte reader serves a zarr store: :func:`make_io`.

The readers of :mod:`zarrmux.array_reader` ask for bytes as small typed
values (:class:`zarrmux.byte_requests.ByteRequest`: a range, a suffix or a
whole object) and hand a whole batch of them to one ``read_many`` call,
which returns the bytes (or ``None`` for an absent object) in the same
order.  :func:`make_io` picks the fastest reader for a store:

* :class:`zarrmux.local_io.LocalIO` (a ``LocalStore``): slices of
  memory-mapped files (no system call, no copy per read); it also maps
  whole files for :mod:`zarrmux.exact_windows`.
* :class:`zarrmux.store_io.StoreIO` (any other zarr store, fsspec URLs
  included): ``store.get(..., byte_range=...)`` on zarr's event loop.
* :class:`zarrmux.obstore_io.ObstoreIO` (a ``zarr.storage.ObjectStore``):
  one ``obstore.get_ranges`` call per object, outside the GIL.

The two remote readers send their requests through
:class:`zarrmux.remote_io.Requests` (a ramping limit of requests in flight,
retries with backoff, a timeout naming the URL, counters in ``io.stats``,
``close()`` interrupting what is in flight) and read servers that ignore
Range as whole objects, once per process (:mod:`zarrmux.range_cache`);
their settings are :mod:`zarrmux.remote_settings`.
"""

from __future__ import annotations

from typing import Any

from .local_io import LocalIO
from .obstore_io import ObstoreIO
from .remote_settings import RemoteConfig
from .store_io import StoreIO

__all__ = ["make_io"]


def make_io(store: Any, config: RemoteConfig | None = None) -> LocalIO | StoreIO:
    """The fastest byte reader for a zarr store: memory maps for a ``LocalStore``, obstore for an ``ObjectStore``.

    ``config`` (remote readers): default :func:`zarrmux.remote_settings.current_config`
    (:func:`zarrmux.remote_settings.configure`, else ``ZARRMUX_REMOTE_*`` environment variables).
    """
    from zarr.storage import LocalStore

    if isinstance(store, LocalStore):
        return LocalIO(str(store.root))
    if type(store).__name__ == "ObjectStore" and type(store).__module__.startswith("zarr.storage"):
        return ObstoreIO(store, config)
    return StoreIO(store, config)
