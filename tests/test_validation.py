"""Bad parameters raise PescadorError at construction, naming the parameter and the value."""

from __future__ import annotations

from typing import Any

import numpy as np
import pescador
import pytest

import zarrmux
from streams import make

N = 4


def stochastic(lib: Any, **kw: Any) -> Any:
    args = {"n_active": 2, "rate": 4, **kw}
    return lib.StochasticMux(make(lib, [5] * N), **args)


BAD_STOCHASTIC = [
    ({"n_active": 0}, "n_active"),
    ({"n_active": -2}, "n_active"),
    ({"n_active": 2.5}, "n_active"),
    ({"n_active": "2"}, "n_active"),
    ({"n_active": None}, "n_active"),
    ({"rate": 0}, "rate"),
    ({"rate": -3}, "rate"),
    ({"rate": 0.5}, "rate"),
    ({"rate": float("nan")}, "rate"),
    ({"rate": float("inf")}, "rate"),
    ({"rate": "16"}, "rate"),
    ({"weights": [1, 2, 3]}, "weights"),
    ({"weights": [1, -1, 1, 1]}, "weights"),
    ({"weights": [1, float("nan"), 1, 1]}, "weights"),
    ({"weights": [0, 0, 0, 0]}, "weights"),
    ({"weights": ["a", "b", "c", "d"]}, "weights"),
    ({"weights": np.ones((2, 2))}, "weights"),
    ({"mode": "sometimes"}, "sometimes"),
    ({"dist": "gamma"}, "gamma"),
    ({"random_state": "seed"}, "random_state"),
    ({"random_state": 1.5}, "random_state"),
    ({"mode": "exhaustive", "n_active": N + 1}, "n_active"),
]


@pytest.mark.parametrize("kw,name", BAD_STOCHASTIC, ids=[f"{k}" for k, _ in BAD_STOCHASTIC])
def test_stochastic_mux_rejects(kw: dict[str, Any], name: str) -> None:
    with pytest.raises(zarrmux.PescadorError, match=name):
        stochastic(zarrmux, **kw)


@pytest.mark.parametrize("kw,name", BAD_STOCHASTIC, ids=[f"{k}" for k, _ in BAD_STOCHASTIC])
def test_where_pescador_raises_at_construction_zarrmux_raises_the_same_class(kw: dict[str, Any], name: str) -> None:
    try:
        stochastic(pescador, **kw)
    except pescador.PescadorError:
        with pytest.raises(zarrmux.PescadorError):
            stochastic(zarrmux, **kw)
    except Exception:
        pass  # pescador fails with another error: zarrmux's PescadorError is the improvement


def test_pescador_fails_late_where_zarrmux_fails_early() -> None:
    # pescador accepts rate=0 and crashes with a numpy ValueError when iterating
    mux = stochastic(pescador, rate=0)
    with pytest.raises(ValueError):
        list(mux(max_iter=5))
    with pytest.raises(zarrmux.PescadorError, match="rate"):
        stochastic(zarrmux, rate=0)
    # integer weights: pescador cannot even construct the mux (numpy casting error)
    with pytest.raises(Exception) as info:
        stochastic(pescador, weights=[1, 2, 3, 4])
    assert not isinstance(info.value, pescador.PescadorError)
    assert len(list(stochastic(zarrmux, weights=[1, 2, 3, 4])(max_iter=10))) == 10


def test_empty_collections() -> None:
    for cls in (zarrmux.ShuffledMux, zarrmux.RoundRobinMux):
        with pytest.raises(zarrmux.PescadorError, match="empty"):
            cls([])
    with pytest.raises(zarrmux.PescadorError, match="empty"):
        zarrmux.StochasticMux([], 1, 4)


@pytest.mark.parametrize(
    "build,name",
    [
        (lambda: zarrmux.ShuffledMux(make(zarrmux, [3] * N), weights=[1, 2]), "weights"),
        (lambda: zarrmux.ShuffledMux(make(zarrmux, [3] * N), weights=[0, 0, 0, 0]), "weights"),
        (lambda: zarrmux.ShuffledMux(make(zarrmux, [3] * N), random_state=[1]), "random_state"),
        (lambda: zarrmux.RoundRobinMux(make(zarrmux, [3] * N), mode="twice"), "twice"),
        (lambda: zarrmux.ChainMux(make(zarrmux, [3] * N), mode="permuted_cycle"), "permuted_cycle"),
    ],
)
def test_other_muxes_reject(build: Any, name: str) -> None:
    with pytest.raises(zarrmux.PescadorError, match=name):
        build()


def test_random_state_kinds_accepted() -> None:
    for rs in (None, 3, np.int64(3), np.random.RandomState(3), np.random.default_rng(3)):
        assert len(list(stochastic(zarrmux, random_state=rs)(max_iter=8))) == 8
