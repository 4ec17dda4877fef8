"""Deterministic splits of entry names (zarrmux.splits)."""

import pytest

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
