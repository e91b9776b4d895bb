"""The confusion matrix C of "confusing" label noise, estimated from paired labels
(docs/data.md), the noise-type label of each pair, and C's files.

C is indexed [noisy, true]: column y is the distribution of the confusing noisy labels of
true class y (diagonal 0, sums to 1, or all zero for a class never seen mislabelled).
Pure numpy, except `save_matrix` / `load_matrix_c`, which write and read C's files.
"""
import io
import os
from typing import Optional, Tuple

import numpy as np

from noisy_label.core import noisy_loss
from noisy_label.core.noisy_loss import CONFUSING_NOISE, NOISE_FREE, RANDOM_NOISE, check_labels
from noisy_label.io import text_io


def confusion_counts(labels: np.ndarray, noisy_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true, noisy) label pairs.

    Parameters
    ----------
    labels, noisy_labels : array_like, shape (M,)
        Ints in 0..N-1.
    num_classes : int

    Returns
    -------
    numpy.ndarray, shape (N, N), int64
        cm[y, noisy]: how many samples have true label y and that noisy label.
    """
    labels = check_labels(labels, num_classes, "true label", unlabelled=False)
    noisy_labels = check_labels(noisy_labels, num_classes, "noisy label", unlabelled=False)
    if labels.shape != noisy_labels.shape:
        raise ValueError("%d true labels but %d noisy labels" % (len(labels), len(noisy_labels)))
    counts = np.bincount(labels * num_classes + noisy_labels, minlength=num_classes ** 2)
    return counts.reshape(num_classes, num_classes)


def num_confusing(freq: np.ndarray) -> int:
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


def estimate_matrix_c(labels: np.ndarray, noisy_labels: np.ndarray,
                      num_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """C from paired labels (docs/data.md#estimating-c-from-paired-labels).

    Parameters
    ----------
    labels, noisy_labels : array_like, shape (M,)
        True and noisy labels of the same samples, ints in 0..N-1.
    num_classes : int
        N >= 2.

    Returns
    -------
    matrix_c : numpy.ndarray, shape (N, N), float64
        C[noisy, true].
    never_mislabelled : numpy.ndarray, shape (K,), int64
        The true classes never seen mislabelled: their column of C is all zero (no confusing
        noise), never NaN.
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


def estimate_matrix_q(labels: np.ndarray, noisy_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The whole noise matrix Q[noisy, true] from paired labels, for forward / backward
    correction: the same pairs C comes from, every noisy label counted (the diagonal too).

    Parameters
    ----------
    labels, noisy_labels : array_like, shape (M,)
        True and noisy labels of the same samples, ints in 0..N-1.
    num_classes : int

    Returns
    -------
    numpy.ndarray, shape (N, N), float64
        Column y: the noisy labels' frequencies for true class y; a class without pairs gets
        the identity column (no noise known).
    """
    counts = confusion_counts(labels, noisy_labels, num_classes).T.astype(np.float64)
    totals = counts.sum(axis=0)
    counts[:, totals == 0] = np.eye(num_classes)[:, totals == 0]
    return counts / counts.sum(axis=0)


def noise_types(labels: np.ndarray, noisy_labels: np.ndarray, matrix_c: np.ndarray) -> np.ndarray:
    """The noise type of each (true, noisy) pair.

    Parameters
    ----------
    labels, noisy_labels : array_like, shape (M,)
    matrix_c : numpy.ndarray, shape (N, N)
        C[noisy, true].

    Returns
    -------
    numpy.ndarray, shape (M,), int64
        0 if noisy == true; 1 (random) if C[noisy, true] < 1/(N-1), strictly, as the
        original's CIFAR-10 script; else 2 (confusing).
    """
    labels, noisy_labels = np.asarray(labels, np.int64), np.asarray(noisy_labels, np.int64)
    confusing = matrix_c[noisy_labels, labels] >= 1.0 / (len(matrix_c) - 1)
    return np.where(labels == noisy_labels, NOISE_FREE, np.where(confusing, CONFUSING_NOISE, RANDOM_NOISE))


def format_matrix(matrix: np.ndarray) -> str:
    """The text form of a matrix: one row per line, whitespace-separated (np.loadtxt reads it)."""
    out = io.StringIO()
    np.savetxt(out, np.asarray(matrix, dtype=np.float64), fmt="%.6f")
    return out.getvalue()


def save_matrix(binaryproto_path: str, matrix: np.ndarray, text_path: Optional[str] = None) -> None:
    """Write an (N, N) matrix as a 1x1xNxN BlobProto (the loss layer's parameter blob) and as text."""
    from noisy_label.io import blob_io
    matrix = np.asarray(matrix, dtype=np.float64)
    blob_io.write_blobproto(binaryproto_path, matrix[None, None])
    if text_path:
        blob_io.atomic_write_bytes(text_path, format_matrix(matrix).encode())


def _read_text_matrix(path):
    """Rows of whitespace-separated numbers; blank lines and `#` comments skipped."""
    rows = []
    for line_no, line in text_io.numbered_lines(path):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        try:
            rows.append([float(x) for x in fields])
        except ValueError:
            raise ValueError("%s:%d: not a row of numbers: %r" % (path, line_no, line.strip()))
        if len(rows[-1]) != len(rows[0]):
            raise ValueError("%s:%d: %d values, but the first row has %d"
                             % (path, line_no, len(rows[-1]), len(rows[0])))
    if not rows:
        raise ValueError("%s: no matrix in the file" % path)
    return np.array(rows)


def load_matrix_q(path: str, num_classes: Optional[int] = None) -> np.ndarray:
    """Read and check a noise matrix Q[noisy, true] (forward / backward correction): the
    same files and checks as load_matrix_c but for the diagonal (Q keeps labels), the
    messages naming Q."""
    try:
        return load_matrix_c(path, num_classes, zero_diagonal=False)
    except ValueError as e:
        raise ValueError(str(e).replace("matrix C", "matrix Q"))


def load_matrix_c(path: str, num_classes: Optional[int] = None,
                  zero_diagonal: bool = True) -> np.ndarray:
    """Read and check C: the one C loader (layers and tools).

    Parameters
    ----------
    path : str
        A BlobProto `.binaryproto` (1x1xNxN or NxN), a `.npy`, or a text matrix (one row per
        line, C[ỹ, y]: rows noisy labels, columns true labels; `#` comments).
    num_classes : int, optional
        N, when known.

    Returns
    -------
    numpy.ndarray, shape (N, N), float32
        Checked by noisy_loss.check_matrix_c; ValueError naming the file (and line) if not.
    """
    from noisy_label.io import blob_io
    if os.path.isdir(path):
        raise ValueError("matrix C file %s is a directory" % path)
    if not os.path.isfile(path):
        raise ValueError("matrix C file %s does not exist" % path)
    try:
        if path.endswith(".binaryproto"):
            matrix_c = blob_io.read_blobproto(path)
        elif path.endswith(".npy"):
            matrix_c = np.load(path, allow_pickle=False)
        else:
            matrix_c = _read_text_matrix(path)
    except ValueError as e:
        raise ValueError("cannot read matrix C from %s: %s" % (path, e))
    except Exception as e:  # protobuf DecodeError, OSError, UnicodeDecodeError, ...
        raise ValueError("cannot read matrix C from %s: %s: %s" % (path, type(e).__name__, e))
    if not np.issubdtype(matrix_c.dtype, np.number):
        raise ValueError("%s: matrix C holds %s values, not numbers" % (path, matrix_c.dtype))
    if matrix_c.ndim > 2 and all(d == 1 for d in matrix_c.shape[:-2]):
        matrix_c = matrix_c.reshape(matrix_c.shape[-2:])           # BlobProto (1, 1, N, N)
    try:
        noisy_loss.check_matrix_c(matrix_c, num_classes)
    except ValueError as e:
        raise ValueError("%s: %s" % (path, e))
    diagonal = np.flatnonzero(np.diag(matrix_c))
    if zero_diagonal and len(diagonal):
        # C is p(noisy | true, confusing noise): a confusing label is never the true one.
        # Mass on the diagonal would make confusing noise also keep labels, which is what
        # noise-free (z = 0) stands for: z would no longer be identifiable.
        y = diagonal[0]
        raise ValueError("%s: matrix C has %d non-zero diagonal entries, e.g. C[%d, %d] = %r; "
                         "C's diagonal must be 0 (confusing noise never keeps the label): zero it "
                         "and renormalise each column (docs/model.md)"
                         % (path, len(diagonal), y, y, float(matrix_c[y, y])))
    return matrix_c.astype(np.float32)
