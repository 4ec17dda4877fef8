"""The one global batch stream, ranks and readers taking their batches of it, positions, elastic resume.

No torch here: the position logic is tested on plans alone, then through
``WindowSampler`` on a small real corpus (``tests/test_global_stream_torch.py``
runs real DataLoaders).
"""

from __future__ import annotations

import itertools
import json
import pickle
import warnings
from typing import Any

import pytest
from resume_harness import collect, write_small_corpus

import zarrmux
from zarrmux.exceptions import PescadorError
from zarrmux.global_stream import GlobalStream, RankStream, rank_batches
from zarrmux.plan import WindowPlan
from zarrmux.sampler import WindowSampler

ROWS = [300, 517, 64, 1000, 250, 20, 777, 401, 90, 60]
N = 16
CONFIGS: list[dict[str, Any]] = [
    dict(mode="with_replacement", n_active=3, rate=4, epoch_batches=11),
    dict(mode="single_active", n_active=2, rate=3, dist="constant", epoch_batches=10),
    dict(mode="exhaustive", n_active=3, rate=4, dist="poisson"),
    dict(mode="exhaustive", n_active=2, rate=5, drop_last=True),
    dict(mode="sequential", hop=40),
    dict(mode="sequential", hop=30, drop_last=True),
]
IDS = ["replacement", "single", "exhaustive", "exhaustive-drop", "sequential", "sequential-drop"]


def _plan(cfg: dict[str, Any], seed: int = 5) -> WindowPlan:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the 20-row entry is short
        return WindowPlan(ROWS, N, batch_size=7, seed=seed, **cfg)


def _key(blk: Any) -> tuple[Any, ...]:
    return (blk.epoch, blk.index, blk.entries.tobytes(), blk.starts.tobytes())


def _epochs(cfg: dict[str, Any], epochs: int = 2) -> list[list[tuple[Any, ...]]]:
    """The single-process stream, epoch by epoch, as the plan alone gives it."""
    plan = _plan(cfg)
    return [[_key(b) for b in plan.blocks()] for _ in range(epochs)]


def _round_robin(per_reader: list[list[Any]]) -> list[Any]:
    """What a DataLoader in order yields from its readers: one from each in turn, skipping exhausted ones."""
    out: list[Any] = []
    its = [iter(r) for r in per_reader]
    live = list(range(len(its)))
    while live:
        for w in list(live):
            try:
                out.append(next(its[w]))
            except StopIteration:
                live.remove(w)
    return out


