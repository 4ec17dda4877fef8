"""The torch loader's statistics (summed over DataLoader workers) and corpus views under torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import zarrmux
from zarrmux.testing import make_npz_archives
from zarrmux.torch import WindowDataset, WindowLoader


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tstats")
    zarrmux.convert(make_npz_archives(d / "a", 6, min_rows=400, max_rows=900, features=8, seed=0, quantize=False), d / "c.zarr")
    return d / "c.zarr"


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_stats_add_up_over_workers(corpus: Path, workers: int) -> None:
    ds = WindowDataset(str(corpus), 8, batch_size=4, n_active=3, seed=0, max_iter=30)
    loader = WindowLoader(ds, num_workers=workers)
    got = [len(b["X"]) for b in loader]
    st = loader.stats()
    assert st.batches == len(got) == 30 and st.windows == sum(got) == 120
    # read by the workers (or in process), summed: the X shards each worker mapped, label chunks decoded
    assert st.bytes_read > 0 and st.read_seconds > 0 and st.chunk_misses >= max(1, workers)
    loader.reset_stats()
    assert loader.stats().batches == 0 and loader.stats().bytes_read == 0
    again = sum(1 for _ in loader)
    assert loader.stats().batches == again == 30


def test_a_corpus_view_keeps_its_entries_under_torch(corpus: Path) -> None:
    with zarrmux.open_corpus(corpus) as c:
        view = c.split({"train": 0.5, "val": 0.5}, seed=0)["val"]
        names = view.names
        rows = {e.name: e["X"][:] for e in view}
    ds = WindowDataset(view, 8, batch_size=4, n_active=2, seed=0, max_iter=6)
    assert ds.entries == tuple(names) and len(ds.rows) == len(names)
    for batch in WindowLoader(ds, num_workers=2):
        for window in batch["X"].numpy():  # every window is a window of one of the view's entries
            assert any(
                any(np.array_equal(window, x[j : j + 8]) for j in range(len(x) - 7)) for x in rows.values()
            )
