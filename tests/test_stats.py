"""Loader statistics (zarrmux.stats): counting, sums, resets and the verdict."""

import json
import time

from zarrmux.stats import LoaderStats, StatsRecorder


def _batches(read, k, windows):
    for _ in range(k):
        yield read({"X": [0] * windows})


def test_recorder_counts_batches_windows_and_times():
    io = {"bytes_read": 100, "requests": 1, "chunk_hits": 5}
    rec = StatsRecorder(lambda: io)

    def read(batch):
        time.sleep(0.02)
        io["bytes_read"] += 1000
        io["requests"] += 2
        return batch

    got = 0
    for _batch in rec.delivered(_batches(rec.timed(read), 5, 7), lambda b: len(b["X"])):
        got += 1
        time.sleep(0.01)  # the consumer's work
    st = rec.snapshot()
    assert got == st.batches == 5 and st.windows == 35
    assert st.bytes_read == 5000 and st.requests == 10 and st.chunk_hits == 0  # growth since reset only
    # lower bounds only (sleep guarantees them): reads in the consumer's thread are waited for
    assert st.read_seconds >= 5 * 0.02 and st.wait_seconds >= 5 * 0.02
    assert st.consumer_seconds >= 4 * 0.01
    assert st.elapsed_seconds >= st.wait_seconds + st.consumer_seconds - 1e-6
    assert st.ready_ahead == 0  # nothing was queued: every batch was read on demand


def test_reset_starts_from_zero_and_keeps_storage_counters_relative():
    io = {"bytes_read": 0}
    rec = StatsRecorder(lambda: io)
    list(rec.delivered(_batches(lambda b: b, 3, 2), lambda b: len(b["X"])))
    io["bytes_read"] = 50
    assert rec.snapshot().batches == 3 and rec.snapshot().bytes_read == 50
    rec.reset()
    assert rec.snapshot() == LoaderStats()
    io["bytes_read"] = 80
    assert rec.snapshot().bytes_read == 30


def test_queue_depth_and_ready_ahead():
    rec = StatsRecorder()
    depth = iter([3, 2, 1, 0])  # the last ask finds the end
    list(rec.delivered(_batches(lambda b: b, 3, 1), lambda b: 1, depth=lambda: next(depth)))
    st = rec.snapshot()
    assert st.queue_depth_sum == 6 and st.queue_depth_mean == 2.0
    assert st.ready_ahead == 3  # queued and handed over at once


def test_sum_over_workers_and_json():
    a = LoaderStats(batches=2, windows=10, bytes_read=100, read_seconds=1.0, elapsed_seconds=2.0)
    b = LoaderStats(batches=3, windows=15, bytes_read=50, read_seconds=0.5, elapsed_seconds=3.0)
    s = a + b
    assert (s.batches, s.windows, s.bytes_read, s.read_seconds, s.elapsed_seconds) == (5, 25, 150, 1.5, 3.0)
    d = json.loads(json.dumps(s.as_dict()))
    assert d["windows_per_second"] == 25 / 3.0 and d["bound"] == s.bound()


def test_verdict_names_what_bounds_the_throughput():
    assert "consumer" in LoaderStats(batches=10, wait_seconds=0.01, consumer_seconds=5.0, elapsed_seconds=5.0).bound()
    remote = LoaderStats(batches=10, requests=40, read_seconds=1.0, wait_seconds=1.0, elapsed_seconds=1.0)
    assert remote.bound().startswith("storage latency") and "prefetch" in remote.bound()
    decode = LoaderStats(batches=10, chunk_hits=10, chunk_misses=90, read_seconds=0.01, wait_seconds=0.01, elapsed_seconds=0.01)
    assert decode.bound().startswith("decoding")
    cpu = LoaderStats(batches=10, read_seconds=0.01, wait_seconds=0.01, elapsed_seconds=0.01)
    assert cpu.bound().startswith("reading on this CPU")
    assert "bound by" in str(cpu)
