"""Reading and writing Caffe `Datum` LMDBs with the `lmdb` package.

Writes go to `<path>.tmp` and are renamed to `<path>` only when complete, so an
interrupted run never leaves a database that looks finished. The map size
starts small and doubles whenever LMDB reports it full.
"""
import errno
import os
import shutil
from typing import Iterator, Optional, Sequence, Tuple, Union

import lmdb
import numpy as np
from caffe.proto import caffe_pb2

from noisy_label.io import atomic

INITIAL_MAP_SIZE = 1 << 26  # 64 MiB; grown by doubling as needed
COMMIT_BYTES = 1 << 25       # commit at least every 32 MiB of records


def image_datum(image: np.ndarray, label: int) -> "caffe_pb2.Datum":
    """Datum of raw pixels. image: (C, H, W) uint8; label: int."""
    image = np.asarray(image)
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError("image_datum wants a (C, H, W) uint8 array, got %s %s"
                         % (image.dtype, image.shape))
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = image.shape
    datum.data = image.tobytes()
    datum.label = int(label)
    datum.encoded = False  # set explicitly, as convert_imageset's CVMatToDatum does
    return datum


def encoded_datum(data: bytes, label: int) -> "caffe_pb2.Datum":
    """Datum of an encoded (JPEG/PNG) image, as convert_imageset -encoded writes it."""
    datum = caffe_pb2.Datum()
    datum.data = bytes(data)
    datum.label = int(label)
    datum.encoded = True
    return datum


def image_key(index: int, path: str) -> str:
    """convert_imageset's key: the record number, then the image's path."""
    return "%08d_%s" % (index, path)


def label_key(index: int) -> str:
    """A label LMDB's key: the record number."""
    return "%08d" % index


def label_datum(value: float) -> "caffe_pb2.Datum":
    """Datum holding one label as a single float_data value, shape 1x1x1."""
    datum = caffe_pb2.Datum()
    datum.channels = datum.height = datum.width = 1
    datum.float_data.append(float(value))
    return datum


