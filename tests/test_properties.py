"""Property tests (hypothesis): invariants of the muxes and maps over random stream sets."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pescador
from hypothesis import given, settings
from hypothesis import strategies as st

import zarrmux
from streams import make

lengths_st = st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=8)
seed_st = st.integers(min_value=0, max_value=2**31 - 1)
FAST = settings(max_examples=60, deadline=None)


def all_items(lengths: list[int]) -> Counter[Any]:
    return Counter((i, j) for i, n in enumerate(lengths) for j in range(n))


@FAST
@given(lengths=lengths_st, seed=seed_st, data=st.data())
def test_exhaustive_stochastic_mux_yields_every_item_once(lengths: list[int], seed: int, data: Any) -> None:
    n_active = data.draw(st.integers(min_value=1, max_value=len(lengths)))
    mux = zarrmux.StochasticMux(make(zarrmux, lengths), n_active, None, mode="exhaustive", random_state=seed)
    assert Counter(mux) == all_items(lengths)


@FAST
@given(lengths=lengths_st)
def test_exhaustive_round_robin_and_chain_yield_every_item_once(lengths: list[int]) -> None:
    assert Counter(zarrmux.RoundRobinMux(make(zarrmux, lengths))) == all_items(lengths)
    chain = list(zarrmux.ChainMux(make(zarrmux, lengths)))
    assert chain == [(i, j) for i, n in enumerate(lengths) for j in range(n)]


@FAST
@given(lengths=lengths_st, seed=seed_st, data=st.data())
def test_any_stochastic_configuration_matches_pescador(lengths: list[int], seed: int, data: Any) -> None:
    mode = data.draw(st.sampled_from(["with_replacement", "single_active", "exhaustive"]))
    dist = data.draw(st.sampled_from(["constant", "binomial", "poisson"]))
    rate = data.draw(st.one_of(st.none(), st.floats(min_value=1.0, max_value=20.0)))
    n_active = data.draw(st.integers(min_value=1, max_value=len(lengths) if mode != "with_replacement" else 6))
    raw = data.draw(st.lists(st.integers(1, 5), min_size=len(lengths), max_size=len(lengths)))
    weighted = data.draw(st.booleans())
    seqs = []
    for lib in (pescador, zarrmux):
        weights = np.array(raw, dtype=float) if weighted else None
        mux = lib.StochasticMux(make(lib, lengths), n_active, rate, weights=weights, mode=mode, dist=dist, random_state=seed)
        seqs.append(list(mux(max_iter=150)))
    assert seqs[0] == seqs[1]


@FAST
@given(lengths=lengths_st, seed=seed_st)
def test_shuffled_mux_never_draws_zero_weight_streams(lengths: list[int], seed: int) -> None:
    weights = [0.0 if i % 2 else 1.0 for i in range(len(lengths))]
    if not any(n and w for n, w in zip(lengths, weights)):
        return
    out = list(zarrmux.ShuffledMux(make(zarrmux, lengths), weights=weights, random_state=seed)(max_iter=80))
    assert out and all(weights[i] > 0 for i, _ in out)


@FAST
@given(n=st.integers(0, 60), size=st.integers(1, 9), partial=st.booleans())
def test_buffer_stream_batch_count_and_order(n: int, size: int, partial: bool) -> None:
    stream = ({"x": np.asarray(i)} for i in range(n))
    batches = list(zarrmux.buffer_stream(stream, size, partial=partial))
    expected = n // size + (1 if partial and n % size else 0)
    assert len(batches) == expected
    flat = [int(v) for b in batches for v in b["x"]]
    assert flat == list(range(len(flat)))
