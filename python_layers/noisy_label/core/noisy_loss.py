"""The noisy-label model of Xiao et al. (CVPR 2015) in plain numpy: no Caffe, no loop over
samples.

Symbols (docs/model.md#symbols): M samples, N classes, true label y, observed noisy label ỹ
(-1: none), noise type z in {0 noise-free, 1 random, 2 confusing}, the matrix C indexed [noisy, true].

    u(y, z) = p(ỹ|y,z) p(y|x) p(z|x)      the joint of one sample, (N, 3)
    S       = Σ_{y,z} u                   its evidence
    q       = u / S  (0 when S = 0)       the posterior, used as a fixed soft target (EM)

Arrays keep the dtype they come in (Caffe blobs are float32, as the original C++ layer's
arithmetic), so underflow to 0 happens where it happened there.
"""

from typing import Optional, Tuple

import numpy as np

NUM_NOISE_TYPES = 3
NOISE_FREE, RANDOM_NOISE, CONFUSING_NOISE = 0, 1, 2
UNLABELLED = -1
FLT_MIN = np.finfo(np.float32).tiny  # the C++ layer clamps with FLT_MIN before the log
COLUMN_SUM_TOL = 1e-3


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax.

    Parameters
    ----------
    logits : numpy.ndarray, shape (M, K)

    Returns
    -------
    numpy.ndarray, shape (M, K)
        In the dtype of `logits`.
    """
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def noise_model(labels: np.ndarray, matrix_c: np.ndarray) -> np.ndarray:
    """p(ỹ_i | y, z) for every sample, true class and noise type.

    Parameters
    ----------
    labels : numpy.ndarray, shape (M,)
        Noisy labels, ints in -1..N-1 (-1: none).
    matrix_c : numpy.ndarray, shape (N, N)
        C[ỹ, y].

    Returns
    -------
    numpy.ndarray, shape (M, N, 3)
        In C's dtype: [:, y, 0] = [y == ỹ], [:, y, 1] = [y != ỹ] / (N - 1),
        [:, y, 2] = C[ỹ, y]; all 0 where ỹ = -1.
    """
    num_classes = matrix_c.shape[0]
    labelled = labels != UNLABELLED
    noisy = np.where(labelled, labels, 0)
    same = np.arange(num_classes) == noisy[:, None]                 # (M, N)
    p_noisy = np.empty((len(labels), num_classes, NUM_NOISE_TYPES), dtype=matrix_c.dtype)
    p_noisy[:, :, NOISE_FREE] = same
    p_noisy[:, :, RANDOM_NOISE] = ~same
    p_noisy[:, :, RANDOM_NOISE] /= num_classes - 1
    p_noisy[:, :, CONFUSING_NOISE] = matrix_c[noisy]
    p_noisy[~labelled] = 0
    return p_noisy


def joint(prob_y: np.ndarray, prob_z: np.ndarray, labels: np.ndarray,
          matrix_c: np.ndarray) -> np.ndarray:
    """u = p(ỹ|y,z) p(y|x) p(z|x).

    Parameters
    ----------
    prob_y : numpy.ndarray, shape (M, N)
        p(y|x).
    prob_z : numpy.ndarray, shape (M, 3)
        p(z|x).
    labels : numpy.ndarray, shape (M,)
        Noisy labels, -1 for none.
    matrix_c : numpy.ndarray, shape (N, N)

    Returns
    -------
    numpy.ndarray, shape (M, N, 3)
        In the dtype of `prob_y`.
    """
    u = noise_model(labels, matrix_c.astype(prob_y.dtype, copy=False))
    u *= prob_y[:, :, None]
    u *= prob_z[:, None, :]
    return u


def posterior(u: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """q = u / S per sample, 0 where S = 0.

    Parameters
    ----------
    u : numpy.ndarray, shape (M, N, 3)
        The joint (`joint`).

    Returns
    -------
    q : numpy.ndarray, shape (M, N, 3)
    evidence : numpy.ndarray, shape (M,)
        S.
    """
    evidence = u.sum(axis=(1, 2))[:, None, None]
    # Divide, not multiply by 1/S: 1/S overflows float32 when S is subnormal.
    q = np.divide(u, evidence, out=np.zeros_like(u), where=evidence > 0)
    return q, evidence[:, 0, 0]


def loss(q: np.ndarray, u: np.ndarray) -> float:
    """-Σ_i Σ_{y,z} q log max(u, FLT_MIN) / M, M counting every sample.

    Parameters
    ----------
    q, u : numpy.ndarray, shape (M, N, 3)

    Returns
    -------
    float
    """
    return -(q * np.log(np.maximum(u, u.dtype.type(FLT_MIN)))).sum() / len(q)


def forward(logits_clean: np.ndarray, logits_ntype: np.ndarray, labels: np.ndarray,
            matrix_c: np.ndarray) -> Tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """The loss layer's forward.

    Parameters
    ----------
    logits_clean : numpy.ndarray, shape (M, N)
    logits_ntype : numpy.ndarray, shape (M, 3)
    labels : numpy.ndarray, shape (M,)
        Noisy labels as ints, -1 for none (`check_labels`).
    matrix_c : numpy.ndarray, shape (N, N)

    Returns
    -------
    loss : float
    prob_y : numpy.ndarray, shape (M, N)
    prob_z : numpy.ndarray, shape (M, 3)
    q : numpy.ndarray, shape (M, N, 3)
    """
    prob_y, prob_z = softmax(logits_clean), softmax(logits_ntype)
    u = joint(prob_y, prob_z, labels, matrix_c)
    q, _ = posterior(u)
    return loss(q, u), prob_y, prob_z, q


def gradients(prob_y: np.ndarray, prob_z: np.ndarray, q: np.ndarray, loss_weight: float = 1.0,
              update_noise_lr: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """EM M-step gradients with q held fixed, for the clean and the noise-type logits.

    Parameters
    ----------
    prob_y : numpy.ndarray, shape (M, N)
    prob_z : numpy.ndarray, shape (M, 3)
    q : numpy.ndarray, shape (M, N, 3)
    loss_weight : float
        g, the layer's loss weight.
    update_noise_lr : float
        Scale of the noise-type gradient.

    Returns
    -------
    d_clean : numpy.ndarray, shape (M, N)
        (p(y|x) - Σ_z q) w g / M, where w = Σ q is 1 for a usable labelled sample and 0 for
        an unlabelled or S = 0 one.
    d_ntype : numpy.ndarray, shape (M, 3)
        (p(z|x) - Σ_y q) w g update_noise_lr / M.
    """
    scale = q.sum(axis=(1, 2)) * (loss_weight / len(q))            # (M,)
    # einsum: numpy's sum over a short axis is several times slower here.
    d_clean = (prob_y - np.einsum("iyz->iy", q)) * scale[:, None]
    d_ntype = (prob_z - np.einsum("iyz->iz", q)) * (scale * update_noise_lr)[:, None]
    return d_clean.astype(prob_y.dtype, copy=False), d_ntype.astype(prob_z.dtype, copy=False)


# ---- checking inputs --------------------------------------------------------------------


def check_matrix_c(matrix_c: np.ndarray, num_classes: Optional[int] = None) -> None:
    """Raise ValueError unless C is a valid noise matrix.

    Parameters
    ----------
    matrix_c : array_like, shape (N, N)
        Must be finite and non-negative, each column (a true class) summing to 1 within
        COLUMN_SUM_TOL or all zero (a class with no confusing noise).
    num_classes : int, optional
        N, when it is known (the clean logits').
    """
    matrix_c = np.asarray(matrix_c)
    if matrix_c.ndim != 2 or matrix_c.shape[0] != matrix_c.shape[1]:
        raise ValueError("matrix C must be square (N x N), got shape %s" % (matrix_c.shape,))
    if num_classes is not None and matrix_c.shape[0] != num_classes:
        raise ValueError("matrix C is %dx%d but the clean logits have N = %d classes"
                         % (matrix_c.shape + (num_classes,)))
    if matrix_c.shape[0] < 2:
        raise ValueError("matrix C is %dx%d; the noise model needs N >= 2 classes" % matrix_c.shape)
    bad = np.argwhere(~np.isfinite(matrix_c) | (matrix_c < 0))
    if len(bad):
        noisy, true = bad[0]
        raise ValueError("matrix C has %d negative or NaN/inf entries, e.g. C[%d, %d] = %r"
                         % (len(bad), noisy, true, float(matrix_c[noisy, true])))
    sums = matrix_c.sum(axis=0, dtype=np.float64)
    bad = np.flatnonzero((np.abs(sums - 1) > COLUMN_SUM_TOL) & (sums != 0))
    if len(bad):
        raise ValueError("matrix C column %d (true class %d) sums to %.6g; each column must sum "
                         "to 1 (within %g) or be all zero (%d bad columns)"
                         % (bad[0], bad[0], sums[bad[0]], COLUMN_SUM_TOL, len(bad)))


def check_labels(labels: np.ndarray, num_classes: int, what: str = "noisy label",
                 unlabelled: bool = True) -> np.ndarray:
    """The one label check: labels as int64, or ValueError naming the first bad one.

    Parameters
    ----------
    labels : array_like, shape (M,)
        Numbers holding integers in 0..N-1, or -1 (UNLABELLED) where `unlabelled`.
    num_classes : int
        N.
    what : str
        What the labels are, for the message ("true label", "noisy label", ...).
    unlabelled : bool
        Whether -1 (no label) is allowed.

    Returns
    -------
    numpy.ndarray, shape (M,), int64
    """
    labels = np.asarray(labels)
    as_int = np.rint(labels)
    low = UNLABELLED if unlabelled else 0
    bad = np.flatnonzero((as_int != labels) | (as_int < low) | (as_int >= num_classes))
    if len(bad):
        raise ValueError("%s %r of sample %d is not an integer in %d..%d (N = %d); %d bad in all"
                         % (what, labels[bad[0]].item(), bad[0], low, num_classes - 1,
                            num_classes, len(bad)))
    return as_int.astype(np.int64)
