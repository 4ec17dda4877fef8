"""Same seed, same stream: every mux against pescador 3.0 itself, over many seeds."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pescador
import pytest

import zarrmux
from streams import finite, global_noise, make, noisy

SEEDS = range(5)
LENGTHS = {
    "mixed": [3, 0, 7, 12, 1, 5, 9, 0, 4, 20],
    "equal": [40] * 6,
    "long": [500] * 12,
}


def both(build: Any, max_iter: int = 300) -> tuple[list[Any], list[Any]]:
    """Run the same construction with pescador and zarrmux; return both sequences."""
    return list(build(pescador)(max_iter=max_iter)), list(build(zarrmux)(max_iter=max_iter))


@pytest.mark.parametrize("lengths", list(LENGTHS), ids=str)
@pytest.mark.parametrize("mode", ["with_replacement", "single_active", "exhaustive"])
@pytest.mark.parametrize("dist", ["constant", "binomial", "poisson"])
@pytest.mark.parametrize("rate", [None, 1, 2.5, 16], ids=lambda r: f"rate={r}")
@pytest.mark.parametrize("weighted", [False, True], ids=["uniform", "weighted"])
def test_stochastic_mux_matches_pescador(lengths: str, mode: str, dist: str, rate: Any, weighted: bool) -> None:
    ns = LENGTHS[lengths]
    n_active = min(4, len(ns))
    for seed in SEEDS:
        # fresh weights for each library: pescador normalises the caller's array in place
        a, b = both(
            lambda lib: lib.StochasticMux(
                make(lib, ns),
                n_active,
                rate,
                weights=np.linspace(1, 3, len(ns)) if weighted else None,
                mode=mode,
                dist=dist,
                random_state=seed,
            )
        )
        assert a == b, f"seed={seed}"


@pytest.mark.parametrize("mode", ["with_replacement", "single_active", "exhaustive"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("dist", ["binomial", "poisson"])
def test_stochastic_mux_many_active_uneven_weights(mode: str, dtype: str, dist: str) -> None:
    """n_active > 8 (numpy sums pairwise) and uneven weights, in float64 and float32: every quota as pescador's."""
    ns = [60, 0, 3, 45, 7, 1, 80, 30, 0, 12, 55, 9, 40, 2, 70, 25, 5, 33, 18, 90]
    for seed in SEEDS:
        w = np.random.RandomState(100 + seed).gamma(0.7, size=len(ns)).astype(dtype)
        a, b = both(
            lambda lib: lib.StochasticMux(make(lib, ns), 12, 4.5, weights=w.copy(), mode=mode, dist=dist, random_state=seed),
            max_iter=500,
        )
        assert a == b, f"seed={seed}"
        assert len(b) == 500 if mode != "exhaustive" else len(b) > 20  # exhaustive: each stream once


@pytest.mark.parametrize("prune", [True, False])
def test_stochastic_mux_prune_and_empty_streams(prune: bool) -> None:
    ns = [0, 0, 5, 0, 3]
    for seed in SEEDS:
        a, b = both(
            lambda lib: lib.StochasticMux(
                make(lib, ns), 2, 3, mode="single_active", prune_empty_streams=prune, random_state=seed
            ),
            max_iter=60,
        )
        assert a == b


def test_stochastic_mux_randomstate_object_and_repeat_activation() -> None:
    for seed in SEEDS:
        pm = pescador.StochasticMux(make(pescador, LENGTHS["equal"]), 3, 4, random_state=np.random.RandomState(seed))
        zm = zarrmux.StochasticMux(make(zarrmux, LENGTHS["equal"]), 3, 4, random_state=np.random.RandomState(seed))
        # two activations of the same mux, and a cycle: identical in both libraries
        for _ in range(2):
            assert list(pm(max_iter=50)) == list(zm(max_iter=50))
        assert list(pm.cycle(max_iter=70)) == list(zm.cycle(max_iter=70))


def test_global_random_state_and_streams_with_side_effects() -> None:
    """random_state=None shares np.random with the streams: the interleaving of draws must match."""
    for seed in SEEDS:
        results = []
        for lib in (pescador, zarrmux):
            np.random.seed(seed)
            streams = [lib.Streamer(global_noise, i) for i in range(5)]
            results.append(list(lib.StochasticMux(streams, 3, 4, dist="poisson")(max_iter=200)))
        assert results[0] == results[1]


