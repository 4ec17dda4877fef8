"""Maps: buffer_stream, tuples, keras_tuples, cache — against pescador 3.0 and for early errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pescador
import pytest

import zarrmux


def items(n: int, shape: tuple[int, ...] = ()) -> Any:
    for i in range(n):
        yield {"x": np.full(shape, i), "y": np.full(shape[:1], i % 2)}


def assert_batches_equal(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k])


@pytest.mark.parametrize("size", [1, 3, 10, 11])
@pytest.mark.parametrize("partial", [False, True])
@pytest.mark.parametrize("axis", [None, 0])
def test_buffer_stream_matches_pescador(size: int, partial: bool, axis: Any) -> None:
    shape = (2,) if axis is not None else ()
    a = list(pescador.buffer_stream(items(10, shape), size, partial=partial, axis=axis))
    b = list(zarrmux.buffer_stream(items(10, shape), size, partial=partial, axis=axis))
    assert_batches_equal(a, b)


def test_buffer_stream_shapes() -> None:
    b = next(zarrmux.buffer_stream(items(10, (3, 4)), 5))
    assert b["x"].shape == (5, 3, 4) and b["y"].shape == (5, 3)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "4", None, True])
def test_buffer_stream_bad_size_raises_at_call(bad: Any) -> None:
    with pytest.raises(zarrmux.PescadorError, match="buffer_size"):
        zarrmux.buffer_stream(items(3), bad)


def test_buffer_stream_malformed_data() -> None:
    for lib in (pescador, zarrmux):
        with pytest.raises(lib.DataError):
            list(lib.buffer_stream(iter([1, 2, 3, 4]), 2))


def test_tuples_and_keras_tuples_match_pescador() -> None:
    for keys in (("x",), ("x", "y")):
        assert [tuple(map(int, t)) for t in zarrmux.tuples(items(4), *keys)] == [
            tuple(map(int, t)) for t in pescador.tuples(items(4), *keys)
        ]
    for inputs, outputs in (("x", "y"), (["x"], ["y"]), ("x", None), (None, ["x", "y"])):
        a = list(pescador.keras_tuples(items(3), inputs=inputs, outputs=outputs))
        b = list(zarrmux.keras_tuples(items(3), inputs=inputs, outputs=outputs))
        assert repr(a) == repr(b)


def test_tuples_errors() -> None:
    with pytest.raises(zarrmux.PescadorError):
        zarrmux.tuples(items(3))  # raised at call time, not at the first item
    with pytest.raises(zarrmux.PescadorError):
        zarrmux.keras_tuples(items(3))
    with pytest.raises(zarrmux.DataError):
        list(zarrmux.tuples(iter([1, 2]), "x"))
    with pytest.raises(KeyError):
        list(zarrmux.tuples(items(2), "nope"))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("prob", [0.1, 0.5, 1.0])
def test_cache_matches_pescador(seed: int, prob: float) -> None:
    a = [int(d["x"]) for d in pescador.cache(items(50), 7, prob=prob, random_state=seed)]
    b = [int(d["x"]) for d in zarrmux.cache(items(50), 7, prob=prob, random_state=seed)]
    assert a == b and len(b) >= 50 - 7


@pytest.mark.parametrize("kw", [{"n_cache": 0}, {"n_cache": 3, "prob": 0}, {"n_cache": 3, "prob": 1.5}, {"n_cache": 3, "random_state": "x"}])
def test_cache_bad_parameters(kw: dict[str, Any]) -> None:
    with pytest.raises(zarrmux.PescadorError):
        zarrmux.cache(items(3), **kw)


def test_maps_wrap_in_a_streamer_as_in_pescador() -> None:
    """pescador's maps are generator functions: ``Streamer(buffer_stream, stream, n)`` is an idiom of its docs."""

    def items() -> Any:
        for i in range(20):
            yield {"x": np.asarray(i), "y": np.asarray(-i)}

    got = {}
    for lib in (pescador, zarrmux):
        buffered = lib.Streamer(lib.buffer_stream, lib.Streamer(items), 5)
        as_tuples = lib.Streamer(lib.tuples, lib.Streamer(items), "x", "y")
        as_keras = lib.Streamer(lib.keras_tuples, lib.Streamer(items), "x", "y")
        got[lib.__name__] = (
            [b["x"].tolist() for b in buffered] + [b["y"].tolist() for b in buffered],  # restarts
            [tuple(int(v) for v in t) for t in as_tuples],
            [(int(a), int(b)) for a, b in as_keras],
        )
    assert got["zarrmux"] == got["pescador"]
    assert got["zarrmux"][0][0] == [0, 1, 2, 3, 4] and len(got["zarrmux"][0]) == 8
    cached = zarrmux.Streamer(zarrmux.cache, iter(range(10)), 4, random_state=0)
    assert set(cached) <= set(range(10))
    with pytest.raises(zarrmux.PescadorError):
        zarrmux.Streamer(lambda: iter([1]))  # other plain functions are refused, as in pescador
