"""zarrmux.core_pool: a batch's jobs shared between the caller's thread and helper threads."""

from __future__ import annotations

import os
import threading
import time

import pytest

from zarrmux import core_pool


def test_every_job_runs_once_and_helpers_take_a_share() -> None:
    seen: list[int] = []
    threads: set[str] = set()
    lock = threading.Lock()

    def job(i: int) -> None:
        time.sleep(0.001)
        with lock:
            seen.append(i)
            threads.add(threading.current_thread().name)

    core_pool.run_shared(job, list(range(40)))
    assert sorted(seen) == list(range(40))
    if core_pool.spare_cores():
        assert any(name.startswith("zarrmux-core") for name in threads)
        assert threading.current_thread().name in threads


def test_few_jobs_run_in_the_callers_thread() -> None:
    threads: list[str] = []
    core_pool.run_shared(lambda i: threads.append(threading.current_thread().name), list(range(core_pool.MIN_SHARED - 1)))
    assert threads == [threading.current_thread().name] * (core_pool.MIN_SHARED - 1)


def test_an_error_is_raised_only_after_every_share_finished() -> None:
    finished: list[int] = []

    def job(i: int) -> None:
        if i == 0:  # the first job goes to a helper when there is one
            raise KeyError("bad job 0")
        time.sleep(0.002)
        finished.append(i)

    with pytest.raises(KeyError, match="bad job 0"):
        core_pool.run_shared(job, list(range(32)))
    done = len(finished)
    time.sleep(0.05)
    assert len(finished) == done  # nothing ran after run_shared returned
    # the caller's own share ran to completion
    assert set(range(32 - 32 // (core_pool.spare_cores() + 1), 32)) <= set(finished)


def test_a_forked_child_starts_its_own_helpers() -> None:
    core_pool.run_shared(lambda i: None, list(range(16)))  # helpers started in the parent
    pid = os.fork()
    if pid == 0:  # the child: the parent's helper threads do not exist here
        try:
            out: list[int] = []
            lock = threading.Lock()

            def job(i: int) -> None:
                with lock:
                    out.append(i)

            core_pool.run_shared(job, list(range(16)))
            os._exit(0 if sorted(out) == list(range(16)) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
