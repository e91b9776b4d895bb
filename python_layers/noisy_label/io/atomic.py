"""The one way files are written: under a temporary name in the same directory, renamed to
the final name only when whole, removed on any failure (Ctrl-C included). An interrupted
run never leaves a file that looks complete. (LMDBs, directories, use `<path>.tmp` the same
way: io.lmdb_io.LmdbWriter.)"""
import contextlib
import os
import tempfile
from typing import Iterator


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
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(path: str, data: bytes) -> None:
    """Write bytes to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path: str, text: str) -> None:
    """Write text (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))
