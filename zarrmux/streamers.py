"""Window streamers, pescador style: one :class:`~zarrmux.Streamer` per corpus entry.

The seed's recipe::

    streams = [pescador.Streamer(sample_npz, f, 16) for f in npz_files]
    mux = pescador.StochasticMux(streams, n_active=32, rate=16)

becomes::

    corpus = zarrmux.open_corpus("corpus.zarr")
    streams = zarrmux.streamers.streamers(corpus, 16)      # or corpus.streamers(16)
    mux = zarrmux.StochasticMux(streams, n_active=32, rate=16)
    for batch in zarrmux.buffer_stream(mux, 32): ...

Each window's start is drawn uniformly from **every** valid position
``0 .. rows - n`` inclusive (the seed's ``np.random.randint(n_total - n)``
never picks the last one).  A streamer holds no data: its generator reads
each window through :meth:`Corpus.read_windows` (exact windows of
uncompressed keys, the corpus's byte-bounded chunk arenas for compressed
ones), so nothing is loaded
when it is activated and nothing is left when it is deactivated.
"""

from __future__ import annotations

import copy
import numbers
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .core import Streamer
from .exceptions import PescadorError
from .util import RandomLike, get_rng, is_legacy_rng

if TYPE_CHECKING:  # the streaming core imports no zarr at run time
    from .corpus import Corpus, Entry

__all__ = ["window_streamer", "streamers", "WindowStreamer", "DEFAULT_READAHEAD"]

#: windows read per ``read_windows`` call by a window streamer
DEFAULT_READAHEAD = 8


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
        raise PescadorError(f"n={n!r} must be an integer > 0")
    return int(n)


def _windows(
    corpus: "Corpus", position: int, rows: int, n: int, keys: tuple[str, ...] | None, rng: Any, readahead: int = 1
) -> Iterator[dict[str, np.ndarray]]:
    """The generator behind a window streamer: endless windows of one entry, read ``readahead`` at a time."""
    span = rows - n + 1
    legacy = is_legacy_rng(rng)
    read = corpus.read_windows
    ent = np.full(readahead, position, dtype=np.int64)
    while True:
        st = rng.randint(0, span, size=readahead) if legacy else rng.integers(0, span, size=readahead)
        out = read(ent, st, n, keys)
        items = list(out.items())
        for b in range(readahead):
            yield {k: v[b] for k, v in items}
        del out, items


class WindowStreamer(Streamer):
    """The :class:`Streamer` of :func:`window_streamer`.

    Activation copies share the corpus (and its cache) and the random
    generator instead of deep-copying them, so activations are cheap and
    successive activations continue the generator's sequence.
    """

    def __init__(self, entry: "Entry", n: int, keys: tuple[str, ...] | None, rng: Any, readahead: int = 1) -> None:
        self.entry = entry
        super().__init__(_windows, entry.corpus, entry.position, int(entry.rows), n, keys, rng, readahead)

    def __deepcopy__(self, memo: dict[int, Any]) -> "WindowStreamer":
        result = copy.copy(self)
        memo[id(self)] = result
        return result


def window_streamer(
    entry: Any,
    n: int,
    *,
    keys: Sequence[str] | str | None = None,
    random_state: RandomLike = None,
    readahead: int = DEFAULT_READAHEAD,
) -> WindowStreamer:
    """A streamer of contiguous ``n``-row windows of one entry: ``{key: array (n, ...)}``.

    Parameters
    ----------
    entry : zarrmux.Entry
        The entry (``corpus[i]`` or ``corpus['name']``).
    n : int > 0
        Rows per window; ``n <= entry.rows``.
    keys : sequence of str, optional
        Keys to read (default: the corpus's keys).
    random_state : None, int, np.random.RandomState or np.random.Generator
        Source of window starts.  ``None`` uses the global ``np.random`` (as the
        seed's recipe does); an int seeds a private ``np.random.Generator``.
        The generator is shared by all activations of the streamer.
    readahead : int > 0
        Windows drawn and read together in one :meth:`Corpus.read_windows`
        call (a call costs much more than a window).  An active streamer holds
        at most ``readahead`` windows; a deactivated one may have read up to
        ``readahead - 1`` windows it never yields.  ``1`` reads each window
        when it is pulled.

    Returns
    -------
    WindowStreamer
        Each item is a window whose start is uniform over ``0 .. rows - n``
        (inclusive); windows never cross into another entry.

    Raises
    ------
    PescadorError
        If ``n`` is not an integer > 0 or the entry has fewer than ``n`` rows.
    UnknownKeyError
        If a key is not in the corpus (a ``KeyError``).
    """
    n = _check_n(n)
    sel = entry.corpus.check_keys(keys)
    if entry.rows < n:
        raise PescadorError(f"entry {entry.name!r} has {entry.rows} rows, fewer than n={n}")
    if isinstance(readahead, bool) or not isinstance(readahead, numbers.Integral) or readahead < 1:
        raise PescadorError(f"readahead={readahead!r} must be an integer >= 1")
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        rng: Any = np.random.default_rng(int(random_state))
    else:
        rng = get_rng(random_state)
    return WindowStreamer(entry, n, sel, rng, int(readahead))


def streamers(corpus: "Corpus", n: int, **kwargs: Any) -> list[WindowStreamer]:
    """One :func:`window_streamer` per entry with at least ``n`` rows (what ``corpus.streamers(n)`` should return).

    Entries shorter than ``n`` are skipped with one warning that counts them.
    An int ``random_state`` gives each entry its own generator, seeded from
    ``(random_state, position)``.

    Raises
    ------
    PescadorError
        If ``n`` is not an integer > 0 or no entry has ``n`` rows.
    """
    n = _check_n(n)
    rows = np.asarray(corpus.rows)
    ok = np.flatnonzero(rows >= n)
    if len(ok) == 0:
        raise PescadorError(f"n={n} is longer than every entry of corpus {corpus.path!r} (the longest has {int(rows.max()) if len(rows) else 0} rows)")
    if len(ok) < len(rows):
        warnings.warn(
            f"{len(rows) - len(ok)} of {len(rows)} entries have fewer than n={n} rows and are skipped",
            UserWarning,
            stacklevel=2,
        )
    rs = kwargs.pop("random_state", None)
    out = []
    for i in ok.tolist():
        r = np.random.default_rng([int(rs), i]) if isinstance(rs, numbers.Integral) and not isinstance(rs, bool) else rs
        out.append(window_streamer(corpus[i], n, random_state=r, **kwargs))
    return out
