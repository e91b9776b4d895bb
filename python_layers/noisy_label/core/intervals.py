"""Error bars for accuracies measured on a finite test set over a few seeds (numpy only).

An accuracy is the mean of a 0/1 outcome per test image; two methods tested on the same
images and seeds are compared through the per-image difference of their outcomes (-1, 0, 1).
The intervals here resample both sources of noise: the seeds (data split, noise draw and
training run) and, within each seed, the test images, with the same images for both methods
(a paired bootstrap). Resampling the n images of a seed with replacement only changes how
often each outcome value occurs, so a replicate is a multinomial draw of those counts: exact,
and cheap for any n.

    binomial_interval(450, 500)                  Clopper-Pearson (exact) or Wilson interval
    bootstrap_mean([correct_seed1, ...])         accuracy over seeds and images, 95% interval
    paired_difference([a_seed1, ...], [b_seed1, ...])   accuracy(a) - accuracy(b), interval
    mcnemar(a, b)                                exact McNemar test on one seed's paired outcomes
"""
import math
from typing import Dict, Sequence, Tuple

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 20000


def binomial_interval(successes: int, trials: int, confidence: float = CONFIDENCE,
                      method: str = "clopper-pearson") -> Tuple[float, float]:
    """Interval for a binomial proportion successes / trials.

    Parameters
    ----------
    successes, trials : int
        0 <= successes <= trials, trials >= 1.
    confidence : float
        Two-sided coverage, e.g. 0.95.
    method : {"clopper-pearson", "wilson"}
        Clopper-Pearson: the exact interval from beta quantiles (coverage at least
        `confidence`); Wilson: the score interval.

    Returns
    -------
    (low, high) : tuple of float
    """
    successes, trials = int(successes), int(trials)
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError("binomial_interval: need 0 <= successes <= trials and trials >= 1, got "
                         "%d of %d" % (successes, trials))
    alpha = 1.0 - confidence
    if method == "clopper-pearson":
        from scipy.stats import beta
        low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes,
                                                        trials - successes + 1))
        high = 1.0 if successes == trials else float(beta.ppf(1 - alpha / 2, successes + 1,
                                                              trials - successes))
        return low, high
    if method == "wilson":
        from scipy.stats import norm
        z = float(norm.ppf(1 - alpha / 2))
        p = successes / trials
        centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
        half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials
                                                    + z * z / (4 * trials * trials))
        return max(0.0, centre - half), min(1.0, centre + half)
    raise ValueError("binomial_interval: unknown method %r (clopper-pearson, wilson)" % method)


def _counts(outcomes: Sequence[np.ndarray], values: np.ndarray) -> np.ndarray:
    """(S, K) counts of each of the K `values` among each seed's outcomes."""
    table = np.zeros((len(outcomes), len(values)), np.int64)
    for s, o in enumerate(outcomes):
        o = np.asarray(o).ravel()
        if o.size == 0:
            raise ValueError("bootstrap: seed %d has no outcomes" % s)
        unknown = ~np.isin(o, values)
        if unknown.any():
            raise ValueError("bootstrap: seed %d has outcome %r, not one of %s"
                             % (s, o[unknown][0], values.tolist()))
        table[s] = [(o == v).sum() for v in values]
    return table


