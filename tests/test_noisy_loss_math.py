"""noisy_label.core.noisy_loss against a plain, sample-by-sample transcription of
docs/model.md (the model and the loss layer), a numerical gradient check of the EM
objective, and the checks of C, labels and C files."""
import math

import numpy as np
import pytest

from noisy_label.core import noisy_loss
from noisy_label.core.matrix_c import load_matrix_c
from noisy_label.io import blob_io

FLT_MIN = np.finfo(np.float32).tiny


def reference(logits_clean, logits_ntype, labels, matrix_c, loss_weight=1.0, update_noise_lr=1.0):
    """docs/model.md#the-loss-layer written out for one sample at a time, in float64
    (deliberately not vectorised).

    Returns loss, p(y|x), p(z|x), q, d loss/d clean logits, d loss/d noise-type logits.
    """
    logits_clean, logits_ntype = np.float64(logits_clean), np.float64(logits_ntype)
    num, num_classes = logits_clean.shape
    prob_y, prob_z = np.zeros((num, num_classes)), np.zeros((num, 3))
    q = np.zeros((num, num_classes, 3))
    d_clean, d_ntype = np.zeros((num, num_classes)), np.zeros((num, 3))
    total = 0.0
    for i in range(num):
        e = [math.exp(a - max(logits_clean[i])) for a in logits_clean[i]]
        prob_y[i] = [v / sum(e) for v in e]
        e = [math.exp(a - max(logits_ntype[i])) for a in logits_ntype[i]]
        prob_z[i] = [v / sum(e) for v in e]
        noisy = int(labels[i])
        if noisy == -1:
            continue
        u = np.zeros((num_classes, 3))
        for y in range(num_classes):
            for z in range(3):
                if z == 0:
                    p_noisy = 1.0 if noisy == y else 0.0
                elif z == 1:
                    p_noisy = 0.0 if noisy == y else 1.0 / (num_classes - 1)
                else:
                    p_noisy = float(matrix_c[noisy, y])
                u[y, z] = p_noisy * prob_y[i, y] * prob_z[i, z]
        evidence = u.sum()
        if evidence == 0:
            continue
        for y in range(num_classes):
            for z in range(3):
                q[i, y, z] = u[y, z] / evidence
                total -= q[i, y, z] * math.log(max(u[y, z], FLT_MIN))
        w = q[i].sum()
        for y in range(num_classes):
            d_clean[i, y] = (prob_y[i, y] - q[i, y, :].sum()) * w * loss_weight / num
        for z in range(3):
            d_ntype[i, z] = ((prob_z[i, z] - q[i, :, z].sum())
                             * w * loss_weight * update_noise_lr / num)
    return total / num, prob_y, prob_z, q, d_clean, d_ntype


def random_matrix_c(rng, num_classes, zero_columns=(1,)):
    """A valid C (float32): zero diagonal, about 40% zero entries, the given columns all zero."""
    matrix_c = rng.rand(num_classes, num_classes) * (rng.rand(num_classes, num_classes) > 0.4)
    for y in range(num_classes):
        matrix_c[(y + 1) % num_classes, y] += 0.1         # no accidental all-zero column
    np.fill_diagonal(matrix_c, 0)
    matrix_c[:, list(zero_columns)] = 0
    sums = matrix_c.sum(axis=0)
    matrix_c[:, sums > 0] /= sums[sums > 0]
    return matrix_c.astype(np.float32)


