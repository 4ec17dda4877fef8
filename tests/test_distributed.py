"""WindowSampler(scheduler=...) and conversion on a real LocalCluster (worker processes, loopback).

One module-scoped cluster of 2 worker processes is shared; the worker-kill
test runs last and waits for the nanny to bring the worker back.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from resume_harness import write_small_corpus

from zarrmux.exceptions import PescadorError
from zarrmux.sampler import WindowSampler

distributed = pytest.importorskip("distributed")  # the test env has it (pyproject [test]); never skipped there

N = 16
BASE: dict[str, Any] = dict(batch_size=8, n_active=3, rate=4, seed=123)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cl:
        yield cl


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster) as c:
        c.wait_for_workers(2)
        yield c


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> str:
    p = str(tmp_path_factory.mktemp("dist") / "c.zarr")
    write_small_corpus(p)
    return p


def _sampler(path: str, **kw: Any) -> WindowSampler:
    args = dict(BASE)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the 20-row entry is short
        return WindowSampler(path, N, **args)


def _run(path: str, limit: int | None = None, **kw: Any) -> list[dict[str, np.ndarray]]:
    with _sampler(path, **kw) as s:
        out = []
        for b in s:
            out.append(b)
            if limit is not None and len(out) == limit:
                break
        return out


def _same(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]]) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.keys() == y.keys(), i
        for k in x:
            assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape, (i, k)
            np.testing.assert_array_equal(x[k], y[k], err_msg=f"batch {i} key {k}")


def _our_keys(client: Any) -> list[str]:
    return [k for k in client.run_on_scheduler(lambda dask_scheduler: [str(t) for t in dask_scheduler.tasks]) if "zarrmux-read" in k]


def _wait_no_tasks(client: Any) -> list[str]:
    deadline = time.monotonic() + 15
    keys = _our_keys(client)
    while keys and time.monotonic() < deadline:
        time.sleep(0.05)
        keys = _our_keys(client)
    return keys


# ---------------------------------------------------------------------------- the same stream
@pytest.mark.parametrize(
    "kw",
    [
        dict(max_iter=23, batches_per_task=3, prefetch=2),
        dict(mode="exhaustive", batches_per_task=4, prefetch=3),
        dict(mode="sequential", n_active=None, hop=5, batches_per_task=2),
        dict(max_iter=17, rank=1, world_size=2, batches_per_task=1, prefetch=1),
        dict(max_iter=9, keys=["Y"], batches_per_task=16, prefetch=0),
    ],
    ids=["replacement", "exhaustive", "sequential", "rank1of2", "keysY"],
)
def test_same_batches_as_without_dask(client: Any, path: str, kw: dict[str, Any]) -> None:
    ref = _run(path, prefetch=0, **{k: v for k, v in kw.items() if k not in ("batches_per_task", "prefetch")})
    got = _run(path, scheduler=client, **kw)
    assert len(ref) > 0
    _same(got, ref)
    assert _wait_no_tasks(client) == []  # everything released


def test_dask_ranks_read_the_global_stream_and_resume_on_another_world_size(client: Any, path: str) -> None:
    """Rank r of 2 through Dask: global batches r, r + 2, ... of the one-process stream; its state
    continues on 3 ranks (each with global batch position + r)."""
    whole = _run(path, prefetch=0, epoch_batches=8)
    for r in range(2):
        _same(_run(path, scheduler=client, rank=r, world_size=2, epoch_batches=8, batches_per_task=2), whole[r::2])
    with _sampler(path, scheduler=client, rank=1, world_size=2, epoch_batches=8, batches_per_task=2) as s:
        it = iter(s)
        _same([next(it), next(it)], [whole[1], whole[3]])
        state = s.state_dict()
    assert state["position"] == 4
    for r in range(3):
        with _sampler(path, scheduler=client, rank=r, world_size=3, epoch_batches=8, batches_per_task=1) as s3:
            s3.load_state_dict(state)
            _same(list(s3), [whole[4 + r], whole[(7 + r) % 8]])  # (the last round padded from the epoch's start)


def test_epochs_and_state_dict_resume_with_dask(client: Any, path: str) -> None:
    ref = _sampler(path, prefetch=0, epoch_batches=7)
    want = [b for _ in range(2) for b in ref]  # two epochs
    with _sampler(path, scheduler=client, epoch_batches=7, batches_per_task=3) as s:
        got = []
        it = iter(s)
        for _ in range(5):
            got.append(next(it))
        state = s.state_dict()
        assert state == _state_after(path, 5)
    # a new Dask sampler continues exactly
    with _sampler(path, scheduler=client, epoch_batches=7, batches_per_task=2, prefetch=3) as s2:
        s2.load_state_dict(state)
        got += list(s2)  # rest of epoch 0
        got += list(s2)  # epoch 1
    _same(got, want)


def _state_after(path: str, k: int) -> dict[str, Any]:
    with _sampler(path, prefetch=0, epoch_batches=7) as s:
        it = iter(s)
        for _ in range(k):
            next(it)
        return s.state_dict()


def test_scheduler_address(cluster: Any, path: str) -> None:
    ref = _run(path, prefetch=0, max_iter=10)
    with _sampler(path, scheduler=cluster.scheduler_address, max_iter=10, batches_per_task=4) as s:
        own = s._dask.client
        assert own.status == "running" and repr(s).endswith(f"scheduler={cluster.scheduler_address!r}>")
        got = list(s)
    _same(got, ref)
    assert own.status == "closed"  # the client it connected is closed with it; the cluster lives on
    assert cluster.status.name == "running"


def test_bounded_in_flight_and_graph_carries_only_path_and_plan(client: Any, path: str) -> None:
    from zarrmux import distributed as zd

    with _sampler(path, scheduler=client, max_iter=30, batches_per_task=2, prefetch=3) as s:
        assert s._spec == zd.CorpusSpec(path, None, s.corpus.cache_bytes, None, "auto", None, False)
        seen = 0
        for _ in s:
            stream = s._stream
            assert len(stream.futures()) <= 3
            for group, _f in stream.pending:
                assert 1 <= len(group) <= 2
            seen += 1
        assert seen == 30
    # workers opened the corpus themselves, once per process: the same object serves later samplers
    spec = s._spec
    ids = client.run(lambda: id(zd._CORPORA.get(spec)))
    assert any(v != id(None) for v in ids.values())
    _run(path, scheduler=client, max_iter=12, batches_per_task=1)
    ids2 = client.run(lambda: id(zd._CORPORA.get(spec)))
    assert all(ids2[w] == ids[w] for w in ids if ids[w] != id(None))
    # the task is a pure function of (path spec, plan slice): run it here, compare
    with _sampler(path, prefetch=0, max_iter=2) as ref:
        slices = list(ref.windows())
        want = list(ref)
    assert all(e.dtype == np.int64 and st.dtype == np.int64 for e, st in slices)
    _same(zd.read_task(zd.corpus_spec(ref.corpus), N, ("X", "Y"), slices), want)


def test_store_object_corpus_is_refused(client: Any, path: str) -> None:
    from zarr.storage import LocalStore

    from zarrmux import open_corpus

    c = open_corpus(LocalStore(path, read_only=True))
    with pytest.raises(PescadorError, match="path or URL"):
        WindowSampler(c, N, batch_size=4, n_active=2, scheduler=client)


def test_close_cancels_tasks_in_flight(client: Any, path: str) -> None:
    s = _sampler(path, scheduler=client, max_iter=200, batches_per_task=1, prefetch=6)
    it = iter(s)
    next(it)
    futs = s._stream.futures()
    assert len(futs) == 6
    s.close()
    assert all(f.status == "cancelled" for f in futs), [f.status for f in futs]
    assert _wait_no_tasks(client) == []
    assert client.status == "running"  # a client passed in is left open
    with pytest.raises(PescadorError, match="closed"):
        iter(s)


def test_task_error_reaches_the_consumer(client: Any, path: str, tmp_path: Path) -> None:
    import shutil

    bad = str(tmp_path / "bad.zarr")
    shutil.copytree(path, bad)
    with _sampler(bad, scheduler=client, max_iter=5) as s:
        shutil.rmtree(bad)  # the workers cannot open it
        with pytest.raises(Exception, match="bad.zarr"):
            list(s)
    assert _wait_no_tasks(client) == []


def test_unreachable_scheduler_fails_within_timeout(path: str) -> None:
    from zarrmux.distributed import SchedulerError

    with socket.socket() as sock:  # a free loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    addr = f"tcp://127.0.0.1:{port}"
    t0 = time.monotonic()
    with pytest.raises(SchedulerError, match=f"cannot reach the Dask scheduler at '{addr}' within 2 s"):
        _sampler(path, scheduler=addr, connect_timeout=2)
    assert time.monotonic() - t0 < 15  # bounded by the timeout, not hanging
    with pytest.raises(ValueError, match="scheduler=42"):
        _sampler(path, scheduler=42)


def test_local_cluster_started_and_closed(path: str) -> None:
    ref = _run(path, prefetch=0, max_iter=6)
    with _sampler(path, scheduler="local", max_iter=6) as s:
        conn = s._dask
        assert conn.cluster is not None
        assert conn.client.scheduler.address.startswith("tcp://127.0.0.1:")
        got = list(s)
    _same(got, ref)
    assert conn.client.status == "closed" and conn.cluster.status.name == "closed"


def test_no_dask_import_without_scheduler_and_install_hint(path: str) -> None:
    code = f"""
