"""The rule a *complete* sharded array's shards obey: :func:`required_chunks`, :func:`index_problem`.

:func:`zarrmux.convert` stores every inner chunk of every entry's rows: shard
``s`` holds the inner chunks ``0 .. ceil(rows[s] / chunk_rows)`` and nothing
else but its index.  A reader declared complete
(:meth:`zarrmux.array_reader.ArrayReader.require`) holds ``rows`` and checks
each shard index it reads against this rule, so that a shard misplaced,
cut short or padded is refused before any of it is read.  Pure numpy, no I/O.
"""

from __future__ import annotations

import numpy as np

from . import shard_format as fmt

__all__ = ["required_chunks", "index_problem"]


def required_chunks(rows: np.ndarray | None, shard: int, chunk_rows: int) -> int:
    """Inner chunks of ``shard`` that must be stored, given the rows entries occupy per shard (``None``: 0)."""
    if rows is None or not 0 <= shard < len(rows):
        return 0
    return -(-int(rows[shard]) // chunk_rows)


def index_problem(index: np.ndarray, need: int, first_row: int, rows: int, size: int | None, index_nbytes: int) -> tuple[str, bool] | None:
    """What is wrong with a complete array's shard index, as ``(message, missing)``; ``None``: nothing.

    Vectorised: the first ``need`` inner chunks are present, and, when the
    object's ``size`` is known, the present chunks fill the chunk data
    exactly (no bytes missing, none added).

    Parameters
    ----------
    index : numpy.ndarray of uint64, shape (chunks_per_shard, 2)
        The shard's offsets and lengths.
    need : int >= 0
        Inner chunks that must be present (:func:`required_chunks`).
    first_row, rows : int
        The shard's first row and the rows entries occupy from there (for the message).
    size : int or None
        The shard object's size, if known.
    index_nbytes : int > 0
        Stored bytes of the index.
    """
    present = index[:, 1] != fmt.EMPTY
    if not present[:need].all():
        absent = int(np.argmin(present[:need]))
        return (
            f"inner chunk {absent} is absent from the shard's index, yet entries' rows {first_row}:{first_row + rows} "
            f"need its chunks 0:{need} ({int(present.sum())} present): the shard is not the one zarrmux.convert "
            "wrote at this position (misplaced, swapped or damaged)",
            True,
        )
    if size is not None:
        data = size - index_nbytes
        held = int(index[present, 1].sum(dtype=np.uint64))
        if held != data:
            return (
                f"the shard object holds {data} bytes of chunk data, its index accounts for {held}: "
                "the shard is truncated, padded, or not the one its index describes",
                False,
            )
    return None
