"""Deterministic splits of entry names (zarrmux.splits)."""

import pickle
from pathlib import Path

import numpy as np
import pytest

import zarrmux
from zarrmux.exceptions import CorpusError
from zarrmux.testing import make_npz_archives

from zarrmux.exceptions import PescadorError
from zarrmux.splits import side_of, split_names

NAMES = [f"song{i:04d}" for i in range(2000)]
FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def test_split_is_disjoint_and_covers_the_names_in_order():
    sides = split_names(NAMES, FRACTIONS, seed=3)
    assert list(sides) == ["train", "val", "test"]
    together = [n for side in sides.values() for n in side]
    assert sorted(together) == sorted(NAMES)
    assert len(set(together)) == len(NAMES)
    for side in sides.values():  # the corpus order is kept within a side
        assert side == sorted(side)
    # sizes follow the fractions up to binomial noise (sd ~ 13 for 200 of 2000)
    assert abs(len(sides["val"]) - 200) < 80 and abs(len(sides["train"]) - 1600) < 120


def test_a_name_keeps_its_side_when_names_are_added():
    before = split_names(NAMES[:500], FRACTIONS, seed=0)
    after = split_names(NAMES, FRACTIONS, seed=0)
    for side, names in before.items():
        assert set(names) <= set(after[side])
    assert all(side_of(n, FRACTIONS, seed=0) == s for s, names in after.items() for n in names[:50])


def test_the_seed_changes_the_split_and_the_same_seed_repeats_it():
    assert split_names(NAMES, FRACTIONS, seed=1) == split_names(NAMES, FRACTIONS, seed=1)
    assert split_names(NAMES, FRACTIONS, seed=1) != split_names(NAMES, FRACTIONS, seed=2)


def test_a_zero_fraction_side_is_empty():
    sides = split_names(NAMES, {"train": 1.0, "val": 0.0})
    assert sides == {"train": NAMES, "val": []}


@pytest.mark.parametrize(
    "fractions, match",
    [
        ({}, "non-empty mapping"),
        ({"train": 0.9}, "sum to 1"),
        ({"train": 1.2, "val": -0.2}, r"fractions\['val'\]"),
        ({"train": "0.5", "val": 0.5}, r"fractions\['train'\]"),
        ({"": 1.0}, "side name"),
    ],
)
def test_bad_fractions_are_named(fractions, match):
    with pytest.raises(PescadorError, match=match):
        split_names(NAMES, fractions)


def test_bad_seed_is_named():
    with pytest.raises(PescadorError, match="seed=-1"):
        split_names(NAMES, FRACTIONS, seed=-1)


# ---------------------------------------------------------------- corpus views


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("views")
    zarrmux.convert(make_npz_archives(d / "a", 12, min_rows=200, max_rows=400, features=4, seed=1), d / "c.zarr")
    return d


def test_split_views_are_disjoint_cover_the_corpus_and_read_their_own_rows(corpus_dir: Path) -> None:
    with zarrmux.open_corpus(corpus_dir / "c.zarr") as c:
        sides = c.split({"train": 0.75, "val": 0.25}, seed=0)
        assert sorted(sides["train"].names + sides["val"].names) == sorted(c.names)
        assert not set(sides["train"].names) & set(sides["val"].names)
        val = sides["val"]
        assert val.names == split_names(c.names, {"train": 0.75, "val": 0.25})["val"]
        for e in val:
            np.testing.assert_array_equal(e["X"][:], c[e.name]["X"][:])
            assert e.rows == c[e.name].rows
            val.verify(e.name)  # the entry's own stored checksum, not that of the view's position
        again = pickle.loads(pickle.dumps(val))  # what DataLoader workers and Dask receive
        assert again.names == val.names
        # a sampler over the view draws windows of the view's entries only
        with zarrmux.WindowSampler(val, 8, batch_size=4, n_active=2, seed=0) as s:
            entries = np.concatenate([e for e, _ in s.windows()])
            assert set(entries.tolist()) <= set(range(len(val)))
            batches = list(s)
        assert batches and all(b["X"].shape == (4, 8, 4) for b in batches)
        # the streamers of the view, too
        streams = val.streamers(8)
        assert len(streams) == len(val)


def test_a_name_keeps_its_side_after_an_append(corpus_dir: Path, tmp_path: Path) -> None:
    import shutil

    dest = tmp_path / "c.zarr"
    shutil.copytree(corpus_dir / "c.zarr", dest)
    fr = {"train": 0.5, "val": 0.5}
    with zarrmux.open_corpus(dest) as c:
        before = {side: v.names for side, v in c.split(fr, seed=7).items()}
    zarrmux.convert(make_npz_archives(tmp_path / "more", 6, min_rows=200, max_rows=300, features=4, seed=2, prefix="more"), dest)
    with zarrmux.open_corpus(dest) as c:
        assert len(c) == 18
        after = {side: v.names for side, v in c.split(fr, seed=7).items()}
    for side in fr:
        assert set(before[side]) <= set(after[side])


def test_select_by_names_and_predicate(corpus_dir: Path) -> None:
    with zarrmux.open_corpus(corpus_dir / "c.zarr") as c:
        picked = c.select([c.names[3], c.names[1]])
        assert picked.names == [c.names[3], c.names[1]]
        odd = c.select(lambda name: int(name[-1]) % 2 == 1)
        assert odd.names == [n for n in c.names if int(n[-1]) % 2 == 1]
        with pytest.raises(CorpusError, match="'nope'"):
            _ = c.select(["nope"]).names
        with pytest.raises(CorpusError, match="listed twice"):
            _ = c.select([c.names[0], c.names[0]]).names


def test_an_entry_knows_its_source_file_also_in_a_view(corpus_dir: Path) -> None:
    with zarrmux.open_corpus(corpus_dir / "c.zarr") as c:
        for e in c:
            assert e.source == str((corpus_dir / "a" / f"{e.name}.npz").resolve())
        view = c.select([c.names[5], c.names[2]])
        assert [e.source for e in view] == [c[c.names[5]].source, c[c.names[2]].source]
