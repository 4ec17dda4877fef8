"""zarrmux.torch on a real torch (CPU build): DataLoader with 0 and 2 workers, the global stream, resume, fork safety, DDP.

The corpus has a key ``I`` holding ``entry * 100_000 + row``, so every window
names its entry and start: ``I[b, 0]``.  DataLoader worker start-up costs
about half a second, so the multi-worker tests are few and each checks a lot.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

import zarrmux
from zarrmux.exceptions import PescadorError
from zarrmux.sampler import WindowSampler
from zarrmux.testing import write_corpus
from zarrmux.torch import WindowDataset, WindowLoader

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")

N = 8
ROWS = (300, 517, 64, 1000, 250, 120, 777, 401, 333, 222, 5)  # the last entry is shorter than N
OPTS: dict[str, Any] = dict(batch_size=6, n_active=2, rate=4, seed=7)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, dict[str, np.ndarray]]]:
    path = str(tmp_path_factory.mktemp("torch") / "c.zarr")
    rng = np.random.default_rng(0)
    entries = {
        f"e{i}": {
            "X": rng.standard_normal((r, 3)).astype(np.float32),
            "I": i * 100_000 + np.arange(r, dtype=np.int64),
        }
        for i, r in enumerate(ROWS)
    }
    write_corpus(path, entries, chunk_rows=16, shard_rows=128)
    return path, entries


def _ds(path: str, **kw: Any) -> WindowDataset:
    args = dict(OPTS)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the 5-row entry is skipped
        return WindowDataset(path, N, **args)


def _windows(batch: dict[str, torch.Tensor]) -> list[tuple[int, int]]:
    first = batch["I"][:, 0].tolist()
    return [(v // 100_000, v % 100_000) for v in first]


def _snap(batch: dict[str, torch.Tensor]) -> tuple[Any, ...]:
    return tuple((k, str(v.dtype), tuple(v.shape), v.numpy().tobytes()) for k, v in sorted(batch.items()))


def _check_content(batch: dict[str, torch.Tensor], entries: dict[str, dict[str, np.ndarray]]) -> None:
    assert isinstance(batch["X"], torch.Tensor) and batch["X"].dtype == torch.float32
    assert batch["I"].dtype == torch.int64 and batch["X"].shape[1:] == (N, 3)
    for b, (e, st) in enumerate(_windows(batch)):
        src = entries[f"e{e}"]
        np.testing.assert_array_equal(batch["I"][b].numpy(), src["I"][st : st + N])
        np.testing.assert_array_equal(batch["X"][b].numpy(), src["X"][st : st + N])


def _run(loader: Any, limit: int | None = None) -> list[dict[str, torch.Tensor]]:
    out = []
    for batch in loader:
        out.append(batch)
        if limit is not None and len(out) >= limit:
            break
    return out


# ---------------------------------------------------------------------------- import, errors


def test_import_zarrmux_does_not_import_torch() -> None:
    code = (
        "import sys, zarrmux\n"
        "zarrmux.WindowSampler, zarrmux.open_corpus, zarrmux.window_streamer\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "import zarrmux.torch\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_errors(corpus: Any) -> None:
    path, _ = corpus
    ds = _ds(path)
    with pytest.raises(ValueError, match="batch_size=None"):
        WindowLoader(ds, batch_size=4)
    with pytest.raises(ValueError, match="persistent_workers"):
        WindowLoader(ds, num_workers=1, persistent_workers=True)
    with pytest.raises(TypeError, match="batch_size"):
        WindowDataset(path, N, n_active=2)
    with pytest.raises(PescadorError, match="n_active=0"):
        _ds(path, n_active=0)
    with pytest.raises(PescadorError, match="rank=2"):
        _ds(path, rank=2, world_size=2)
    with pytest.raises(PescadorError, match="epochs=0"):
        _ds(path, epochs=0)
    state = ds.state_dict()
    with pytest.raises(PescadorError, match="seed=7"):
        _ds(path, seed=8).load_state_dict(state)
    # another corpus (or other parameters) is refused, naming the cause
    with pytest.raises(PescadorError, match="another configuration or corpus"):
        _ds(path, batch_size=5).load_state_dict(state)
    with pytest.raises(PescadorError, match="not a WindowSampler or WindowDataset state"):
        ds.load_state_dict({"plan": {}})
    # a state of any rank / world size loads (elastic); so does a WindowSampler's
    _ds(path, rank=1, world_size=3).load_state_dict(state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with WindowSampler(path, N, **OPTS) as s:
            _ds(path, rank=1, world_size=2).load_state_dict(s.state_dict())


# ---------------------------------------------------------------------------- num_workers=0


def test_in_process_equals_window_sampler_and_ground_truth(corpus: Any) -> None:
    path, entries = corpus
    ds = _ds(path, epoch_batches=5)
    got = _run(DataLoader(ds, batch_size=None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with WindowSampler(path, N, epoch_batches=5, **OPTS) as s:
            want = list(s)
    assert len(got) == len(want) == 5
    for g, w in zip(got, want):
        _check_content(g, entries)
        assert g.keys() == w.keys()
        for k in w:
            np.testing.assert_array_equal(g[k].numpy(), w[k])
    assert ds.epoch == 1  # a full pass leaves the dataset at the next epoch


@pytest.mark.parametrize("mode", ["with_replacement", "exhaustive"])
def test_resume_in_process(corpus: Any, mode: str) -> None:
    path, _ = corpus
    kw: dict[str, Any] = dict(mode=mode, epoch_batches=7 if mode == "with_replacement" else None)
    ref = _ds(path, **kw)
    first, second = [[_snap(b) for b in _run(DataLoader(ref, batch_size=None))] for _ in range(2)]
    assert first != second and len(first) >= 5
    a = _ds(path, **kw)
    head = [_snap(b) for b in _run(DataLoader(a, batch_size=None), limit=3)]
    state = json.loads(json.dumps(a.state_dict()))
    b = _ds(path, **kw)
    b.load_state_dict(state)
    rest = [_snap(x) for x in _run(DataLoader(b, batch_size=None))]
    nxt = [_snap(x) for x in _run(DataLoader(b, batch_size=None))]
    assert head + rest == first
    assert nxt == second


# ---------------------------------------------------------------------------- workers


def test_two_workers_sequential_cover_every_window_once(corpus: Any) -> None:
    """'sequential' over 2 workers: every window position exactly once, in corpus order."""
    path, entries = corpus
    ds = _ds(path, mode="sequential", hop=N, batch_size=5)
    loader = WindowLoader(ds, num_workers=2)
    want = [(e, st) for e, r in enumerate(ROWS) if r >= N for st in range(0, r - N + 1, N)]
    assert len(loader) == len(ds) == -(-len(want) // 5)
    batches = _run(loader)
    seen = [w for b in batches for w in _windows(b)]
    assert seen == want  # the workers' batches, interleaved, are the one stream in order
    for b in batches[:3]:
        _check_content(b, entries)
    assert ds.epoch == 1


def test_two_workers_equal_the_single_process_stream(corpus: Any) -> None:
    path, entries = corpus
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with WindowSampler(path, N, epoch_batches=9, **OPTS) as s:
            whole = list(s)
    runs = [_run(WindowLoader(_ds(path, epoch_batches=9), num_workers=2)) for _ in range(2)]
    assert [_snap(b) for b in runs[0]] == [_snap(b) for b in runs[1]]  # reproducible from the seed
    assert len(runs[0]) == 9
    for g, w in zip(runs[0], whole):
        np.testing.assert_array_equal(g["I"].numpy(), w["I"])
        _check_content(g, entries)
    # rank 1 of 2 with 2 workers: global batches 1, 3, 5, 7 and, padding the last round, 0
    r1 = WindowLoader(_ds(path, epoch_batches=9, rank=1, world_size=2), num_workers=2)
    assert len(r1) == 5
    got = _run(r1)
    for g, i in zip(got, [1, 3, 5, 7, 0]):
        np.testing.assert_array_equal(g["I"].numpy(), whole[i]["I"])


def test_fork_safety_after_parent_reads(corpus: Any) -> None:
    """The parent opens the corpus and reads (zarr loop, fd cache, prefetch threads), then forks 2 workers."""
    path, entries = corpus
    assert multiprocessing.get_start_method() == "fork"
    parent = zarrmux.open_corpus(path)
    got = parent.read_windows([0, 3], [5, 900], N)
    np.testing.assert_array_equal(got["I"][1], entries["e3"]["I"][900 : 900 + N])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with WindowSampler(parent, N, prefetch=2, epoch_batches=3, **OPTS) as s:
            assert len(list(s)) == 3
    ds = _ds(path, epoch_batches=6)
    assert not any(hasattr(v, "read_windows") for v in vars(ds).values())  # no corpus handle to inherit
    batches = _run(DataLoader(ds, batch_size=None, num_workers=2, timeout=60))
    assert len(batches) == 6
    for b in batches:
        _check_content(b, entries)
    parent.read_windows([1], [0], N)  # the parent still reads after its children
    parent.close()


@pytest.mark.parametrize(
    ("mode", "num_workers", "midpoint"),
    [("with_replacement", 2, 4), ("exhaustive", 2, 7)],
)
def test_resume_two_workers(corpus: Any, mode: str, num_workers: int, midpoint: int) -> None:
    """Save mid-epoch (through JSON), restore into a new dataset and loader, compare with an uninterrupted run."""
    path, _ = corpus
    kw: dict[str, Any] = dict(mode=mode, epoch_batches=7 if mode == "with_replacement" else None)
    ref = _ds(path, **kw)
    loader = WindowLoader(ref, num_workers=num_workers)
    first = [_snap(b) for b in _run(loader)]
    second = [_snap(b) for b in _run(loader)]
    assert first != second and len(first) > midpoint
    a = _ds(path, **kw)
    head = [_snap(b) for b in _run(WindowLoader(a, num_workers=num_workers), limit=midpoint)]
    state = json.loads(json.dumps(a.state_dict()))
    assert state["position"] == midpoint and state["epoch"] == 0
    for other in (0, 3) if mode == "with_replacement" else (1,):  # any number of workers continues it
        b = _ds(path, **kw)
        b.load_state_dict(state)
        loader_b = WindowLoader(b, num_workers=other)
        rest = [_snap(x) for x in _run(loader_b)]
        nxt = [_snap(x) for x in _run(loader_b)]
        assert head + rest == first
        assert nxt == second


def test_max_iter_split_and_set_epoch(corpus: Any) -> None:
    path, _ = corpus
    ds = _ds(path, max_iter=5, epoch_batches=4)
    loader = WindowLoader(ds, num_workers=2)
    p1, p2 = _run(loader), _run(loader)
    assert len(p1) == len(p2) == 5  # max_iter per rank, split 3 + 2 over the workers
    ds1 = _ds(path, max_iter=10, epoch_batches=4)
    assert [_snap(b) for b in p1 + p2] == [_snap(b) for b in _run(DataLoader(ds1, batch_size=None))]
    assert ds.epoch == ds1.epoch == 2 and ds.state_dict()["position"] == ds1.state_dict()["position"] == 2
    # between epochs the number of readers may change: epoch 1 from the start, in process
    ds0 = _ds(path, epoch_batches=4)
    ds0.set_epoch(1)
    assert ds0.epoch == 1
    e1 = _run(DataLoader(ds0, batch_size=None))
    ds2 = _ds(path, epoch_batches=4)
    _run(DataLoader(ds2, batch_size=None))  # epoch 0 in process
    assert [_snap(b) for b in _run(DataLoader(ds2, batch_size=None))] == [_snap(b) for b in e1]


# ---------------------------------------------------------------------------- torch.distributed


def test_rank_and_world_size_from_torch_distributed(corpus: Any, tmp_path: Path) -> None:
    path, _ = corpus
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert dist.is_initialized()
        ds = _ds(path, epoch_batches=4)
        assert (ds.rank, ds.world_size) == (0, 1)
        # emulate rank 1 of 2 by explicit values (they win over torch.distributed's)
        r1 = _ds(path, epoch_batches=4, rank=1, world_size=2)
        r0 = _ds(path, epoch_batches=4, rank=0, world_size=2)
        assert (r1.rank, r1.world_size) == (1, 2)
        whole = [_snap(b) for b in _run(DataLoader(ds, batch_size=None))]
        b0 = [_snap(b) for b in _run(DataLoader(r0, batch_size=None))]
        b1 = [_snap(b) for b in _run(DataLoader(r1, batch_size=None))]
        assert b0 == whole[0::2] and b1 == whole[1::2]  # the ranks split the global stream
        # every rank's checkpoint is the same position, and loads on the other rank
        assert r0.state_dict()["plan"] == r1.state_dict()["plan"] == ds.state_dict()["plan"]
        r1.load_state_dict(r0.state_dict())
    finally:
        dist.destroy_process_group()
    assert (_ds(path).rank, _ds(path).world_size) == (0, 1)


# ---------------------------------------------------------------------------- README's DDP recipe (issue 11, point 8)


def test_checkpoint_on_an_epochs_last_batch_resumes_at_the_next_epoch(corpus: Any) -> None:
    """The README's loop: ``for epoch in range(loader.state_dict()["epoch"], epochs)``.  Saved on an
    epoch's last batch, the state says the next epoch, so the resumed run replays nothing."""
    path, _ = corpus
    epochs = 3

    def run(loader: WindowLoader, save_after: int | None = None) -> tuple[list[Any], Any]:
        seen, saved = [], None
        for _epoch in range(loader.state_dict()["epoch"], epochs):
            for batch in loader:
                seen.append(_snap(batch))
                if len(seen) == save_after:
                    saved = json.loads(json.dumps(loader.state_dict()))
        return seen, saved

    full, saved = run(WindowLoader(_ds(path, epoch_batches=4), num_workers=2), save_after=4)
    assert len(full) == 12 and saved["epoch"] == 1 and saved["position"] == 0
    resumed = WindowLoader(_ds(path, epoch_batches=4), num_workers=0)
    resumed.load_state_dict(saved)
    rest, _ = run(resumed)
    assert rest == full[4:]  # 8 batches were due, not 12
