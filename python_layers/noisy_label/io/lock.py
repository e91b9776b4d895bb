"""One writer per experiment root and dataset: an exclusive `fcntl.flock` on a lock file.

    with lock.hold(paths.lock_file("digits", exp), "make train digits"):
        ...

A second run on the same root waits, saying for whom, or with NO_WAIT=1 in the environment
stops at once with an error naming the holder's PID. The lock is the kernel's: it goes with
the process that held it, a kill -9 included, so a stale lock file never blocks anyone. One
process may take the same lock again inside (make compare runs make lmdb and make train).
"""
import contextlib
import errno
import fcntl
import os
import sys
import time
from typing import Iterator

_held = {}   # lock file -> how many holds this process has on it


def no_wait() -> bool:
    """True when NO_WAIT is set to anything but "", "0" or "no": fail instead of waiting."""
    return os.environ.get("NO_WAIT", "").strip().lower() not in ("", "0", "no", "false")


@contextlib.contextmanager
def hold(path: str, what: str) -> Iterator[None]:
    """Hold the exclusive lock at `path` while the block runs; `what` (e.g. "make lmdb digits")
    is what a waiting run is told. OSError (EBUSY) naming the holder under NO_WAIT."""
    path = os.path.abspath(path)
    if path in _held:
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if no_wait():
                raise OSError(errno.EBUSY, "%s is in use by %s (NO_WAIT is set: not waiting)"
                              % (os.path.dirname(path), holder))
            sys.stderr.write("waiting for %s to finish with %s (NO_WAIT=1 stops instead)\n"
                             % (holder, os.path.dirname(path)))
            sys.stderr.flush()
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, ("pid %d (%s, since %s)\n" % (os.getpid(), what, time.strftime(
            "%Y-%m-%d %H:%M:%S"))).encode(), 0)
        _held[path] = 1
        try:
            yield
        finally:
            del _held[path]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)   # releases the lock


def _holder(fd: int) -> str:
    """Who holds the lock, as the holder wrote it ("pid N (make train digits, since ...)")."""
    text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    return text or "another process (it has not said which yet)"
