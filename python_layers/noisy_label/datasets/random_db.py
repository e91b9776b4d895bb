"""Random stand-ins for a dataset's files: every image and label LMDB its nets read (make
relabel's corrected labels too), its mean file and valid matrices C and Q, in
`paths.db_dir(name, exp)`. For tests and benchmarks that exercise nets, not data (the one
fixture builder they share)."""
import os
from typing import Optional

import numpy as np

from noisy_label import paths
from noisy_label.datasets.base import get_dataset
from noisy_label.io import blob_io, lmdb_io


def write(name: str, exp: Optional[str], num: int = 4, seed: int = 0,
          distinct: Optional[int] = None, progress: bool = False) -> str:
    """Write `num` random records into each LMDB of dataset `name` under `exp`; return db_dir.

    Parameters
    ----------
    name : str
        A registered dataset (its `image_shape`, `num_classes`).
    exp : str
        The experiment root.
    num : int
        Records per LMDB; the four mixed LMDBs stay aligned (half the records with a clean
        label and a noise type, the other half with a noisy label; -1 elsewhere).
    seed : int
        Seed of the pixels and labels.
    distinct : int, optional
        How many distinct images to cycle through (large images: less to draw).
    progress : bool
        Show a progress bar per LMDB.
    """
    from tqdm import tqdm
    ds = get_dataset(name)
    rng = np.random.RandomState(seed)
    images = rng.randint(0, 256, size=(min(num, distinct or num),) + tuple(ds.image_shape))
    images = images.astype(np.uint8)
    labels = rng.randint(min(3, ds.num_classes), size=num)      # valid as class and noise type
    db_dir = paths.db_dir(name, exp)
    for db in paths.IMAGE_LMDBS:
        with lmdb_io.LmdbWriter(paths.lmdb_path(name, db, exp)) as out:
            for i in tqdm(range(num), desc=db, leave=False, disable=not progress):
                out.put(lmdb_io.image_key(i, "img%d.png" % i),
                        lmdb_io.image_datum(images[i % len(images)], labels[i]))
    has_clean = np.arange(num) % 2 == 0
    columns = {"clean": np.where(has_clean, labels, -1),
               "noisy": np.where(has_clean, -1, rng.randint(ds.num_classes, size=num)),
               "ntype": np.where(has_clean, labels, -1)}
    for field, db in paths.MIXED_LABELS.items():
        lmdb_io.write_label_lmdb(paths.lmdb_path(name, db, exp), columns[field], desc=False)
    # make relabel's corrected labels, aligned with the mixed images as the others.
    os.makedirs(os.path.join(db_dir, paths.RELABEL), exist_ok=True)
    lmdb_io.write_label_lmdb(os.path.join(db_dir, paths.RELABEL, paths.CORRECTED_LABELS), labels,
                             desc=False)
    blob_io.write_blobproto(paths.mean_file(name, exp), np.full((1,) + tuple(ds.image_shape), 100.0))
    n = ds.num_classes
    matrix_c = (np.ones((n, n)) - np.eye(n)) / (n - 1)         # columns sum to 1
    blob_io.write_blobproto(paths.matrix_c_file(name, exp), matrix_c[None, None])
    # Q[noisy, true] for the loss corrections: columns sum to 1, invertible.
    matrix_q = 0.6 * np.eye(n) + 0.4 / n
    for q in (paths.ESTIMATED_MATRIX_Q, paths.TRUE_MATRIX_Q):
        blob_io.write_blobproto(os.path.join(db_dir, q + ".binaryproto"), matrix_q[None, None])
    return db_dir
