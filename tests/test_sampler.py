"""WindowSampler on real corpora on disk: contents, determinism, resume, ranks, errors, threads."""

from __future__ import annotations

import gc
import json
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from resume_harness import check_resume, collect, write_small_corpus

import zarrmux
from zarrmux.exceptions import CorpusError, DataError, PescadorError
from zarrmux.sampler import WindowSampler

N = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, dict[str, np.ndarray]]]:
    path = str(tmp_path_factory.mktemp("sampler") / "c.zarr")
    entries = write_small_corpus(path)
    return path, entries


def _sampler(path: str, **kw: Any) -> WindowSampler:
    args: dict[str, Any] = dict(batch_size=8, n_active=3, rate=4, seed=123, epoch_batches=6)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the 20-row entry is short for some n
        return WindowSampler(path, N, **args)


def _our_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("zarrmux")}


def test_batches_equal_numpy_ground_truth(data: Any) -> None:
    path, entries = data
    with _sampler(path, prefetch=2) as s:
        names = s.corpus.names
        plan = list(s.windows())
        batches = list(s)
    assert len(batches) == len(plan) == 6
    for batch, (ents, starts) in zip(batches, plan):
        assert batch["X"].shape == (8, N, 8) and batch["X"].dtype == np.float32
        assert batch["Y"].shape == (8, N) and batch["Y"].dtype == np.int64
        for i, (e, st) in enumerate(zip(ents.tolist(), starts.tolist())):
            src = entries[names[e]]
            assert 0 <= st <= len(src["Y"]) - N
            np.testing.assert_array_equal(batch["X"][i], src["X"][st : st + N])
            np.testing.assert_array_equal(batch["Y"][i], src["Y"][st : st + N])


def test_keys_subset(data: Any) -> None:
    path, _ = data
    with _sampler(path, keys=["Y"], prefetch=0) as s:
        b = next(iter(s))
    assert set(b) == {"Y"}


@pytest.mark.parametrize("mode", ["with_replacement", "exhaustive"])
def test_same_batches_whatever_prefetch_threads_cache(data: Any, mode: str) -> None:
    path, _ = data
    runs = []
    for prefetch, threads, cache in [(0, None, None), (1, None, 0), (4, 2, None), (4, 3, 1 << 30), (2, 1, 4096)]:
        corpus = zarrmux.open_corpus(path, cache_bytes=cache)
        with _sampler(corpus, mode=mode, prefetch=prefetch, threads=threads) as s:
            runs.append(collect(s) + collect(s))  # two epochs
    assert all(r == runs[0] for r in runs[1:])
    assert len(runs[0]) >= 6


def test_epochs_differ_and_reproduce(data: Any) -> None:
    path, _ = data
    a, b = _sampler(path), _sampler(path)
    e0, e1 = collect(a), collect(a)
    assert e0 != e1 and collect(b) == e0 and collect(b) == e1
    assert a.epoch == 2
    a.close(), b.close()


def test_max_iter_crosses_epochs(data: Any) -> None:
    path, _ = data
    with _sampler(path, max_iter=9) as s:
        got = collect(s)
    with _sampler(path) as r:
        ref = collect(r) + collect(r)
    assert got == ref[:9]


@pytest.mark.parametrize(
    "kw,mid",
    [
        (dict(prefetch=4), 3),
        (dict(prefetch=0), 0),
        (dict(prefetch=1), 6),  # at the epoch's end
        (dict(prefetch=3, mode="exhaustive", dist="poisson"), 2),
        (dict(prefetch=2, mode="single_active", dist="constant", weights=[1, 2, 1, 3, 1, 1, 2, 0.5]), 4),
        (dict(prefetch=2, mode="sequential", hop=40, batch_size=7), 5),
        (dict(prefetch=4, rank=1, world_size=3, epoch_batches=14), 3),  # 5 batches per rank (one padded)
    ],
)
def test_exact_resume(data: Any, kw: dict[str, Any], mid: int) -> None:
    path, _ = data
    state = check_resume(lambda: _sampler(path, **kw), mid)
    assert len(json.dumps(state)) < 2000


