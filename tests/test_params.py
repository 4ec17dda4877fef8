"""One error for a bad parameter (ConfigError) and one for a closed object (ClosedError)."""

from __future__ import annotations

import numpy as np
import pytest

import zarrmux
from zarrmux.exceptions import ClosedError, ConfigError, PescadorError
from zarrmux.params import check_choice, check_int, check_number
from zarrmux.testing import make_npz_archives


def test_config_error_is_caught_by_every_older_except_clause() -> None:
    for cls in (PescadorError, ValueError, TypeError):
        with pytest.raises(cls):
            check_int("n", 0, minimum=1)


@pytest.mark.parametrize("value", [True, 1.5, "3", None, -1])
def test_check_int_names_the_parameter_and_value(value: object) -> None:
    with pytest.raises(ConfigError, match=rf"^batch_size={value!r} must be an integer >= 0$"):
        check_int("batch_size", value)


def test_checks_accept_what_they_should() -> None:
    assert check_int("n", np.int32(4), minimum=1) == 4 and check_int("n", None, none=True) is None
    assert check_int("rank", 3, minimum=0, maximum=3) == 3
    with pytest.raises(ConfigError, match=r"rank=4 must be an integer in \[0, 3\]"):
        check_int("rank", 4, minimum=0, maximum=3)
    assert check_number("rate", np.float32(2.5), positive=True) == 2.5
    for bad in (0, float("inf"), float("nan"), "1", True):
        with pytest.raises(ConfigError, match="rate="):
            check_number("rate", bad, positive=True)
    assert check_choice("mode", "a", ("a", "b")) == "a"
    with pytest.raises(ConfigError, match="mode='c' must be one of 'a', 'b'"):
        check_choice("mode", "c", ("a", "b"))


def test_the_library_raises_them(tmp_path) -> None:
    zarrmux.convert(make_npz_archives(tmp_path / "a", 2, min_rows=100, max_rows=120, features=2), tmp_path / "c.zarr")
    path = str(tmp_path / "c.zarr")
    for kwargs, name in (({"threads": 0}, "threads=0"), ({"rank": 2, "world_size": 2}, "rank=2"), ({"rate": -1.0}, "rate=-1.0")):
        with pytest.raises(ConfigError, match=name):
            zarrmux.WindowSampler(path, 8, batch_size=2, n_active=1, **kwargs)
    with pytest.raises(ConfigError, match="cache_bytes=-1"):
        zarrmux.open_corpus(path, cache_bytes=-1)
    corpus = zarrmux.open_corpus(path)
    corpus.close()
    with pytest.raises(ClosedError, match="closed"):
        corpus.read_windows([0], [0], 4)
    s = zarrmux.WindowSampler(path, 8, batch_size=2, n_active=1)
    s.close()
    with pytest.raises(ClosedError, match="closed"):
        iter(s)


def test_help_shows_what_is_required() -> None:
    import pickle
    import pydoc

    from zarrmux.params import REQUIRED
    from zarrmux.torch import WindowDataset

    sampler_help = pydoc.render_doc(zarrmux.WindowSampler, renderer=pydoc.plaintext)
    assert "n_active: 'int | None' = <required unless mode='sequential'>" in sampler_help
    dataset_help = pydoc.render_doc(WindowDataset, renderer=pydoc.plaintext)
    assert "batch_size: 'int'," in dataset_help  # no default: required
    assert "n_active: 'int | None' = <required unless mode='sequential'>" in dataset_help
    assert pickle.loads(pickle.dumps(REQUIRED)) is REQUIRED


def test_missing_n_active_is_named(tmp_path) -> None:
    zarrmux.convert(make_npz_archives(tmp_path / "a", 2, min_rows=100, max_rows=120, features=2), tmp_path / "c.zarr")
    with pytest.raises(ConfigError, match="n_active is required in mode='with_replacement'"):
        zarrmux.WindowSampler(str(tmp_path / "c.zarr"), 8, batch_size=2)
    with zarrmux.WindowSampler(str(tmp_path / "c.zarr"), 8, batch_size=2, mode="sequential") as s:
        assert len(list(s)) > 0
