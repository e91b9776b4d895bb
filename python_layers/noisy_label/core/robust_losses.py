"""Other noise-robust losses, in plain numpy, beside the paper's model: forward and backward
loss correction (Patrini et al., CVPR 2017) with the noise matrix Q[noisy, true], and
bootstrapping (Reed et al., ICLR 2015 workshop).

Every loss here takes logits (M, N) and noisy labels (M,) ints in -1..N-1, ignores the -1
rows, and is normalised by the number of labelled rows (0 when there are none); each returns
(loss, d loss / d logits (M, N)). p = softmax(logits).
"""
from typing import Tuple

import numpy as np

from noisy_label.core.noisy_loss import UNLABELLED, softmax

BOOTSTRAP_MODES = ("soft", "hard")
TINY = np.finfo(np.float32).tiny   # log clamp, as the paper's layer


def _prepare(logits: np.ndarray, labels: np.ndarray):
    """(p (M, N) float64, labelled rows (K,), max(K, 1), zero gradient (M, N)) of a batch."""
    rows = np.flatnonzero(labels != UNLABELLED)
    p = softmax(logits.astype(np.float64))
    return p, rows, max(len(rows), 1), np.zeros_like(p)


def forward_corrected(logits: np.ndarray, labels: np.ndarray,
                      matrix_q: np.ndarray) -> Tuple[float, np.ndarray]:
    """Forward correction: loss_i = -log Σ_y Q[ỹ_i, y] p(y|x_i).

    Parameters
    ----------
    logits : numpy.ndarray, shape (M, N)
    labels : numpy.ndarray, shape (M,)
        Noisy labels, ints, -1 ignored.
    matrix_q : numpy.ndarray, shape (N, N)
        Q[noisy, true], columns summing to 1.

    Returns
    -------
    loss : float
    d_logits : numpy.ndarray, shape (M, N)
        p_k - Q[ỹ, k] p_k / r with r = Σ_y Q[ỹ, y] p_y, over the labelled count.
    """
    p, rows, count, d = _prepare(logits, labels)
    if not len(rows):
        return 0.0, d.astype(logits.dtype)
    q_rows = matrix_q[labels[rows]]                              # (K, N): Q[ỹ_i, :]
    r = np.maximum((q_rows * p[rows]).sum(axis=1), TINY)          # (K,)
    d[rows] = p[rows] - q_rows * p[rows] / r[:, None]
    return float(-np.log(r).sum() / count), (d / count).astype(logits.dtype)


def backward_matrix(matrix_q: np.ndarray) -> np.ndarray:
    """(Qᵀ)⁻¹ (N, N); ValueError when Q is singular (backward correction needs its inverse)."""
    matrix_q = np.asarray(matrix_q, np.float64)
    if np.linalg.cond(matrix_q) > 1.0 / np.finfo(np.float64).eps:
        raise ValueError("matrix Q is singular (condition number %.3g): backward correction "
                         "needs its inverse; use forward correction" % np.linalg.cond(matrix_q))
    return np.linalg.inv(matrix_q.T)


def backward_corrected(logits: np.ndarray, labels: np.ndarray,
                       inverse: np.ndarray) -> Tuple[float, np.ndarray]:
    """Backward correction: loss_i = Σ_y (Qᵀ)⁻¹[ỹ_i, y] (-log p(y|x_i)).

    Parameters
    ----------
    logits : numpy.ndarray, shape (M, N)
    labels : numpy.ndarray, shape (M,)
    inverse : numpy.ndarray, shape (N, N)
        (Qᵀ)⁻¹, from backward_matrix.

    Returns
    -------
    loss : float
    d_logits : numpy.ndarray, shape (M, N)
        p_k Σ_y w_y - w_k with w = (Qᵀ)⁻¹[ỹ], over the labelled count.
    """
    p, rows, count, d = _prepare(logits, labels)
    if not len(rows):
        return 0.0, d.astype(logits.dtype)
    w = inverse[labels[rows]]                                     # (K, N)
    loss = -(w * np.log(np.maximum(p[rows], TINY))).sum()
    d[rows] = p[rows] * w.sum(axis=1, keepdims=True) - w
    return float(loss / count), (d / count).astype(logits.dtype)


def bootstrapping(logits: np.ndarray, labels: np.ndarray, beta: float,
                  mode: str = "soft") -> Tuple[float, np.ndarray]:
    """Bootstrapping: loss_i = -Σ_y t_iy log p(y|x_i), t = β 1(y = ỹ_i) + (1 - β) b_i.

    Parameters
    ----------
    logits : numpy.ndarray, shape (M, N)
    labels : numpy.ndarray, shape (M,)
    beta : float
        Weight of the noisy label, in [0, 1].
    mode : str
        "soft": b = p(y|x), differentiated fully (the target depends on p); "hard": b = the
        one-hot of argmax p, held fixed.

    Returns
    -------
    loss : float
    d_logits : numpy.ndarray, shape (M, N)
        soft: β (p - 1_ỹ) + (1 - β) p ⊙ (Σ_y p_y log p_y - log p); hard: p - β 1_ỹ - (1 - β) 1_ŷ.
    """
    p, rows, count, d = _prepare(logits, labels)
    if not len(rows):
        return 0.0, d.astype(logits.dtype)
    pr = p[rows]
    log_p = np.log(np.maximum(pr, TINY))
    onehot = np.zeros_like(pr)
    onehot[np.arange(len(rows)), labels[rows]] = 1
    if mode == "soft":
        loss = -(beta * (onehot * log_p).sum() + (1 - beta) * (pr * log_p).sum())
        d[rows] = beta * (pr - onehot) + (1 - beta) * pr * ((pr * log_p).sum(axis=1,
                                                                              keepdims=True) - log_p)
    else:
        hard = np.zeros_like(pr)
        hard[np.arange(len(rows)), pr.argmax(axis=1)] = 1
        target = beta * onehot + (1 - beta) * hard
        loss = -(target * log_p).sum()
        d[rows] = pr - target
    return float(loss / count), (d / count).astype(logits.dtype)


def check_bootstrap(beta, mode) -> Tuple[float, str]:
    """(beta, mode) checked: beta a number in [0, 1], mode soft or hard; ValueError otherwise."""
    try:
        beta = float(beta)
    except (TypeError, ValueError):
        raise ValueError("beta must be a number in [0, 1], got %r" % (beta,))
    if not 0.0 <= beta <= 1.0:
        raise ValueError("beta must be in [0, 1], got %r" % (beta,))
    if mode not in BOOTSTRAP_MODES:
        raise ValueError("mode must be one of %s, got %r" % (", ".join(BOOTSTRAP_MODES), mode))
    return beta, mode
