"""compare.md from compare.json's content (no Caffe): each method's accuracy with its 95%
interval, the paired differences against the best and against noisy as truth marked only
where the interval excludes 0, the prose claiming only those, the noise-type net beside its
majority rate, and a warning only where a method ended near chance or its loss went negative."""
import numpy as np

from noisy_label.core import intervals
from noisy_label.experiments import compare

N = 500


def right(accuracy, seed, base=None, flips=0, unflips=0):
    """Per-image outcomes: `base` with `flips` wrong images made right and `unflips` right ones
    made wrong, else a fresh draw."""
    if base is not None:
        out = base.copy()
        wrong, good = np.flatnonzero(~out), np.flatnonzero(out)
        out[wrong[:flips]] = True
        out[good[:unflips]] = False
        return out
    return np.random.RandomState(seed).rand(N) < accuracy


def row(stage, role, correct, lowest):
    accuracies = [float(c.mean()) for c in correct]
    return {"stage": stage, "role": role,
            "seeds": {str(s + 1): a for s, a in enumerate(accuracies)},
            "mean": float(np.mean(accuracies)), "std": float(np.std(accuracies)),
            "lowest_train_loss": {str(s + 1): v for s, v in enumerate(lowest)}}


def test_markdown_marks_only_differences_beyond_the_noise():
    noisy = [right(0.88, s) for s in range(3)]
    correct = {"clean": [right(0.85, 10 + s) for s in range(3)],
               "noisy_gt_ft_clean": noisy,
               # ours: 12 images a seed that only it gets right, 8 only noisy as truth does (0.8
               # points): within the noise
               "noisy_label_loss": [right(None, 0, n, 12, 8) for n in noisy],
               # forward: 30 images a seed better (6 points): beyond it
               "forward_corrected": [right(None, 0, n, 30) for n in noisy],
               "backward_corrected": [right(0.1, 20 + s) for s in range(3)]}
    methods = {"clean only": ("clean", "clean"), "noisy as truth": ("noisy_gt_ft_clean",
                                                                    "noisy_as_truth"),
               "ours": ("noisy_label_loss", "ours"), "forward": ("forward_corrected", "forward"),
               "backward": ("backward_corrected", "backward")}
    lowest = {"backward": [-3.5, 1.0, 0.5]}
    # backward diverged at seed 2: Caffe's Accuracy layer logged 1.0 for its NaN logits.
    compared = {"dataset": "digits", "tested_on": "test", "chance": 0.1, "seeds": [1, 2, 3],
                "methods": {label: row(stage, role, correct[stage], lowest.get(label, [0.3] * 3))
                            for label, (stage, role) in methods.items()}}
    compared["methods"]["backward"]["seeds"]["2"] = 1.0
    compared["methods"]["backward"]["diverged_seeds"] = [2]
    ntype = {"stage": "ntype", "lmdb": "ntype_test", "pairs": [20, 20, 20],
             "majority_type": [0, 0, 0], "per_seed": [(0.5, 0.55), (0.45, 0.5), (0.6, 0.5)],
             "accuracy": intervals.bootstrap_mean([right(0.52, 30 + s)[:20] for s in range(3)]),
             "majority": intervals.bootstrap_mean([right(0.52, 40 + s)[:20] for s in range(3)])}
    ntype["difference"] = intervals.paired_difference([right(0.52, 30 + s)[:20] for s in range(3)],
                                                      [right(0.52, 40 + s)[:20] for s in range(3)])
    compare.add_intervals(compared, correct, ntype)
    rows = compared["methods"]
    assert compared["best"] == "forward"
    assert rows["ours"]["vs_noisy_as_truth"]["mean"] == np.float64(4 / N)
    assert not rows["ours"]["vs_noisy_as_truth"]["significant"]
    assert rows["forward"]["vs_noisy_as_truth"]["significant"]
    assert rows["ours"]["vs_best"]["significant"] and rows["forward"]["vs_best"] is None
    assert set(rows["ours"]["mcnemar_vs_noisy_as_truth"]) == {"1", "2", "3"}
    text = compare.markdown(compared)
    assert ("| method | stage | accuracy [95%] | Δ vs best [95%] | Δ vs noisy as truth [95%] | "
            "seed 1 | seed 2 | seed 3 |") in text
    lines = {line.split(" | ")[0][2:]: line for line in text.splitlines()
             if line.startswith("| ")}
    assert lines["forward"].split(" | ")[2].startswith("**")      # the best mean in bold
    ours_vs_noisy = lines["ours"].split(" | ")[4]
    assert ours_vs_noisy.startswith("+0.008 [") and not ours_vs_noisy.endswith("*")
    assert lines["forward"].split(" | ")[4].endswith("*")
    assert lines["ours"].split(" | ")[3].endswith("*")            # behind the best: beyond noise
    assert "Within the noise of it (the 95% interval of the paired difference includes 0): none" \
        in text
    assert "against noisy as truth +0.008" in text and "within the noise." in text
    # The noise-type net beside the majority-type rate on the same pairs.
    assert "| noise-type net | " in text and "| majority type | " in text
    assert '(\"noise-free\")' in text
    warnings = [line for line in text.splitlines() if line.startswith(tuple(methods))
                and ": " in line and not line.startswith("|")]
    assert warnings == ["backward: ends near chance (0.10). It diverged (NaN training loss) at "
                        "seed 2. Its training loss went negative (lowest -3.50 at seed 1): the "
                        "loss is unbounded below, so training can drive it down without "
                        "fitting the labels."]
    # The per-seed figures are the per-image accuracies, not the log's 1.0.
    assert " | 1.0000 |" not in lines["backward"]


def test_markdown_without_outcomes_says_std():
    compared = {"dataset": "digits", "tested_on": "test", "chance": 0.1, "seeds": [1, 2, 3],
                "methods": {"ours": row("noisy_label_loss", "ours",
                                        [right(0.9, s) for s in range(3)], [0.3] * 3)}}
    assert "(std)" in compare.markdown(compared)


def test_a_diverged_log_parses():
    """A method that diverged logs -nan (backward correction did on digits): a value, not an
    error that stops make compare."""
    from noisy_label.experiments import caffe_log
    text = ("I1202 01:03:34.6 1 solver.cpp:239] Iteration 100, loss = -nan\n"
            "I1202 01:03:34.6 1 solver.cpp:258]     Train net output #0: loss_clean = -nan "
            "(* 1 = -nan loss)\n"
            "I1202 01:03:35.1 1 solver.cpp:330] Iteration 200, Testing net (#0)\n"
            "I1202 01:03:35.1 1 solver.cpp:414]     Test net output #0: accuracy = 0.1\n"
            "I1202 01:03:35.1 1 solver.cpp:414]     Test net output #1: loss_clean = -inf\n")
    rows = caffe_log.parse(text)
    assert np.isnan(rows["train"][0]["loss"]) and np.isnan(rows["train"][0]["loss_clean"])
    assert rows["test"][0]["loss_clean"] == -np.inf and caffe_log.final_test(text) == 0.1
