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

from noisy_label.datasets.base import Option, register
from noisy_label.datasets.synthetic import SyntheticDataset, noise_options
from noisy_label.io import download, imageset
from noisy_label.io import manifest as manifest_io

NUM_CLASSES = 10
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_BATCHES = "cifar-10-batches-py"   # the directory the tarball holds, under DATA_ROOT
CIFAR10_TRAIN_BATCHES = ["data_batch_%d" % i for i in range(1, 6)]
CIFAR10_TEST_BATCH = "test_batch"
CIFAR10_DOWNLOAD_TIMEOUT = 15  # seconds without data before giving up
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"   # of cifar-10-python.tar.gz, as published
# What a CIFAR-10 python batch may name when unpickled: numpy's array reconstruction (numpy 1
# and 2 spell its module differently) and the bytes of a protocol-2 pickle made by Python 3.
# Anything else (os.system, say) would run code at `make lmdb`.
_BATCH_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


@register
class Cifar10(SyntheticDataset):
    name = "cifar10"
    num_classes = NUM_CLASSES
    options = noise_options(num_clean=10000) + (
        Option("jpeg_quality", int, None, "pass the images through JPEG at this quality first, "
               "as the original release did (75); default: lossless"),)
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
        inputs = [manifest_io.content_signature(os.path.join(cifar10_dir(data_root), b))
                  for b in CIFAR10_TRAIN_BATCHES + [CIFAR10_TEST_BATCH]]
        return raw, inputs


def cifar10_dir(data_root: str, url: str = CIFAR10_URL) -> str:
    """The directory holding CIFAR-10's python batches under data_root, downloaded if missing."""
    for candidate in (os.path.join(data_root, CIFAR10_BATCHES), data_root):
        if os.path.isfile(os.path.join(candidate, CIFAR10_TEST_BATCH)):
            return candidate
    target = os.path.join(data_root, CIFAR10_BATCHES)
    print("CIFAR-10 python batches not found in %s; downloading %s" % (data_root, url))
    created = not os.path.isdir(data_root)
    try:
        os.makedirs(data_root, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".cifar10.", dir=data_root)
        try:
            tarball = download.fetch(url, os.path.join(tmp, "cifar-10-python.tar.gz"),
                                     CIFAR10_DOWNLOAD_TIMEOUT)
            md5 = manifest_io.digest(tarball, "md5")
            if md5 != CIFAR10_MD5:
                raise ValueError("the file downloaded is not CIFAR-10's published "
                                 "cifar-10-python.tar.gz (MD5 %s, expected %s)" % (md5, CIFAR10_MD5))
            with tarfile.open(tarball) as tar:
                # Only the batch files: no links or paths outside (no tarfile filters in 3.11.2).
                tar.extractall(tmp, [m for m in tar.getmembers() if m.isfile()
                                     and m.name.startswith(CIFAR10_BATCHES + "/")
                                     and ".." not in m.name.split("/")])
            os.rename(os.path.join(tmp, CIFAR10_BATCHES), target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, tarfile.TarError, ValueError) as e:
        if created:
            shutil.rmtree(data_root, ignore_errors=True)
        raise IOError("CIFAR-10 is not in DATA_ROOT=%s and the download from %s failed (%s).\n"
                      "Put the python version's %s/ (data_batch_1..5, test_batch) there, or pass "
                      "DATA_ROOT=<the directory holding it>." % (data_root, url, e,
                                                                  CIFAR10_BATCHES))
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
            batch = _BatchUnpickler(f, encoding="bytes").load()
    except _Refused as e:
        raise ValueError("%s is not a plain CIFAR-10 python batch: %s" % (path, e))
    except Exception as e:  # a truncated or foreign file: unpickling can fail in many ways
        raise ValueError("%s is not a CIFAR-10 python batch (%s: %s)" % (path, type(e).__name__, e))
    if not isinstance(batch, dict) or not {b"data", b"labels"} <= set(batch):
        raise ValueError("%s is not a CIFAR-10 python batch: expected a dict with b'data' and "
                         "b'labels', got %s" % (path, _describe(batch)))
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        raise ValueError("%s: `data` must be a uint8 array (n, 3072), got %s" % (path, _describe(data)))
    if not isinstance(labels, (list, np.ndarray)) or np.ndim(labels) != 1 \
            or len(labels) != len(data):
        raise ValueError("%s: `labels` must be a list of %d labels, got %s"
                         % (path, len(data), _describe(labels)))
    for index, label in enumerate(labels):
        # Plain ints only: a bool, a str, None or a float is not a CIFAR-10 label.
        if not isinstance(label, (int, np.integer)) or isinstance(label, bool) \
                or not 0 <= label < NUM_CLASSES:
            shown = int(label) if isinstance(label, (int, np.integer)) \
                and not isinstance(label, bool) else _describe(label)
            raise ValueError("%s: label %s of sample %d is not an integer in 0..%d"
                             % (path, shown, index, NUM_CLASSES - 1))
    labels = np.asarray(labels, np.int64)
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32)[:, ::-1]), labels


class _Refused(pickle.UnpicklingError):
    """A pickle that names a global a CIFAR-10 batch never needs."""


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, bytes, str, numbers and numpy arrays, nothing else."""

    def find_class(self, module, name):
        if (module, name) in _BATCH_GLOBALS:
            return super().find_class(module, name)
        raise _Refused("it names %s.%s, which a batch of arrays and labels never "
                                     "needs (refused: unpickling it could run code)" % (module, name))


def _describe(value) -> str:
    """A short description of a value from a batch, for messages."""
    if isinstance(value, np.ndarray):
        return "%s array %s" % (value.dtype, value.shape)
    text = repr(value)
    return "%s %s" % (type(value).__name__, text if len(text) <= 40 else text[:37] + "...")


def check_jpeg_quality(quality) -> Optional[int]:
    if quality is not None and not 1 <= int(quality) <= 100:
        raise ValueError("JPEG_QUALITY=%s: it must be 1..100 (75: the original's scipy.misc.imsave)"
                         % quality)
    return quality


def load_cifar10(data_root: str, url: str = CIFAR10_URL, jpeg_quality=None) -> dict:
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
