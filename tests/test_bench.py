"""Statistics of a real sampler, and ``zarrmux bench`` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import zarrmux
from zarrmux.testing import make_npz_archives


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bench")
    src = make_npz_archives(d / "a", 6, min_rows=400, max_rows=900, features=8, seed=0, quantize=False)
    out = {"auto": d / "auto.zarr", "lz4": d / "lz4.zarr"}
    zarrmux.convert(src, out["auto"])
    zarrmux.convert(src, out["lz4"], codec="lz4")
    return out


def _stored_bytes(path: Path, key: str) -> int:
    return sum(f.stat().st_size for f in (path / key).rglob("*") if f.is_file() and f.name != "zarr.json")


@pytest.mark.parametrize("prefetch", [0, 2])
def test_statistics_add_up(corpora: dict[str, Path], prefetch: int) -> None:
    with zarrmux.WindowSampler(str(corpora["auto"]), 8, batch_size=5, n_active=3, seed=0, prefetch=prefetch, max_iter=40) as s:
        got = []
        for batch in s:
            got.append(len(batch["X"]))
            time.sleep(0.002)  # a training step
        st = s.stats()
        assert st.batches == len(got) == 40 and st.windows == sum(got) == 200
        # exact windows map whole shard files of X, each once; labels are decoded chunks
        assert 0 < st.bytes_read <= _stored_bytes(corpora["auto"], "X")
        assert st.chunk_hits + st.chunk_misses > 0
        assert st.consumer_seconds >= 39 * 0.002  # lower bound: the sleeps between batches
        assert st.read_seconds > 0 and st.elapsed_seconds >= st.consumer_seconds
        d = st.as_dict()
        assert d["windows_per_second"] == pytest.approx(200 / st.elapsed_seconds)
        s.reset_stats()
        assert s.stats().batches == 0 and s.stats().bytes_read == 0
        list(s)  # the next 40 batches
        assert s.stats().batches == 40


def test_compressed_keys_count_decoded_chunks(corpora: dict[str, Path]) -> None:
    with zarrmux.WindowSampler(str(corpora["lz4"]), 8, batch_size=5, n_active=3, seed=0, prefetch=0, max_iter=30, cache_bytes=0) as s:
        list(s)
        st = s.stats()
    assert st.batches == 30 and st.chunk_misses > 0
    assert "decoding" in st.bound() or "reading" in st.bound()


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "zarrmux", "bench", *args], capture_output=True, text=True, timeout=120, env=env)


def test_bench_json_plot_and_text_on_the_demo_corpus(corpora: dict[str, Path], tmp_path: Path) -> None:
    from zarrmux.demo import run_demo

    run_demo(tmp_path / "demo", archives=3, min_rows=500, max_rows=800, batches=2, batch_size=4, out=lambda line: None)
    png = tmp_path / "t.png"
    done = _bench(str(tmp_path / "demo" / "corpus.zarr"), "-n", "8", "--batch-size", "4", "--n-active", "3", "--batches", "25", "--json", "--plot", str(png))
    assert done.returncode == 0, done.stderr
    d = json.loads(done.stdout)
    assert d["params"]["n"] == 8 and d["params"]["batch_size"] == 4
    assert d["stats"]["batches"] == 25 and d["stats"]["windows"] == 100
    assert d["timeline"][-1][1] == 100 and d["stats"]["bound"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = _bench(str(corpora["lz4"]), "-n", "8", "--n-active", "3", "--seconds", "0.5", "-q")
    assert text.returncode == 0, text.stderr
    assert "windows/s" in text.stdout and "bound by" in text.stdout


def test_bench_errors_have_exit_codes(corpora: dict[str, Path], tmp_path: Path) -> None:
    missing = _bench(str(tmp_path / "nope.zarr"), "--batches", "1")
    assert missing.returncode == 4 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    too_long = _bench(str(corpora["auto"]), "-n", "100000", "--batches", "1")
    assert too_long.returncode == 2 and "n=100000" in too_long.stderr
    bad = _bench(str(corpora["auto"]), "--seconds", "0")
    assert bad.returncode == 2 and "must be > 0" in bad.stderr


def test_short_entries_are_logged_by_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import warnings

    import numpy as np

    np.savez(tmp_path / "long.npz", X=np.zeros((50, 2), np.float32), Y=np.zeros(50, np.int64))
    np.savez(tmp_path / "tiny.npz", X=np.zeros((3, 2), np.float32), Y=np.zeros(3, np.int64))
    zarrmux.convert([tmp_path / "long.npz", tmp_path / "tiny.npz"], tmp_path / "c.zarr")
    with caplog.at_level(logging.INFO, logger="zarrmux"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        zarrmux.WindowSampler(str(tmp_path / "c.zarr"), 8, batch_size=2, n_active=1, seed=0).close()
    assert any("1 of 2 entries" in r.getMessage() and "'tiny'" in r.getMessage() for r in caplog.records)
