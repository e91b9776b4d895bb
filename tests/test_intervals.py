"""Error bars (noisy_label.core.intervals, numpy only): binomial intervals against known cases,
the bootstrap against the binomial interval it must reproduce on one seed, paired differences
that must and must not be called significant, McNemar's exact test, the majority rate."""
import numpy as np
import pytest

from noisy_label.core import intervals


def outcomes(right, total, rng=None):
    """A 0/1 array with `right` ones out of `total` (shuffled)."""
    out = np.zeros(total, bool)
    out[:right] = True
    return (rng or np.random.RandomState(0)).permutation(out)


def test_clopper_pearson_matches_its_closed_forms_and_a_table():
    # x = 0 and x = n have closed forms: (0, 1 - (alpha/2)^(1/n)) and ((alpha/2)^(1/n), 1).
    assert intervals.binomial_interval(0, 10) == (0.0, pytest.approx(1 - 0.025 ** 0.1))
    assert intervals.binomial_interval(10, 10) == (pytest.approx(0.025 ** 0.1), 1.0)
    # 5 of 10: the exact interval (0.1871, 0.8129), as tabulated.
    low, high = intervals.binomial_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.1871, 0.8129)


def test_wilson_matches_newcombes_example():
    # Newcombe (1998), Stat. Med. 17:857, 81 of 263: Wilson 0.2553 to 0.3662.
    low, high = intervals.binomial_interval(81, 263, method="wilson")
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    with pytest.raises(ValueError, match="unknown method"):
        intervals.binomial_interval(1, 2, method="wald")
    with pytest.raises(ValueError, match="0 <= successes <= trials"):
        intervals.binomial_interval(3, 2)


def test_one_seed_bootstrap_is_the_binomial_interval():
    # 450 of 500 test images right: 0.9 ± 1.96 sqrt(0.9 * 0.1 / 500) = ± 0.0263, the README's
    # "about ±2.6 points"; the bootstrap over images must give the same.
    row = intervals.bootstrap_mean([outcomes(450, 500)])
    wilson = intervals.binomial_interval(450, 500, method="wilson")
    assert row["mean"] == pytest.approx(0.9)
    assert row["low"] == pytest.approx(wilson[0], abs=0.004)
    assert row["high"] == pytest.approx(wilson[1], abs=0.004)
    assert row["high"] - row["low"] == pytest.approx(2 * 0.0263, abs=0.004)
    assert (row["seeds"], row["items"]) == (1, 500)
    # The result is a function of the data and the resampling seed.
    assert intervals.bootstrap_mean([outcomes(450, 500)]) == row


def test_bootstrap_covers_the_true_accuracy_about_95_percent_of_the_time():
    rng = np.random.RandomState(1)
    hits = 0
    for trial in range(200):
        seeds = [rng.rand(300) < 0.8 for _ in range(3)]
        row = intervals.bootstrap_mean(seeds, resamples=2000, seed=trial,
                                       resample_seeds=False)
        hits += row["low"] <= 0.8 <= row["high"]
    assert 0.89 <= hits / 200.0 <= 0.99


def test_seeds_that_disagree_widen_the_interval():
    same = [outcomes(450, 500)] * 3
    apart = [outcomes(430, 500), outcomes(450, 500), outcomes(470, 500)]
    narrow, wide = intervals.bootstrap_mean(same), intervals.bootstrap_mean(apart)
    assert narrow["mean"] == pytest.approx(wide["mean"])
    assert wide["high"] - wide["low"] > 1.3 * (narrow["high"] - narrow["low"])


def test_paired_difference_calls_only_real_differences_significant():
    rng = np.random.RandomState(2)
    base = [rng.rand(500) < 0.88 for _ in range(3)]
    # Identical predictions: exactly no difference.
    same = intervals.paired_difference(base, base)
    assert (same["mean"], same["low"], same["high"], same["significant"]) == (0, 0, 0, False)
    # Five points better on every seed: 25 images a seed that only b gets right.
    better = []
    for b in base:
        b = b.copy()
        b[np.flatnonzero(~b)[:25]] = True
        better.append(b)
    up = intervals.paired_difference(better, base)
    assert up["mean"] == pytest.approx(0.05) and up["significant"] and up["low"] > 0
    down = intervals.paired_difference(base, better)
    assert down["mean"] == pytest.approx(-0.05) and down["significant"] and down["high"] < 0
    # One point apart, with 40 images a seed on which the two disagree: within the noise.
    close = []
    for b in base:
        b = b.copy()
        wrong, right = np.flatnonzero(~b), np.flatnonzero(b)
        b[wrong[:25]] = True
        b[right[:20]] = False
        close.append(b)
    tie = intervals.paired_difference(close, base)
    assert tie["mean"] == pytest.approx(0.01) and not tie["significant"]
    assert tie["low"] < 0 < tie["high"] and tie["two_sided_p"] > 0.05
    with pytest.raises(ValueError, match="seed 0 has 499 items against 500"):
        intervals.paired_difference([base[0][:-1]], [base[0]])


def test_mcnemar_exact():
    a = np.array([True] * 5 + [False] * 5)
    b = np.array([False] * 5 + [False] * 5)
    # 5 discordant pairs, all for a: 2 * (1/2)^5.
    assert intervals.mcnemar(a, b) == {"a_only": 5, "b_only": 0, "p": 0.0625}
    assert intervals.mcnemar(a, a)["p"] == 1.0
    c = np.array([True] * 3 + [False] * 7)
    d = np.array([False] * 3 + [True] * 3 + [False] * 4)
    assert intervals.mcnemar(c, d)["p"] == 1.0          # 3 against 3


def test_majority_rate():
    assert intervals.majority_rate([0, 0, 1, 2, 0], [0, 1, 1, 0]) == (0, 0.5)
    assert intervals.majority_rate([2, 1, 1, 2], [1, 1, 2]) == (1, pytest.approx(2 / 3))
    with pytest.raises(ValueError, match="empty"):
        intervals.majority_rate([], [1])
