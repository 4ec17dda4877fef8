"""The ``Streamer``: a restartable wrapper around a generator function or iterable.

Same names, signatures and semantics as pescador 3.0's ``core`` module:
activation works on a deep copy, so one definition can be started many times.
"""

from __future__ import annotations

import collections.abc
import copy
import functools
import inspect
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from inspect import CO_GENERATOR
from itertools import islice
from types import FunctionType
from typing import Any, Literal, Self

from .exceptions import PescadorError

__all__ = ["Streamer", "streamable"]

_ATOMIC = frozenset({type(None), bool, int, float, complex, str, bytes, type(len), type(lambda: 0)})


def generator_function(function: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Mark a function that checks its arguments, then returns a generator, as a generator function.

    pescador's maps (``buffer_stream``, ...) are generator functions, so
    ``Streamer(buffer_stream, stream, 32)`` is a pescador idiom; zarrmux's
    check their arguments when called and return a generator, and this mark
    lets :class:`Streamer` accept them the same way.
    """
    function.__zarrmux_generator_function__ = True  # type: ignore[attr-defined]
    return function


def _copy_attr(value: Any, memo: dict[int, Any]) -> Any:
    """``copy.deepcopy(value, memo)``, without its dispatch for what needs no copy.

    Immutable atoms, and tuples of them (the usual ``args``), are their own deep
    copy; an empty dict (the usual ``kwargs``) copies to a new empty dict.
    Activation copies a streamer's attributes every time, so this is on the
    per-activation path of every mux.
    """
    t = type(value)
    if t in _ATOMIC:
        return value
    if t is tuple and _ATOMIC.issuperset(map(type, value)):
        return value
    if t is dict and not value:
        return {}
    return copy.deepcopy(value, memo)


def _own_copies(source: Any, args: Any, kwargs: Any) -> bool:
    """Whether activating ``source(*args, **kwargs)`` needs no deep copies.

    True for the usual case: a function (or an iterable atom) over a tuple of
    atoms, without keywords; atoms are their own deep copies.
    """
    return (
        type(source) in _ATOMIC
        and type(args) is tuple
        and type(kwargs) is dict
        and not kwargs
        and _ATOMIC.issuperset(map(type, args))
    )


class Streamer:
    """A wrapper for recycling iterables and generator functions.

    Wrapping gives two features: a ``Streamer`` can be serialised (if what it
    wraps can), and it can start its generator many times.

    Parameters
    ----------
    streamer : iterable, generator function or Streamer
        What to stream from.
    *args, **kwargs
        Passed to ``streamer()`` if it is callable.

    Raises
    ------
    PescadorError
        If ``streamer`` is neither a generator function nor iterable.

    Examples
    --------
    >>> def my_generator(n):
    ...     for i in range(n):
    ...         yield i
    >>> stream = Streamer(my_generator, 5)
    >>> list(stream)
    [0, 1, 2, 3, 4]
    >>> list(stream(max_iter=3))
    [0, 1, 2]
    >>> list(stream.cycle(max_iter=7))
    [0, 1, 2, 3, 4, 0, 1]
    """

    def __init__(self, streamer: Any, *args: Any, **kwargs: Any) -> None:
        if not (
            inspect.isgeneratorfunction(streamer)
            or getattr(streamer, "__zarrmux_generator_function__", False) is True
            or isinstance(streamer, (collections.abc.Iterable, Streamer))
        ):
            raise PescadorError("`streamer` must be an iterable or callable function that returns an iterable object.")
        self.streamer = streamer
        self.args = args
        self.kwargs = kwargs
        #: how many activated copies of this streamer are open
        self.active_count_ = 0
        #: the running iterator; set only on an activated copy
        self.stream_: Iterator[Any] | None = None

    def __copy__(self) -> Self:
        cls = self.__class__
        result = cls.__new__(cls)
        result.__dict__.update(self.__dict__)
        return result

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        cls = self.__class__
        result = cls.__new__(cls)
        memo[id(self)] = result
        d = result.__dict__
        for k, v in self.__dict__.items():
            d[k] = _copy_attr(v, memo)
        return result

    def __enter__(self, *args: Any, **kwargs: Any) -> Self:
        if self.is_activated_copy:
            return self
        active = self.__deepcopy__({})  # == copy.deepcopy(self), without its dispatch
        active._activate()
        self.active_count_ += 1
        return active

    def __exit__(self, *exc: Any) -> Literal[False]:
        if not self.is_activated_copy:
            self.active_count_ -= 1
            if self.active_count_ < 0:
                raise PescadorError(f"Active stream count passed below 0 for {self}")
        return False

    @property
    def active(self) -> int:
        """The number of open activated copies (truthy while any is open)."""
        return self.active_count_

    @property
    def is_activated_copy(self) -> bool:
        """True on an activated copy of the original streamer."""
        return self.stream_ is not None

    def _activate(self) -> None:
        """Start the stream on this (copied) object."""
        if callable(self.streamer):
            self.stream_ = self.streamer(*self.args, **self.kwargs)
        else:
            self.stream_ = iter(self.streamer)

    def iterate(self, max_iter: float | None = None) -> Iterator[Any]:
        """Yield the items of one activation.

        Parameters
        ----------
        max_iter : None or int > 0
            Maximum number of items; ``None`` exhausts the stream.

        Yields
        ------
        obj : the items of the wrapped stream
        """
        if type(self) is Streamer and self.stream_ is None:
            # A plain streamer: what __enter__ does, without building the activated
            # copy nobody sees (a mux activates a streamer every few items): deep
            # copies of what _activate uses, in __deepcopy__'s order, with one memo.
            source, args, kwargs = self.streamer, self.args, self.kwargs
            if _own_copies(source, args, kwargs):
                stream = source(*args) if callable(source) else iter(source)
            else:
                memo: dict[int, Any] = {}
                source = _copy_attr(source, memo)
                args = _copy_attr(args, memo)
                kwargs = _copy_attr(kwargs, memo)
                stream = source(*args, **kwargs) if callable(source) else iter(source)
            self.active_count_ += 1
        else:
            stream = self.__enter__().stream_
        assert stream is not None
        try:
            if max_iter is None or max_iter == math.inf:
                yield from stream
                return
            yield from islice(stream, max(0, max_iter if type(max_iter) is int else math.ceil(max_iter)))
            # pescador pulls (and drops) one more item before it sees the limit;
            # do the same, so streams with side effects stay in step.
            for _ in stream:
                break
        finally:
            self.__exit__(None, None, None)

    def bare_source(self) -> tuple[Callable[..., Iterator[Any]], tuple[Any, ...]] | None:
        """``(function, args)`` if this streamer can start bare (see :meth:`start_bare`), else None.

        True of a plain ``Streamer`` of a generator function over immutable
        positional arguments.  The answer depends only on what the streamer
        wraps, so a mux that owns its streamers may ask once and keep it.
        """
        source, args, kwargs = self.streamer, self.args, self.kwargs
        if (
            type(source) is FunctionType
            and source.__code__.co_flags & CO_GENERATOR
            and type(self) is Streamer
            and self.stream_ is None
            and type(args) is tuple
            and type(kwargs) is dict
            and not kwargs
            and _ATOMIC.issuperset(map(type, args))  # _own_copies, for a function
        ):
            return source, args
        return None

    def start_bare(
        self, max_iter: int, source: tuple[Callable[..., Iterator[Any]], tuple[Any, ...]] | None = None
    ) -> tuple[Iterator[Any], Iterator[Any]] | None:
        """Start one activation as bare iterators, for a mux that owns this streamer.

        What :meth:`iterate` does, without the generator around the items (a
        mux starts a stream every few items and draws each item through it).
        Only for a streamer :meth:`bare_source` accepts: its generator function
        runs no code of the caller's until its first item, so starting it now
        or at its first draw is the same.  The activation counts in
        :attr:`active` until :meth:`finish_bare`.

        Parameters
        ----------
        max_iter : int
            Maximum number of items.
        source : (function, args) or None
            What :meth:`bare_source` returned for this streamer, to skip its
            checks; ``None`` checks.

        Returns
        -------
        (items, generator) or None
            ``items`` yields what ``iterate(max_iter)`` yields; once it is
            exhausted, call ``finish_bare(generator)``.  ``None`` for any other
            streamer or ``max_iter``: use :meth:`iterate`.
        """
        if type(max_iter) is not int:
            return None
        if source is None:
            source = self.bare_source()
            if source is None:
                return None
        function, args = source
        try:
            generator = function(*args)
        except TypeError:
            return None  # arguments that do not fit: iterate raises at the first draw, as pescador
        self.active_count_ += 1
        return islice(generator, max_iter if max_iter > 0 else 0), generator

    def finish_bare(self, generator: Iterator[Any]) -> None:
        """End an activation begun by :meth:`start_bare`, as :meth:`iterate` ends one.

        Pulls (and drops) the item after the last one, as pescador does, and
        releases the activation.
        """
        try:
            for _ in generator:
                break
        finally:
            self.__exit__(None, None, None)

    def cycle(self, max_iter: int | None = None) -> Iterator[Any]:
        """Yield items forever, restarting the stream whenever it ends.

        Parameters
        ----------
        max_iter : None or int > 0
            Maximum number of items; ``None`` iterates indefinitely.
        """
        count = 0
        while True:
            for obj in self.iterate():
                count += 1
                if max_iter is not None and count > max_iter:
                    return
                yield obj

    def __call__(self, max_iter: int | None = None, cycle: bool = False) -> Iterator[Any]:
        """Iterate like :meth:`iterate`, or like :meth:`cycle` if ``cycle``.

        Parameters
        ----------
        max_iter : None or int > 0
            Maximum number of items.
        cycle : bool
            If True, restart the stream whenever it ends.
        """
        # the generator itself, not a generator around it: one layer less per item
        if cycle:
            return self.cycle(max_iter=max_iter)
        return self.iterate(max_iter=max_iter)

    def __iter__(self) -> Iterator[Any]:
        """The items of one activation: ``iterate()``."""
        return self.iterate()

    def generate(self, max_batches: int | None = None) -> Iterator[Any]:
        """Deprecated pescador 1.x name of :meth:`iterate` (``max_batches`` is ``max_iter``)."""
        warnings.warn(
            f"{type(self).__name__}.generate(max_batches=...) is deprecated (pescador 1.x); "
            "use .iterate(max_iter=...) instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.iterate(max_iter=max_batches)


def streamable(function: Callable[..., Iterable[Any]]) -> Callable[..., Streamer]:
    """Decorate a generator function so that calling it returns a :class:`Streamer`.

    Examples
    --------
    >>> @streamable
    ... def count(n):
    ...     yield from range(n)
    >>> list(count(3))
    [0, 1, 2]
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Streamer:
        return Streamer(function, *args, **kwargs)

    return wrapper
