"""``ZMQStreamer``: pescador's background-process streamer, without ZeroMQ.

pescador 3.0's ``ZMQStreamer`` runs a streamer in a child process and sends
its items back over a ZeroMQ socket bound to a TCP port.  zarrmux keeps the
name and the signature, so ``import zarrmux as pescador`` code that uses
``pescador.ZMQStreamer`` runs unchanged, but the streamer runs through
:class:`~zarrmux.prefetch.Prefetcher` (``method='process'``): a spawned
child process and a multiprocessing queue.  No socket, no network port, no
pyzmq.  The port arguments are accepted and unused.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any

from . import core
from .exceptions import PescadorError
from .prefetch import Prefetcher

__all__ = ["ZMQStreamer"]


class ZMQStreamer(core.Streamer):
    """Run a streamer (or mux) in a background process and yield its items in order.

    pescador's signature; the work is done by
    :class:`~zarrmux.prefetch.Prefetcher` with ``method='process'``.  Each
    iteration starts a fresh child process that iterates ``streamer`` once.

    Parameters
    ----------
    streamer : Streamer or iterable
        What to run.  It must be picklable (it is sent to a process started
        with ``spawn``): its generator function defined at module level, and
        a script that runs it guarded by ``if __name__ == "__main__":``.
        pescador forks instead, which also runs closures.
    min_port : int
        Unused (pescador: lowest TCP port to bind).  No port is bound.
    max_port : int
        Unused (pescador: highest TCP port to bind).
    max_tries : int
        Unused (pescador: attempts to bind a port).
    copy : bool
        Unused (pescador: let ZeroMQ copy frames).  Items always arrive as
        new objects, arrays writable.
    timeout : float > 0 or None
        Seconds to wait for the child process to stop once the consumer is
        done (it stops at its next item) before terminating it; ``None``
        waits as long as it takes.
    depth : int > 0
        zarrmux only: items buffered ahead of the consumer.

    Raises
    ------
    PescadorError
        At construction, if ``streamer`` does not pickle, or for an invalid
        ``timeout`` or ``depth``.

    Notes
    -----
    Unlike pescador's, items need not be dicts of arrays: anything that
    pickles goes through, dicts keep their key order (pescador sorts the
    keys), and an exception raised by the streamer is re-raised in the
    consumer (pescador's stream just ends).  The items are the ones
    ``streamer(max_iter=max_iter)`` yields, in the same order.

    Examples
    --------
    pescador's pattern, unchanged (``my_generator`` defined at module level):

    >>> import zarrmux as pescador
    >>> S = pescador.Streamer(my_generator)
    >>> Z = pescador.ZMQStreamer(S)
    >>> for data in Z:
    ...     MY_FUNCTION(data)
    """

    def __init__(
        self,
        streamer: Any,
        min_port: int = 49152,
        max_port: int = 65535,
        max_tries: int = 100,
        copy: bool = False,
        timeout: float | None = 5,
        *,
        depth: int = 8,
    ) -> None:
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0
        ):
            raise PescadorError(f"timeout={timeout!r} must be a number > 0 or None")
        #: the background runner (checks that ``streamer`` pickles)
        self.prefetcher = Prefetcher(
            streamer, method="process", depth=depth, timeout=None if timeout is None else float(timeout)
        )
        super().__init__(self.prefetcher.source)
        self.min_port = min_port
        self.max_port = max_port
        self.max_tries = max_tries
        self.copy = copy
        self.timeout = timeout
        self.depth = depth

    def iterate(self, max_iter: float | None = None) -> Iterator[Any]:
        """Yield the items of ``streamer(max_iter=max_iter)``, computed in a child process.

        Parameters
        ----------
        max_iter : None or int > 0
            Maximum number of items; ``None`` exhausts the stream.

        Yields
        ------
        obj : the items of the wrapped streamer
        """
        yield from self.prefetcher.iterate(max_iter=max_iter)
