"""Synthetic noise, the matrix C estimate of docs/data.md and noise types: pure numpy."""
import math

import numpy as np
import pytest

from noisy_label.core import matrix_c, noise, noisy_loss


def reference_matrix_c(labels, noisy_labels, n):
    """docs/data.md#estimating-c-from-paired-labels written out plainly, one class and one i at
    a time (the test's own reference)."""
    counts = [[0] * n for _ in range(n)]
    for y, noisy in zip(labels, noisy_labels):
        counts[y][noisy] += 1
    alpha = 1.0 / (n - 1)
    c = [[0.0] * n for _ in range(n)]
    for y in range(n):
        counts[y][y] = 0
        total = sum(counts[y])
        f = [count / total if total else 0.0 for count in counts[y]]
        ranked = sorted(((f[k], k) for k in range(n)), reverse=True)
        best, best_i = -math.inf, 0
        for i in range(n + 1):
            kept = sum(fk for fk, _ in ranked[:i])
            score = sum(fk * math.log(fk / kept) for fk, _ in ranked[:i])
            score += sum(fk * math.log(alpha) for fk, _ in ranked[i:])
            if score >= best:
                best, best_i = score, i
            if i < n and ranked[i][0] == 0:
                break
        for fk, k in ranked[:best_i]:
            c[k][y] = fk
    for y in range(n):
        column = sum(c[k][y] for k in range(n))
        for k in range(n):
            c[k][y] = c[k][y] / column if column else 0.0
    return np.array(c)


@pytest.mark.parametrize("level", [0.0, 0.3, 0.5, 1.0])
def test_matrix_q_is_column_stochastic_with_diagonal_one_minus_level(level):
    q = noise.synthesize_matrix_q(10, level, np.random.RandomState(3))
    np.testing.assert_allclose(q.sum(axis=0), 1.0)
    np.testing.assert_allclose(np.diag(q), 1.0 - level)
    off = q[~np.eye(10, dtype=bool)]
    assert off.min() >= 0
    np.testing.assert_allclose((q - np.diag(np.diag(q))).sum(axis=0), level)
    if 0 < level:
        assert len(np.unique(np.round(off, 6))) > 10, "off-diagonal mass should be random"


def test_noisy_labels_follow_q_and_the_asked_rate():
    rng = np.random.RandomState(0)
    q = noise.synthesize_matrix_q(5, 0.4, rng)
    labels = np.repeat(np.arange(5), 20000)
    noisy = noise.draw_noisy_labels(labels, q, rng)
    assert abs(noise.noise_rate(labels, noisy) - 0.4) < 0.01
    for y in range(5):
        empirical = np.bincount(noisy[labels == y], minlength=5) / 20000.0
        np.testing.assert_allclose(empirical, q[:, y], atol=0.012)
    again = noise.draw_noisy_labels(labels, q, np.random.RandomState(7))
    assert np.array_equal(again, noise.draw_noisy_labels(labels, q, np.random.RandomState(7)))


def test_noise_level_extremes():
    rng = np.random.RandomState(1)
    labels = np.arange(10).repeat(100)
    assert np.array_equal(noise.draw_noisy_labels(labels, noise.synthesize_matrix_q(10, 0, rng), rng),
                          labels)
    noisy = noise.draw_noisy_labels(labels, noise.synthesize_matrix_q(10, 1, rng), rng)
    assert noise.noise_rate(labels, noisy) == 1.0


@pytest.mark.parametrize("level", [-0.1, 1.5, float("nan")])
def test_noise_level_outside_0_1_is_refused(level):
    with pytest.raises(ValueError, match=r"NOISE_LEVEL must be in \[0, 1\], got"):
        noise.synthesize_matrix_q(10, level, np.random.RandomState(0))


def test_matrix_c_matches_the_reference_on_random_noise():
    rng = np.random.RandomState(5)
    for trial in range(200):
        n = rng.choice([2, 3, 4, 10, 14])
        m = rng.randint(1, 400)
        labels = rng.randint(0, n, m)
        # Mixtures of confusing, random and no noise, with many ties among small counts.
        q = noise.synthesize_matrix_q(n, rng.uniform(0, 1), rng)
        q = q * (rng.uniform(size=(n, n)) < 0.5) + np.eye(n)
        q /= q.sum(axis=0)
        noisy = noise.draw_noisy_labels(labels, q, rng)
        estimate, never = matrix_c.estimate_matrix_c(labels, noisy, n)
        expected = reference_matrix_c(labels, noisy, n)
        np.testing.assert_allclose(estimate, expected, atol=1e-12, err_msg="trial %d" % trial)
        assert not np.isnan(estimate).any()
        np.testing.assert_array_equal(never, np.flatnonzero(expected.sum(axis=0) == 0))


def test_matrix_c_by_hand():
    # True class 0: wrong labels 1 x6, 2 x3, 3 x1 of 4 classes (alpha = 1/3).
    labels = [0] * 14 + [1] * 4 + [2] * 2
    noisy = [1] * 6 + [2] * 3 + [3] * 1 + [0] * 4 + [2] * 4 + [2, 2]
    c, never = matrix_c.estimate_matrix_c(labels, noisy, 4)
    # f = (.6, .3, .1) for noisy 1, 2, 3. Scores: i=0 log(1/3) = -1.099; i=1 .4 log(1/3) = -0.439;
    # i=2 .6 log(2/3) + .3 log(1/3) + .1 log(1/3) = -0.683; i=3 .6 log .6 + .3 log .3 + .1 log .1
    # = -0.898. Best i=1: only noisy label 1 is confusing.
    np.testing.assert_allclose(c[:, 0], [0, 1, 0, 0])
    np.testing.assert_allclose(c, reference_matrix_c(labels, noisy, 4))
    # Class 1 went wrong only as 2: all its confusing mass on 2.
    np.testing.assert_allclose(c[:, 1], [0, 0, 1, 0])
    # Class 2 was never mislabelled, class 3 never seen: zero columns, listed.
    assert list(never) == [2, 3]
    assert not c[:, 2].any() and not c[:, 3].any()


