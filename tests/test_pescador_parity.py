"""Parity with pescador 3.0 on names and state its own test suite reaches into (issue 14)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pescador
import pytest

import zarrmux
from streams import make

STACK_CASES = [
    ([{"X": np.array([n])} for n in range(10)], None),
    ([{"X": np.array([[n]])} for n in range(10)], 0),
    ([{"X": np.arange(6).reshape(2, 3) + n, "y": np.array([[n % 2]])} for n in range(4)], 1),
    ([{"X": np.float32(n), "y": np.array(n)} for n in range(3)], None),
]


@pytest.mark.parametrize(("data", "axis"), STACK_CASES)
def test_maps_stack_data_matches_pescadors(data: list[dict[str, Any]], axis: int | None) -> None:
    theirs = getattr(pescador.maps, "__stack_data")(data, axis)
    ours = getattr(zarrmux.maps, "__stack_data")(data, axis)
    assert list(ours) == list(theirs)
    for key in theirs:
        assert ours[key].dtype == theirs[key].dtype, key
        np.testing.assert_array_equal(ours[key], theirs[key])


def test_maps_stack_data_malformed_raises_as_pescadors() -> None:
    data = [{"X": np.array([1])}, 5]
    with pytest.raises(TypeError) as theirs:
        getattr(pescador.maps, "__stack_data")(data, None)
    with pytest.raises(TypeError) as ours:
        getattr(zarrmux.maps, "__stack_data")(data, None)
    assert type(ours.value) is type(theirs.value)
    # buffer_stream still turns the same failure into a DataError naming the data.
    with pytest.raises(zarrmux.DataError, match="Malformed data stream"):
        list(zarrmux.buffer_stream(iter(data), 2))


def _shuffled_states(lib: Any, lengths: list[int], seed: int, n: int) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    mux = lib.ShuffledMux(make(lib, lengths), random_state=seed)
    states = []
    with mux as active:
        assert isinstance(active.stream_counts_, np.ndarray)
        states.append((None, active.stream_counts_.copy(), active.stream_weights_.copy()))
        # An activated copy iterates itself, so its state can be read between items.
        for item in active.iterate(n):
            states.append((item, active.stream_counts_.copy(), active.stream_weights_.copy()))
    return states


@pytest.mark.parametrize(("lengths", "seed"), [([1, 0, 1, 0, 0, 1], 1234), ([3, 0, 2], 7), ([0, 0, 4], 0)])
def test_shuffled_mux_stream_counts_are_pescadors_array(lengths: list[int], seed: int) -> None:
    theirs = _shuffled_states(pescador, lengths, seed, 30)
    ours = _shuffled_states(zarrmux, lengths, seed, 30)
    assert len(ours) == len(theirs) == 31
    for step, ((o_item, o_counts, o_weights), (t_item, t_counts, t_weights)) in enumerate(zip(ours, theirs)):
        assert o_item == t_item, step
        assert o_counts.dtype == t_counts.dtype and o_counts.shape == t_counts.shape, step
        np.testing.assert_array_equal(o_counts, t_counts, err_msg=f"step {step}")
        np.testing.assert_array_equal(o_weights, t_weights, err_msg=f"step {step}")
    # Freshly activated: all zeros (pescador's own test asserts `(stream_counts_ == 0).all()`).
    assert (ours[0][1] == 0).all() and len(ours[0][1]) == len(lengths)
    # Empty streams end with weight 0, as pescador's.
    assert all(ours[-1][2][i] == 0 for i, n in enumerate(lengths) if n == 0)