# ---------------------------------------------------------------------------- the global stream


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_global_stream_is_the_single_process_plan_in_order_and_by_index(cfg: dict[str, Any]) -> None:
    want = _epochs(cfg)
    gs = GlobalStream(_plan(cfg), every=4)
    for e, blocks in enumerate(want):
        got = [_key(b) for b, _ in gs.blocks_from(e, 0)]
        assert got == blocks
        assert gs.epoch_length(e) == len(blocks)
        # by index, in any order, from a fresh stream too
        fresh = GlobalStream(_plan(cfg), every=4)
        for g in [len(blocks) - 1, 0, 5 % len(blocks), 3 % len(blocks), len(blocks) // 2]:
            assert _key(fresh.block(e, g)) == blocks[g]
            assert _key(gs.block(e, g)) == blocks[g]
        with pytest.raises(IndexError):
            gs.block(e, len(blocks))
        # starting mid-epoch
        assert [_key(b) for b, _ in gs.blocks_from(e, 2)] == blocks[2:]
        # the state before batch g resumes a plain plan at g
        plan = _plan(cfg)
        plan.load_state_dict(json.loads(json.dumps(gs.state_at(e, 3))))
        assert [_key(b) for b in plan.blocks()] == blocks[3:]


def test_single_process_stream_is_todays() -> None:
    """world_size=1 through the sampler's GlobalStream: the same blocks as WindowPlan (so plan_reference holds)."""
    plan = _plan(CONFIGS[0])
    gs = GlobalStream(_plan(CONFIGS[0]))
    steps = RankStream(gs, 0, 1).steps(0, 0, epochs=3)
    assert [_key(s.block) for s in steps] == [_key(b) for b in plan.blocks(33)]


# ---------------------------------------------------------------------------- ranks and readers


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_every_rank_and_reader_split_takes_its_slice(cfg: dict[str, Any]) -> None:
    """For R in 1..4 ranks and W in 1..4 readers: rank r's sequence is global batches g = r (mod R),
    padded or cut to equal lengths; its readers' batches, taken round robin, are that sequence."""
    want = _epochs(cfg, 1)[0]
    G = len(want)
    drop = bool(cfg.get("drop_last"))
    gs = GlobalStream(_plan(cfg), every=4)
    for R in range(1, 5):
        counts = set()
        for r in range(R):
            ranks = RankStream(gs, r, R)
            seq = [_key(s.block) for s in ranks.steps(0, 0)]
            count = G // R if drop else -(-G // R)
            expected = [want[(r + k * R) % G] for k in range(count)]
            assert seq == expected, (R, r)
            assert ranks.remaining(0, 0) == len(seq)
            counts.add(len(seq))
            for W in range(1, 5):
                per_reader = [[_key(s.block) for s in ranks.steps(0, 0, worker=w, num_workers=W)] for w in range(W)]
                assert _round_robin(per_reader) == seq, (R, r, W)
        assert len(counts) == 1  # every rank yields as many batches
        if not drop:  # the ranks together see every batch of the epoch
            assert {want[(r + k * R) % G] for r in range(R) for k in range(-(-G // R))} == set(want)


def test_positions_advance_like_the_steps() -> None:
    """RankStream.advance (arithmetic) lands where the steps' states say, across epochs and resumes."""
    for cfg in (CONFIGS[0], CONFIGS[2], CONFIGS[3]):
        gs = GlobalStream(_plan(cfg))
        for R, r, start in itertools.product((1, 2, 3), (0, 2), (0, 3)):
            if r >= R:
                continue
            ranks = RankStream(gs, r, R)
            for k, step in enumerate(ranks.steps(0, start, max_steps=12), 1):
                e, p = ranks.advance(0, start, k)
                assert (step.after["epoch"], step.after["batch"]) == (e, p)
                assert step.after == gs.state_at(e, p)


def test_rank_batches_and_errors() -> None:
    assert rank_batches(10, 0, 3, False) == 4 and rank_batches(10, 0, 3, True) == 3
    assert rank_batches(10, 6, 4, False) == 1 and rank_batches(10, 10, 4, False) == 0
    with pytest.raises(PescadorError, match="world_size=4"):
        RankStream(GlobalStream(_plan(dict(mode="with_replacement", n_active=2, epoch_batches=3, drop_last=True))), 0, 4)
    with pytest.raises(PescadorError, match="rank=3"):
        RankStream(GlobalStream(_plan(CONFIGS[0])), 3, 3)
    with pytest.raises(PescadorError, match="world_size=1"):
        GlobalStream(_plan(dict(CONFIGS[0], rank=0, world_size=2)))


# ---------------------------------------------------------------------------- through WindowSampler, real reads


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> str:
    p = str(tmp_path_factory.mktemp("global") / "c.zarr")
    write_small_corpus(p, rows=ROWS, features=4)
    return p


OPTS: dict[str, Any] = dict(batch_size=6, n_active=3, rate=4, seed=11, epoch_batches=10)


def _sampler(path: Any, **kw: Any) -> WindowSampler:
    args = dict(OPTS, prefetch=0)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return WindowSampler(path, N, **args)


def _reader(path: Any, r: int, R: int, w: int, W: int, **kw: Any) -> WindowSampler:
    s = _sampler(path, rank=r, world_size=R, **kw)
    s.split_for_worker(w, W)  # what zarrmux.torch does in DataLoader worker w of W
    return s


def test_sampler_rank_and_worker_matrix_reads_the_global_slices(path: str) -> None:
    """R in 1..4, W in 0..3 (0: no worker split): what each reader reads, taken round robin, is the
    single-process stream's batches g = r (mod R); two epochs, the second after the first's state."""
    with _sampler(path, max_iter=20) as one:
        whole = collect(one)  # epochs 0 and 1: 10 global batches each
    corpus = zarrmux.open_corpus(path)  # one open corpus for all the readers (a test shortcut)
    for R, W in itertools.product(range(1, 5), range(0, 4)):
        for r in range(R):
            per_reader = []
            for w in range(max(W, 1)):
                with _reader(corpus, r, R, w, max(W, 1), epochs=2) as s:
                    per_reader.append(collect(s))
            got = _round_robin(per_reader)
            count = -(-10 // R)
            want = [whole[e * 10 + (r + k * R) % 10] for e in range(2) for k in range(count)]
            assert got == want, (R, W, r)
    corpus.close()


def test_sampler_state_resumes_on_any_world_size(path: str) -> None:
    """k batches on each of 2 ranks -> position 2k; 3 ranks and 1 rank continue exactly from there."""
    with _sampler(path, epochs=2) as one:
        whole = collect(one)
    states = []
    for r in range(2):
        s = _sampler(path, rank=r, world_size=2, prefetch=2)
        it = iter(s)
        assert collect(it, 2) == whole[r : r + 4 : 2]
        states.append(json.loads(json.dumps(s.state_dict())))
        s.close()
    assert states[0]["plan"] == states[1]["plan"] and states[0]["position"] == 4
    assert len(pickle.dumps(states[0])) < 1000 and len(json.dumps(states[0])) < 1000
    for R in (3, 1):
        for r in range(R):
            with _sampler(path, rank=r, world_size=R, seed=None) as s:
                s.load_state_dict(states[r % 2])
                count = -(-(10 - 4) // R)
                assert len(s) == -(-10 // R)  # a whole epoch's batches
                rest = collect(s)
                assert rest == [whole[4 + (r + k * R) % 6] for k in range(count)]
                assert s.epoch == 1 and s.position == 0
                assert collect(s) == [whole[10 + (r + k * R) % 10] for k in range(-(-10 // R))]


def test_state_saved_on_an_epochs_last_batch_says_the_next_epoch(path: str) -> None:
    with _sampler(path, rank=1, world_size=3) as s:
        assert len(s) == 4
        batches = collect(s)
        state = s.state_dict()
    assert len(batches) == 4 and state["epoch"] == 1 and state["position"] == 0
    with _sampler(path) as one:
        collect(one)
        assert one.state_dict()["plan"] == state["plan"]


def test_endless_and_max_iter(path: str) -> None:
    with _sampler(path, epochs=None) as s:
        with pytest.raises(TypeError, match="endless"):
            len(s)
        head = collect(s, 25)  # crosses two epoch boundaries and goes on
    with _sampler(path, max_iter=25) as m:
        assert len(m) == 25
        assert collect(m) == head
    with _sampler(path, epochs=3) as e:
        assert len(e) == 30
        assert collect(e)[:25] == head


def test_epoch_view_random_access(path: str) -> None:
    with _sampler(path, epochs=2) as one:
        whole = collect(one)
    with _sampler(path, rank=1, world_size=3) as s:
        view = s.epoch_view(1)
        assert len(view) == 4
        for i in (3, 0, 2, -1):
            assert collect([view[i]]) == [whole[10 + (1 + (i % 4) * 3) % 10]]
        with pytest.raises(IndexError):
            view[4]
        assert s.epoch == 0 and s.position == 0  # the view does not move the sampler


def test_other_corpus_or_parameters_refused(path: str, tmp_path: Any) -> None:
    with _sampler(path) as s:
        state = s.state_dict()
    with pytest.raises(PescadorError, match="another configuration or corpus"):
        _sampler(path, batch_size=5).load_state_dict(state)
    other = str(tmp_path / "o.zarr")
    write_small_corpus(other, rows=[300, 400], features=4)
    with pytest.raises(PescadorError, match="another configuration or corpus"):
        _sampler(other).load_state_dict(state)
    bad = dict(state, position=3)
    with pytest.raises(PescadorError, match="position=3"):
        _sampler(path).load_state_dict(bad)
    tampered = json.loads(json.dumps(state))
    tampered["plan"]["slots"][0] = 99
    with pytest.raises(PescadorError, match="malformed plan state"):
        _sampler(path).load_state_dict(tampered)
