"""One writer at a time per corpus: an OS-level lock beside a local destination.

Every writer of a corpus (:func:`zarrmux.convert`: a new corpus, an append,
``overwrite=True``) holds the *writer lock* of its destination for the whole
run.  Readers (:func:`zarrmux.open_corpus`, ``zarrmux info`` / ``verify``)
never take it and are never blocked: the commit protocol of
:mod:`zarrmux.layout` keeps the store valid for them at every moment.

The lock
--------
* It is an exclusive :func:`fcntl.flock` on the file ``<dest>.zarrmux-lock``
  beside the store (``dest`` resolved with :func:`os.path.realpath`, so two
  spellings of one path, or a symlink, share one lock).  Beside, not inside:
  creating a corpus replaces the store directory, which must not drop the lock.
* The file records who holds it (JSON: ``host``, ``pid``, the process start
  time ``started`` and ``since``, the time the lock was taken); a refused
  writer's message names them.  The file is removed when the lock is released.
* The kernel releases an ``flock`` when every descriptor of it is closed, so
  a lock left by a process that died (``kill -9``, power loss of the process)
  is free at once: the next writer takes it over and completes the run.
  Worker processes of a conversion share the coordinator's lock (the
  descriptor is passed to them), so a writer whose coordinator was killed
  holds the lock until its last worker has exited too (they exit within a
  fraction of a second: :mod:`zarrmux.unit_runners`); a new
  writer can never overlap an orphaned one.
* The recorded ``pid`` is only used in messages; liveness is checked against
  its start time, so a reused pid is not mistaken for the holder.
* With a Dask scheduler (``convert(scheduler=...)``) only the coordinator
  holds the lock: a task already running on a Dask worker when the
  coordinator is killed finishes its unit (it writes the shards the plan gave
  it, the same bytes a rerun writes there for the same sources).

A ``file://`` URL is locked as its path.  Remote destinations (``s3://``,
``gs://``, ``memory://``, ... URLs) cannot be locked this way: they are
written without a lock (a :class:`RuntimeWarning` says so) and running one
writer at a time is up to the user.  The same holds for a local
file system that does not support ``flock`` (some network file systems).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from .exceptions import CorpusError

__all__ = ["WriterLock", "DestinationBusyError", "StoreIOError", "InheritedFd", "lock_path", "describe_holder"]

#: suffix of the lock file beside a local destination
LOCK_SUFFIX = ".zarrmux-lock"
#: seconds between attempts while waiting for a held lock
POLL_SECONDS = 0.1


class DestinationBusyError(CorpusError):
    """Another writer holds the destination's writer lock (exit code 7 on the command line)."""


class StoreIOError(CorpusError):
    """The corpus cannot be written: out of space, file size limit, I/O error (exit code 8).

    The store stays valid (every entry committed or absent); rerun to resume.
    """


def lock_path(dest: str) -> str:
    """The lock file of the local destination ``dest``: ``realpath(dest) + '.zarrmux-lock'``."""
    return os.path.realpath(dest).rstrip(os.sep) + LOCK_SUFFIX


def _process_start(pid: int) -> float | None:
    """Start time (seconds since the epoch) of process ``pid``; ``None`` if there is none."""
    try:
        import psutil

        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(p.create_time())
    except Exception:  # noqa: BLE001 - no such process, no permission, no psutil
        return None


def _alive(pid: int, started: float | None) -> bool | None:
    """Whether ``pid`` still runs as the process that started at ``started`` (``None``: unknown)."""
    now = _process_start(pid)
    if now is None:
        return False
    if started is None:
        return None
    return abs(now - started) < 1.0  # a reused pid started later


