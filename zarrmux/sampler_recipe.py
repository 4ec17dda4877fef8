"""How each reading process of a :class:`zarrmux.torch.WindowDataset` makes its own sampler: :class:`SamplerRecipe`.

A dataset is pickled to (or forked into) DataLoader workers, and each worker
opens the corpus itself: nothing open is inherited.  So the dataset keeps a
recipe: the corpus reduced to its path (and, for a view such as
``Corpus.split``, its entry names and storage options), the
:class:`~zarrmux.WindowSampler` options that make the plan, and those that
make the reading.  No torch here.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

__all__ = ["SamplerRecipe", "PLAN_OPTIONS", "READ_OPTIONS", "WORKER_PREFETCH"]

#: WindowSampler options that make the plan
PLAN_OPTIONS = ("batch_size", "n_active", "rate", "weights", "mode", "dist", "hop", "drop_last")
#: WindowSampler options that make the reading
READ_OPTIONS = ("keys", "prefetch", "threads", "cache_bytes")
#: read-ahead of the sampler inside a DataLoader worker (the DataLoader already prefetches across workers)
WORKER_PREFETCH = 1


class SamplerRecipe:
    """What a process needs to open the corpus and make a :class:`~zarrmux.WindowSampler` of it.

    Parameters
    ----------
    path_or_url : str or os.PathLike or zarrmux.Corpus
        The corpus (a :class:`~zarrmux.Corpus` is reduced to its path and options).
    options : dict
        :data:`PLAN_OPTIONS` and :data:`READ_OPTIONS` given (a read option
        left out takes the sampler's default, or the worker's).
    storage_options : dict, optional
        For fsspec URLs.
    """

    def __init__(self, path_or_url: Any, options: dict[str, Any], storage_options: dict[str, Any] | None) -> None:
        options = dict(options)
        entries = None
        if hasattr(path_or_url, "read_windows") and hasattr(path_or_url, "__getstate__"):
            st = path_or_url.__getstate__()  # a Corpus: keep how to reopen it, not the handle
            path_or_url = st["target"]
            entries = st.get("entries")  # a view (Corpus.split / select): the same entries
            options.setdefault("keys", st["keys"])
            options.setdefault("cache_bytes", st["cache_bytes"])
            storage_options = storage_options or st["storage_options"]
        if isinstance(path_or_url, os.PathLike):
            path_or_url = os.fspath(path_or_url)
        if isinstance(options.get("keys"), str):
            options["keys"] = (options["keys"],)
        self.path = path_or_url
        #: the entry names of a corpus view, or None for every entry
        self.entries: tuple[str, ...] | None = entries
        self.storage_options = dict(storage_options) if storage_options else None
        self.plan_opts = {k: options[k] for k in PLAN_OPTIONS if k in options}
        self.read_opts = {k: options[k] for k in READ_OPTIONS if k in options}

    def rows_and_keys(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """The entries' row counts and the keys read: the corpus is opened for its metadata only, and closed."""
        from .corpus import open_corpus

        corpus = open_corpus(self.path, keys=self.read_opts.get("keys"), storage_options=self.storage_options, entries=self.entries)
        try:
            return np.asarray(corpus.rows, dtype=np.int64).copy(), tuple(self.read_opts.get("keys") or corpus.keys)
        finally:
            corpus.close()

    def sampler(self, n: int, in_worker: bool, **position: Any) -> Any:
        """A new :class:`~zarrmux.WindowSampler` of windows of ``n`` rows (``position``: seed, rank, ... as it takes them)."""
        from .sampler import WindowSampler

        read = dict(self.read_opts)
        if in_worker:
            read.setdefault("prefetch", WORKER_PREFETCH)
        target: Any = self.path
        opened = bool(self.storage_options) or self.entries is not None
        if opened:
            from .corpus import open_corpus

            target = open_corpus(self.path, keys=read.get("keys"), cache_bytes=read.get("cache_bytes"),
                                 storage_options=self.storage_options, entries=self.entries)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            s = WindowSampler(target, n, close_corpus=opened, **position, **self.plan_opts, **read)
        return s