def test_ties_prefer_more_confusing_classes():
    # Two classes: i=0 and i=1 both score 0 (log 1); the larger i wins.
    c, never = matrix_c.estimate_matrix_c([0, 0, 1], [1, 0, 0], 2)
    np.testing.assert_array_equal(c, [[0, 1], [1, 0]])
    assert len(never) == 0


def test_noise_types():
    c = np.zeros((4, 4))
    c[1, 0] = 0.9
    c[2, 0] = 0.1
    labels = [0, 0, 0, 0, 3]
    noisy = [0, 1, 2, 3, 0]
    types = matrix_c.noise_types(labels, noisy, c)
    # 1/(N-1) = 1/3: 0.9 is confusing, 0.1 and 0 are random.
    assert list(types) == [noisy_loss.NOISE_FREE, noisy_loss.CONFUSING_NOISE,
                           noisy_loss.RANDOM_NOISE, noisy_loss.RANDOM_NOISE, noisy_loss.RANDOM_NOISE]


def test_noise_type_at_exactly_one_over_n_minus_1_is_confusing():
    # The original's rule is strict: random only if C[noisy, true] < 1/(N-1). With N = 5,
    # 1/(N-1) = 0.25 is exact in binary, so the boundary itself is tested.
    c = np.zeros((5, 5))
    c[[1, 2, 3, 4], 0] = 0.25
    c[1, 2], c[3, 2] = 0.75, 0.25 - 1e-12
    types = matrix_c.noise_types([0, 0, 2, 2], [1, 4, 1, 3], c)
    assert list(types) == [noisy_loss.CONFUSING_NOISE, noisy_loss.CONFUSING_NOISE,
                           noisy_loss.CONFUSING_NOISE, noisy_loss.RANDOM_NOISE]


def test_labels_outside_range_are_named():
    with pytest.raises(ValueError, match=r"true label 10 of sample 2 is not an integer in 0\.\.9"):
        matrix_c.confusion_counts([1, 2, 10], [1, 2, 3], 10)
    with pytest.raises(ValueError, match=r"noisy label -1 of sample 0 is not an integer in 0\.\.9"):
        matrix_c.estimate_matrix_c([1], [-1], 10)
    with pytest.raises(ValueError, match="3 true labels but 2 noisy labels"):
        matrix_c.confusion_counts([1, 2, 3], [1, 2], 10)


def test_save_and_load_matrix(tmp_path):
    c = noise.synthesize_matrix_q(5, 0.3, np.random.RandomState(0))
    matrix_c.save_matrix(str(tmp_path / "c.binaryproto"), c, str(tmp_path / "c.txt"))
    from noisy_label.io import blob_io
    assert blob_io.read_blobproto(str(tmp_path / "c.binaryproto")).shape == (1, 1, 5, 5)
    # A noise matrix Q keeps labels on its diagonal; C, the confusing noise, never does.
    np.testing.assert_allclose(matrix_c.load_matrix_q(str(tmp_path / "c.binaryproto")), c,
                               atol=1e-7)
    np.testing.assert_allclose(matrix_c.load_matrix_q(str(tmp_path / "c.txt")), c, atol=1e-6)
    with pytest.raises(ValueError, match=r"c\.txt: matrix C has 5 non-zero diagonal entries, e\.g\. "
                                         r"C\[0, 0\] = 0\.7; C's diagonal must be 0"):
        matrix_c.load_matrix_c(str(tmp_path / "c.txt"))
    off_diagonal = c - np.diag(np.diag(c))
    matrix_c.save_matrix(str(tmp_path / "c0.binaryproto"), off_diagonal / off_diagonal.sum(0))
    assert np.diag(matrix_c.load_matrix_c(str(tmp_path / "c0.binaryproto"))).sum() == 0
    (tmp_path / "bad.txt").write_text("1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match=r"bad\.txt: matrix C must be square"):
        matrix_c.load_matrix_c(str(tmp_path / "bad.txt"))
    with pytest.raises(ValueError, match="matrix C file .*nope.txt does not exist"):
        matrix_c.load_matrix_c(str(tmp_path / "nope.txt"))


def test_estimated_matrix_q_counts_every_noisy_label():
    labels = [0, 0, 0, 0, 1, 1]
    noisy = [0, 0, 1, 2, 1, 0]
    q = matrix_c.estimate_matrix_q(labels, noisy, 4)
    np.testing.assert_allclose(q[:, 0], [0.5, 0.25, 0.25, 0])    # Q[noisy, true]
    np.testing.assert_allclose(q[:, 1], [0.5, 0.5, 0, 0])
    np.testing.assert_array_equal(q[:, 2:], np.eye(4)[:, 2:])     # no pairs: no noise known
    np.testing.assert_allclose(q.sum(axis=0), 1)
