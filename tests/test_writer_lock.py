"""One writer at a time per destination (issue 11, point 1), and no converter process outlives its parent (point 7).

Real converter processes race on one destination, a real ``kill -9`` leaves a
lock behind, and a real ``convert --workers 2`` process tree is killed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import zarr

import zarrmux
from zarrmux import layout
from zarrmux.conversion import convert
from zarrmux.testing import make_npz_archives
from zarrmux.verify import info, verify
from zarrmux.writer_lock import DestinationBusyError, WriterLock, lock_path

REPO = Path(zarrmux.__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
CLI = [sys.executable, "-m", "zarrmux"]
OPTS = ["--chunk-rows", "128", "--shard-rows", "512", "-q"]

#: a converter that stops once its first unit (1 or 2 entries of >= 300 rows) is committed, until the file GATE exists
GATED = textwrap.dedent(
    """
    import os, sys, time
    from zarrmux.conversion import convert

    def gate(done, total, nbytes, total_bytes):
        while done >= 3 and not os.path.exists(sys.argv[3]):
            time.sleep(0.01)

    if __name__ == "__main__":
        from zarrmux.exceptions import CorpusError
        try:
            convert([sys.argv[1]], sys.argv[2], workers=int(sys.argv[4]), chunk_rows=128, shard_rows=512,
                    unit_rows=512, commit_every=0, progress=gate)
        except CorpusError as exc:
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
            sys.exit(8)
    """
)


def _committed(dest: Path) -> int:
    try:
        return json.loads((dest / "zarr.json").read_text())["attributes"]["zarrmux"]["n_entries"]
    except (OSError, ValueError, KeyError):
        return 0


def _holder_pid(dest: Path) -> int | None:
    try:
        return json.loads(Path(lock_path(str(dest))).read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


def _start_gated(tmp_path: Path, src: Path, dest: Path, workers: int = 1) -> tuple[subprocess.Popen[bytes], Path]:
    script = tmp_path / "gated.py"
    script.write_text(GATED)
    gate = tmp_path / f"gate-{dest.name}"
    proc = subprocess.Popen([sys.executable, str(script), str(src), str(dest), str(gate), str(workers)], env=ENV)
    deadline = time.monotonic() + 60
    while (_committed(dest) < 1 or _holder_pid(dest) != proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if not (proc.poll() is None and _committed(dest) >= 1 and _holder_pid(dest) == proc.pid):
        proc.kill()
        proc.wait()
        pytest.fail("the writer never got going")
    return proc, gate


def _names(dest: Path) -> list[str]:
    return [str(n) for n in layout.read_index(zarr.open_group(str(dest), mode="r"))["name"]]


def test_second_writer_is_refused_naming_the_holder_or_waits(tmp_path: Path) -> None:
    src_a = tmp_path / "a"
    src_b = tmp_path / "b"
    make_npz_archives(src_a, 4, min_rows=300, max_rows=600, features=8, prefix="a")
    make_npz_archives(src_b, 3, min_rows=300, max_rows=600, features=8, seed=1, prefix="b")
    dest = tmp_path / "c.zarr"
    writer, gate = _start_gated(tmp_path, src_a, dest)
    try:
        # readers are never blocked
        assert info(dest)["entries"] >= 1 and verify(dest) == []
        before = (dest / "zarr.json").read_bytes()
        # a second convert, an append with --overwrite too: refused at once, naming who holds it
        for extra in ([], ["--overwrite"], ["--wait-timeout", "0.3"]):
            out = subprocess.run([*CLI, "convert", str(src_b), "-o", str(dest), *OPTS, *extra],
                                 capture_output=True, text=True, timeout=60, env=ENV)
            assert out.returncode == 7, out.stderr
            assert f"pid {writer.pid}" in out.stderr and socket.gethostname() in out.stderr and " since " in out.stderr
            assert "being written by another zarrmux convert" in out.stderr and "Traceback" not in out.stderr
            assert ("waited 0.3 s" in out.stderr) == bool(extra and extra[0] == "--wait-timeout")
        assert (dest / "zarr.json").read_bytes() == before  # the refused run touched nothing
        # --wait: waits for the writer, then appends
        waiter = subprocess.Popen([*CLI, "convert", str(src_b), "-o", str(dest), *OPTS, "--wait"],
                                  stderr=subprocess.PIPE, text=True, env=ENV)
        assert waiter.stderr is not None
        line = waiter.stderr.readline()
        assert line.startswith("zarrmux: waiting for") and f"pid {writer.pid}" in line
        gate.touch()
        assert writer.wait(60) == 0
        assert waiter.wait(60) == 0, waiter.stderr.read()
    finally:
        gate.touch()
        writer.wait(60)
    assert _names(dest) == [f"a{i:05d}" for i in range(4)] + [f"b{i:05d}" for i in range(3)]
    assert verify(dest, [src_a, src_b]) == []
    assert not os.path.exists(lock_path(str(dest)))  # removed when released


def test_two_writers_racing_on_one_destination_lose_nothing(tmp_path: Path) -> None:
    """Issue 11 why-1: two converts at once into one new destination (disjoint sources) both land, intact."""
    src_a = tmp_path / "a"
    src_b = tmp_path / "b"
    make_npz_archives(src_a, 4, min_rows=300, max_rows=700, features=8, prefix="a")
    make_npz_archives(src_b, 4, min_rows=300, max_rows=700, features=8, seed=1, prefix="b")
    dest = tmp_path / "race.zarr"
    procs = [
        subprocess.Popen([*CLI, "convert", str(s), "-o", str(dest), *OPTS, "--workers", "1", "--wait"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        for s in (src_a, src_b)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert sorted(_names(dest)) == sorted([f"a{i:05d}" for i in range(4)] + [f"b{i:05d}" for i in range(4)])
    assert verify(dest, [src_a, src_b]) == []
    root = zarr.open_group(str(dest), mode="r")
    idx = layout.read_index(root)
    for name, s, r in zip(idx["name"], idx["start"], idx["rows"]):
        src = (src_a if str(name).startswith("a") else src_b) / f"{name}.npz"
        np.testing.assert_array_equal(root["X"][int(s) : int(s) + int(r)], np.load(src)["X"])


def test_lock_of_a_killed_writer_is_taken_over(tmp_path: Path) -> None:
    src = tmp_path / "a"
    make_npz_archives(src, 4, min_rows=300, max_rows=600, features=8)
    dest = tmp_path / "c.zarr"
    writer, gate = _start_gated(tmp_path, src, dest)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert _holder_pid(dest) == writer.pid  # its lock file is left behind, naming the dead writer
    done = _committed(dest)
    report = convert([src], dest, workers=1, chunk_rows=128, shard_rows=512)  # no wait needed
    assert len(report.skipped) == done and report.total_entries == 4
    assert verify(dest, [src]) == []


def test_in_process_lock_refuses_waits_and_times_out(tmp_path: Path) -> None:
    src = tmp_path / "a"
    make_npz_archives(src, 2, min_rows=200, max_rows=300, features=4)
    dest = tmp_path / "c.zarr"
    convert([src], dest, workers=1)
    with WriterLock(str(dest)):
        with pytest.raises(DestinationBusyError, match=rf"pid {os.getpid()} on host {socket.gethostname()} since "):
            convert([src], dest, workers=1)
        with pytest.raises(DestinationBusyError, match=r"waited 0\.2 s"):
            convert([src], dest, workers=1, wait=0.2)
        assert info(dest)["entries"] == 2  # readers are not blocked
        # another spelling of the same destination (a symlink) shares the lock
        (tmp_path / "link.zarr").symlink_to(dest)
        with pytest.raises(DestinationBusyError):
            convert([src], tmp_path / "link.zarr", workers=1)
    assert convert([src], dest, workers=1).skipped == ["song00000", "song00001"]
    with pytest.raises(ValueError, match="wait=-1"):
        convert([src], dest, workers=1, wait=-1)


def test_kill_9_of_convert_with_workers_leaves_no_process(tmp_path: Path) -> None:
    """Issue 11 why-7: forkserver, resource tracker and workers exit with their killed parent."""
    src = tmp_path / "a"
    make_npz_archives(src, 8, min_rows=600, max_rows=900, features=8)
    dest = tmp_path / "c.zarr"
    writer, gate = _start_gated(tmp_path, src, dest, workers=2)
    parent = psutil.Process(writer.pid)
    deadline = time.monotonic() + 30
    while len(parent.children(recursive=True)) < 4 and time.monotonic() < deadline:  # tracker, forkserver, 2 workers
        time.sleep(0.01)
    family = parent.children(recursive=True)
    assert len(family) >= 4, [p.cmdline() for p in family]
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    gone, alive = psutil.wait_procs(family, timeout=10)
    for p in alive:
        p.kill()
    assert not alive, [p.cmdline() for p in alive]
    report = convert([src], dest, workers=2, chunk_rows=128, shard_rows=512, wait=10)
    assert report.total_entries == 8 and verify(dest, [src]) == []


def test_a_killed_worker_is_a_clear_error_and_the_store_stays_valid(tmp_path: Path) -> None:
    """A worker killed by the OS (OOM killer, kill -9) ends the run with a message, not a BrokenProcessPool traceback."""
    src = tmp_path / "a"
    make_npz_archives(src, 16, min_rows=600, max_rows=900, features=8)
    dest = tmp_path / "c.zarr"
    script = tmp_path / "gated.py"
    script.write_text(GATED)
    gate = tmp_path / "open"
    gate.touch()  # never blocks: the workers are killed as soon as they exist, with units still to do
    writer = subprocess.Popen([sys.executable, str(script), str(src), str(dest), str(gate), "2"], env=ENV,
                              stderr=subprocess.PIPE, text=True)
    try:
        parent = psutil.Process(writer.pid)
        workers: list[psutil.Process] = []
        deadline = time.monotonic() + 30
        while len(workers) < 2 and writer.poll() is None and time.monotonic() < deadline:
            workers = [w for p in parent.children() for w in p.children()]  # children of the forkserver
            time.sleep(0.002)
        for w in workers:
            w.kill()
        _, err = writer.communicate(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert workers and writer.returncode == 8, err
    assert "StoreIOError: a worker process converting into" in err and "died" in err and "Traceback" not in err
    assert not dest.exists() or verify(dest) == []  # nothing, or what was committed, intact
    assert convert([src], dest, workers=2, chunk_rows=128, shard_rows=512).total_entries == 16
    assert verify(dest, [src]) == []


def test_remote_destinations_are_written_without_a_lock_and_say_so(tmp_path: Path) -> None:
    src = tmp_path / "a"
    make_npz_archives(src, 2, min_rows=200, max_rows=300, features=4)
    with pytest.warns(RuntimeWarning, match="remote destinations are written without a writer lock"):
        assert convert([src], "memory://lockless.zarr", workers=1).total_entries == 2
    # a file:// URL is a local path: locked (no warning) and converted
    with WriterLock(str(tmp_path / "f.zarr")):
        with pytest.raises(DestinationBusyError):
            convert([src], (tmp_path / "f.zarr").as_uri(), workers=1)
    assert convert([src], (tmp_path / "f.zarr").as_uri(), workers=1).total_entries == 2