def test_streams_with_own_random_state() -> None:
    for seed in SEEDS:
        a, b = both(lambda lib: lib.StochasticMux([lib.Streamer(noisy, i, 10 + i) for i in range(6)], 3, 5, random_state=seed))
        assert a == b


def test_nested_muxes() -> None:
    def build(lib: Any, seed: int) -> Any:
        inner = [
            lib.StochasticMux(make(lib, [5, 9, 2]), 2, 3, mode="exhaustive", random_state=seed + 1),
            lib.ShuffledMux(make(lib, [4, 0, 6]), random_state=seed + 2),
            lib.RoundRobinMux(make(lib, [3, 3]), mode="cycle"),
            lib.ChainMux(make(lib, [2, 5]), mode="cycle"),
        ]
        return lib.StochasticMux(inner, 2, 6, random_state=seed)

    for seed in SEEDS:
        a, b = both(lambda lib: build(lib, seed), max_iter=250)
        assert a == b


@pytest.mark.parametrize("weighted", [False, True])
def test_shuffled_mux_matches_pescador(weighted: bool) -> None:
    for lengths in LENGTHS.values():
        for seed in SEEDS:
            a, b = both(
                lambda lib: lib.ShuffledMux(
                    make(lib, lengths),
                    weights=np.arange(1.0, len(lengths) + 1) if weighted else None,
                    random_state=seed,
                )
            )
            assert a == b


@pytest.mark.parametrize("mode", ["exhaustive", "cycle", "permuted_cycle"])
def test_round_robin_mux_matches_pescador(mode: str) -> None:
    for lengths in LENGTHS.values():
        for seed in SEEDS:
            a, b = both(lambda lib: lib.RoundRobinMux(make(lib, lengths), mode=mode, random_state=seed))
            assert a == b


@pytest.mark.parametrize("mode", ["exhaustive", "cycle"])
def test_chain_mux_matches_pescador(mode: str) -> None:
    for lengths in LENGTHS.values():
        a, b = both(lambda lib: lib.ChainMux(make(lib, lengths), mode=mode))
        assert a == b


def test_chain_mux_from_a_generator_of_streamers() -> None:
    def gen_streamers(lib: Any) -> Any:
        for i in range(3):
            yield lib.Streamer(finite, i, 4)

    a, b = both(lambda lib: lib.ChainMux(gen_streamers(lib)), max_iter=100)
    assert a == b and len(b) == 12


def test_weights_of_the_caller_are_not_modified() -> None:
    weights = np.array([1.0, 2.0, 3.0, 1.0, 1.0, 5.0])
    zarrmux.StochasticMux(make(zarrmux, LENGTHS["equal"]), 3, 4, weights=weights)
    zarrmux.ShuffledMux(make(zarrmux, LENGTHS["equal"]), weights=weights)
    assert weights.tolist() == [1.0, 2.0, 3.0, 1.0, 1.0, 5.0]


def test_integer_weights_give_pescadors_float_weight_sequence() -> None:
    lengths = LENGTHS["equal"]
    for seed in SEEDS:
        a = list(pescador.StochasticMux(make(pescador, lengths), 3, 4, weights=[1.0, 2.0, 3.0, 1.0, 1.0, 5.0], random_state=seed)(max_iter=200))
        b = list(zarrmux.StochasticMux(make(zarrmux, lengths), 3, 4, weights=[1, 2, 3, 1, 1, 5], random_state=seed)(max_iter=200))
        assert a == b


def test_buffer_stream_over_mux_matches_pescador() -> None:
    def item_stream(i: int) -> Any:
        for j in itertools.count():
            yield {"X": np.full((2, 3), i * 1000 + j, dtype=np.float32), "Y": np.asarray(j)}

    out = []
    for lib in (pescador, zarrmux):
        mux = lib.StochasticMux([lib.Streamer(item_stream, i) for i in range(8)], 4, 5, random_state=3)
        out.append(list(lib.buffer_stream(mux(max_iter=100), 8, partial=True)))
    assert len(out[0]) == len(out[1]) == 13
    for a, b in zip(*out):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k])


