"""The noisy-label model of Xiao et al. (CVPR 2015) in plain numpy: no Caffe, no loop over samples.

Symbols (docs/model.md#symbols): M samples, N classes, true label y, observed noisy label ỹ (-1: none),
noise type z in {0 noise-free, 1 random, 2 confusing}, the matrix C indexed [noisy, true].

    u(y, z) = p(ỹ|y,z) p(y|x) p(z|x)      the joint of one sample, (N, 3)
    S       = Σ_{y,z} u                   its evidence
    q       = u / S  (0 when S = 0)       the posterior, used as a fixed soft target (EM)

Arrays keep the dtype they come in (Caffe blobs are float32, as the original C++ layer's
arithmetic), so underflow to 0 happens where it happened there.
"""

import numpy as np

NUM_NOISE_TYPES = 3
NOISE_FREE, RANDOM_NOISE, CONFUSING_NOISE = 0, 1, 2
UNLABELLED = -1
FLT_MIN = np.finfo(np.float32).tiny  # the C++ layer clamps with FLT_MIN before the log
COLUMN_SUM_TOL = 1e-3


def softmax(logits):
    """Row-wise softmax. logits: (M, K) -> (M, K), same dtype."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def noise_model(labels, matrix_c):
    """p(ỹ_i|y,z) for every sample, true class and noise type.

    labels: (M,) ints in -1..N-1; matrix_c: (N, N), C[ỹ, y]. Returns (M, N, 3) in C's dtype:
    [:, y, 0] = [y == ỹ], [:, y, 1] = [y != ỹ] / (N-1), [:, y, 2] = C[ỹ, y]; all 0 where ỹ = -1.
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


def joint(prob_y, prob_z, labels, matrix_c):
    """u = p(ỹ|y,z) p(y|x) p(z|x). prob_y: (M, N); prob_z: (M, 3); labels: (M,) -> (M, N, 3)."""
    u = noise_model(labels, matrix_c.astype(prob_y.dtype, copy=False))
    u *= prob_y[:, :, None]
    u *= prob_z[:, None, :]
    return u


def posterior(u):
    """q = u / S per sample, 0 where S = 0. u: (M, N, 3) -> q (M, N, 3), S (M,)."""
    evidence = u.sum(axis=(1, 2))[:, None, None]
    # Divide, not multiply by 1/S: 1/S overflows float32 when S is subnormal.
    q = np.divide(u, evidence, out=np.zeros_like(u), where=evidence > 0)
    return q, evidence[:, 0, 0]


def loss(q, u):
    """-Σ_i Σ_{y,z} q log max(u, FLT_MIN) / M, M counting every sample. q, u: (M, N, 3) -> scalar."""
    return -(q * np.log(np.maximum(u, u.dtype.type(FLT_MIN)))).sum() / len(q)


def forward(logits_clean, logits_ntype, labels, matrix_c):
    """The layer's forward. logits_clean: (M, N); logits_ntype: (M, 3); labels: (M,) ints; C: (N, N).

    Returns (loss, prob_y (M, N), prob_z (M, 3), q (M, N, 3)).
    """
    prob_y, prob_z = softmax(logits_clean), softmax(logits_ntype)
    u = joint(prob_y, prob_z, labels, matrix_c)
    q, _ = posterior(u)
    return loss(q, u), prob_y, prob_z, q


def gradients(prob_y, prob_z, q, loss_weight=1.0, update_noise_lr=1.0):
    """EM M-step gradients with q held fixed, for the clean and the noise-type logits.

    prob_y: (M, N); prob_z: (M, 3); q: (M, N, 3). Returns (M, N), (M, 3):
    (p(y|x) - Σ_z q) w g / M and (p(z|x) - Σ_y q) w g update_noise_lr / M, where w = Σ q
    is 1 for a usable labelled sample and 0 for an unlabelled or S = 0 one.
    """
    scale = q.sum(axis=(1, 2)) * (loss_weight / len(q))            # (M,)
    # einsum: numpy's sum over a short axis is several times slower here.
    d_clean = (prob_y - np.einsum("iyz->iy", q)) * scale[:, None]
    d_ntype = (prob_z - np.einsum("iyz->iz", q)) * (scale * update_noise_lr)[:, None]
    return d_clean.astype(prob_y.dtype, copy=False), d_ntype.astype(prob_z.dtype, copy=False)


# ---- checking inputs --------------------------------------------------------------------


def check_matrix_c(matrix_c, num_classes=None):
    """Raise ValueError unless C is N×N (N = num_classes if given), finite, non-negative, and
    each column (a true class) sums to 1 within 1e-3 or is all zero (no confusing noise)."""
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


def check_labels(labels, num_classes, what="noisy label", unlabelled=True):
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
