"""Synthetic label noise: a column-stochastic Q and noisy labels drawn from it
(docs/data.md#cifar-10-and-synthetic-noise).

Pure numpy; every random draw comes from the `numpy.random.RandomState` passed in,
so a seed fixes the noise.
"""
import numpy as np


def check_noise_level(noise_level):
    """Return `noise_level` as a float, or raise ValueError if it is outside [0, 1]."""
    level = float(noise_level)
    if not 0.0 <= level <= 1.0:  # also rejects NaN
        raise ValueError("NOISE_LEVEL must be in [0, 1], got %r" % (noise_level,))
    return level


def synthesize_matrix_q(num_classes, noise_level, rng):
    """The noise matrix Q (N, N), indexed [noisy, true]: each column sums to 1,
    its diagonal is 1 - L and its off-diagonal mass L is spread at random."""
    level = check_noise_level(noise_level)
    if num_classes < 2:
        raise ValueError("label noise needs at least 2 classes, got %d" % num_classes)
    off = rng.uniform(size=(num_classes, num_classes))
    np.fill_diagonal(off, 0.0)
    matrix_q = off / off.sum(axis=0, keepdims=True) * level
    np.fill_diagonal(matrix_q, 1.0 - level)
    return matrix_q


def draw_noisy_labels(labels, matrix_q, rng):
    """Noisy labels (M,) int64 with noisy_i ~ Q[:, labels_i]. labels: (M,) ints in 0..N-1."""
    labels = np.asarray(labels, dtype=np.int64)
    cdf = np.cumsum(matrix_q, axis=0).T[labels]            # (M, N): P(noisy <= k | true)
    u = rng.uniform(size=(len(labels), 1))
    noisy = (u >= cdf).sum(axis=1)
    # cdf[:, -1] may round to just below 1; a draw above it goes to the last class it can reach.
    last = len(matrix_q) - 1 - np.argmax(matrix_q[::-1] > 0, axis=0)   # (N,)
    return np.minimum(noisy, last[labels])


def noise_rate(labels, noisy_labels):
    """Fraction of samples whose noisy label differs from the true one (0 for an empty set)."""
    labels, noisy_labels = np.asarray(labels), np.asarray(noisy_labels)
    return float(np.mean(labels != noisy_labels)) if len(labels) else 0.0
