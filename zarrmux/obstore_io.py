"""Byte reads of a ``zarr.storage.ObjectStore`` straight through obstore: :class:`ObstoreIO`.

The byte reader :func:`zarrmux.byte_io.make_io` picks for an obstore-backed
zarr store: :class:`zarrmux.store_io.StoreIO`'s batching (grouping by object,
merging ranges, servers without Range) over obstore's primitives, so a batch
costs a few Python calls per *object* rather than per chunk, and the bytes
move outside the GIL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from .remote_io import RangeNotSupported
from .remote_settings import RemoteConfig
from .store_io import StoreIO, byte_view, gather_all

if TYPE_CHECKING:
    from obstore.store import ClientConfig  # a TypedDict of obstore's stubs, not importable at runtime

__all__ = ["ObstoreIO"]


class ObstoreIO(StoreIO):
    """Byte-range reads of a ``zarr.storage.ObjectStore`` straight through obstore.

    The ranges of one object go in ``obstore.get_ranges_async`` calls of at
    most :data:`RANGES_PARALLEL` ranges (Rust, outside the GIL), after the
    same merging as :class:`StoreIO`, so a batch costs a few Python calls per
    *object* rather than per chunk.  The
    retries are this reader's (:mod:`zarrmux.remote_io`): for an HTTP store
    opened without a ``retry_config`` of its own, obstore's retries are
    turned off (they would otherwise retry for up to 3 minutes, unbounded by
    this reader's settings) and its request timeout follows this reader's.
    """

    #: ranges one ``get_ranges`` call fetches at once (object_store's parallelism)
    RANGES_PARALLEL = 10

    def __init__(self, store: Any, config: RemoteConfig | None = None) -> None:
        super().__init__(store, config)
        import obstore

        self._obs = obstore
        self._ostore = self._own_store(store.store)

    def _own_store(self, ostore: Any) -> Any:
        if type(ostore).__name__ != "HTTPStore" or getattr(ostore, "retry_config", None) is not None:
            return ostore
        import datetime

        from obstore.store import HTTPStore

        client = cast("ClientConfig", dict(getattr(ostore, "client_options", None) or {}))
        client.setdefault("timeout", f"{int(self.requests.config.timeout * 1000) + 5000}ms")
        try:
            return HTTPStore.from_url(
                ostore.url, client_options=client, retry_config={"max_retries": 0, "retry_timeout": datetime.timedelta(seconds=1)}
            )
        except Exception:  # noqa: BLE001 - keep the store as it was opened
            return ostore

    async def fetch_runs(self, key: str, runs: list[tuple[int, int]]) -> list[Any]:
        """One ``get_ranges`` call per :data:`RANGES_PARALLEL` runs, the calls concurrent.

        obstore fetches at most 10 ranges of one call at once: a call of 11
        to 20 ranges would take two round trips.
        """
        obs = self._obs
        step = self.RANGES_PARALLEL
        groups = [runs[i : i + step] for i in range(0, len(runs), step)]

        async def one(group: list[tuple[int, int]]) -> Any:
            async def attempt() -> Any:
                try:
                    return await obs.get_ranges_async(
                        self._ostore, key, starts=[a for a, _ in group], lengths=[n for _, n in group], coalesce=0
                    )
                except obs.exceptions.NotSupportedError:
                    raise RangeNotSupported() from None

            return await self.requests.call(key, attempt, weight=len(group), count=len(group))

        got = await gather_all([one(g) for g in groups])
        return [b for part in got for b in part]

    async def get_range(self, key: str, start: int, length: int) -> Any:
        try:
            return await self._obs.get_range_async(self._ostore, key, start=start, length=length)
        except self._obs.exceptions.NotSupportedError:
            raise RangeNotSupported() from None

    async def fetch_suffix(self, key: str, length: int) -> Any:
        obs = self._obs

        async def attempt() -> Any:
            try:
                resp = await obs.get_async(self._ostore, key, options={"range": {"suffix": length}})
            except obs.exceptions.NotSupportedError:
                raise RangeNotSupported() from None
            self.sizes[key] = int(resp.meta["size"])
            return byte_view(await resp.bytes_async())

        return await self.requests.call(key, attempt)

    async def fetch_full(self, key: str) -> Any:
        resp = await self._obs.get_async(self._ostore, key)
        return byte_view(await resp.bytes_async())
