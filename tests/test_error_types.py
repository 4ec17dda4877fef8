"""Errors keep their type across pickling: Dask (``scheduler='local'``) and processes (``Prefetcher``).

Dask pickles an exception together with its ``__cause__``/``__context__``
chain (tblib, installed when ``distributed`` is imported); an exception that
fails to round-trip reaches the client as a bare ``Exception``.
"""

from __future__ import annotations

import io
import pickle
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import tblib.pickling_support

from zarrmux.array_reader import ChunkFault
from zarrmux.corpus import UnknownKeyError, open_corpus
from zarrmux.exceptions import ConversionError, CorpusError, DataError, PescadorError, SchedulerError
from zarrmux.prefetch import Prefetcher
from zarrmux.sampler import WindowSampler
from zarrmux.testing import make_entry, write_corpus


class EntryDataError(DataError):
    """A subclass with a constructor of its own and an attribute that does not pickle."""

    def __init__(self, entry: str, key: str) -> None:
        super().__init__(f"entry {entry!r}, key {key!r} is bad")
        self.entry = entry
        self.key = key
        self.lock = threading.Lock()


def _round_trip(exc: BaseException, tblib_chain: bool) -> BaseException:
    """``exc`` pickled and unpickled: plainly (as a process does), or with its chain (as Dask does)."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf)
    if tblib_chain:  # what distributed does for every error it sends (a global copyreg registration)
        tblib.pickling_support.install(exc)
    else:  # plain pickle, whatever an earlier test registered
        pickler.dispatch_table = {}
    pickler.dump(exc)
    return pickle.loads(buf.getvalue())


@pytest.mark.parametrize("tblib_chain", [False, True])
def test_every_zarrmux_exception_round_trips_as_its_type(tblib_chain: bool) -> None:
    for exc in [
        PescadorError("p"),
        DataError("d"),
        CorpusError("c", 2),
        ConversionError("x"),
        SchedulerError("s"),
        UnknownKeyError("key 'Q' is not in corpus"),
        EntryDataError("song1", "X"),
    ]:
        got = _round_trip(exc, tblib_chain)
        assert type(got) is type(exc) and got.args == exc.args and str(got) == str(exc)
    got = _round_trip(EntryDataError("song1", "X"), tblib_chain)
    assert (got.entry, got.key) == ("song1", "X") and not hasattr(got, "lock")  # type: ignore[attr-defined]


def _corrupt_corpus(path: Path) -> dict:
    """A corpus whose every stored inner chunk of X fails its crc32c."""
    truth = {f"s{i}": make_entry(128, 4, seed=i) for i in range(2)}
    write_corpus(path, truth, chunk_rows=16, shard_rows=64)
    for f in sorted((path / "X" / "c").glob("*/0")):
        data = bytearray(f.read_bytes())
        index = np.frombuffer(bytes(data[-(16 * 4 + 4) : -4]), dtype="<u8").reshape(4, 2)
        for off, nb in index.tolist():
            data[off + nb // 2] ^= 0xFF
        f.write_bytes(bytes(data))
    return truth


@pytest.mark.parametrize("tblib_chain", [False, True])
def test_a_read_error_pickles_with_its_cause(tmp_path: Path, tblib_chain: bool) -> None:
    _corrupt_corpus(tmp_path / "c.zarr")
    c = open_corpus(tmp_path / "c.zarr")
    with pytest.raises(DataError) as err:
        c.read_windows([1], [20], 16)
    assert isinstance(err.value.__cause__, ChunkFault)  # holds the reader: locks, mappings
    got = _round_trip(err.value, tblib_chain)
    assert type(got) is DataError and str(got) == str(err.value)
    assert "entry 's1', key 'X', chunk X/c/" in str(got)
    if tblib_chain:
        cause = got.__cause__
        assert isinstance(cause, ChunkFault) and cause.reader is None
        assert cause.where == err.value.__cause__.where and cause.chunks == err.value.__cause__.chunks


def test_a_corrupt_chunk_read_through_a_local_dask_cluster_is_a_data_error(tmp_path: Path) -> None:
    _corrupt_corpus(tmp_path / "c.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # distributed's own warnings
        with WindowSampler(str(tmp_path / "c.zarr"), 16, batch_size=4, n_active=2, rate=4, seed=0, max_iter=4, scheduler="local") as s:
            with pytest.raises(DataError, match=r"corrupt data in corpus .*: entr(y|ies) .*key 'X', chunk X/c/\d+/0 .*crc32c mismatch"):
                list(s)


def test_a_data_error_in_a_prefetcher_process_arrives_as_a_data_error(tmp_path: Path) -> None:
    _corrupt_corpus(tmp_path / "c.zarr")
    c = open_corpus(tmp_path / "c.zarr")
    streamer = c.streamers(16, random_state=0)[0]
    with pytest.raises(DataError, match=r"corrupt data in corpus .*entry 's0', key 'X'"):
        list(Prefetcher(streamer, method="process").iterate(max_iter=4))
