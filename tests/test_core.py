"""Streamer semantics, as pescador 3.0 defines them."""

from __future__ import annotations

import pickle
from typing import Any

import pescador
import pytest

import zarrmux
from streams import finite


def counter(n: int) -> Any:
    yield from range(n)


def test_iterate_call_cycle_and_max_iter() -> None:
    s = zarrmux.Streamer(counter, 5)
    assert list(s) == [0, 1, 2, 3, 4]
    assert list(s.iterate(max_iter=3)) == [0, 1, 2]
    assert list(s(max_iter=2)) == [0, 1]
    assert list(s.cycle(max_iter=12)) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert list(s(max_iter=7, cycle=True)) == [0, 1, 2, 3, 4, 0, 1]


def test_iterable_and_streamer_arguments() -> None:
    assert list(zarrmux.Streamer("abc")) == ["a", "b", "c"]
    inner = zarrmux.Streamer(counter, 3)
    assert list(zarrmux.Streamer(inner)) == [0, 1, 2]
    # a list restarts on every activation
    s = zarrmux.Streamer([1, 2])
    assert list(s) + list(s) == [1, 2, 1, 2]


def test_not_iterable_is_a_pescador_error() -> None:
    for lib in (pescador, zarrmux):
        with pytest.raises(lib.PescadorError):
            lib.Streamer(42)
    # zarrmux's class is pescador-compatible by name and hierarchy
    assert issubclass(zarrmux.DataError, zarrmux.PescadorError)


def test_activation_works_on_a_copy_and_counts_active() -> None:
    s = zarrmux.Streamer(counter, 3)
    assert not s.active
    with s as a1:
        assert a1 is not s and a1.is_activated_copy and not s.is_activated_copy
        assert s.active == 1
        with s as a2:
            assert s.active == 2 and a2 is not a1
        assert next(a1.stream_) == 0
    assert s.active == 0
    assert s.stream_ is None  # the original never holds a running generator


def test_activation_deep_copies_arguments() -> None:
    state = {"calls": 0}

    def gen(d: dict[str, int]) -> Any:
        d["calls"] += 1
        yield d["calls"]

    s = zarrmux.Streamer(gen, state)
    assert list(s) == [1] and list(s) == [1]  # each activation sees a fresh copy
    assert state == {"calls": 0}


def test_max_iter_pulls_one_item_more_like_pescador() -> None:
    """pescador draws the item after the limit before stopping: side effects must match."""
    pulled = {}
    for lib in (pescador, zarrmux):
        log: list[int] = []

        def gen() -> Any:
            for i in range(10):
                log.append(i)
                yield i

        assert list(lib.Streamer(gen).iterate(max_iter=3)) == [0, 1, 2]
        pulled[lib.__name__] = list(log)
    assert pulled["zarrmux"] == pulled["pescador"] == [0, 1, 2, 3]


def test_float_max_iter_like_pescador() -> None:
    for m in (0, 2.5, 3.0):
        assert list(zarrmux.Streamer(counter, 10).iterate(max_iter=m)) == list(pescador.Streamer(counter, 10).iterate(max_iter=m))


def test_streamable_decorator() -> None:
    @zarrmux.streamable
    def gen(n: int) -> Any:
        yield from range(n)

    s = gen(3)
    assert isinstance(s, zarrmux.Streamer)
    assert list(s) == [0, 1, 2] and list(s) == [0, 1, 2]
    assert gen.__name__ == "gen"


def test_streamers_and_muxes_pickle() -> None:
    s = zarrmux.Streamer(finite, 1, 4)
    assert list(pickle.loads(pickle.dumps(s))) == [(1, 0), (1, 1), (1, 2), (1, 3)]
    m = zarrmux.StochasticMux([zarrmux.Streamer(finite, i, 5) for i in range(3)], 2, 3, random_state=0)
    assert list(pickle.loads(pickle.dumps(m))(max_iter=20)) == list(m(max_iter=20))


def test_closing_the_iterator_closes_the_stream() -> None:
    closed = []

    def gen() -> Any:
        try:
            yield from range(100)
        finally:
            closed.append(True)

    it = zarrmux.Streamer(gen).iterate()
    assert next(it) == 0
    it.close()
    assert closed == [True]


def test_plain_activation_copies_like_pescador() -> None:
    """Objects shared between args and kwargs stay shared in the copy; each activation copies afresh."""

    def gen(a: list[int], b: list[int], *, c: list[int]) -> Any:
        a.append(1)
        yield (a is c, len(a), len(c), len(b), b is a)

    got = {}
    for lib in (pescador, zarrmux):
        shared: list[int] = []
        s = lib.Streamer(gen, shared, [0], c=shared)
        got[lib.__name__] = [list(s), list(s.iterate(max_iter=1)), shared]
    assert got["zarrmux"] == got["pescador"] == [[(True, 1, 1, 1, False)], [(True, 1, 1, 1, False)], []]


def test_active_count_of_a_plain_streamer_while_iterating() -> None:
    def fails_at_once() -> Any:
        raise RuntimeError("no items")
        yield  # a generator

    s = zarrmux.Streamer(counter, 3)
    it = s.iterate()
    assert s.active == 0  # activation waits for the first item, as in pescador
    assert next(it) == 0 and s.active == 1
    it2 = s(max_iter=1)
    assert list(it2) == [0] and s.active == 1
    it.close()
    assert s.active == 0
    bad = zarrmux.Streamer(fails_at_once)
    with pytest.raises(RuntimeError, match="no items"):
        list(bad)
    assert bad.active == 0 and bad.stream_ is None


def test_start_bare_is_iterate_without_the_generator() -> None:
    """A mux's bare start: the same items, the same extra pull, the same activation count."""
    log: list[int] = []

    def gen(n: int) -> Any:
        for i in range(n):
            log.append(i)
            yield i

    for n, max_iter in ((10, 3), (2, 5), (4, 0)):
        log.clear()
        expected = list(zarrmux.Streamer(gen, n).iterate(max_iter=max_iter))
        expected_log = list(log)
        log.clear()
        s = zarrmux.Streamer(gen, n)
        started = s.start_bare(max_iter)
        assert started is not None and s.active == 1
        items, generator = started
        assert list(items) == expected
        s.finish_bare(generator)
        assert log == expected_log and s.active == 0  # the item after the last one was pulled


def test_start_bare_refuses_what_iterate_must_do() -> None:
    """Copies to make, code that runs when called, a float limit or an activated copy: iterate's job."""

    def gen(a: Any, *, b: int = 0) -> Any:
        yield a

    @zarrmux.core.generator_function
    def not_a_generator(n: int) -> Any:
        return iter(range(n))

    for s, max_iter in [
        (zarrmux.Streamer(gen, [1]), 3),  # a list argument is deep-copied
        (zarrmux.Streamer(gen, 1, b=2), 3),  # keywords
        (zarrmux.Streamer(not_a_generator, 3), 3),  # runs code when called
        (zarrmux.Streamer("abc"), 3),
        (zarrmux.Streamer(gen, 1), 2.5),
        (zarrmux.Streamer(gen, 1, 2, 3), 3),  # arguments that do not fit: iterate raises it
    ]:
        assert s.start_bare(max_iter) is None and s.active == 0
    with zarrmux.Streamer(gen, 1) as active:
        assert active.start_bare(3) is None
    with pytest.raises(TypeError):
        list(zarrmux.Streamer(gen, 1, 2, 3))
