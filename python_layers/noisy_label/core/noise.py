"""Synthetic label noise: a column-stochastic Q and noisy labels drawn from it
(docs/data.md#cifar-10-and-synthetic-noise).

Pure numpy; every random draw comes from the `numpy.random.RandomState` passed in,
so a seed fixes the noise.
"""
import numpy as np


def check_noise_level(noise_level: float) -> float:
    """Return `noise_level` as a float, or raise ValueError if it is outside [0, 1] (or NaN)."""
    level = float(noise_level)
    if not 0.0 <= level <= 1.0:  # also rejects NaN
        raise ValueError("NOISE_LEVEL must be in [0, 1], got %r" % (noise_level,))
    return level


def synthesize_matrix_q(num_classes: int, noise_level: float,
                        rng: np.random.RandomState) -> np.ndarray:
    """The synthetic noise matrix Q, indexed [noisy, true].

    Parameters
    ----------
    num_classes : int
        N >= 2.
    noise_level : float
        L in [0, 1].
    rng : numpy.random.RandomState

    Returns
    -------
    numpy.ndarray, shape (N, N), float64
        Each column sums to 1; the diagonal is 1 - L, the off-diagonal mass L is spread at
        random.
    """
    level = check_noise_level(noise_level)
    if num_classes < 2:
        raise ValueError("label noise needs at least 2 classes, got %d" % num_classes)
    off = rng.uniform(size=(num_classes, num_classes))
    np.fill_diagonal(off, 0.0)
    matrix_q = off / off.sum(axis=0, keepdims=True) * level
    np.fill_diagonal(matrix_q, 1.0 - level)
    return matrix_q


def draw_noisy_labels(labels: np.ndarray, matrix_q: np.ndarray,
                      rng: np.random.RandomState) -> np.ndarray:
    """Noisy labels drawn from Q: noisy_i ~ Q[:, labels_i].

    Parameters
    ----------
    labels : array_like, shape (M,)
        True labels, ints in 0..N-1.
    matrix_q : numpy.ndarray, shape (N, N)
        Q[noisy, true], columns summing to 1.
    rng : numpy.random.RandomState

    Returns
    -------
    numpy.ndarray, shape (M,), int64
    """
    labels = np.asarray(labels, dtype=np.int64)
    cdf = np.cumsum(matrix_q, axis=0).T[labels]            # (M, N): P(noisy <= k | true)
    u = rng.uniform(size=(len(labels), 1))
    noisy = (u >= cdf).sum(axis=1)
    # cdf[:, -1] may round to just below 1; a draw above it goes to the last class it can reach.
    last = len(matrix_q) - 1 - np.argmax(matrix_q[::-1] > 0, axis=0)   # (N,)
    return np.minimum(noisy, last[labels])


def noise_rate(labels: np.ndarray, noisy_labels: np.ndarray) -> float:
    """Fraction of samples whose noisy label differs from the true one (0 for an empty set)."""
    labels, noisy_labels = np.asarray(labels), np.asarray(noisy_labels)
    return float(np.mean(labels != noisy_labels)) if len(labels) else 0.0
