"""Window streamers (pescador style) on a real corpus on disk."""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import numpy as np
import pytest
from resume_harness import collect, write_small_corpus

import zarrmux
from zarrmux.exceptions import PescadorError
from zarrmux.streamers import streamers, window_streamer


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, dict[str, np.ndarray]]]:
    path = str(tmp_path_factory.mktemp("streamers") / "c.zarr")
    entries = write_small_corpus(path, rows=(300, 517, 18, 1000, 250, 20))
    return zarrmux.open_corpus(path), entries


def _find(window: np.ndarray, source: np.ndarray, n: int) -> list[int]:
    return [s for s in range(len(source) - n + 1) if np.array_equal(source[s : s + n], window)]


def test_windows_are_contiguous_rows_of_their_entry(data: Any) -> None:
    corpus, entries = data
    src = entries["e1"]
    st = window_streamer(corpus["e1"], 16, random_state=0)
    for w in st(max_iter=30):
        assert set(w) == {"X", "Y"} and w["X"].shape == (16, 8) and w["Y"].shape == (16,)
        starts = _find(w["X"], src["X"], 16)
        assert len(starts) == 1
        np.testing.assert_array_equal(w["Y"], src["Y"][starts[0] : starts[0] + 16])


def test_every_valid_start_including_the_last(data: Any) -> None:
    corpus, entries = data
    src = entries["e5"]["X"]  # 20 rows, n=16: starts 0..4, five positions
    seen = set()
    for w in window_streamer(corpus["e5"], 16, random_state=1)(max_iter=400):
        seen.update(_find(w["X"], src, 16))
    assert seen == {0, 1, 2, 3, 4}


def test_uniform_starts(data: Any) -> None:
    corpus, entries = data
    src = entries["e5"]["Y"]
    # Y is a slowly varying label, so use X to locate windows
    counts = np.zeros(5)
    for w in window_streamer(corpus["e5"], 16, keys="X", random_state=2, readahead=3)(max_iter=2500):
        (s,) = _find(w["X"], entries["e5"]["X"], 16)
        counts[s] += 1
    assert len(src) == 20
    chi2 = float(((counts - 500) ** 2 / 500).sum())
    assert chi2 < 25, counts  # 4 dof: p ~ 5e-5


def test_deterministic_and_activations_continue(data: Any) -> None:
    corpus, _ = data
    a = window_streamer(corpus[0], 8, random_state=5)
    b = window_streamer(corpus[0], 8, random_state=5)
    first_a, second_a = collect(a(max_iter=5)), collect(a(max_iter=5))
    assert first_a == collect(b(max_iter=5)) and second_a == collect(b(max_iter=5))
    assert first_a != second_a  # a new activation continues the generator, it does not replay it


def test_holds_no_data_and_pickles(data: Any) -> None:
    corpus, _ = data
    st = window_streamer(corpus[3], 16, random_state=7)
    assert st.stream_ is None and st.active == 0
    assert not any(isinstance(v, np.ndarray) for v in (*st.args, *st.__dict__.values()))
    with st as active:
        next(active.stream_)
        assert st.active == 1
    assert st.active == 0
    clone = pickle.loads(pickle.dumps(st))
    assert collect(clone(max_iter=4)) == collect(st(max_iter=4))


def test_seed_example_ported(data: Any) -> None:
    corpus, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        streams = streamers(corpus, 16)
    mux = zarrmux.StochasticMux(streams, n_active=32, rate=16)
    batches = zarrmux.buffer_stream(mux, 32)
    for _, batch in zip(range(5), batches):
        assert batch["X"].shape == (32, 16, 8) and batch["Y"].shape == (32, 16)


def test_mux_over_streamers_is_reproducible(data: Any) -> None:
    corpus, _ = data

    def run() -> list[Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            streams = streamers(corpus, 16, random_state=3)
        mux = zarrmux.StochasticMux(streams, n_active=3, rate=4, random_state=3)
        return collect(zarrmux.buffer_stream(mux(max_iter=64), 16))

    assert run() == run()


def test_short_entries_skipped_with_one_warning(data: Any) -> None:
    corpus, _ = data
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        streams = streamers(corpus, 19)
    assert [str(r.message) for r in rec] == ["1 of 6 entries have fewer than n=19 rows and are skipped"]
    assert [s.entry.name for s in streams] == ["e0", "e1", "e3", "e4", "e5"]


def test_errors(data: Any) -> None:
    corpus, _ = data
    for bad in (0, -2, 1.5):
        with pytest.raises(PescadorError, match="n="):
            window_streamer(corpus[0], bad)  # type: ignore[arg-type]
        with pytest.raises(PescadorError, match="n="):
            streamers(corpus, bad)  # type: ignore[arg-type]
    with pytest.raises(PescadorError, match="longer than every entry"):
        streamers(corpus, 1001)
    with pytest.raises(PescadorError, match="'e2' has 18 rows"):
        window_streamer(corpus["e2"], 19)
    with pytest.raises(KeyError, match="'Q'"):
        window_streamer(corpus[0], 4, keys=["Q"])
    with pytest.raises(PescadorError, match="readahead"):
        window_streamer(corpus[0], 4, readahead=0)
