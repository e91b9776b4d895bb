"""The experiment report: test accuracy per stage over seeds, beside the original's numbers.

Reads the Caffe logs that `noisy_label.pipeline` wrote under each seed's experiment root,
writes `report.md` (a table: each stage's accuracy over seeds with a 95% interval, its paired
difference against noisy as truth, the noise-type net beside the majority-type rate) and
`report.png` (test-accuracy curves, the intervals), for make train's stages; make compare's
(noisy_label.experiments.compare) has its own.
"""
import os
from typing import Dict, List, Optional

import numpy as np

from noisy_label import datasets, paths
from noisy_label.core import intervals
from noisy_label.experiments import caffe_log, stages
from noisy_label.io import blob_io, imageset


def stage_accuracies(name: str, exp: Optional[str]) -> Dict[str, float]:
    """{stage: final test accuracy} of make train's stages, from the training logs under one
    experiment root."""
    log_dir = paths.log_dir(name, exp)
    out = {}
    for stage in stages.stage_nets(name, compare=False):
        log = os.path.join(log_dir, stage + ".log")
        if os.path.exists(log):
            with open(log) as f:
                accuracy = caffe_log.final_test(f.read())
            if accuracy is not None:
                out[stage] = accuracy
    return out


def summarize(name: str, exps) -> dict:
    """{stage: array of final accuracies, one per experiment root that has the stage}."""
    per_seed = [stage_accuracies(name, exp) for exp in exps]
    if not any(per_seed):
        raise ValueError("no %s training logs with a test accuracy under %s (run make train "
                         "DATASET=%s first)" % (name, ", ".join(paths.log_dir(name, e) for e in exps),
                                                name))
    return {stage: np.array([acc[stage] for acc in per_seed if stage in acc])
            for stage in stages.stage_nets(name, compare=False)
            if any(stage in acc for acc in per_seed)}


def _label(name: str, stage: str):
    return stages.stage(name, stage).label


def _references():
    """The datasets with the original release's figures, in registration order."""
    return [ds for ds in map(datasets.get_dataset, datasets.names()) if ds.reference_accuracy]


def _ref(name: str, reference, stage: str):
    """The original release's figure on dataset `reference` for the role `stage` plays."""
    value = reference.reference_accuracy.get(stages.stage(name, stage).role)
    return "%.3f" % value if value is not None else "–"


# ---- per-item outcomes, intervals and paired comparisons -------------------------------------

NOISE_TYPE_NAMES = {0: "noise-free", 1: "random", 2: "confusing"}


def experiments(name: str, exps, seeds) -> list:
    """evaluate.Run of each (seed root, seed): the trained stages as they are on disk."""
    from noisy_label.experiments import evaluate
    return [evaluate.Run(name, exp, seed) for exp, seed in zip(exps, seeds)]


def outcomes(runs, stage_names, gpu=None) -> Dict[str, list]:
    """{stage: [correct (n,) bool per seed]} of the stages whose final model exists at every
    seed of `runs` (pipeline.Experiment objects), in stage_names order."""
    from noisy_label.experiments import evaluate
    out = {}
    for stage in stage_names:
        if all(os.path.exists(run.final(stage)) for run in runs):
            out[stage] = [evaluate.stage_outcomes(run, stage, gpu)["correct"] for run in runs]
    return out


def significance(correct: Dict[str, list], references) -> Dict[str, dict]:
    """{stage: {"accuracy": intervals.bootstrap_mean, "per_seed": [accuracy per seed], "vs":
    {ref: intervals.paired_difference of stage - ref}}} for each stage of `correct` ({stage:
    [correct (n_s,) per seed]}) against each stage of `references` it is not."""
    out = {}
    for stage, per_seed in correct.items():
        out[stage] = {"accuracy": intervals.bootstrap_mean(per_seed),
                      "per_seed": [float(np.mean(c)) for c in per_seed], "vs": {
            ref: intervals.paired_difference(per_seed, correct[ref])
            for ref in references if ref in correct and ref != stage}}
    return out


