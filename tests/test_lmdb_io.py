"""LmdbWriter: the map grows as records come (LMDB refuses to write past its map size), and
only a finished database appears under its name."""
import os

import numpy as np
import pytest

from noisy_label.io import lmdb_io

pytestmark = pytest.mark.caffe


def test_the_writer_grows_its_map(tmp_path, monkeypatch):
    # A 64 KiB first map for ~3 MB of records: it must double its way up, on its own.
    monkeypatch.setattr(lmdb_io, "INITIAL_MAP_SIZE", 1 << 16)
    path = str(tmp_path / "db")
    images = np.random.RandomState(0).randint(0, 255, (300, 3, 32, 32)).astype(np.uint8)
    with lmdb_io.LmdbWriter(path, commit_every=25) as db:
        for i, image in enumerate(images):
            db.put(lmdb_io.label_key(i), lmdb_io.image_datum(image, i % 10))
        assert not os.path.exists(path)            # only the .tmp while writing
    assert db.map_size >= images.nbytes > lmdb_io.INITIAL_MAP_SIZE
    records = list(lmdb_io.read_datums(path))
    assert [key for key, _ in records] == [lmdb_io.label_key(i) for i in range(300)]
    np.testing.assert_array_equal(
        np.frombuffer(records[-1][1].data, np.uint8).reshape(3, 32, 32), images[-1])
    assert not os.path.exists(path + ".tmp")


def test_a_failed_write_leaves_nothing(tmp_path):
    path = str(tmp_path / "db")
    with pytest.raises(KeyboardInterrupt):
        with lmdb_io.LmdbWriter(path) as db:
            db.put(lmdb_io.label_key(0), lmdb_io.label_datum(1))
            raise KeyboardInterrupt
    assert not os.path.exists(path) and not os.path.exists(path + ".tmp")
