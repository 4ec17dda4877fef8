"""Drop-in compatibility: pescador's module layout and signatures, and pescador 1.x names."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pescador
import pytest

import zarrmux
from streams import finite, make

SUBMODULES = ["core", "mux", "maps", "util", "exceptions"]


@pytest.mark.parametrize("name", SUBMODULES)
def test_submodules_hold_pescadors_names(name: str) -> None:
    theirs = getattr(pescador, name)
    ours = getattr(zarrmux, name)
    public = [
        k
        for k, v in vars(theirs).items()
        if not k.startswith("_") and getattr(v, "__module__", None) == theirs.__name__
    ]
    assert public, name
    missing = [k for k in public if not hasattr(ours, k)]
    assert not missing, f"zarrmux.{name} lacks {missing}"


def test_top_level_names() -> None:
    for k in ["Streamer", "streamable", "BaseMux", "StochasticMux", "ShuffledMux", "RoundRobinMux", "ChainMux",
              "buffer_stream", "tuples", "keras_tuples", "cache", "PescadorError", "DataError"]:
        assert hasattr(zarrmux, k), k


@pytest.mark.parametrize(
    "path",
    ["core.Streamer", "core.Streamer.iterate", "core.Streamer.cycle", "core.Streamer.__call__",
     "mux.StochasticMux", "mux.ShuffledMux", "mux.RoundRobinMux", "mux.ChainMux", "mux.BaseMux",
     "maps.buffer_stream", "maps.tuples", "maps.keras_tuples", "maps.cache"],
)
def test_signatures_match_pescador(path: str) -> None:
    def resolve(root: Any) -> Any:
        obj = root
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj

    def params(obj: Any) -> list[tuple[str, Any]]:
        sig = inspect.signature(obj)
        return [(p.name, p.default if not isinstance(p.default, np.ndarray) else None) for p in sig.parameters.values()]

    assert params(resolve(zarrmux)) == params(resolve(pescador))


def test_import_zarrmux_as_pescador_loads_no_storage_stack() -> None:
    import subprocess
    import sys

    code = "import sys, zarrmux as pescador; pescador.StochasticMux; print('zarr' in sys.modules, 'dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_mux_1x_warns_and_names_the_replacement() -> None:
    with pytest.warns(DeprecationWarning, match="StochasticMux"):
        zarrmux.Mux(make(zarrmux, [3, 3]), k=2, rate=4)
    with pytest.warns(DeprecationWarning, match="'lam'.*'rate'"), pytest.warns(DeprecationWarning, match="StochasticMux"):
        m = zarrmux.Mux(make(zarrmux, [3, 3]), k=2, lam=4)
    assert m.rate == 4 and m.n_active == 2
    with pytest.warns(DeprecationWarning, match=r"iterate\(max_iter"):
        out = list(m.generate(max_batches=5))
    assert len(out) == 5
    with pytest.warns(DeprecationWarning, match="iterate"):
        assert list(zarrmux.Streamer(finite, 0, 3).generate()) == [(0, 0), (0, 1), (0, 2)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rate", [0.5, 3.0, 16.0])
def test_mux_1x_quota_is_one_plus_poisson(seed: int, rate: float) -> None:
    """With one endless stream and k=1, replaying the RandomState gives the exact run lengths."""

    def endless() -> Any:
        j = 0
        while True:
            yield j
            j += 1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        mux = zarrmux.Mux([zarrmux.Streamer(endless)], k=1, rate=rate, random_state=seed)
    out = list(mux(max_iter=400))
    runs, current = [], 0
    for i, v in enumerate(out):
        if v == 0 and i:
            runs.append(current)
            current = 0
        current += 1
    # replay: activation = one stream draw + Poisson(rate); every item one draw; exhaustion one draw
    rs = np.random.RandomState(seed)
    expected = []
    rs.random_sample()
    for _ in runs:
        q = 1 + rs.poisson(lam=rate)
        expected.append(q)
        for _ in range(q + 1):
            rs.random_sample()
        rs.random_sample()
    assert runs == expected and min(runs) >= 1


@pytest.mark.parametrize(
    "kw,mode", [({}, "with_replacement"), ({"with_replacement": False}, "exhaustive"),
                ({"with_replacement": False, "revive": True}, "single_active")]
)
def test_mux_1x_modes(kw: dict[str, Any], mode: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        m = zarrmux.Mux(make(zarrmux, [4] * 5), k=3, rate=2, random_state=0, **kw)
    assert m.mode == mode
    out = list(m(max_iter=60))
    if mode == "exhaustive":
        assert len(set(out)) == len(out) and len(out) < 20
    else:
        assert len(out) == 60


SEED_EXAMPLE = '''
import numpy as np
import zarrmux as pescador

def sample_npz(npz_file, n):
    with np.load(npz_file) as data:
        n_total = len(data['X'])
        while True:
            idx = np.random.randint(n_total - n)
            yield dict(X=data['X'][idx:idx+n],
                       Y=data['Y'][idx:idx+n])

n = 16
streams = [pescador.Streamer(sample_npz, npz_f, n) for npz_f in npz_files]

# Keep 32 streams alive at once
# Draw on average 16 patches from each stream before deactivating
mux_stream = pescador.Mux(streams, k=32, lam=16)

for batch in mux_stream.generate(max_batches=1000):
    # DO LEARNING HERE
    batches.append(batch)
'''


def test_first_seed_example_runs_unchanged(tmp_path: Path) -> None:
    files = []
    for i in range(6):
        f = tmp_path / f"song{i}.npz"
        np.savez(f, X=np.full((100 + 10 * i, 4), i, dtype=np.float32), Y=np.full(100 + 10 * i, i))
        files.append(str(f))
    ns: dict[str, Any] = {"npz_files": files, "batches": []}
    with pytest.warns(DeprecationWarning):
        exec(compile(SEED_EXAMPLE, "seed_example_1", "exec"), ns)
    batches = ns["batches"]
    assert len(batches) == 1000
    for b in batches:
        assert b["X"].shape == (16, 4) and b["Y"].shape == (16,)
        assert (b["X"] == b["Y"][0]).all()  # every window comes from one song
    assert len({int(b["Y"][0]) for b in batches}) == 6


def test_util_deprecation_helpers() -> None:
    @zarrmux.util.deprecated("0.1", "0.2")
    def old(x: int) -> int:
        return x + 1

    @zarrmux.util.moved("pkg.old_place", "0.1", "0.2")
    def new(x: int) -> int:
        return x * 2

    with pytest.warns(DeprecationWarning, match="Deprecated as of version 0.1"):
        assert old(1) == 2
    with pytest.warns(DeprecationWarning, match="moved to .*new"):
        assert new(2) == 4
    assert zarrmux.util.batch_length({"a": [1, 2], "b": "xy"}) == 2
    with pytest.raises(zarrmux.PescadorError):
        zarrmux.util.batch_length({"a": [1], "b": [1, 2]})