def noise_type_summary(name: str, runs, gpu=None) -> Optional[dict]:
    """The noise-type net on its held-out pairs (ntype_val_lmdb) at every seed, beside the
    trivial predictor that always answers the training pairs' most common type: {"stage",
    "lmdb", "pairs" per seed, "majority_type" per seed, "accuracy", "majority" (bootstrap_mean
    each), "difference" (paired_difference net - majority), "per_seed": [(accuracy, majority)]};
    None without the stage."""
    from noisy_label.experiments import evaluate
    ntype = [s for s in stages.training(name, compare=False) if s.role == "ntype"]
    if not ntype or not all(os.path.exists(run.final(ntype[0].name)) for run in runs):
        return None
    ds = datasets.get_dataset(name)
    nets_right, majority_right, majority_types, per_seed = [], [], [], []
    for run in runs:
        result = evaluate.stage_outcomes(run, ntype[0].name, gpu)
        train = imageset.read_label_list(paths.list_file(name, paths.NTYPE_TRAIN, run.exp))
        majority, rate = intervals.majority_rate(train, result["label"])
        nets_right.append(result["correct"])
        majority_right.append(result["label"] == majority)
        majority_types.append(majority)
        per_seed.append((float(result["correct"].mean()), rate))
    return {"stage": ntype[0].name, "lmdb": ds.ntype_val_lmdb,
            "pairs": [int(len(c)) for c in nets_right], "majority_type": majority_types,
            "accuracy": intervals.bootstrap_mean(nets_right),
            "majority": intervals.bootstrap_mean(majority_right),
            "difference": intervals.paired_difference(nets_right, majority_right),
            "per_seed": per_seed}


def interval_text(row: dict, digits: int = 3) -> str:
    """"0.899 [0.881, 0.917]": a bootstrap_mean / paired_difference row."""
    f = "%%.%df" % digits
    return ("%s [%s, %s]" % (f, f, f)) % (row["mean"], row["low"], row["high"])


def difference_text(row: dict) -> str:
    """"+0.012 [-0.004, 0.027]", with " *" where the interval excludes 0."""
    return "%+.3f [%+.3f, %+.3f]%s" % (row["mean"], row["low"], row["high"],
                                       " *" if row["significant"] else "")


def noise_type_markdown(ntype: dict) -> List[str]:
    """The noise-type net beside the majority-type rate on the same held-out pairs."""
    types = sorted(set(ntype["majority_type"]))
    majority = " / ".join('"%s"' % NOISE_TYPE_NAMES.get(t, t) for t in types)
    diff = ntype["difference"]
    verdict = ("above the majority rate (the interval excludes 0)" if diff["significant"]
               and diff["mean"] > 0 else "below the majority rate (the interval excludes 0)"
               if diff["significant"] else "within the noise of the majority rate (the interval "
               "includes 0)")
    return ["", "Noise-type net on its held-out pairs (`%s`, %s pairs a seed, %d in all; no net "
            "is trained on them): noise-type accuracy beside the trivial predictor that always "
            "answers the training pairs' most common type (%s), on the same pairs."
            % (ntype["lmdb"], "/".join(str(n) for n in sorted(set(ntype["pairs"]))),
               sum(ntype["pairs"]), majority), "",
            "| predictor | noise-type accuracy [95%] | per seed |", "| --- | --- | --- |",
            "| noise-type net | %s | %s |" % (interval_text(ntype["accuracy"]), " ".join(
                "%.3f" % a for a, _ in ntype["per_seed"])),
            "| majority type | %s | %s |" % (interval_text(ntype["majority"]), " ".join(
                "%.3f" % m for _, m in ntype["per_seed"])),
            "| net − majority | %s | |" % difference_text(diff), "",
            "The noise-type net is %s." % verdict]