def _multinomial(rng: np.random.RandomState, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Multinomial draws with per-draw probabilities: n (...,) trials, p (..., K) -> (..., K),
    by conditional binomials (numpy's RandomState.multinomial takes one pvals only)."""
    out = np.zeros(p.shape, np.int64)
    left = n.astype(np.int64).copy()
    mass = np.ones(n.shape)
    for k in range(p.shape[-1] - 1):
        share = np.clip(np.divide(p[..., k], mass, out=np.zeros(n.shape), where=mass > 1e-12),
                        0.0, 1.0)
        out[..., k] = rng.binomial(left, share)
        left -= out[..., k]
        mass = mass - p[..., k]
    out[..., -1] = left
    return out


def bootstrap_mean(outcomes: Sequence[np.ndarray], confidence: float = CONFIDENCE,
                   resamples: int = RESAMPLES, seed: int = 0, resample_seeds: bool = True
                   ) -> Dict[str, float]:
    """Mean over seeds of each seed's mean outcome, with a percentile bootstrap interval.

    Each replicate draws S seeds with replacement (unless resample_seeds is False, or S = 1)
    and, for each, n_s outcomes with replacement from that seed's n_s outcomes.

    Parameters
    ----------
    outcomes : sequence of S numpy.ndarray, each of shape (n_s,)
        Per test item and seed: 0/1 (correct) for an accuracy, -1/0/1 for a paired difference.
        Values must be in {-1, 0, 1} (booleans count as 0/1).
    confidence : float
    resamples : int
    seed : int
        Of the resampling; the result is a function of the data and this seed.
    resample_seeds : bool

    Returns
    -------
    dict
        {"mean", "low", "high", "confidence", "seeds": S, "items": sum of n_s,
         "p_not_above_zero": share of replicates <= 0, "p_not_below_zero": share >= 0}.
    """
    values = np.array([-1, 0, 1])
    table = _counts([np.asarray(o, dtype=np.int64) for o in outcomes], values)
    n = table.sum(axis=1)                                   # (S,)
    per_seed = table @ values / n                           # (S,)
    rng = np.random.RandomState(seed)
    num_seeds = len(n)
    if resample_seeds and num_seeds > 1:
        picks = rng.randint(num_seeds, size=(resamples, num_seeds))
    else:
        picks = np.tile(np.arange(num_seeds), (resamples, 1))
    draws = _multinomial(rng, n[picks], (table / n[:, None])[picks])    # (R, S, K)
    replicate = (draws @ values / n[picks]).mean(axis=1)    # (R,)
    alpha = 1.0 - confidence
    low, high = np.quantile(replicate, [alpha / 2, 1 - alpha / 2])
    return {"mean": float(per_seed.mean()), "low": float(low), "high": float(high),
            "confidence": confidence, "seeds": int(num_seeds), "items": int(n.sum()),
            "p_not_above_zero": float((replicate <= 0).mean()),
            "p_not_below_zero": float((replicate >= 0).mean())}


def paired_difference(correct_a: Sequence[np.ndarray], correct_b: Sequence[np.ndarray],
                      confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                      seed: int = 0) -> Dict[str, float]:
    """accuracy(a) - accuracy(b) on the same test items and seeds, with a paired bootstrap
    interval (bootstrap_mean of the per-item differences).

    Parameters
    ----------
    correct_a, correct_b : sequence of S numpy.ndarray of bool, shape (n_s,)
        Whether each method got each test item right, item i of seed s being the same image
        for both.

    Returns
    -------
    dict
        bootstrap_mean's, plus "significant": the interval excludes 0, and "two_sided_p":
        2 min(p_not_above_zero, p_not_below_zero), capped at 1 (a bootstrap p-value).
    """
    if len(correct_a) != len(correct_b):
        raise ValueError("paired_difference: %d seeds against %d" % (len(correct_a), len(correct_b)))
    differences = []
    for s, (a, b) in enumerate(zip(correct_a, correct_b)):
        a, b = np.asarray(a, bool).ravel(), np.asarray(b, bool).ravel()
        if a.shape != b.shape:
            raise ValueError("paired_difference: seed %d has %d items against %d"
                             % (s, a.size, b.size))
        differences.append(a.astype(np.int64) - b.astype(np.int64))
    out = bootstrap_mean(differences, confidence, resamples, seed)
    out["significant"] = bool(out["low"] > 0 or out["high"] < 0)
    out["two_sided_p"] = min(1.0, 2 * min(out["p_not_above_zero"], out["p_not_below_zero"]))
    return out


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> Dict[str, float]:
    """Exact McNemar test of two methods on the same test items (one seed).

    Parameters
    ----------
    correct_a, correct_b : numpy.ndarray of bool, shape (n,)

    Returns
    -------
    dict
        {"a_only": items only a got right, "b_only": only b, "p": the two-sided exact p-value,
        i.e. 2 P(X <= min(a_only, b_only)) for X ~ Binomial(a_only + b_only, 1/2), capped at 1}.
    """
    a, b = np.asarray(correct_a, bool).ravel(), np.asarray(correct_b, bool).ravel()
    if a.shape != b.shape:
        raise ValueError("mcnemar: %d items against %d" % (a.size, b.size))
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    total = a_only + b_only
    tail = sum(math.comb(total, k) for k in range(min(a_only, b_only) + 1)) / 2.0 ** total
    return {"a_only": a_only, "b_only": b_only, "p": min(1.0, 2 * tail)}


def majority_rate(train_labels: np.ndarray, eval_labels: np.ndarray) -> Tuple[int, float]:
    """The trivial predictor's accuracy: always answer the most common class of the training
    labels, scored on eval_labels.

    Parameters
    ----------
    train_labels : numpy.ndarray of int, shape (m,)
    eval_labels : numpy.ndarray of int, shape (n,)

    Returns
    -------
    (class, rate) : tuple
        The majority class of train_labels (the smallest on a tie) and the share of
        eval_labels equal to it.
    """
    train_labels = np.asarray(train_labels, np.int64).ravel()
    eval_labels = np.asarray(eval_labels, np.int64).ravel()
    if train_labels.size == 0 or eval_labels.size == 0:
        raise ValueError("majority_rate: empty labels")
    classes, counts = np.unique(train_labels, return_counts=True)
    majority = int(classes[np.argmax(counts)])
    return majority, float((eval_labels == majority).mean())
