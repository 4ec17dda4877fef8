"""The window plan: pure, no I/O."""

from __future__ import annotations

import copy
import itertools
import json
import pickle
import warnings

import numpy as np
import plan_reference
import pytest

from zarrmux.exceptions import PescadorError
from zarrmux.philox import Draws, uniform_starts
from zarrmux.plan import DISTRIBUTIONS, MODES, WindowPlan

ROWS = [300, 120, 500, 64, 250, 410, 90, 333]


def windows(plan: WindowPlan, max_iter: int | None = None) -> list[tuple[int, int]]:
    out = []
    for blk in plan.blocks(max_iter):
        out.extend(zip(blk.entries.tolist(), blk.starts.tolist()))
    return out


@pytest.mark.parametrize("mode", ["with_replacement", "single_active", "exhaustive"])
@pytest.mark.parametrize("dist", ["binomial", "poisson", "constant"])
def test_windows_valid_and_deterministic(mode: str, dist: str) -> None:
    kw = dict(batch_size=7, n_active=3, rate=5, mode=mode, dist=dist, seed=11)
    a = windows(WindowPlan(ROWS, 16, **kw), 40)
    b = windows(WindowPlan(ROWS, 16, **kw), 40)
    assert a == b
    for e, s in a:
        assert 0 <= s <= ROWS[e] - 16
    c = windows(WindowPlan(ROWS, 16, **{**kw, "seed": 12}), 40)
    assert a != c


def test_starts_cover_every_valid_position_uniformly() -> None:
    # one entry of 40 rows, n=8: 33 valid starts including the last (32)
    plan = WindowPlan([40], 8, batch_size=64, n_active=1, rate=1000, seed=3)
    starts = np.concatenate([b.starts for b in plan.blocks(200)])
    counts = np.bincount(starts, minlength=33)
    assert len(counts) == 33 and counts[32] > 0 and counts.min() > 0
    expected = len(starts) / 33
    # chi-square with 32 dof: 99.99th percentile is about 70
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 80, chi2


def test_quota_mean_is_rate_constant_exact() -> None:
    plan = WindowPlan([1000] * 10, 4, batch_size=1, n_active=1, rate=6, dist="constant", seed=0)
    ents = [e for e, _ in windows(plan, 600)]
    runs = []
    cur, k = ents[0], 0
    for e in ents:
        if e == cur:
            k += 1
        else:
            runs.append(k)
            cur, k = e, 1
    # consecutive activations may draw the same entry: runs are multiples of 6
    assert all(r % 6 == 0 for r in runs)


@pytest.mark.parametrize("dist", ["binomial", "poisson"])
def test_quota_mean_is_about_rate(dist: str) -> None:
    plan = WindowPlan([1000] * 4, 4, batch_size=50, n_active=4, rate=10, dist=dist, seed=5)
    quotas = []
    for _ in range(400):
        plan.next_block()
        quotas.extend(plan.slots.quota)
    # fresh quotas are >= 1; the mean of remaining quotas is about half the rate or more
    assert min(quotas) >= 1


def test_weights_are_proportions() -> None:
    w = np.array([1, 2, 0, 4, 1, 0, 0, 0], dtype=float)
    plan = WindowPlan(ROWS, 16, batch_size=64, n_active=2, rate=8, weights=w, seed=4)
    ents = np.array([e for e, _ in windows(plan, 600)])
    counts = np.bincount(ents, minlength=8)
    assert counts[[2, 5, 6, 7]].sum() == 0
    frac = counts / counts.sum()
    target = w / w.sum()
    assert np.allclose(frac, target, atol=0.03), (frac, target)


def test_single_active_never_duplicates_active_entries() -> None:
    plan = WindowPlan(ROWS, 16, batch_size=5, n_active=4, rate=3, mode="single_active", seed=9)
    for _ in range(300):
        plan.next_block()
        live = plan.slots.pos
        assert len(set(live)) == len(live)


def test_exhaustive_activates_every_entry_once_per_epoch() -> None:
    plan = WindowPlan(ROWS, 16, batch_size=4, n_active=3, rate=4, dist="constant", mode="exhaustive", seed=2)
    ep0 = windows(plan)
    assert plan.epoch == 1
    counts = np.bincount([e for e, _ in ep0], minlength=len(ROWS))
    assert (counts == 4).all()  # constant quota 4, every entry once
    ep1 = windows(plan)
    assert sorted(ep0) != sorted(ep1) or ep0 != ep1
    assert len(ep1) == len(ep0)