def markdown(name: str, summary, seeds, significant=None, ntype=None) -> str:
    """The report's table as Markdown. summary: {stage: final accuracies per seed} (from the
    logs); significant: significance() of the stages with outcomes (then the means and
    intervals are the per-image ones); ntype: noise_type_summary()."""
    significant = significant or {}
    roles = {stages.stage(name, stage).role: stage for stage in summary}
    baseline = roles.get("noisy_as_truth")
    lines = ["# %s: test accuracy per stage" % name, "",
             "Over %d seed(s) (%s): the final model of each stage on every test image at each "
             "seed; mean over seeds with a 95%% interval from a bootstrap over seeds and test "
             "images (`noisy_label.core.intervals`). Δ: the paired difference in accuracy on the "
             "same images and seeds against noisy as truth, with its 95%% interval; * where the "
             "interval excludes 0 (a difference larger than the noise)."
             % (len(seeds), ", ".join(str(s) for s in seeds)), "",
             ("| stage | %s (ours, this run) [95%%] | per seed | Δ vs noisy as truth [95%%] | %s"
              % (name, "".join("%s (original release) | " % ds.reference_name
                               for ds in _references()))).rstrip(),
             ("| --- | --- | --- | --- | %s" % ("--- | " * len(_references()))).rstrip()]
    for stage, values in summary.items():
        row = significant.get(stage)
        if row is None:
            score, diff = "%.4f ± %.4f (std)" % (values.mean(), values.std()), "–"
        else:
            score = interval_text(row["accuracy"], 4)
            diff = difference_text(row["vs"][baseline]) if baseline in row["vs"] else "–"
            values = row["per_seed"]        # per image (Caffe's log counts NaN logits right)
        if stages.stage(name, stage).role == "ntype" and ntype:
            score = interval_text(ntype["accuracy"], 4)
            diff = "majority type: %s" % interval_text(ntype["majority"], 4)
            values = [a for a, _ in ntype["per_seed"]]
        lines.append(("| %s | %s | %s | %s | %s" % (
            _label(name, stage), score, " ".join("%.4f" % v for v in values), diff,
            "".join("%s | " % _ref(name, ds, stage) for ds in _references()))).rstrip())
    verdict = claim(name, summary, significant)
    if verdict:
        lines += ["", verdict]
    if ntype:
        lines += noise_type_markdown(ntype)
    lines += ["", "The noise-type row is the accuracy of predicting the noise type (3 classes), "
              "not the class, on the held-out pairs; beside it, the majority-type rate on the same "
              "pairs. The CIFAR-10 reference numbers were logged by the original release "
              "(noise level not recorded); Clothing1M's are from its logs (the paper reports 0.7824).",
              "", "![test accuracy](report.png)", "",
              "Beside the other noise-robust methods (bootstrapping, forward and backward "
              "correction) on the same data, seeds and schedule: `make compare DATASET=%s` writes "
              "[compare.md](compare.md) here." % name, ""]
    return "\n".join(lines)


def claim(name: str, summary, significant=None) -> Optional[str]:
    """Whether ours beats both baselines, as a sentence (None without the stages): with
    significance() rows, ahead only where the paired interval excludes 0."""
    roles = {stages.stage(name, stage).role: stage for stage in summary}
    ours = roles.get("ours")
    baselines = [roles[r] for r in ("clean", "noisy_as_truth") if r in roles]
    if ours is None or len(baselines) < 2:
        return None
    significant = significant or {}
    if ours not in significant or not all(b in significant[ours]["vs"] for b in baselines):
        best = max(baselines, key=lambda s: summary[s].mean())
        margin = summary[ours].mean() - summary[best].mean()
        return ("Ours vs the better baseline on average: %.4f vs. %.4f (%s), margin %+.4f "
                "(no per-image outcomes: no interval, no claim)." % (
                    summary[ours].mean(), summary[best].mean(), _label(name, best), margin))
    diffs = {b: significant[ours]["vs"][b] for b in baselines}
    parts = ", ".join("%s %s" % (_label(name, b), difference_text(d)) for b, d in diffs.items())
    if all(d["significant"] and d["mean"] > 0 for d in diffs.values()):
        head = "**Ours beats both baselines**"
    elif any(d["significant"] and d["mean"] < 0 for d in diffs.values()):
        head = "**Ours is behind a baseline**"
    else:
        ahead = [_label(name, b) for b, d in diffs.items() if d["significant"] and d["mean"] > 0]
        head = ("**Ours beats %s only; against the other the difference is within the noise**"
                % ahead[0] if ahead else
                "**Ours does not beat the baselines by more than the noise**")
    return "%s: ours − baseline, paired 95%% intervals: %s." % (head, parts)