def random_case(rng, num, num_classes):
    """float32 logits and labels (M,) with -1 labels, for M > 2 one sample with S = 0 and
    for M > 3 one whose S underflows below FLT_MIN."""
    logits_clean = (3 * rng.randn(num, num_classes)).astype(np.float32)
    logits_ntype = (2 * rng.randn(num, 3)).astype(np.float32)
    labels = rng.randint(-1, num_classes, size=num).astype(np.float32)
    labels[0] = rng.randint(num_classes)
    if num > 2:
        labels[2] = -1
        # S = 0: certainly noise-free (p(z=0) = 1) yet p(ỹ|x) = 0 -- both exact in float32.
        logits_ntype[1] = [0, -1000, -1000]
        labels[1] = 3
        logits_clean[1, 3] = -1000
    if num > 3:
        # S is subnormal in float32 and q = 1 on it: the loss is -log(FLT_MIN), not -log(S).
        logits_ntype[3] = [0, -1000, -1000]
        labels[3] = 5
        logits_clean[3, 5] = logits_clean[3].max() - 95
    return logits_clean, logits_ntype, labels


@pytest.mark.parametrize("num_classes", [10, 14])
@pytest.mark.parametrize("num", [1, 128])
@pytest.mark.parametrize("update_noise_lr,loss_weight", [(0.0, 1.0), (0.1, 0.3), (1.0, 2.5)])
def test_forward_and_gradients_equal_the_plain_reference(num_classes, num, update_noise_lr,
                                                         loss_weight):
    rng = np.random.RandomState(num_classes * 1000 + num)
    matrix_c = random_matrix_c(rng, num_classes, zero_columns=(1, 5))
    logits_clean, logits_ntype, labels = random_case(rng, num, num_classes)
    ref = reference(logits_clean, logits_ntype, labels, matrix_c, loss_weight, update_noise_lr)

    loss, prob_y, prob_z, q = noisy_loss.forward(
        logits_clean, logits_ntype, noisy_loss.check_labels(labels, num_classes), matrix_c)
    grads = noisy_loss.gradients(prob_y, prob_z, q, loss_weight, update_noise_lr)
    for got, want in zip((loss, prob_y, prob_z, q) + grads, ref):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7)
    if num > 2:  # the -1 and the S = 0 samples: q = 0, no gradient
        assert not q[1:3].any() and not grads[0][1:3].any() and not grads[1][1:3].any()
    if update_noise_lr == 0:
        assert not grads[1].any()


def test_unlabelled_samples_add_no_loss_but_count_in_the_batch_size():
    rng = np.random.RandomState(1)
    matrix_c = random_matrix_c(rng, 10)
    logits_clean, logits_ntype, labels = random_case(rng, 8, 10)
    labels[:] = rng.randint(10, size=8)
    loss8 = noisy_loss.forward(logits_clean, logits_ntype, labels.astype(int), matrix_c)[0]
    more = [np.concatenate([a, b]) for a, b in zip((logits_clean, logits_ntype, labels),
                                                   random_case(rng, 24, 10))]
    more[2][8:] = -1
    loss32, _, _, q = noisy_loss.forward(more[0], more[1], more[2].astype(int), matrix_c)
    np.testing.assert_allclose(loss32, loss8 * 8 / 32, rtol=1e-6)
    assert not q[8:].any()
    np.testing.assert_allclose(q[:8].sum(axis=(1, 2)), 1, rtol=1e-6)


def test_noise_model_and_posterior_on_a_worked_example():
    matrix_c = np.array([[0, 0.5, 0], [1, 0, 0], [0, 0.5, 0]])   # class 2 never confused
    p_noisy = noisy_loss.noise_model(np.array([1, -1]), matrix_c)
    np.testing.assert_array_equal(p_noisy[0], [[0, 0.5, 1], [1, 0, 0], [0, 0.5, 0]])
    assert not p_noisy[1].any()
    prob_y, prob_z = np.array([[0.2, 0.5, 0.3]]), np.array([[0.5, 0.25, 0.25]])
    u = noisy_loss.joint(prob_y, prob_z, np.array([1]), matrix_c)
    np.testing.assert_allclose(u[0], [[0, 0.025, 0.05], [0.25, 0, 0], [0, 0.0375, 0]])
    q, evidence = noisy_loss.posterior(u)
    np.testing.assert_allclose(evidence, [0.3625])
    np.testing.assert_allclose(q, u / 0.3625)
    np.testing.assert_allclose(noisy_loss.loss(q, u), -(q * np.log(np.where(u > 0, u, FLT_MIN))).sum())


