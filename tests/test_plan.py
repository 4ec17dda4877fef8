"""The window plan: pure, no I/O."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from zarrmux.exceptions import PescadorError
from zarrmux.plan import WindowPlan

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
        quotas.extend(plan._slot_quota)
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
        live = plan._slot_pos
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