import sys, warnings
warnings.simplefilter('ignore')
import zarrmux
s = zarrmux.WindowSampler({path!r}, 16, batch_size=4, n_active=2, seed=1, max_iter=3)
assert len(list(s)) == 3
assert 'dask' not in sys.modules and 'distributed' not in sys.modules, 'dask imported'
sys.modules['distributed'] = None  # as if not installed
try:
    zarrmux.WindowSampler({path!r}, 16, batch_size=4, n_active=2, scheduler='local')
except ImportError as exc:
    print('ERR', exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERR" in out.stdout and "pip install 'zarrmux[dask]'" in out.stdout


# ---------------------------------------------------------------------------- conversion
def _corpus_arrays(p: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    from zarrmux import open_corpus

    with open_corpus(str(p)) as c:
        data = {f"{name}/{k}": c[name][k][:] for name in c.names for k in c.keys}
        return c.names, data


def test_convert_on_the_cluster_equals_local(cluster: Any, client: Any, tmp_path: Path) -> None:
    from zarrmux import convert
    from zarrmux._cli import main
    from zarrmux.testing import make_npz_archives

    src = tmp_path / "src"
    make_npz_archives(src, 5, min_rows=300, max_rows=700, features=8)
    opts = dict(chunk_rows=128, shard_rows=512, unit_rows=512)
    convert([src], tmp_path / "local.zarr", workers=1, **opts)
    r = convert([src], tmp_path / "dask.zarr", scheduler=client, **opts)
    assert r.units > 2
    code = main(["convert", str(src), "-o", str(tmp_path / "cli.zarr"), "--scheduler", cluster.scheduler_address, "-q",
                 "--chunk-rows", "128", "--shard-rows", "512"])
    assert code == 0
    names, want = _corpus_arrays(tmp_path / "local.zarr")
    for other in ("dask.zarr", "cli.zarr"):
        n2, got = _corpus_arrays(tmp_path / other)
        assert n2 == names and got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{other} {k}")


# ---------------------------------------------------------------------------- faults (last: restarts a worker)
def test_worker_killed_mid_run_loses_no_batch(cluster: Any, client: Any, path: str) -> None:
    ref = _run(path, prefetch=0, max_iter=60)
    pids = client.run(os.getpid)
    assert len(pids) == 2
    victim_addr, victim = sorted(pids.items())[0]
    got = []
    with _sampler(path, scheduler=client, max_iter=60, batches_per_task=2, prefetch=4) as s:
        for b in s:
            got.append(b)
            if len(got) == 3:
                os.kill(victim, signal.SIGKILL)
                deadline = time.monotonic() + 20
                while victim_addr in client.scheduler_info()["workers"] and time.monotonic() < deadline:
                    time.sleep(0.02)  # let the scheduler notice, while tasks are in flight
                assert victim_addr not in client.scheduler_info()["workers"]
    _same(got, ref)
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it
    assert victim not in client.run(os.getpid).values()


@pytest.mark.parametrize("backend", ["obstore", "fsspec"])
def test_workers_read_a_url_with_the_trainers_backend(client: Any, path: str, backend: str) -> None:
    """Over HTTP (the delay server in its own process), Dask workers reopen the URL with the same reader."""
    from zarrmux.corpus import open_corpus

    root = Path(path).parent
    server = subprocess.Popen([sys.executable, "-m", "zarrmux.testing", str(root), "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/{Path(path).name}"
        ref = _run(path, prefetch=0, max_iter=6)
        corpus = open_corpus(url, backend=backend)
        got = _run(corpus, scheduler=client, max_iter=6, batches_per_task=2)  # type: ignore[arg-type]
        _same(got, ref)

        def worker_store_types() -> list[str]:
            from zarrmux import distributed as zd

            return [type(c._root.store).__name__ for c in zd._CORPORA.values() if c.path == url]

        seen = {t for ts in client.run(worker_store_types).values() for t in ts}
        assert seen == {"ObjectStore" if backend == "obstore" else "FsspecStore"}
        corpus.close()
    finally:
        server.terminate()
        server.wait()


def test_dask_workers_read_a_corpus_view(tmp_path) -> None:
    """A split's view travels to the workers as its entries (a CorpusSpec), not as the whole corpus."""
    import zarrmux
    from zarrmux import distributed as zd
    from zarrmux.testing import make_npz_archives

    zarrmux.convert(make_npz_archives(tmp_path / "a", 8, min_rows=80, max_rows=120, features=3, seed=4), tmp_path / "c.zarr")
    with zarrmux.open_corpus(tmp_path / "c.zarr") as c:
        view = c.split({"a": 0.5, "b": 0.5}, seed=1)["b"]
        spec = zd.corpus_spec(view)
        assert spec.entries == tuple(view.names) and hash(spec) == hash(zd.corpus_spec(view))
        kw = dict(batch_size=3, n_active=2, seed=0, max_iter=6)
        with zarrmux.WindowSampler(view, 8, **kw) as local:
            want = list(local)
        with zarrmux.WindowSampler(view, 8, scheduler="local", **kw) as dask_sampler:
            got = list(dask_sampler)
    _same(got, want)
