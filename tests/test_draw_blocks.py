"""Draws made in blocks give numpy's values one at a time: doubles, bisections, binomials; and the mux that uses them."""

from __future__ import annotations

import itertools
from bisect import bisect_right
from typing import Any

import numpy as np
import pescador
import pytest

import zarrmux
from streams import finite
from zarrmux.draw_blocks import BlockDraws

RNGS = {"RandomState": np.random.RandomState, "Generator": np.random.default_rng}


def pair(kind: str, seed: int) -> tuple[Any, Any]:
    return RNGS[kind](seed), RNGS[kind](seed)


def one(rng: Any) -> float:
    return float(rng.random_sample() if isinstance(rng, np.random.RandomState) else rng.random())


@pytest.mark.parametrize("kind", list(RNGS))
def test_uniform_is_one_draw_at_a_time_across_blocks(kind: str) -> None:
    ours, theirs = pair(kind, 3)
    draws = BlockDraws(ours, block=7)
    assert [draws.uniform() for _ in range(50)] == [one(theirs) for _ in range(50)]


# (n, p) with n * min(p, 1 - p) <= 30: numpy draws by inversion; n as the mux passes it, a float
CASES = [
    (n, p)
    for n, p in itertools.product(
        [0.0, 1.0, 2.0, 5.0, 15.0, 15.48, 29.0, 58.0, 200.0, 3000.0],
        [0.0, 1e-9, 0.001, 0.0312, 0.3, 0.5, 0.5000001, 0.7, 0.9688, 0.999, 1.0],
    )
    if n * min(p, 1 - p) <= 30
]


@pytest.mark.parametrize("kind", list(RNGS))
def test_binomial_is_numpys_draw_for_every_inversion_case(kind: str) -> None:
    """Same values and the same doubles used: a double drawn after each binomial still matches."""
    for seed, (n, p) in enumerate(CASES):
        ours, theirs = pair(kind, seed)
        draws = BlockDraws(ours, block=5)
        got = [(draws.binomial(n, p), draws.uniform()) for _ in range(40)]
        want = [(int(theirs.binomial(n, p)), one(theirs)) for _ in range(40)]
        assert got == want, (kind, n, p)


def test_binomial_refuses_what_numpy_draws_otherwise() -> None:
    draws = BlockDraws(np.random.RandomState(0))
    with pytest.raises(ValueError, match="BTPE"):
        draws.binomial(100.0, 0.5)
    with pytest.raises(ValueError, match="Poisson"):
        draws.poisson(lam=15)


@pytest.mark.parametrize("kind", list(RNGS))
def test_window_bisects_and_commit_counts_only_what_was_taken(kind: str) -> None:
    cdf = np.cumsum(np.random.RandomState(9).gamma(0.5, size=6)).tolist()
    cdf = [c / cdf[-1] for c in cdf]
    ours, theirs = pair(kind, 11)
    draws = BlockDraws(ours, block=10)
    got, want = [], []
    for take, most in [(3, None), (0, 4), (4, 4), (1, 2), (6, None), (10, 100)]:
        window = draws.window(cdf, most)
        taken = list(itertools.islice(window, take))
        draws.commit(window)
        got += taken + [draws.uniform()]
        want += [bisect_right(cdf, one(theirs)) for _ in taken] + [one(theirs)]
    assert got == want


def weights_for(case: str, n: int) -> Any:
    return {
        "uniform": None,
        "weighted": np.linspace(1, 3, n),
        "gamma": np.random.RandomState(5).gamma(0.7, size=n) + 0.01,
        "skewed": np.r_[1e6, np.ones(n - 1)],  # a chance above 0.9999: Poisson quotas, one draw at a time
    }[case]


@pytest.mark.parametrize("weights", ["uniform", "weighted", "gamma", "skewed"])
@pytest.mark.parametrize("rate", [1, 16, 30, 31])
def test_stochastic_mux_matches_pescador_over_many_blocks(weights: str, rate: float) -> None:
    """Long runs (past a block of draws), rates on both sides of the inversion bound, pruned streams."""
    items = 1600 if rate == 1 else 5000  # each more than 4096 draws
    lengths = [0, 3, 50, 7, 0, 400, 1, 90] * 3
    for n_active, seed in [(2, 0), (12, 2)]:
        seqs = [
            list(
                lib.StochasticMux(
                    [lib.Streamer(finite, i, n) for i, n in enumerate(lengths)],
                    n_active,
                    rate,
                    weights=weights_for(weights, len(lengths)),
                    random_state=seed,
                )(max_iter=items)
            )
            for lib in (pescador, zarrmux)
        ]
        assert seqs[0] == seqs[1], (n_active, seed)


class OneAtATime(zarrmux.StochasticMux):
    """The same mux through an overridden hook: every draw one numpy call at a time."""

    def _n_samples_to_stream(self, weight: float, old_idx: int) -> Any:
        return super()._n_samples_to_stream(weight, old_idx)


@pytest.mark.parametrize("rate", [1, 16])
def test_generator_random_state_gives_the_same_sequence_in_blocks(rate: int) -> None:
    def endless(i: int) -> Any:
        yield from ((i, j) for j in itertools.count())

    seqs = [
        list(cls([zarrmux.Streamer(endless, i) for i in range(20)], 6, rate, random_state=np.random.default_rng(4))(max_iter=20000))
        for cls in (zarrmux.StochasticMux, OneAtATime)
    ]
    assert seqs[0] == seqs[1]


def test_inversion_plan_refuses_btpe_always_and_a_doubtful_bound_only_when_strict() -> None:
    from zarrmux.binomial_inversion import inversion_plan

    assert inversion_plan(100, 0.5) is None and inversion_plan(100, 0.5, strict=False) is None  # BTPE
    # p = 0: the bound is 0 + 10 * sqrt(1) = 10 exactly, where a fused multiply-add could round otherwise
    assert inversion_plan(15, 0.0) is None
    assert inversion_plan(15, 0.0, strict=False) == (False, 0.0, 1.0, 1.0, 10)
    flip, p, q, qn, bound = inversion_plan(15, 0.97)  # type: ignore[misc]
    assert flip and abs(p - 0.03) < 1e-12 and q == 1.0 - p and 0 < qn < 1 and bound == 12