def describe_holder(path: str) -> str:
    """A sentence naming who holds the lock file ``path`` (host, pid, since when), for messages."""
    try:
        with open(path, encoding="utf-8") as f:
            info = json.loads(f.read() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return f"held by another process (its lock file {path} does not say which)"
    host, pid = info.get("host", "?"), info.get("pid", "?")
    since = info.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    ago = f", {time.time() - since:.0f} s ago" if isinstance(since, (int, float)) else ""
    s = f"held by pid {pid} on host {host} since {when}{ago}"
    if info.get("command"):
        s += f" ({info['command']})"
    if host == socket.gethostname() and isinstance(pid, int):
        state = _alive(pid, info.get("started"))
        if state is False:
            s += "; that process is gone, a process it started still holds the lock and will exit shortly"
    return s


class WriterLock:
    """The writer lock of a corpus destination (a context manager).

    Parameters
    ----------
    dest : str
        The destination: a local path, or a URL (not locked, see the module docstring).
    wait : bool or float >= 0
        ``False`` (default): refuse at once if another writer holds the lock.
        ``True``: wait as long as it takes.  A number: wait at most that many
        seconds.
    notify : callable, optional
        Called once with a message (who holds the lock) when a wait begins.

    Raises
    ------
    DestinationBusyError
        The lock is held by another writer (and ``wait`` ran out); the message
        names the destination, the lock file and the holder (host, pid, since when).
    CorpusError
        The lock file cannot be created (e.g. the parent directory is read-only).
    """

    def __init__(self, dest: str, *, wait: bool | float = False, notify: Callable[[str], None] | None = None) -> None:
        if isinstance(wait, bool):
            self.timeout: float | None = None if wait else 0.0
        else:
            if not isinstance(wait, (int, float)) or wait != wait or wait < 0:
                raise ValueError(f"wait={wait!r} must be True, False or a number of seconds >= 0")
            self.timeout = float(wait)
        self.dest = dest
        self.notify = notify
        local = dest[len("file://"):] if dest.startswith("file://") else None if "://" in dest else dest
        self.path: str | None = None if local is None else lock_path(local)
        self.fd: int | None = None

    # ------------------------------------------------------------ acquire / release

    def acquire(self) -> "WriterLock":
        if self.path is None:
            warnings.warn(
                f"{self.dest}: remote destinations are written without a writer lock; run one writer at a time",
                RuntimeWarning,
                stacklevel=3,
            )
            return self
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        notified = False
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    warnings.warn(
                        f"{self.dest}: the file system does not support flock ({exc.strerror}); "
                        "writing without a writer lock, run one writer at a time",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    self.path = None
                    return self
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise CorpusError(f"{self.dest}: cannot lock {self.path}: {exc.strerror or exc}") from None
                holder = describe_holder(self.path)
                if deadline is not None and time.monotonic() >= deadline:
                    waited = f" (waited {self.timeout:g} s)" if self.timeout else ""
                    raise DestinationBusyError(
                        f"{self.dest} is being written by another zarrmux convert: {holder}{waited}. "
                        f"One writer at a time: wait for it (--wait / wait=True) or stop it; "
                        f"lock file {self.path}"
                    ) from None
                if not notified and self.notify is not None:
                    self.notify(f"waiting for {self.dest}: {holder}")
                notified = True
                time.sleep(POLL_SECONDS)
                continue
            # the previous holder may have removed the file between our open and flock
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            self.fd = fd
            self._record()
            return self

    def _open(self) -> int:
        assert self.path is not None
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except PermissionError:
            try:  # another user's lock file: flock works on a read-only descriptor too
                return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise CorpusError(f"{self.dest}: cannot open its writer lock file {self.path}: {exc.strerror or exc}") from None
        except OSError as exc:
            raise CorpusError(f"{self.dest}: cannot create its writer lock file {self.path}: {exc.strerror or exc}") from None

    def _record(self) -> None:
        assert self.fd is not None
        info: dict[str, Any] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": _process_start(os.getpid()),
            "since": time.time(),
            "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200],
        }
        data = json.dumps(info).encode()
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, data, 0)
        except OSError:  # a full disk: the lock holds all the same, only the message is poorer
            pass

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:  # unlink while holding it: a waiter that opened the old file retries (inode check)
            if self.path is not None:
                os.unlink(self.path)
        except OSError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # ------------------------------------------------------------ sharing with workers

    def share(self) -> "InheritedFd | None":
        """A picklable handle that gives a process started by ``multiprocessing`` this lock's descriptor.

        Pickled while the process is spawned (``initargs`` of a pool), it passes
        a duplicate of the descriptor: the lock stays held until the
        coordinator *and* every such process have exited.
        """
        return None if self.fd is None else InheritedFd(self.fd)


class InheritedFd:
    """A file descriptor passed to a process ``multiprocessing`` starts (pickled in its ``initargs``)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, ...]:
        from multiprocessing import reduction

        return (_rebuild_inherited, (reduction.DupFd(self.fd),))


def _rebuild_inherited(dupfd: Any) -> InheritedFd:
    return InheritedFd(dupfd.detach())
