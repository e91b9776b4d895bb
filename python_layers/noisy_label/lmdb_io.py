"""Reading and writing Caffe `Datum` LMDBs with the `lmdb` package.

Writes go to `<path>.tmp` and are renamed to `<path>` only when complete, so an
interrupted run never leaves a database that looks finished. The map size
starts small and doubles whenever LMDB reports it full.
"""
import os
import shutil

import lmdb
import numpy as np

from caffe.proto import caffe_pb2

INITIAL_MAP_SIZE = 1 << 26  # 64 MiB; grown by doubling as needed


def image_datum(image, label):
    """Datum of raw pixels. image: (C, H, W) uint8; label: int."""
    image = np.asarray(image)
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError("image_datum wants a (C, H, W) uint8 array, got %s %s"
                         % (image.dtype, image.shape))
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = image.shape
    datum.data = image.tobytes()
    datum.label = int(label)
    return datum


def label_datum(value):
    """Datum holding one label as a single float_data value, shape 1x1x1."""
    datum = caffe_pb2.Datum()
    datum.channels = datum.height = datum.width = 1
    datum.float_data.append(float(value))
    return datum


class LmdbWriter(object):
    """Write (key, Datum) pairs to `<path>.tmp`; `close()` renames it to `path`.

    Use as a context manager: on an exception the temporary database is removed.
    """

    def __init__(self, path, commit_every=1000):
        self.path = os.path.abspath(path)
        self.tmp_path = self.path + ".tmp"
        shutil.rmtree(self.tmp_path, ignore_errors=True)
        self.map_size = INITIAL_MAP_SIZE
        self.env = lmdb.open(self.tmp_path, map_size=self.map_size, subdir=True)
        self.commit_every = commit_every
        self.pending = []
        self.count = 0

    def put(self, key, datum):
        """Queue one record. key: str or bytes; datum: caffe_pb2.Datum (or bytes)."""
        if isinstance(key, str):
            key = key.encode("utf-8")
        value = datum if isinstance(datum, bytes) else datum.SerializeToString()
        self.pending.append((key, value))
        if len(self.pending) >= self.commit_every:
            self._flush()

    def _flush(self):
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in self.pending:
                        if not txn.put(key, value, overwrite=False):
                            raise ValueError("duplicate key %r in %s" % (key.decode(), self.path))
                break
            except lmdb.MapFullError:
                self.map_size *= 2
                self.env.set_mapsize(self.map_size)
        self.count += len(self.pending)
        self.pending = []

    def close(self):
        """Flush, close and move the finished database into place."""
        self._flush()
        self.env.close()
        shutil.rmtree(self.path, ignore_errors=True)
        os.rename(self.tmp_path, self.path)

    def abort(self):
        self.env.close()
        shutil.rmtree(self.tmp_path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def read_datums(path):
    """Yield (key str, caffe_pb2.Datum) in key order."""
    env = lmdb.open(path, readonly=True, lock=False, subdir=True)
    try:
        with env.begin() as txn:
            for key, value in txn.cursor():
                datum = caffe_pb2.Datum()
                datum.ParseFromString(value)
                yield key.decode("utf-8"), datum
    finally:
        env.close()