def test_resume_across_prefetch_depths(data: Any) -> None:
    path, _ = data
    s = _sampler(path, prefetch=4)
    it = iter(s)
    head = [next(it) for _ in range(2)]
    state = s.state_dict()  # the sampler has read ahead; the state is what was received
    s.close()
    r = _sampler(path, prefetch=0, seed=None)
    r.load_state_dict(state)
    ref = _sampler(path, prefetch=0)
    assert collect(head) + collect(r) == collect(ref)
    r.close(), ref.close()


def test_state_from_other_seed_or_config_refused(data: Any) -> None:
    path, _ = data
    s = _sampler(path, seed=1)
    with pytest.raises(PescadorError, match="seed"):
        _sampler(path, seed=2).load_state_dict(s.state_dict())
    with pytest.raises(PescadorError, match="configuration"):
        _sampler(path, seed=1, batch_size=9).load_state_dict(s.state_dict())
    with pytest.raises(PescadorError, match="state"):
        s.load_state_dict({"nope": 1})


def test_ranks_take_their_slice_of_the_single_process_stream(data: Any) -> None:
    """Rank r of 3 yields global batches r, r + 3, ... of the one-process stream, read alike."""
    path, _ = data
    with _sampler(path, n_active=2, epoch_batches=9, prefetch=0) as one:
        whole = collect(one)
    assert len(whole) == 9
    for r in range(3):
        with _sampler(path, rank=r, world_size=3, n_active=2, epoch_batches=9, prefetch=2) as s:
            assert len(s) == 3
            assert collect(s) == whole[r::3]
            assert s.state_dict()["epoch"] == 1 and s.state_dict()["position"] == 0


def test_sequential_reads_every_window_in_order(data: Any) -> None:
    path, entries = data
    with _sampler(path, mode="sequential", hop=N, batch_size=10, prefetch=2) as s:
        windows = np.concatenate([b["X"] for b in s])
    want = np.concatenate(
        [e["X"][s : s + N][None] for e in entries.values() if len(e["Y"]) >= N for s in range(0, len(e["Y"]) - N + 1, N)]
    )
    np.testing.assert_array_equal(windows, want)


def test_errors(data: Any, tmp_path: Path) -> None:
    path, _ = data
    for bad in (0, -1):
        with pytest.raises(PescadorError, match=f"n={bad}"):
            WindowSampler(path, bad, batch_size=4, n_active=2)
    with pytest.raises(PescadorError, match="longer than every entry"):
        WindowSampler(path, 1001, batch_size=4, n_active=2)
    with pytest.raises(KeyError, match="'Z'"):
        WindowSampler(path, 4, batch_size=4, n_active=2, keys=["X", "Z"])
    with pytest.raises(CorpusError):
        WindowSampler(str(tmp_path / "missing.zarr"), 4, batch_size=4, n_active=2)
    with pytest.raises(PescadorError, match="prefetch"):
        WindowSampler(path, 4, batch_size=4, n_active=2, prefetch=-1)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        WindowSampler(path, 100, batch_size=4, n_active=2)
    msgs = [str(r.message) for r in rec if "skipped" in str(r.message)]
    assert msgs == ["2 of 8 entries have fewer than n=100 rows and are skipped"]


def test_corrupt_chunk_raises_in_consumer_and_stops_threads(tmp_path: Path) -> None:
    path = tmp_path / "c.zarr"
    write_small_corpus(path, rows=(600, 600))
    shard = sorted(p for p in (path / "X").rglob("*") if p.is_file() and p.name != "zarr.json")[0]
    raw = bytearray(shard.read_bytes())
    raw[100:4000] = bytes(3900)  # zero the start of the first chunks
    shard.write_bytes(bytes(raw))
    before = _our_threads()
    with pytest.raises(DataError, match="key 'X'"):
        with WindowSampler(str(path), 16, batch_size=8, n_active=2, rate=4, seed=0, prefetch=3) as s:
            for _ in s:
                pass
    assert _our_threads() == before


