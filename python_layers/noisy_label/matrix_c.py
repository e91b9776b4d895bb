"""The confusion matrix C of "confusing" label noise, estimated from paired labels (SPEC §3),
and the noise-type label of each pair.

C is indexed [noisy, true]: column y is the distribution of the confusing noisy labels of
true class y (diagonal 0, sums to 1, or all zero for a class never seen mislabelled).
Pure numpy, except `save_matrix` which writes a BlobProto.
"""
import io
import os
import warnings

import numpy as np

from noisy_label.noisy_loss import CONFUSING_NOISE, NOISE_FREE, RANDOM_NOISE


def check_labels(labels, num_classes, what="label"):
    """Return labels as int64, or raise ValueError naming the first one outside 0..N-1."""
    labels = np.asarray(labels)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes) | (labels != np.round(labels)))
    if len(bad):
        raise ValueError("%s %r at index %d is outside 0..%d"
                         % (what, labels[bad[0]].item(), bad[0], num_classes - 1))
    return labels.astype(np.int64)


def confusion_counts(labels, noisy_labels, num_classes):
    """cm (N, N) int64: cm[y, noisy] = how many samples have true label y and that noisy label."""
    labels = check_labels(labels, num_classes, "true label")
    noisy_labels = check_labels(noisy_labels, num_classes, "noisy label")
    if labels.shape != noisy_labels.shape:
        raise ValueError("%d true labels but %d noisy labels" % (len(labels), len(noisy_labels)))
    counts = np.bincount(labels * num_classes + noisy_labels, minlength=num_classes ** 2)
    return counts.reshape(num_classes, num_classes)


def num_confusing(freq):
    """How many of the sorted wrong-label frequencies to explain as confusing noise.

    freq: (N,) decreasing, sums to 1 or 0. Scores i = 0..N by the log-likelihood of the top i
    renormalised among themselves and the rest at the uniform 1/(N-1); the best i wins,
    the larger on a tie; i stops growing at the first zero frequency.
    """
    n = len(freq)
    kept = np.arange(n)[None, :] < np.arange(n + 1)[:, None]            # (N+1, N)
    kept_mass = np.concatenate([[0.0], np.cumsum(freq)])[:, None]       # (N+1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        confusing = freq * np.log(freq / kept_mass)                     # nan/inf only where unused
    scores = np.where(kept, confusing, freq * np.log(1.0 / (n - 1))).sum(axis=1)
    zeros = np.flatnonzero(freq == 0)
    last = zeros[0] if len(zeros) else n
    return int(last - np.argmax(scores[last::-1]))


def estimate_matrix_c(labels, noisy_labels, num_classes):
    """C (N, N) float64 from paired labels (SPEC §3), and the true classes never seen mislabelled.

    labels, noisy_labels: (M,) ints in 0..N-1. Classes in the returned (K,) int64 array have an
    all-zero column in C (no confusing noise), never NaN.
    """
    if num_classes < 2:
        raise ValueError("matrix C needs at least 2 classes, got %d" % num_classes)
    wrong = confusion_counts(labels, noisy_labels, num_classes).astype(np.float64)
    np.fill_diagonal(wrong, 0.0)
    totals = wrong.sum(axis=1, keepdims=True)
    freq = np.divide(wrong, totals, out=np.zeros_like(wrong), where=totals > 0)  # (N, N) [true, noisy]
    matrix_c = np.zeros_like(freq)
    for y in range(num_classes):
        # Decreasing frequency; equal frequencies put the larger class first (a reverse sort of
        # (f, class) pairs, as the original script did).
        order = np.lexsort((np.arange(num_classes), freq[y]))[::-1]
        top = order[:num_confusing(freq[y, order])]
        matrix_c[top, y] = freq[y, top]
    column = matrix_c.sum(axis=0)
    matrix_c = np.divide(matrix_c, column, out=np.zeros_like(matrix_c), where=column > 0)
    return matrix_c, np.flatnonzero(column == 0)


def noise_types(labels, noisy_labels, matrix_c):
    """(M,) int64 noise type of each pair: 0 if noisy == true; 1 (random) if
    C[noisy, true] < 1/(N-1), strictly, as the original's CIFAR-10 script; else 2 (confusing).
    matrix_c: (N, N) [noisy, true]."""
    labels, noisy_labels = np.asarray(labels, np.int64), np.asarray(noisy_labels, np.int64)
    confusing = matrix_c[noisy_labels, labels] >= 1.0 / (len(matrix_c) - 1)
    return np.where(labels == noisy_labels, NOISE_FREE, np.where(confusing, CONFUSING_NOISE, RANDOM_NOISE))


def format_matrix(matrix):
    """The text form of a matrix: one row per line, whitespace-separated (np.loadtxt reads it)."""
    out = io.StringIO()
    np.savetxt(out, np.asarray(matrix, dtype=np.float64), fmt="%.6f")
    return out.getvalue()


def save_matrix(binaryproto_path, matrix, text_path=None):
    """Write an (N, N) matrix as a 1x1xNxN BlobProto (the loss layer's parameter blob) and as text."""
    from noisy_label import blob_io
    matrix = np.asarray(matrix, dtype=np.float64)
    blob_io.write_blobproto(binaryproto_path, matrix[None, None])
    if text_path:
        blob_io.atomic_write_bytes(text_path, format_matrix(matrix).encode())


def load_matrix(path):
    """An (N, N) float64 matrix from a .binaryproto (shape 1x1xNxN or NxN) or a text file."""
    from noisy_label import blob_io
    if not os.path.isfile(path):
        raise IOError(("the matrix file %s is not a file" if os.path.exists(path)
                       else "missing matrix file %s") % path)
    if path.endswith(".binaryproto"):
        matrix = blob_io.read_blobproto(path)
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # loadtxt's "input contained no data"
                matrix = np.loadtxt(path, ndmin=2)
        except ValueError as e:  # also UnicodeDecodeError: not a text file
            raise ValueError("%s: not a text matrix (rows of numbers): %s" % (path, e))
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim >= 2 and all(d == 1 for d in matrix.shape[:-2]):
        matrix = matrix.reshape(matrix.shape[-2:])
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError("%s: expected an N x N matrix, got shape %s" % (path, matrix.shape))
    bad = np.argwhere(~((matrix >= 0) & (matrix <= 1)))
    if len(bad):
        raise ValueError("%s: [%d, %d] is %r, not a probability in [0, 1]"
                         % (path, bad[0][0], bad[0][1], matrix[tuple(bad[0])].item()))
    return matrix