def test_generator_random_state_is_reproducible_and_its_own() -> None:
    lengths = LENGTHS["long"]
    runs = [
        list(zarrmux.StochasticMux(make(zarrmux, lengths), 4, 8, random_state=np.random.default_rng(7))(max_iter=300))
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    other = list(zarrmux.StochasticMux(make(zarrmux, lengths), 4, 8, random_state=np.random.default_rng(8))(max_iter=300))
    assert other != runs[0]
    for cls_kw in ({"mode": "single_active"}, {"mode": "exhaustive"}, {"dist": "poisson"}, {"dist": "constant"}):
        seq = [
            list(zarrmux.StochasticMux(make(zarrmux, lengths), 4, 8, random_state=np.random.default_rng(1), **cls_kw)(max_iter=200))
            for _ in range(2)
        ]
        assert seq[0] == seq[1] and len(seq[0]) >= 12
    shuffled = [list(zarrmux.ShuffledMux(make(zarrmux, lengths), random_state=np.random.default_rng(2))(max_iter=100)) for _ in range(2)]
    assert shuffled[0] == shuffled[1]


@pytest.mark.parametrize("max_iter", [0, 1, 7.5, -3, np.int64(40), float("inf"), float("nan"), None])
def test_stochastic_mux_max_iter_values_like_pescador(max_iter: Any) -> None:
    """The item limit as pescador compares it (n < max_iter), for ints, floats, numpy ints, inf and NaN."""
    for seed in SEEDS:
        a, b = (
            list(lib.StochasticMux(make(lib, LENGTHS["mixed"]), 3, 2.5, mode="exhaustive", random_state=seed)(max_iter=max_iter))
            for lib in (pescador, zarrmux)
        )
        assert a == b, f"seed={seed}"


def bad_after(stream_id: int, n: int) -> Any:
    for j in range(n):
        yield (stream_id, j)
    raise ValueError(f"stream {stream_id} broke")


def test_stochastic_mux_errors_of_streams_like_pescador() -> None:
    """A stream that raises, and one whose arguments do not fit: the same items first, then the same error."""

    def build(lib: Any, seed: int) -> Any:
        streams = [lib.Streamer(finite, i, 8) for i in range(4)]
        streams.append(lib.Streamer(bad_after, 4, 2))
        return lib.StochasticMux(streams, 3, None, random_state=seed)

    def build_unfit(lib: Any, seed: int) -> Any:
        streams = [lib.Streamer(finite, i, 50) for i in range(4)] + [lib.Streamer(finite, 4, 5, "extra")]
        return lib.StochasticMux(streams, 3, 3, random_state=seed)

    def run(mux: Any) -> tuple[list[Any], Any]:
        got: list[Any] = []
        try:
            for item in mux(max_iter=300):
                got.append(item)
        except (ValueError, TypeError) as exc:
            return got, (type(exc), str(exc))
        return got, None

    for make_mux in (build, build_unfit):
        errors = 0
        for seed in SEEDS:
            a, b = (run(make_mux(lib, seed)) for lib in (pescador, zarrmux))
            assert a == b, f"seed={seed}"
            errors += b[1] is not None
        assert errors >= 3, make_mux.__name__  # the failing stream was reached


def test_stochastic_mux_mixed_streamers_like_pescador() -> None:
    """Generator functions with atoms, with list arguments and keywords, iterables and nested muxes, together."""

    def tagged(tag: Any, values: list[int], *, scale: int = 1) -> Any:
        for v in values:
            yield (tag, v * scale)

    def build(lib: Any, seed: int) -> Any:
        streams = [
            lib.Streamer(finite, 0, 30),
            lib.Streamer(tagged, "list", list(range(12))),
            lib.Streamer(tagged, "kw", list(range(9)), scale=3),
            lib.Streamer([("iterable", k) for k in range(7)]),
            lib.ShuffledMux(make(lib, [4, 6]), random_state=seed + 1),
            lib.Streamer(noisy, 5, 11),
        ]
        return lib.StochasticMux(streams, 3, 4, mode="single_active", dist="poisson", random_state=seed)

    for seed in SEEDS:
        a, b = both(lambda lib: build(lib, seed), max_iter=400)
        assert a == b, f"seed={seed}"


def test_activated_copy_iterating_itself_counts_active_streams_like_pescador() -> None:
    """On an activated copy the caller can see, sub-streams count as active exactly as pescador's."""
    counts = []
    for lib in (pescador, zarrmux):
        mux = lib.StochasticMux(make(lib, [9, 4, 7, 12, 3]), 3, 3, random_state=2)
        with mux as active:
            items = list(active.iterate(max_iter=14))
            counts.append((items, [s.active for s in active.streamers]))
    assert counts[0] == counts[1]
