"""The one way files are written: under a temporary name in the same directory, renamed to
the final name only when whole, removed on any failure (Ctrl-C included). An interrupted
run never leaves a file that looks complete. (LMDBs, directories, use `<path>.tmp` the same
way: io.lmdb_io.LmdbWriter.)"""
import contextlib
import errno
import os
import tempfile
from typing import Iterator, Optional


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary file name beside `path` to write; rename it to `path` on success.

    The file gets the permissions open() would give it (the umask's), not mkstemp's 0600.
    """
    if os.path.isdir(path):
        raise IOError("cannot write %s: it is a directory" % path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if getattr(e, "errno", None) == errno.ENOSPC:
            raise no_space(path) from None   # name the file, not its temporary name
        raise


def write_bytes(path: str, data: bytes) -> None:
    """Write bytes to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path: str, text: str) -> None:
    """Write text (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def no_space(path: str, needed: Optional[int] = None, free: Optional[int] = None) -> OSError:
    """The one "no space left on device" error: names the file and, when known, the size."""
    text = "no space left on device: %s" % path
    if needed is not None:
        text += " (needs about %s MB" % _mb(needed) + (", %s MB free)" % _mb(free)
                                                       if free is not None else ")")
    return OSError(errno.ENOSPC, text)


def _mb(size: int) -> str:
    return "%.2f" % (size / 1e6) if size < 1e7 else "%d" % round(size / 1e6)
