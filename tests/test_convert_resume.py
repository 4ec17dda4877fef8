"""Atomicity and resume (SIGKILL part way), append, overwrite, and parallel == sequential."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from zarrmux import layout
from zarrmux.conversion import convert
from zarrmux.exceptions import ConversionError
from zarrmux.index_commit import commit_entries
from zarrmux.testing import make_npz_archives
from zarrmux.verify import verify


def snapshot(dest: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(index, {key: every stored row}) of a corpus, via plain zarr."""
    root = zarr.open_group(str(dest), mode="r")
    meta = layout.read_meta(root)
    idx = layout.read_index(root)
    index = {f: [str(v) if f in ("name", "checksum") else v for v in idx[f]] for f in ("name", "start", "rows", "checksum")}
    return index, {k: np.asarray(root[k][: meta.rows_allocated]) for k in meta.keys}


def assert_same_store(a: Path, b: Path) -> None:
    ia, da = snapshot(a)
    ib, db = snapshot(b)
    assert {f: list(map(str, v)) for f, v in ia.items()} == {f: list(map(str, v)) for f, v in ib.items()}
    assert sorted(da) == sorted(db)
    for k in da:
        np.testing.assert_array_equal(da[k], db[k], err_msg=k)


OPTS = dict(chunk_rows=128, shard_rows=512, unit_rows=512)

KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from zarrmux.conversion import convert
    if __name__ == "__main__":
        # a slow consumer of progress events keeps the run going long enough to be killed part way
        convert([sys.argv[1]], sys.argv[2], workers=1, chunk_rows=128, shard_rows=512, unit_rows=512,
                commit_every=0, progress=lambda *a: time.sleep(0.03))
    """
)


def _committed(dest: Path) -> int:
    try:
        return json.loads((dest / "zarr.json").read_text())["attributes"]["zarrmux"]["n_entries"]
    except (OSError, ValueError, KeyError):
        return 0


def test_sigkill_part_way_then_rerun_equals_uninterrupted(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_npz_archives(src, 12, min_rows=300, max_rows=900, features=16)
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    dest = tmp_path / "killed.zarr"
    proc = subprocess.Popen([sys.executable, str(script), str(src), str(dest)])
    try:
        deadline = time.monotonic() + 60
        while _committed(dest) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the conversion finished before it could be killed"
    done = _committed(dest)
    assert 3 <= done < 12
    # the killed store is valid: every committed entry is complete and checks out
    assert verify(dest) == []
    report = convert([src], dest, workers=1, **OPTS)
    assert len(report.skipped) == done and report.entries == 12 - done
    convert([src], tmp_path / "clean.zarr", workers=1, **OPTS)
    assert_same_store(dest, tmp_path / "clean.zarr")
    assert verify(dest, [src]) == []


def test_rerun_skips_unchanged_and_touched_files(tmp_path: Path) -> None:
    paths = make_npz_archives(tmp_path / "src", 3, min_rows=200, max_rows=400, features=4)
    convert(paths, tmp_path / "c.zarr", workers=1)
    os.utime(paths[1], ns=(1, 1))  # same data, different fingerprint: checksum decides
    report = convert(paths, tmp_path / "c.zarr", workers=1)
    assert report.entries == 0 and report.skipped == [p.stem for p in paths]
    assert layout.read_meta(zarr.open_group(str(tmp_path / "c.zarr"))).n_entries == 3


def test_append_more_sources(tmp_path: Path) -> None:
    paths = make_npz_archives(tmp_path / "src", 5, min_rows=200, max_rows=400, features=4)
    dest = tmp_path / "c.zarr"
    convert(paths[:2], dest, workers=1)
    report = convert(paths, dest, workers=1)
    assert report.appended == [p.stem for p in paths[2:]] and report.skipped == [p.stem for p in paths[:2]]
    root = zarr.open_group(str(dest))
    idx = layout.read_index(root)
    assert [str(n) for n in idx["name"]] == [p.stem for p in paths]
    for p, s, r in zip(paths, idx["start"], idx["rows"]):
        np.testing.assert_array_equal(root["X"][int(s) : int(s) + int(r)], np.load(p)["X"])
    assert verify(dest) == []


def test_existing_name_with_different_data_needs_overwrite(tmp_path: Path) -> None:
    paths = make_npz_archives(tmp_path / "src", 3, min_rows=200, max_rows=400, features=4)
    dest = tmp_path / "c.zarr"
    convert(paths, dest, workers=1)
    before = snapshot(dest)
    new = {"X": np.full((123, 4), 7, np.float32), "Y": np.arange(123, dtype=np.int64)}
    np.savez(paths[1], **new)
    with pytest.raises(ConversionError, match=r"song00001\.npz: entry 'song00001' already exists in .* with different data"):
        convert(paths, dest, workers=1)
    after = snapshot(dest)
    assert after[0] == before[0]
    report = convert(paths, dest, workers=1, overwrite=True)
    assert report.overwritten == ["song00001"] and report.entries == 1 and report.skipped == ["song00000", "song00002"]
    root = zarr.open_group(str(dest))
    meta = layout.read_meta(root)
    idx = layout.read_index(root)
    assert meta.n_entries == 3 and UPDATES_CLEARED(meta)
    s, r = int(idx["start"][1]), int(idx["rows"][1])
    assert r == 123 and s >= int(before[0]["start"][2])  # appended after the old data
    np.testing.assert_array_equal(root["X"][s : s + r], new["X"])
    np.testing.assert_array_equal(root["Y"][s : s + r], new["Y"])
    assert verify(dest, paths) == []
    # and a rerun now finds it unchanged
    assert convert(paths, dest, workers=1).entries == 0


def UPDATES_CLEARED(meta: layout.CorpusMeta) -> bool:
    return layout.UPDATES_KEY not in meta.extra


def test_index_update_journal_is_applied_by_readers(tmp_path: Path) -> None:
    """A writer killed between the commit and the index-row rewrite: readers still see the update."""
    paths = make_npz_archives(tmp_path / "src", 2, min_rows=100, max_rows=200, features=4)
    dest = tmp_path / "c.zarr"
    convert(paths, dest, workers=1)
    root = zarr.open_group(str(dest))
    meta = layout.read_meta(root)
    rec = layout.EntryRecord("song00000", 4096, 10, "s", "sha256:x", "1:2")
    from dataclasses import asdict

    meta.extra[layout.UPDATES_KEY] = {"0": asdict(rec)}
    layout.write_meta(root, meta)  # as if killed right after the commit point
    idx = layout.read_index(zarr.open_group(str(dest)))
    assert int(idx["start"][0]) == 4096 and str(idx["checksum"][0]) == "sha256:x"
    commit_entries(root, [], rows_allocated=meta.rows_allocated)  # the next commit replays it
    m2 = layout.read_meta(root)
    assert layout.UPDATES_KEY not in m2.extra
    assert int(root["index/start"][0]) == 4096


def test_workers_and_dask_give_identical_data(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    src = tmp_path / "src"
    make_npz_archives(src, 8, min_rows=300, max_rows=700, features=8)
    make_npz_archives(src, 3, min_rows=300, max_rows=700, features=8, compressed=True, prefix="z", seed=5)
    convert([src], tmp_path / "w1.zarr", workers=1, **OPTS)
    r2 = convert([src], tmp_path / "w2.zarr", workers=2, **OPTS)
    assert r2.units > 2 and r2.workers == 2
    assert_same_store(tmp_path / "w1.zarr", tmp_path / "w2.zarr")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        convert([src], tmp_path / "dask.zarr", scheduler=client, **OPTS)
    assert_same_store(tmp_path / "w1.zarr", tmp_path / "dask.zarr")
    # 'local': the helper builds (and closes) its own LocalCluster on 127.0.0.1
    convert([src], tmp_path / "local.zarr", scheduler="local", workers=1, **OPTS)
    assert_same_store(tmp_path / "w1.zarr", tmp_path / "local.zarr")


# ---------------------------------------------------------------- issue 11 point 4: creating a corpus is atomic

_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")) if p
    ),
}


def test_sigkill_while_creating_leaves_nothing_and_rerun_completes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 11 why-4: a kill in a new corpus's first writes left a store every command failed on (KeyError)."""
    from zarrmux._cli import main
    from zarrmux.destination import NEW_SUFFIX

    src = tmp_path / "src"
    make_npz_archives(src, 3, min_rows=300, max_rows=600, features=8)
    dest = tmp_path / "new.zarr"
    proc = subprocess.Popen([sys.executable, "-m", "zarrmux", "convert", str(src), "-o", str(dest), "--workers", "1", "-q"], env=_ENV)
    building = tmp_path / f"new.zarr{NEW_SUFFIX}{proc.pid}"
    try:
        deadline = time.monotonic() + 60
        while not building.exists() and proc.poll() is None and time.monotonic() < deadline:
            pass  # spin: the creation takes a few dozen milliseconds
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and building.exists(), "not killed during the creation"
    assert not dest.exists(), "a killed creation must leave nothing at the destination"
    assert main(["info", str(dest)]) == 4 and main(["verify", str(dest)]) == 4
    assert "killed while creating it: rerun the convert command" in capsys.readouterr().err
    report = convert([src], dest, workers=1)
    assert report.entries == 3 and not building.exists()  # the leftover is removed by the next writer
    assert verify(dest, [src]) == []


def test_interrupted_creation_of_an_older_zarrmux_is_clear_and_rerun_completes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The store an older zarrmux left when killed while creating: root attributes, some arrays missing."""
    import shutil

    from zarrmux._cli import main
    from zarrmux.exceptions import CorpusError

    src = tmp_path / "src"
    make_npz_archives(src, 3, min_rows=300, max_rows=600, features=8)
    dest = tmp_path / "half.zarr"
    specs = {"X": layout.KeySpec("<f4", (8,), 128, codec="lz4"), "Y": layout.KeySpec("<i8", (), 128, codec="lz4")}
    layout.create_corpus(str(dest), specs, shard_rows=512, codec="auto")
    shutil.rmtree(dest / "Y")
    shutil.rmtree(dest / "index")
    for cmd in (["info", str(dest)], ["verify", str(dest)]):
        assert main(cmd) == 4
        err = capsys.readouterr().err
        assert "incomplete zarrmux corpus: array 'Y' is missing" in err and "rerun the convert command" in err
    with pytest.raises(CorpusError, match="incomplete zarrmux corpus"):
        from zarrmux.verify import info

        info(dest)
    assert main(["convert", str(src), "-o", str(dest), "--workers", "1", "-q"]) == 0
    assert verify(dest, [src]) == []
