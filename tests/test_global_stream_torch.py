"""The global stream through real torch DataLoaders: ranks x workers, and elastic resume.

The whole R x W matrix (R in 1..4 ranks, W in 0..3 workers) is checked
without DataLoader in ``tests/test_global_stream.py`` (each reader's share,
taken round robin as a DataLoader in order takes them); here real
DataLoaders with worker processes cover the corners of the matrix and the
resume from (R=2, W=2) onto (R=3, W=3) and (R=1, W=0).
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
import torch
from resume_harness import write_small_corpus

from zarrmux.sampler import WindowSampler
from zarrmux.torch import WindowDataset, WindowLoader

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")

N = 16
ROWS = [300, 517, 64, 1000, 250, 20, 777, 401, 90, 60]
OPTS: dict[str, Any] = dict(batch_size=4, n_active=3, rate=4, seed=3, epoch_batches=10)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Any]]:
    path = str(tmp_path_factory.mktemp("gst") / "c.zarr")
    write_small_corpus(path, rows=ROWS, features=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with WindowSampler(path, N, epochs=2, prefetch=0, **OPTS) as s:
            whole = [_snap(b) for b in s]
    assert len(whole) == 20
    return path, whole


def _snap(batch: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        (k, (v.numpy() if isinstance(v, torch.Tensor) else v).tobytes()) for k, v in sorted(batch.items())
    )


def _loader(path: str, r: int, R: int, W: int) -> WindowLoader:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ds = WindowDataset(path, N, rank=r, world_size=R, **OPTS)
    return WindowLoader(ds, num_workers=W, timeout=120 if W else 0)


def _take(loader: Any, limit: int | None = None) -> list[Any]:
    out = []
    for b in loader:
        out.append(_snap(b))
        if limit is not None and len(out) == limit:
            break
    return out


@pytest.mark.parametrize(("R", "W"), [(1, 3), (2, 2), (4, 1)])
def test_dataloader_workers_yield_the_ranks_slice(setup: Any, R: int, W: int) -> None:
    path, whole = setup
    for r in range(R):
        loader = _loader(path, r, R, W)
        assert len(loader) == -(-10 // R)
        got = _take(loader)
        assert got == [whole[(r + k * R) % 10] for k in range(len(got))] and len(got) == -(-10 // R)
        assert loader.state_dict()["epoch"] == 1 and loader.state_dict()["position"] == 0


def test_state_from_two_ranks_two_workers_resumes_on_three_and_three_and_on_one_and_none(setup: Any) -> None:
    path, whole = setup
    states = []
    for r in range(2):  # (R=2, W=2): two batches each, then a checkpoint
        loader = _loader(path, r, 2, 2)
        assert _take(loader, 2) == [whole[r], whole[r + 2]]
        states.append(json.loads(json.dumps(loader.state_dict())))
    assert states[0]["plan"] == states[1]["plan"]
    assert (states[0]["epoch"], states[0]["position"]) == (0, 4)
    # (R=3, W=3): rank r continues with global batches 4 + r, 7 + r, then the next epoch
    for r in range(3):
        loader = _loader(path, r, 3, 3)
        loader.load_state_dict(states[r % 2])
        assert len(loader) == 4  # a whole epoch's; the rest of this one is 2
        assert _take(loader) == [whole[4 + r], whole[7 + r]]
        assert _take(loader) == [whole[10 + (r + 3 * k) % 10] for k in range(4)]
    # (R=1, W=0): the rest of the epoch in order, then the next epoch
    loader = _loader(path, 0, 1, 0)
    loader.load_state_dict(states[1])
    assert _take(loader) == whole[4:10]
    assert _take(loader) == whole[10:20]


def test_map_style_epoch_view_under_a_dataloader(setup: Any) -> None:
    path, whole = setup
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ds = WindowDataset(path, N, rank=1, world_size=2, **OPTS)
    view = ds.epoch_view(1)
    assert len(view) == 5
    got = _take(torch.utils.data.DataLoader(view, batch_size=None, num_workers=2, timeout=120))
    assert got == [whole[10 + 1 + 2 * k] for k in range(5)]
    assert _snap(view[3]) == whole[17]