# ---------------------------------------------------------------------- thread cleanup
def _infinite(path: str, **kw: Any) -> WindowSampler:
    return _sampler(path, max_iter=10**9, prefetch=4, threads=2, **kw)


def _ahead(it: Any) -> None:
    """Take batches like a slow consumer until the local sampler reads ahead in threads."""
    before = _our_threads()
    for _ in range(20):
        next(it)
        if _our_threads() - before:
            return
        time.sleep(0.02)  # a training step: the adaptive prefetch starts its threads
    raise AssertionError("the sampler never read ahead for a slow consumer")


def test_threads_stop_when_iteration_ends(data: Any) -> None:
    path, _ = data
    before = _our_threads()
    s = _sampler(path, prefetch=4, threads=3)
    seen_running = False
    for _ in s:
        seen_running = seen_running or len(_our_threads() - before) == 3
        time.sleep(0.005)  # a consumer with work between batches: prefetch runs ahead
    assert seen_running
    assert _our_threads() == before


def test_prefetch_runs_ahead_only_for_a_slow_consumer(data: Any) -> None:
    """Local reads: a consumer that takes batches at once gets them read in its own thread (no hand-off);
    one that works between batches gets them read ahead; the batches are the same."""
    path, _ = data
    ref = [b["X"] for b in _sampler(path, prefetch=0)]
    fast = _sampler(path, prefetch=4, threads=2)
    got_fast = [b["X"] for b in fast]
    assert fast.prefetch_stats is not None and fast.prefetch_stats.batches_ahead == 0
    slow = _sampler(path, prefetch=4, threads=2)
    got_slow = []
    for b in slow:
        got_slow.append(b["X"])
        time.sleep(0.005)
    assert slow.prefetch_stats is not None and slow.prefetch_stats.batches_ahead > len(ref) // 2
    for a, b, c in zip(ref, got_fast, got_slow, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_threads_stop_on_close_generator_close_gc_and_interrupt(data: Any) -> None:
    path, _ = data
    before = _our_threads()
    # close()
    s = _infinite(path)
    it = iter(s)
    _ahead(it)
    assert _our_threads() - before
    s.close()
    assert _our_threads() == before
    # generator.close()
    s = _infinite(path)
    it = iter(s)
    _ahead(it)
    it.close()
    assert _our_threads() == before
    # the generator is garbage-collected
    s = _infinite(path)
    it = iter(s)
    _ahead(it)
    del it
    gc.collect()
    assert _our_threads() == before
    # a new iteration stops the previous one
    s = _infinite(path)
    it1 = iter(s)
    _ahead(it1)
    it2 = iter(s)
    _ahead(it2)
    assert len(_our_threads() - before) == 2
    s.close()
    # KeyboardInterrupt raised in the generator (where the consumer waits for a batch)
    s = _infinite(path)
    it = iter(s)
    _ahead(it)
    with pytest.raises(KeyboardInterrupt):
        it.throw(KeyboardInterrupt)
    assert _our_threads() == before
    # KeyboardInterrupt in the loop body, under the context manager
    with pytest.raises(KeyboardInterrupt):
        with _infinite(path) as s:
            for i, _ in enumerate(s):
                if i == 2:
                    raise KeyboardInterrupt
    assert _our_threads() == before
    # a closed sampler refuses to iterate
    with pytest.raises(PescadorError, match="closed"):
        iter(s)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_drop_last_moves_to_the_next_epoch(data: Any, prefetch: int) -> None:
    """A dropped short batch must not leave the sampler stuck at the end of its epoch."""
    path, _ = data
    with WindowSampler(path, 16, batch_size=7, mode="sequential", drop_last=True, prefetch=prefetch) as s:
        first = [b["X"].shape[0] for b in s]
        assert first and all(n == 7 for n in first) and s.epoch == 1
        second = [b["X"].shape[0] for b in s]
        assert second == first and s.epoch == 2