def numerical_gradient(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        old = x[index]
        x[index] = old + eps
        plus = f()
        x[index] = old - eps
        minus = f()
        x[index] = old
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def test_gradients_are_those_of_the_em_objective_with_q_fixed():
    rng = np.random.RandomState(2)
    num_classes = 6
    matrix_c = np.float64(random_matrix_c(rng, num_classes, zero_columns=(2,)))
    logits_clean, logits_ntype, labels = (np.float64(a) for a in random_case(rng, 7, num_classes))
    logits_clean[1, 3] = logits_clean[3, 5] = -30  # S of samples 1 and 3 small, above FLT_MIN
    labels = labels.astype(int)
    _, prob_y, prob_z, q = noisy_loss.forward(logits_clean, logits_ntype, labels, matrix_c)
    d_clean, d_ntype = noisy_loss.gradients(prob_y, prob_z, q, loss_weight=0.7)

    def em_objective():  # -Σ q log u / M with q held at its current value
        u = noisy_loss.joint(noisy_loss.softmax(logits_clean), noisy_loss.softmax(logits_ntype),
                             labels, matrix_c)
        return 0.7 * noisy_loss.loss(q, u)

    np.testing.assert_allclose(d_clean, numerical_gradient(em_objective, logits_clean), atol=1e-8)
    np.testing.assert_allclose(d_ntype, numerical_gradient(em_objective, logits_ntype), atol=1e-8)

    # At q = the posterior this is also the gradient of the marginal -Σ log S / M (Fisher's identity).
    def marginal():
        u = noisy_loss.joint(noisy_loss.softmax(logits_clean), noisy_loss.softmax(logits_ntype),
                             labels, matrix_c)
        evidence = u.sum(axis=(1, 2))
        return -0.7 * np.log(evidence[labels >= 0]).sum() / len(labels)

    np.testing.assert_allclose(d_clean, numerical_gradient(marginal, logits_clean), atol=1e-7)
    np.testing.assert_allclose(d_ntype, numerical_gradient(marginal, logits_ntype), atol=1e-7)


# ---- checks of C and labels ------------------------------------------------------------


def test_check_matrix_c_accepts_zero_columns_and_the_tolerance():
    matrix_c = np.float64(random_matrix_c(np.random.RandomState(3), 5, zero_columns=(0, 4)))
    noisy_loss.check_matrix_c(matrix_c, 5)
    matrix_c[1, 1] += 0.0009
    noisy_loss.check_matrix_c(matrix_c)


@pytest.mark.parametrize("change,message", [
    (lambda c: c[:, :4], r"must be square \(N x N\), got shape \(5, 4\)"),
    (lambda c: c[None], r"must be square \(N x N\), got shape \(1, 5, 5\)"),
    (lambda c: np.where(np.eye(5, dtype=bool) & (np.arange(5) == 2), -0.5, c),
     r"1 negative or NaN/inf entries, e.g. C\[2, 2\] = -0.5"),
    (lambda c: np.where(np.eye(5, dtype=bool), np.nan, c),
     r"5 negative or NaN/inf entries, e.g. C\[0, 0\] = nan"),
    (lambda c: c * np.array([1, 1, 1, 1.002, 0.5]),
     r"column 3 \(true class 3\) sums to 1.002; each column must sum to 1 \(within 0.001\) or "
     r"be all zero \(2 bad columns\)"),
])
def test_check_matrix_c_rejects(change, message):
    matrix_c = np.float64(random_matrix_c(np.random.RandomState(4), 5, zero_columns=()))
    with pytest.raises(ValueError, match=message):
        noisy_loss.check_matrix_c(change(matrix_c))


def test_check_matrix_c_wants_the_n_of_the_logits():
    with pytest.raises(ValueError, match=r"C is 10x10 but the clean logits have N = 14 classes"):
        noisy_loss.check_matrix_c(random_matrix_c(np.random.RandomState(5), 10), 14)
    with pytest.raises(ValueError, match=r"needs N >= 2"):
        noisy_loss.check_matrix_c(np.zeros((1, 1)))


def test_check_labels():
    labels = noisy_loss.check_labels(np.array([-1, 0, 9, 3], np.float32), 10)
    assert labels.dtype == np.int64 and list(labels) == [-1, 0, 9, 3]
    for bad, message in [(10, r"noisy label 10.0 of sample 2 is not an integer in -1..9 \(N = 10\); "
                               r"2 bad in all"),
                         (2.5, r"noisy label 2.5 of sample 2"), (-2, r"noisy label -2.0 of sample 2"),
                         (np.nan, r"noisy label nan of sample 2")]:
        with pytest.raises(ValueError, match=message):
            noisy_loss.check_labels(np.array([-1, 0, bad, 3, bad], np.float32), 10)


# ---- C files -----------------------------------------------------------------------------


def test_load_matrix_c_reads_the_three_formats(tmp_path):
    matrix_c = random_matrix_c(np.random.RandomState(6), 10)
    blob_io.write_blobproto(str(tmp_path / "c.binaryproto"), matrix_c[None, None])
    np.save(str(tmp_path / "c.npy"), matrix_c)
    with open(str(tmp_path / "c.txt"), "w") as f:
        f.write("# C[noisy, true]\n\n")
        np.savetxt(f, matrix_c, fmt="%.9g")
    for name in ("c.binaryproto", "c.npy", "c.txt"):
        loaded = load_matrix_c(str(tmp_path / name), 10)
        assert loaded.dtype == np.float32 and loaded.shape == (10, 10)
        np.testing.assert_array_equal(loaded, matrix_c)


def test_load_matrix_c_errors_name_the_file_and_problem(tmp_path):
    def fails(name, content, message, num_classes=None):
        path = str(tmp_path / name)
        if isinstance(content, np.ndarray):
            np.save(path, content)
        elif content is not None:
            with open(path, "wb" if isinstance(content, bytes) else "w") as f:
                f.write(content)
        with pytest.raises(ValueError, match=message):
            load_matrix_c(path, num_classes)

    fails("missing.npy", None, r"matrix C file .*missing.npy does not exist")
    (tmp_path / "dir.txt").mkdir()
    fails("dir.txt", None, r"matrix C file .*dir.txt is a directory")
    fails("bad.binaryproto", b"\xff\xff\xff\xff not a blob",
          r"cannot read matrix C from .*bad.binaryproto: .*bad.binaryproto is not a BlobProto")
    fails("bad.npy", b"not numpy", r"cannot read matrix C from .*bad.npy")
    fails("words.npy", np.array([["a", "b"], ["c", "d"]]), r"words.npy: matrix C holds <U1 values")
    fails("words.txt", "0 1\n1 zero\n", r"words.txt:2: not a row of numbers: '1 zero'")
    fails("ragged.txt", "0 1 0\n# ok\n1 0\n", r"ragged.txt:3: 2 values, but the first row has 3")
    fails("empty.txt", "# nothing\n", r"empty.txt: no matrix in the file")
    fails("wide.txt", "0 1 0\n1 0 1\n",
          r"wide.txt: matrix C must be square \(N x N\), got shape \(2, 3\)")
    fails("small.txt", "0 1\n1 0\n", r"small.txt: matrix C is 2x2 but the clean logits have N = 3", 3)
    fails("negative.txt", "0 1\n1 -1\n", r"negative.txt: .*C\[1, 1\] = -1.0")
    fails("column.txt", "0 0.9\n1 0\n", r"column.txt: matrix C column 1 \(true class 1\) sums to 0.9")