def test_epochs_differ_and_are_reproducible() -> None:
    kw = dict(batch_size=8, n_active=3, rate=4, seed=21, epoch_batches=5)
    p = WindowPlan(ROWS, 16, **kw)
    e0, e1 = windows(p), windows(p)
    assert p.epoch == 2 and len(e0) == len(e1) == 40 and e0 != e1
    q = WindowPlan(ROWS, 16, **kw)
    assert windows(q) == e0 and windows(q) == e1


def test_default_epoch_is_about_one_pass() -> None:
    p = WindowPlan(ROWS, 16, batch_size=8, n_active=3, rate=4, seed=1)
    assert p.epoch_batches == -(-sum(ROWS) // (16 * 8))


def test_sequential_visits_every_position_once_in_order() -> None:
    plan = WindowPlan(ROWS, 16, batch_size=10, mode="sequential", hop=1)
    got = windows(plan)
    want = [(e, s) for e, r in enumerate(ROWS) for s in range(r - 16 + 1)]
    assert got == want
    assert plan.epoch == 1
    hop = windows(WindowPlan(ROWS, 16, batch_size=10, mode="sequential"))
    assert hop == [(e, s) for e, r in enumerate(ROWS) for s in range(0, r - 16 + 1, 16)]


def test_sequential_drop_last() -> None:
    plan = WindowPlan([100], 10, batch_size=4, mode="sequential", drop_last=True)  # 10 windows
    blocks = list(plan.blocks())
    assert [len(b) for b in blocks] == [4, 4]
    with pytest.raises(PescadorError, match="drop_last"):
        WindowPlan([20], 10, batch_size=4, mode="sequential", drop_last=True).next_block()


@pytest.mark.parametrize("mode", ["with_replacement", "single_active", "exhaustive", "sequential"])
def test_rank_shares_disjoint_and_covering(mode: str) -> None:
    rows = [100 + 7 * i for i in range(23)] + [5]  # the last is too short
    shares = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(3):
            p = WindowPlan(rows, 16, batch_size=8, n_active=2, rate=4, mode=mode, seed=7, rank=r, world_size=3)
            seen = {e for e, _ in windows(p, 200)}
            assert seen <= set(p.share.tolist())
            shares.append(set(p.share.tolist()))
            # deterministic per rank
            p2 = WindowPlan(rows, 16, batch_size=8, n_active=2, rate=4, mode=mode, seed=7, rank=r, world_size=3)
            assert windows(p2, 20) == windows(
                WindowPlan(rows, 16, batch_size=8, n_active=2, rate=4, mode=mode, seed=7, rank=r, world_size=3), 20
            )
    assert not (shares[0] & shares[1]) and not (shares[0] & shares[2]) and not (shares[1] & shares[2])
    assert shares[0] | shares[1] | shares[2] == set(range(23))


@pytest.mark.parametrize("mode", ["with_replacement", "single_active", "exhaustive", "sequential"])
def test_state_round_trip_is_exact_and_json(mode: str) -> None:
    kw = dict(batch_size=6, n_active=3, rate=4, mode=mode, seed=8, epoch_batches=7)
    ref = WindowPlan(ROWS, 16, **kw)
    full = [(b.entries.tolist(), b.starts.tolist()) for b in ref.blocks(60, epoch_end=False)]
    p = WindowPlan(ROWS, 16, **kw)
    head = [(b.entries.tolist(), b.starts.tolist()) for b in p.blocks(23, epoch_end=False)]
    state = json.loads(json.dumps(p.state_dict()))
    q = WindowPlan(ROWS, 16, **{**kw, "seed": None})
    q.load_state_dict(state)
    tail = [(b.entries.tolist(), b.starts.tolist()) for b in q.blocks(37, epoch_end=False)]
    assert head + tail == full


def test_state_from_other_config_is_refused() -> None:
    p = WindowPlan(ROWS, 16, batch_size=6, n_active=3, rate=4, seed=8)
    q = WindowPlan(ROWS, 16, batch_size=7, n_active=3, rate=4, seed=8)
    with pytest.raises(PescadorError, match="configuration"):
        q.load_state_dict(p.state_dict())
    with pytest.raises(PescadorError, match="seed"):
        WindowPlan(ROWS, 16, batch_size=6, n_active=3, rate=4, seed=8).load_state_dict(
            WindowPlan(ROWS, 16, batch_size=6, n_active=3, rate=4, seed=9).state_dict(), check_seed=8
        )
    with pytest.raises(PescadorError, match="malformed"):
        p.load_state_dict({"format": "zarrmux.WindowPlan/1", "fingerprint": p.state_dict()["fingerprint"]})


def test_bad_parameters() -> None:
    with pytest.raises(PescadorError, match="n=0"):
        WindowPlan(ROWS, 0, batch_size=4, n_active=2)
    with pytest.raises(PescadorError, match="n=-3"):
        WindowPlan(ROWS, -3, batch_size=4, n_active=2)
    with pytest.raises(PescadorError, match="longer than every entry"):
        WindowPlan(ROWS, 501, batch_size=4, n_active=2)
    with pytest.raises(PescadorError, match="batch_size"):
        WindowPlan(ROWS, 4, batch_size=0, n_active=2)
    with pytest.raises(PescadorError, match="mode"):
        WindowPlan(ROWS, 4, batch_size=4, n_active=2, mode="nope")
    with pytest.raises(PescadorError, match="dist"):
        WindowPlan(ROWS, 4, batch_size=4, n_active=2, dist="nope")
    with pytest.raises(PescadorError, match="rate"):
        WindowPlan(ROWS, 4, batch_size=4, n_active=2, rate=0.5)
    with pytest.raises(PescadorError, match="n_active"):
        WindowPlan(ROWS, 4, batch_size=4)
    with pytest.raises(PescadorError, match="n_active=9"):
        WindowPlan(ROWS, 4, batch_size=4, n_active=9, mode="single_active")
    with pytest.raises(PescadorError, match="weights"):
        WindowPlan(ROWS, 4, batch_size=4, n_active=2, weights=[1, 2])
    with pytest.raises(PescadorError, match="rank"):
        WindowPlan(ROWS, 4, batch_size=4, n_active=2, rank=2, world_size=2)


def test_short_entries_warned_once_with_count() -> None:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        p = WindowPlan(ROWS, 100, batch_size=4, n_active=2, seed=0)
    msgs = [str(r.message) for r in rec]
    assert len(msgs) == 1 and "2 of 8 entries" in msgs[0]
    assert {e for e, _ in windows(p, 50)} <= {0, 1, 2, 4, 5, 7}


# ---------------------------------------------------------------------- the same sequence as before
# tests/plan_reference.py is the plan as it was before planning was made cheap: the current
# plan must give exactly its blocks (entries, starts, states) and accept its states, and the
# other way round, whatever the configuration.

BIG_ROWS = [300, 120, 500, 64, 250, 410, 90, 333, 16, 17, 1000, 77, 20, 64, 151, 99]
WEIGHTS = {
    "uniform": None,
    "zeros": [0.0 if i % 3 == 1 else 1.0 for i in range(len(BIG_ROWS))],
    "skewed": [float(1 + (i * 7) % 5) ** 3 / 7 for i in range(len(BIG_ROWS))],
    "tiny": [1e-300 * (1 + i % 4) for i in range(len(BIG_ROWS))],
    "overflowing": [0.75e308 * (1 + i % 2) for i in range(len(BIG_ROWS))],  # their sum is inf
}


def same_blocks(new: WindowPlan, old: plan_reference.WindowPlan, count: int, where: str) -> None:
    """``count`` calls of ``next_block`` give the same blocks and positions on both plans."""
    for i in range(count):
        a, b = new.next_block(), old.next_block()
        assert (a is None) == (b is None), (where, i)
        if a is not None:
            assert a.entries.tolist() == b.entries.tolist(), (where, i)
            assert a.starts.tolist() == b.starts.tolist(), (where, i)
            assert a.entries.dtype == b.entries.dtype == np.int64 and a.starts.dtype == b.starts.dtype, (where, i)
            assert (a.epoch, a.index, a.last_in_epoch) == (b.epoch, b.index, b.last_in_epoch), (where, i)
            assert a.state_after == b.state_after, (where, i)
        assert new.state_dict() == old.state_dict(), (where, i)
        assert (new.epoch, new.batch, new.window) == (old.epoch, old.batch, old.window), (where, i)


def both(rows: list[int], n: int, **kw: object) -> tuple[WindowPlan, plan_reference.WindowPlan]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WindowPlan(rows, n, **kw), plan_reference.WindowPlan(rows, n, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dist", DISTRIBUTIONS)
@pytest.mark.parametrize("weights", list(WEIGHTS))
def test_same_blocks_as_first_version(mode: str, dist: str, weights: str) -> None:
    for seed, rate, batch_size, n_active in [(0, 4, 7, 3), (1, 16, 32, 5), (2**64 - 1, 2.5, 6, 6)]:
        kw = dict(batch_size=batch_size, n_active=n_active, rate=rate, mode=mode, dist=dist, seed=seed,
                  weights=WEIGHTS[weights], epoch_batches=9 if mode != "exhaustive" else None)
        if mode == "sequential":
            kw["hop"] = 5
        new, old = both(BIG_ROWS, 16, **kw)
        with np.errstate(over="ignore"):  # (overflowing weights: both versions overflow alike)
            same_blocks(new, old, 45, f"{kw}")  # several epochs


@pytest.mark.parametrize("mode", ["with_replacement", "single_active", "exhaustive"])
def test_same_blocks_without_rate_and_with_drop_last_ranks_and_small_rates(mode: str) -> None:
    for kw in [
        dict(rate=None, dist="binomial"),
        dict(rate=1, dist="binomial"),  # a refill after every window
        dict(rate=1, dist="binomial", n_active=15),  # single_active: many tries, more draws than drawn ahead
        dict(rate=1, dist="poisson"),
        dict(rate=0.3, dist="constant"),
        dict(rate=200, dist="binomial"),  # quotas drawn by numpy's BTPE, not by inversion
        dict(rate=3, dist="binomial", drop_last=True, rank=1, world_size=3),
        dict(rate=5, dist="poisson", n_active=16),
    ]:
        kw = {"batch_size": 8, "n_active": 4, "mode": mode, "seed": 5, "epoch_batches": 6, **kw}
        if mode == "exhaustive":
            kw.pop("epoch_batches")
        new, old = both(BIG_ROWS, 16, **kw)
        same_blocks(new, old, 60, f"{kw}")


def test_same_blocks_with_huge_and_single_start_entries() -> None:
    # spans near 2**31 make numpy's bounded integers reject words often; a span of 1 takes no
    # word; spans of 2**32 or more are drawn by numpy itself
    for rows in ([2**31 + 5, 2**31 + 2**30, 3 * 2**30], [16, 2**31, 40, 16], [2**32 + 15, 300, 2**40], [16, 16]):
        for mode in ["with_replacement", "exhaustive"]:
            new, old = both(rows, 16, batch_size=9, n_active=2, rate=4, mode=mode, seed=3, epoch_batches=4)
            same_blocks(new, old, 40, f"{rows} {mode}")


@pytest.mark.parametrize("mode", ["with_replacement", "single_active", "exhaustive", "sequential"])
def test_resume_from_states_of_either_version(mode: str) -> None:
    kw = dict(batch_size=5, n_active=3, rate=4, mode=mode, seed=17, epoch_batches=8, weights=WEIGHTS["skewed"])
    if mode == "exhaustive":
        kw.pop("epoch_batches")
    new, old = both(BIG_ROWS, 16, **kw)
    states = []
    for _ in range(70):
        blk = old.next_block()
        if blk is not None:
            states.append(json.loads(json.dumps(blk.state_after)))
    for i in [0, 1, 2, 7, 13, 30, 31, len(states) - 1]:  # mid-epoch, epoch ends, mid-look-ahead
        a, b = both(BIG_ROWS, 16, **{**kw, "seed": None})
        a.load_state_dict(states[i])
        b.load_state_dict(states[i])
        same_blocks(a, b, 25, f"from reference state {i}")
        # and states from the current plan, taken in the middle of what it planned ahead
        c, d = both(BIG_ROWS, 16, **{**kw, "seed": None})
        c.load_state_dict(a.state_dict())
        d.load_state_dict(a.state_dict())
        same_blocks(c, d, 10, f"from current state {i}")
        assert c.state_dict() == d.state_dict()


@pytest.mark.parametrize("mode", ["with_replacement", "single_active", "exhaustive"])
def test_copies_pickles_and_reloads_in_the_middle_of_a_look_ahead(mode: str) -> None:
    kw = dict(batch_size=6, n_active=4, rate=3, seed=9, mode=mode, weights=WEIGHTS["skewed"])
    if mode != "exhaustive":
        kw["epoch_batches"] = 200
    new, old = both(BIG_ROWS, 16, **kw)
    same_blocks(new, old, 37, "warm up")  # planning ahead in batches of 1, 2, 4, 8, 16, 32: mid-batch now
    cp, pk = new.copy(), pickle.loads(pickle.dumps(new))
    old2, old3 = copy.deepcopy(old), copy.deepcopy(old)
    same_blocks(new, old, 20, "original")
    same_blocks(cp, old2, 20, "copy")
    same_blocks(pk, old3, 20, "pickle")
    state = new.state_dict()
    same_blocks(new, old, 3, "before reload")
    new.load_state_dict(state)  # back: forgets what it had planned ahead
    old.load_state_dict(state)
    same_blocks(new, old, 20, "after reload")
    assert [b.index for b in new.blocks(5)] == [b.index for b in old.blocks(5)]


def test_block_states_are_independent_of_the_plan() -> None:
    p = WindowPlan(BIG_ROWS, 16, batch_size=4, n_active=3, rate=2, seed=1)
    q = WindowPlan(BIG_ROWS, 16, batch_size=4, n_active=3, rate=2, seed=1)
    for _ in range(10):
        blk = p.next_block()
        assert blk is not None
        blk.state_after["slots"][0] = -7  # a consumer messing with what it got
        blk.state_after["quota"].append(3)
        q.next_block()
        assert p.state_dict() == q.state_dict()


# ---------------------------------------------------------------------- numpy's draws, replayed
def fresh(seed: int = 4, counter: tuple[int, int, int] = (3, 1, 1)) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(key=seed, counter=[0, *counter]))


def draws(count: int = 8, seed: int = 4, counter: tuple[int, int, int] = (3, 1, 1)) -> Draws:
    gen = fresh(seed, counter)
    return Draws(gen, gen.bit_generator.random_raw(count), 0, list(counter), seed)


def test_draws_give_what_numpy_gives() -> None:
    cases = [(15, 0.96875), (15, 0.03), (0, 0.5), (7, 0.0), (12, 1.0), (40, 0.5), (1000, 0.01), (100, 0.6),
             (3, 0.999), (31, 0.9677419354838710), (200, 0.2), (2, 0.5)]
    for seed in range(20):
        ref, d = fresh(seed), draws(8, seed)  # only 8 outputs drawn in advance: the rest must follow
        for n, p in cases * 3:
            assert d.binomial(n, p) == ref.binomial(n, p), (seed, n, p)
            assert d.random() == ref.random()
        assert d.next_raw() == int(ref.bit_generator.random_raw())
        assert d.random_array(5).tolist() == ref.random(5).tolist()
        assert d.words(3).tolist() == ref.bit_generator.random_raw(3).tolist()
        assert d.poisson(15.0) == ref.poisson(15.0)  # numpy draws from here on
        assert d.binomial(15, 0.96875) == ref.binomial(15, 0.96875)
        assert d.random() == ref.random() and d.poisson(3.0) == ref.poisson(3.0)
        assert d.words(5).tolist() == ref.bit_generator.random_raw(5).tolist()


@pytest.mark.parametrize("used", range(13))
def test_draws_hand_over_to_numpy_at_any_point(used: int) -> None:
    ref, d = fresh(), draws(12)
    ref.bit_generator.random_raw(used)
    d.words(used)
    d.to_generator()
    assert d.raw is None
    assert d.gen.random(6).tolist() == ref.random(6).tolist()
    assert d.gen.integers(0, [7, 2**31 + 1, 5]).tolist() == ref.integers(0, [7, 2**31 + 1, 5]).tolist()


def test_uniform_starts_give_what_numpy_integers_gives() -> None:
    rng = np.random.default_rng(0)
    span_sets = [
        rng.integers(2, 30000, 32),
        rng.integers(2**31, 2**32 - 1, 9),  # rejections are frequent
        np.array([1, 2, 1, 3, 2**31 + 1, 1]),  # a span of 1 takes no word
        np.array([5, 2**32, 7, 2**40]),  # numpy's own path
        np.array([2**32 - 1, 2**32 - 2, 2]),
        np.zeros(0, dtype=np.int64),  # a block without windows
    ]
    for trial in range(40):
        blocks = [span_sets[(trial + i) % len(span_sets)][: 1 + (trial * 7 + i) % 33] for i in range(3)]
        spans = np.concatenate(blocks).astype(np.uint64)
        bound = int(spans.max()) if len(spans) and spans.min() >= 2 and spans.max() < 2**32 else None
        gens = [fresh(trial, (i, 2, 1)) for i in range(3)]
        expected = [g.integers(0, b.astype(np.int64)).tolist() for g, b in zip(gens, blocks)]
        ds = [draws(4, trial, (i, 2, 1)) for i in range(3)]
        got = uniform_starts(ds, [len(b) for b in blocks], spans, bound)
        assert got.dtype == np.int64
        assert got.tolist() == list(itertools.chain.from_iterable(expected)), trial