def write(name: str, exps, seeds, out_dir: str, gpu=None) -> str:
    """Write report.md and report.png into out_dir; return the Markdown. exps[i]: the seed
    root of seeds[i] (paths.seed_root)."""
    summary = summarize(name, exps)
    runs = experiments(name, exps, seeds)
    class_stages = [s for s in summary if stages.stage(name, s).role != "ntype"]
    correct = outcomes(runs, class_stages, gpu)
    significant = significance(correct, [s for s in class_stages if stages.stage(
        name, s).role in ("noisy_as_truth", "clean")])
    ntype = noise_type_summary(name, runs, gpu)
    os.makedirs(out_dir, exist_ok=True)
    bars = {stage: row["accuracy"] for stage, row in significant.items()}
    if ntype:
        bars[ntype["stage"]] = ntype["accuracy"]
    plot(name, summary, exps, seeds, os.path.join(out_dir, "report.png"), bars,
         majority=ntype["majority"] if ntype else None)
    text = markdown(name, summary, seeds, significant, ntype)
    blob_io.atomic_write_bytes(os.path.join(out_dir, "report.md"), text.encode())
    return text


def plot(name: str, summary, exps, seeds, png: str, bars=None, majority=None) -> None:
    """Two panels into `png`: the stages' test-accuracy curves at the first seed, and each
    stage's final accuracy over seeds, with one dot per seed: the mean and 95% interval of
    `bars` ({stage: bootstrap_mean row}) where given, else mean ± std. majority: the
    majority-type rate (bootstrap_mean row), drawn on the noise-type row."""
    curves = {}
    for stage in summary:
        log = os.path.join(paths.log_dir(name, exps[0]), stage + ".log")
        if os.path.exists(log):
            with open(log) as f:
                curves[_label(name, stage)] = f.read()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (curve_ax, bar_ax) = plt.subplots(1, 2, figsize=(13, 1.5 + 0.45 * max(len(summary), 7)),
                                           gridspec_kw={"width_ratios": [3, 2]})
    caffe_log.plot_curves(curves, png, title="%s, seed %s: test accuracy" % (name, seeds[0]),
                          ax=curve_ax)
    # Horizontal bars, first stage on top: long method names stay readable.
    positions = np.arange(len(summary))[::-1]
    bars = bars or {}
    means = [bars[s]["mean"] if s in bars else v.mean() for s, v in summary.items()]
    errors = np.array([[bars[s]["mean"] - bars[s]["low"], bars[s]["high"] - bars[s]["mean"]]
                       if s in bars else [v.std(), v.std()] for s, v in summary.items()]).T
    bar_ax.barh(positions, means, xerr=errors, capsize=3, color="C0", alpha=0.75)
    for y, stage in zip(positions, summary):
        if majority is not None and stages.stage(name, stage).role == "ntype":
            bar_ax.errorbar([majority["mean"]], [y], xerr=[[majority["mean"] - majority["low"]],
                            [majority["high"] - majority["mean"]]], fmt="D", color="C3",
                            capsize=3, label="majority-type rate (same pairs)")
            bar_ax.legend(fontsize="x-small", loc="lower right")
    for y, mean, values in zip(positions, means, summary.values()):
        bar_ax.plot(values, [y] * len(values), "k.", markersize=4)
        bar_ax.text(0.01, y, "%.3f" % mean, va="center", transform=bar_ax.get_yaxis_transform(),
                    fontsize="small", color="white", fontweight="bold")
    bar_ax.set_yticks(positions)
    bar_ax.set_yticklabels([_label(name, stage) for stage in summary], fontsize="small")
    bar_ax.set_xlabel("final test accuracy")
    bar_ax.set_xlim(0.0, 1.0)
    bar_ax.set_title("%s, seeds %s (dots)" % (
        "mean and 95% interval" if bars else "mean ± std", ", ".join(str(s) for s in seeds)),
        fontsize="medium")
    bar_ax.grid(axis="x", alpha=0.3)
    caffe_log.save_png(fig, png)