def record_bytes(value_bytes: int, key_bytes: int = 16) -> int:
    """About what one record of `value_bytes` takes in an LMDB: a value over half a page goes
    to overflow pages (whole 4 KiB pages); small ones share pages, with a node header each."""
    if value_bytes + key_bytes > 2000:
        return -(-(value_bytes + 16) // 4096) * 4096
    return int(1.5 * (value_bytes + key_bytes + 8))


def check_free_space(path: str, needed: int) -> None:
    """OSError (ENOSPC) naming `path` when its filesystem has less than `needed` bytes free."""
    directory = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    free = shutil.disk_usage(directory).free
    if needed > free:
        raise atomic.no_space(path, needed, free)


def _is_no_space(error: Exception) -> bool:
    return getattr(error, "errno", None) == errno.ENOSPC or "No space left" in str(error)


class LmdbWriter(object):
    """Write (key, Datum) pairs to `<path>.tmp`; `close()` renames it to `path`.

    Use as a context manager: on an exception the temporary database is removed.
    expected_bytes: about what the database will take (record_bytes); refused up front, with
    ENOSPC, when the disk has less free. A full disk later is the same error at the write.
    """

    def __init__(self, path, commit_every=1000, expected_bytes: Optional[int] = None):
        self.path = os.path.abspath(path)
        self.tmp_path = self.path + ".tmp"
        for existing in (self.path, self.tmp_path):
            # Replaced when done: refuse up front anything that is not a (partial) LMDB.
            if os.path.lexists(existing) and not (os.path.isdir(existing) and set(
                    os.listdir(existing)) <= {"data.mdb", "lock.mdb"}):
                raise IOError("%s exists and is not an LMDB: not replacing it" % existing)
        shutil.rmtree(self.tmp_path, ignore_errors=True)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if expected_bytes is not None:
            check_free_space(self.path, expected_bytes)
        self.expected_bytes = expected_bytes
        self.map_size = INITIAL_MAP_SIZE
        # No fsync per transaction: the database only counts once close() syncs and renames it.
        # No writemap: with a writable map a full disk is a SIGBUS (the process dies), without
        # one it is an error from the write, which leaves the old database in place.
        try:
            self.env = lmdb.open(self.tmp_path, map_size=self.map_size, subdir=True, sync=False,
                                 writemap=False)
        except lmdb.Error as e:
            shutil.rmtree(self.tmp_path, ignore_errors=True)
            raise self._error(e)
        self.commit_every = commit_every
        self.pending = []
        self.pending_bytes = 0
        self.count = 0

    def put(self, key: Union[str, bytes], datum: Union["caffe_pb2.Datum", bytes]) -> None:
        """Queue one record. key: str or bytes; datum: caffe_pb2.Datum (or bytes)."""
        if isinstance(key, str):
            key = key.encode("utf-8")
        value = datum if isinstance(datum, bytes) else datum.SerializeToString()
        self.pending.append((key, value))
        self.pending_bytes += len(key) + len(value)
        if len(self.pending) >= self.commit_every or self.pending_bytes >= COMMIT_BYTES:
            self._flush()

    def _grow(self, size):
        self.map_size = size
        self.env.set_mapsize(size)

    def _flush(self):
        used = (self.env.info()["last_pgno"] + 1) * self.env.stat()["psize"]
        if used + 2 * self.pending_bytes > self.map_size:
            # Grow before the batch (2x its bytes covers LMDB's page overhead), not after it fails.
            self._grow(max(2 * self.map_size, used + 2 * self.pending_bytes))
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in self.pending:
                        if not txn.put(key, value, overwrite=False):
                            raise ValueError("duplicate key %r in %s" % (key.decode(), self.path))
                break
            except lmdb.MapFullError:
                self._grow(2 * self.map_size)
            except lmdb.Error as e:
                raise self._error(e)
        self.count += len(self.pending)
        self.pending, self.pending_bytes = [], 0

    def _error(self, error: Exception) -> Exception:
        """An lmdb error as the tools report it: a full disk is ENOSPC naming the database."""
        if _is_no_space(error):
            return atomic.no_space(self.path, self.expected_bytes)
        return error

    def close(self) -> None:
        """Flush, close and move the finished database into place."""
        self._flush()
        try:
            self.env.sync(True)
        except lmdb.Error as e:
            raise self._error(e)
        self.env.close()
        shutil.rmtree(self.path, ignore_errors=True)
        os.rename(self.tmp_path, self.path)

    def abort(self) -> None:
        self.env.close()
        shutil.rmtree(self.tmp_path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.close()
            except BaseException:  # e.g. Ctrl-C during the final sync
                self.abort()
                raise
        else:
            self.abort()
        return False


def open_readonly(path: str) -> lmdb.Environment:
    """The lmdb Environment of the LMDB at `path`, read-only; IOError naming it if there is none."""
    if not os.path.isfile(os.path.join(path, "data.mdb")):
        reason = ": %s has no data.mdb" % path if os.path.isdir(path) else \
            ": %s is a file (an LMDB is a directory)" % path if os.path.exists(path) else ""
        if os.path.isdir(path + ".tmp"):
            reason += " (%s.tmp is an unfinished write: build it again)" % path
        raise IOError("no LMDB at %s%s" % (path, reason))
    try:
        return lmdb.open(path, readonly=True, lock=False, subdir=True)
    except lmdb.Error as e:
        raise IOError("%s is not a readable LMDB: %s" % (path, e))


def parse_datum(value: bytes, path: str, key: bytes) -> "caffe_pb2.Datum":
    """caffe_pb2.Datum from a record's bytes; ValueError naming the LMDB and key if it is none."""
    from google.protobuf.message import DecodeError
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(bytes(value))
    except DecodeError:
        raise ValueError("%s: record %s is not a Caffe Datum" % (path, bytes(key).decode(
            "utf-8", "replace")))
    return datum


def read_datums(path: str) -> Iterator[Tuple[str, "caffe_pb2.Datum"]]:
    """Yield (key str, caffe_pb2.Datum) in key order."""
    env = open_readonly(path)
    try:
        with env.begin() as txn:
            for key, value in txn.cursor():
                yield key.decode("utf-8", "replace"), parse_datum(value, path, key)
    finally:
        env.close()


def write_label_lmdb(path: str, labels: Sequence[float], desc: Union[str, bool, None] = None) -> int:
    """Write labels (M,) as label Datums keyed %08d (-1 marks a missing label); return M."""
    from tqdm import tqdm
    expected = len(labels) * record_bytes(16) if hasattr(labels, "__len__") else None
    with LmdbWriter(path, expected_bytes=expected) as db:
        for index, value in enumerate(tqdm(labels, desc=desc or os.path.basename(path),
                                           unit="rec", leave=False, disable=desc is False)):
            db.put(label_key(index), label_datum(value))
    return db.count


def datum_label(datum: "caffe_pb2.Datum") -> float:
    """The label a Data layer yields: float_data[0] of a label Datum, else Datum.label."""
    return datum.float_data[0] if len(datum.float_data) == 1 and not datum.data else datum.label


def count(path: str) -> int:
    """Number of records in an LMDB."""
    env = open_readonly(path)
    try:
        return env.stat()["entries"]
    finally:
        env.close()


def inspect_lmdb(path: str) -> dict:
    """{"count", "shapes": {(C, H, W) or "encoded": n}, "labels": {label: n}, "first_key", "last_key"}."""
    import collections
    shapes, labels = collections.Counter(), collections.Counter()
    first = last = None
    for key, datum in read_datums(path):
        first = key if first is None else first
        last = key
        shapes["encoded" if datum.encoded else (datum.channels, datum.height, datum.width)] += 1
        label = datum_label(datum)
        labels[int(label) if float(label).is_integer() else label] += 1
    return {"count": sum(shapes.values()), "shapes": dict(shapes),
            "labels": dict(sorted(labels.items())), "first_key": first, "last_key": last}
