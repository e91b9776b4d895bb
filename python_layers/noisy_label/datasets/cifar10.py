"""CIFAR-10 with synthetic noise (the original release's first experiment): the python batches
(downloaded when missing), NOISE_LEVEL, NUM_CLEAN images keep their clean labels; records BGR
as convert_imageset wrote them (JPEG_QUALITY also repeats the original's lossy JPEG step)."""
import os
import pickle
import shutil
import tarfile
import tempfile
from typing import Optional, Tuple

import numpy as np

from noisy_label import paths
from noisy_label.core import noisy_loss
from noisy_label.datasets.base import register
from noisy_label.datasets.synthetic import SyntheticDataset
from noisy_label.io import download, imageset
from noisy_label.io import manifest as manifest_io

NUM_CLASSES = 10
CIFAR10_TRAIN_BATCHES = ["data_batch_%d" % i for i in range(1, 6)]
CIFAR10_TEST_BATCH = "test_batch"
CIFAR10_DOWNLOAD_TIMEOUT = 15  # seconds without data before giving up


@register
class Cifar10(SyntheticDataset):
    name = "cifar10"
    num_classes = NUM_CLASSES
    options = {"noise_level": 0.5, "num_clean": 10000, "jpeg_quality": None}
    tower = "cifar_quick"
    image_shape = (3, 32, 32)
    train_batch, test_batch = 100, 100
    solver = dict(momentum=0.9, weight_decay=0.004, display=100, average_loss=100,
                  lr_policy="step", gamma=0.1)
    # The original release's solvers, but snapshots every 1000 (500) iterations where the
    # original kept only the last: a stage that stops early resumes from its newest one.
    schedules = {"clean": dict(base_lr=0.001, stepsize=4000, max_iter=5000, test_interval=500,
                               test_initialization=False, snapshot=1000),
                 "noisy_gt_ft_clean": dict(base_lr=0.001, stepsize=4000, max_iter=6000,
                                           test_interval=500, snapshot=1000),
                 "ntype": dict(base_lr=0.0001, stepsize=1000, max_iter=1500, test_interval=500,
                               test_initialization=False, snapshot=500),
                 "noisy_label_loss": dict(base_lr=0.001, stepsize=4000, max_iter=6000,
                                          test_interval=500, snapshot=1000),
                 # Fine-tuned on the relabelled mixed set as the baseline on the noisy one.
                 "relabel_ft_clean": dict(base_lr=0.001, stepsize=4000, max_iter=6000,
                                          test_interval=500, snapshot=1000)}
    bias_decay = 1   # the original's `param { lr_mult: 2 }` keeps the default decay_mult 1
    num_test = 10000
    # Logged by the original release (docs/recipe.md#reference-accuracies).
    reference_accuracy = {"clean": 0.620, "noisy_as_truth": 0.658, "ntype": 0.689, "ours": 0.689}
    reference_name = "CIFAR-10"

    def load(self, data_root: str, opts, seed: int):
        raw = load_cifar10(data_root, jpeg_quality=opts["jpeg_quality"])
        inputs = [manifest_io.file_signature(os.path.join(cifar10_dir(data_root), b))
                  for b in CIFAR10_TRAIN_BATCHES + [CIFAR10_TEST_BATCH]]
        return raw, inputs


def cifar10_dir(data_root: str, url: str = paths.CIFAR10_URL) -> str:
    """The directory holding CIFAR-10's python batches under data_root, downloaded if missing."""
    for candidate in (os.path.join(data_root, paths.CIFAR10_BATCHES), data_root):
        if os.path.isfile(os.path.join(candidate, CIFAR10_TEST_BATCH)):
            return candidate
    target = os.path.join(data_root, paths.CIFAR10_BATCHES)
    print("CIFAR-10 python batches not found in %s; downloading %s" % (data_root, url))
    created = not os.path.isdir(data_root)
    try:
        os.makedirs(data_root, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".cifar10.", dir=data_root)
        try:
            tarball = download.fetch(url, os.path.join(tmp, "cifar-10-python.tar.gz"),
                                     CIFAR10_DOWNLOAD_TIMEOUT)
            with tarfile.open(tarball) as tar:
                # Only the batch files: no links or paths outside (no tarfile filters in 3.11.2).
                tar.extractall(tmp, [m for m in tar.getmembers() if m.isfile()
                                     and m.name.startswith(paths.CIFAR10_BATCHES + "/")
                                     and ".." not in m.name.split("/")])
            os.rename(os.path.join(tmp, paths.CIFAR10_BATCHES), target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, tarfile.TarError, ValueError) as e:
        if created:
            shutil.rmtree(data_root, ignore_errors=True)
        raise IOError("CIFAR-10 is not in DATA_ROOT=%s and the download from %s failed (%s).\n"
                      "Put the python version's %s/ (data_batch_1..5, test_batch) there, or pass "
                      "DATA_ROOT=<the directory holding it>." % (data_root, url, e,
                                                                  paths.CIFAR10_BATCHES))
    return target


def load_cifar10_batch(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """(images (n, 3, 32, 32) uint8 BGR, labels (n,) int64) of one CIFAR-10 python batch.

    The batches hold RGB; Caffe's tools and pycaffe's deploy conventions (and the original
    release's records, made by convert_imageset) are BGR, channel-major.
    """
    if not os.path.isfile(path):
        raise IOError("missing CIFAR-10 batch %s" % path)
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data, labels = batch[b"data"], batch[b"labels"]
    except Exception as e:  # a truncated or foreign file: unpickling can fail in many ways
        raise ValueError("%s is not a CIFAR-10 python batch (%s: %s)" % (path, type(e).__name__, e))
    data, labels = np.asarray(data), np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 \
            or len(labels) != len(data):
        raise ValueError("%s: expected `data` uint8 (n, 3072) and n `labels`, got %s %s and %d labels"
                         % (path, data.dtype, data.shape, len(labels)))
    try:
        labels = noisy_loss.check_labels(labels, NUM_CLASSES, "label", unlabelled=False)
    except ValueError as e:
        raise ValueError("%s: %s" % (path, e))
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32)[:, ::-1]), labels


def check_jpeg_quality(quality) -> Optional[int]:
    if quality is not None and not 1 <= int(quality) <= 100:
        raise ValueError("JPEG_QUALITY=%s: it must be 1..100 (75: the original's scipy.misc.imsave)"
                         % quality)
    return quality


def load_cifar10(data_root: str, url: str = paths.CIFAR10_URL, jpeg_quality=None) -> dict:
    """{"train": (images, labels, names), "test": (...)} from the python batches, BGR; with
    jpeg_quality, through JPEG as the original release (imageset.jpeg_roundtrip)."""
    check_jpeg_quality(jpeg_quality)
    directory = cifar10_dir(data_root, url)
    parts = [load_cifar10_batch(os.path.join(directory, name)) for name in CIFAR10_TRAIN_BATCHES]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    test = load_cifar10_batch(os.path.join(directory, CIFAR10_TEST_BATCH))
    if jpeg_quality:
        train = (imageset.jpeg_roundtrip(train[0], jpeg_quality), train[1])
        test = (imageset.jpeg_roundtrip(test[0], jpeg_quality), test[1])
    return {"train": train + (["train/%05d" % i for i in range(len(train[1]))],),
            "test": test + (["test/%05d" % i for i in range(len(test[1]))],)}
