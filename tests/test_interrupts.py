"""A commit and the converter's record of it are not split by Ctrl-C (zarrmux.index_commit.interrupts_deferred)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from zarrmux.index_commit import interrupts_deferred


def test_ctrl_c_inside_the_block_is_raised_when_it_ends() -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.02)  # the signal has arrived: without deferral, KeyboardInterrupt is raised here
            steps.append("rest of the block")
        steps.append("after the block")
    assert steps == ["rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler from before is back


def test_no_signal_no_interrupt_and_other_handlers_are_restored() -> None:
    seen: list[int] = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        with interrupts_deferred():
            pass
        assert seen == []
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.02)
            assert seen == []  # held while the block runs
        assert seen == [signal.SIGINT]  # then given to the handler in place before, once
    finally:
        signal.signal(signal.SIGINT, before)


def test_outside_the_main_thread_the_block_just_runs() -> None:
    out: list[object] = []

    def run() -> None:
        with interrupts_deferred():
            out.append(signal.getsignal(signal.SIGINT))

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert out == [signal.default_int_handler]
