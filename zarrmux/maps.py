"""Map functions: generator transforms over streams (pescador 3.0's ``maps``).

A map returns a generator, not a ``Streamer``; wrap it in a ``Streamer``
again if it must be restartable.  Parameters are checked when the map is
called, not when the first item is drawn.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import numpy as np

from .core import generator_function
from .exceptions import DataError, PescadorError
from .util import RandomLike, get_rng, is_legacy_rng

__all__ = ["buffer_stream", "tuples", "keras_tuples", "cache"]


def __stack_data(data: list[Any], axis: int | None) -> dict[Any, np.ndarray]:
    """Stack a list of dict items key by key (pescador's ``maps.__stack_data``).

    Parameters
    ----------
    data : non-empty list of dict
        Items sharing the keys of ``data[0]``.
    axis : int or None
        ``None`` stacks along a new leading axis; an int concatenates along it.

    Returns
    -------
    dict
        One array per key of ``data[0]``.

    Raises
    ------
    TypeError, AttributeError
        For items that are not data-like, as pescador's (module-level, so the
        double underscore is not name-mangled).
    """
    if axis is None:
        return {key: np.array([x[key] for x in data]) for key in data[0].keys()}
    return {key: np.concatenate([x[key] for x in data], axis=axis) for key in data[0].keys()}


def _stack_data(data: list[Any], axis: int | None) -> dict[Any, np.ndarray]:
    try:
        return __stack_data(data, axis)
    except (TypeError, AttributeError) as ex:
        raise DataError(f"Malformed data stream: {data}") from ex


@generator_function
def buffer_stream(
    stream: Iterable[Any], buffer_size: int, partial: bool = False, axis: int | None = None
) -> Iterator[dict[Any, np.ndarray]]:
    """Buffer items of a stream into batches.

    Parameters
    ----------
    stream : iterable of dict
        The stream to buffer; items are ``{key: array-like}``.
    buffer_size : int > 0
        The number of items per batch.
    partial : bool
        If True, yield a final partial batch on under-run.
    axis : int or None
        ``None`` stacks along a new leading axis; an int concatenates along
        that existing axis (for items that are already batches).

    Yields
    ------
    batch : dict
        ``{key: array}`` of ``buffer_size`` items (fewer for a final partial batch).

    Raises
    ------
    PescadorError
        At call time, if ``buffer_size`` is not an integer > 0.
    DataError
        If the stream contains items that are not data-like.

    Examples
    --------
    >>> def gen():
    ...     for i in range(10):
    ...         yield dict(x=np.asarray(i))
    >>> next(buffer_stream(gen(), 3))
    {'x': array([0, 1, 2])}
    """
    if isinstance(buffer_size, bool) or not isinstance(buffer_size, numbers.Integral) or buffer_size <= 0:
        raise PescadorError(f"buffer_size={buffer_size!r} must be an integer > 0")
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, numbers.Integral)):
        raise PescadorError(f"axis={axis!r} must be None or an integer")
    return _buffer(iter(stream), int(buffer_size), partial, axis)


def _buffer(it: Iterator[Any], size: int, partial: bool, axis: int | None) -> Iterator[dict[Any, np.ndarray]]:
    while True:
        data = list(islice(it, size))
        if len(data) == size:
            yield _stack_data(data, axis)
            continue
        if data and partial:
            yield _stack_data(data, axis)
        return


@generator_function
def tuples(stream: Iterable[Any], *keys: Any) -> Iterator[tuple[Any, ...]]:
    """Reformat data items as tuples.

    Parameters
    ----------
    stream : iterable of dict
        Stream of data objects.
    *keys : str
        Keys, in the order of the tuple.

    Yields
    ------
    items : tuple of np.ndarray

    Raises
    ------
    PescadorError
        At call time, if no key is given.
    DataError
        If the stream contains items that are not data-like.
    KeyError
        If a data object lacks a key.
    """
    if not keys:
        raise PescadorError("Unable to generate tuples from an empty item set")
    return _tuples(stream, keys)


def _tuples(stream: Iterable[Any], keys: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
    for data in stream:
        try:
            yield tuple(data[key] for key in keys)
        except TypeError as ex:
            raise DataError(f"Malformed data stream: {data}") from ex


@generator_function
def keras_tuples(
    stream: Iterable[Any], inputs: str | Sequence[str] | None = None, outputs: str | Sequence[str] | None = None
) -> Iterator[tuple[Any, Any]]:
    """Reformat data items as Keras ``(x, y)`` tuples.

    Parameters
    ----------
    stream : iterable of dict
        Stream of data objects.
    inputs : str, sequence of str or None
        Keys of the input data: a single array for a string, a list for a
        sequence, ``None`` in its place if not given.
    outputs : str, sequence of str or None
        Keys of the output data, likewise.

    Yields
    ------
    (x, y) : tuple

    Raises
    ------
    PescadorError
        At call time, if neither ``inputs`` nor ``outputs`` is given.
    DataError
        If the stream contains items that are not data-like.
    """
    flatten_inputs = isinstance(inputs, str)
    flatten_outputs = isinstance(outputs, str)
    ins = [inputs] if isinstance(inputs, str) else list(inputs or [])
    outs = [outputs] if isinstance(outputs, str) else list(outputs or [])
    if not ins + outs:
        raise PescadorError("At least one key must be given for `inputs` or `outputs`")
    return _keras_tuples(stream, ins, outs, flatten_inputs, flatten_outputs)


def _keras_tuples(
    stream: Iterable[Any], ins: list[str], outs: list[str], flat_in: bool, flat_out: bool
) -> Iterator[tuple[Any, Any]]:
    for data in stream:
        try:
            x: Any = [data[key] for key in ins] or None
            if flat_in:
                x = x[0]
            y: Any = [data[key] for key in outs] or None
            if flat_out:
                y = y[0]
        except TypeError as ex:
            raise DataError(f"Malformed data stream: {data}") from ex
        yield (x, y)


@generator_function
def cache(stream: Iterator[Any], n_cache: int, prob: float = 0.5, random_state: RandomLike = None) -> Iterator[Any]:
    """Stochastic stream caching.

    With probability ``prob`` yield a new item from ``stream`` (and cache it),
    otherwise a previously seen one.  The first ``n_cache`` items come from
    ``stream`` in order.

    Parameters
    ----------
    stream : iterator
        The stream to sample from.
    n_cache : int > 0
        The size of the cache.
    prob : float in (0, 1]
        Probability of drawing a new item; ``prob=1`` disables caching.
    random_state : None, int, np.random.RandomState or np.random.Generator
        See :func:`zarrmux.util.get_rng`.

    Yields
    ------
    data : items of ``stream``

    Raises
    ------
    PescadorError
        At call time, for an invalid ``n_cache``, ``prob`` or ``random_state``.
    """
    if isinstance(n_cache, bool) or not isinstance(n_cache, numbers.Integral) or n_cache <= 0:
        raise PescadorError(f"n_cache={n_cache} must be a positive integer")
    if not 0 < prob <= 1:
        raise PescadorError(f"prob={prob} must be a number in the range (0, 1].")
    rng = get_rng(random_state)
    return _cache(iter(stream), int(n_cache), prob, rng)


def _cache(stream: Iterator[Any], n_cache: int, prob: float, rng: Any) -> Iterator[Any]:
    legacy = is_legacy_rng(rng)
    data_cache: list[Any] = []
    while True:
        if len(data_cache) < n_cache:
            try:
                item = next(stream)
            except StopIteration:
                return
            yield item
            data_cache.append(item)
        else:
            idx = rng.randint(low=0, high=n_cache) if legacy else rng.integers(0, n_cache)
            if (rng.rand() if legacy else rng.random()) <= prob:
                try:
                    data_cache[idx] = next(stream)
                except StopIteration:
                    return
            yield data_cache[idx]
