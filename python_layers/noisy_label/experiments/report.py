"""The experiment report: test accuracy per stage over seeds, beside the original's numbers.

Reads the Caffe logs that `noisy_label.pipeline` wrote under each seed's experiment root,
writes `report.md` (a table, mean ± std over seeds) and `report.png` (test-accuracy curves),
for make train's stages; make compare's (noisy_label.experiments.compare) has its own.
"""
import os
from typing import Dict, Optional

import numpy as np

from noisy_label import datasets, paths
from noisy_label.experiments import caffe_log, stages
from noisy_label.io import blob_io


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


def markdown(name: str, summary, seeds) -> str:
    """The report's table as Markdown."""
    lines = ["# %s: test accuracy per stage" % name, "",
             "Mean ± std over %d seed(s) (%s); final test accuracy of each stage's training log."
             % (len(seeds), ", ".join(str(s) for s in seeds)), "",
             ("| stage | %s (ours, this run) | per seed | %s" % (name, "".join(
                 "%s (original release) | " % ds.reference_name for ds in _references()))).rstrip(),
             ("| --- | --- | --- | %s" % ("--- | " * len(_references()))).rstrip()]
    for stage, values in summary.items():
        lines.append(("| %s | %.4f ± %.4f | %s | %s" % (
            _label(name, stage), values.mean(), values.std(), " ".join("%.4f" % v for v in values),
            "".join("%s | " % _ref(name, ds, stage) for ds in _references()))).rstrip())
    verdict = claim(name, summary)
    if verdict:
        lines += ["", verdict]
    lines += ["", "The noise-type row is the accuracy of predicting the noise type (3 classes), "
              "not the class. The CIFAR-10 reference numbers were logged by the original release "
              "(noise level not recorded); Clothing1M's are from its logs (the paper reports 0.7824).",
              "", "![test accuracy](report.png)", "",
              "Beside the other noise-robust methods (bootstrapping, forward and backward "
              "correction) on the same data, seeds and schedule: `make compare DATASET=%s` writes "
              "[compare.md](compare.md) here." % name, ""]
    return "\n".join(lines)


def claim(name: str, summary) -> Optional[str]:
    """Whether ours beats both baselines on average, as a sentence (None without the stages)."""
    roles = {stages.stage(name, stage).role: stage for stage in summary}
    ours = summary.get(roles.get("ours"))
    baselines = {roles[r]: summary[roles[r]] for r in ("clean", "noisy_as_truth") if r in roles}
    if ours is None or len(baselines) < 2:
        return None
    best = max(baselines, key=lambda s: baselines[s].mean())
    margin = ours.mean() - baselines[best].mean()
    return "**Ours %s both baselines**: %.4f vs. %.4f (%s), margin %+.4f." % (
        "beats" if margin > 0 else "does NOT beat", ours.mean(), baselines[best].mean(),
        _label(name, best), margin)


def write(name: str, exps, seeds, out_dir: str) -> str:
    """Write report.md and report.png into out_dir; return the Markdown."""
    summary = summarize(name, exps)
    os.makedirs(out_dir, exist_ok=True)
    plot(name, summary, exps, seeds, os.path.join(out_dir, "report.png"))
    text = markdown(name, summary, seeds)
    blob_io.atomic_write_bytes(os.path.join(out_dir, "report.md"), text.encode())
    return text


def plot(name: str, summary, exps, seeds, png: str) -> None:
    """Two panels into `png`: the stages' test-accuracy curves at the first seed, and each
    stage's final accuracy, mean ± std over seeds, with one dot per seed."""
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
    means = [v.mean() for v in summary.values()]
    bar_ax.barh(positions, means, xerr=[v.std() for v in summary.values()], capsize=3,
                color="C0", alpha=0.75)
    for y, mean, values in zip(positions, means, summary.values()):
        bar_ax.plot(values, [y] * len(values), "k.", markersize=4)
        bar_ax.text(0.01, y, "%.3f" % mean, va="center", transform=bar_ax.get_yaxis_transform(),
                    fontsize="small", color="white", fontweight="bold")
    bar_ax.set_yticks(positions)
    bar_ax.set_yticklabels([_label(name, stage) for stage in summary], fontsize="small")
    bar_ax.set_xlabel("final test accuracy")
    bar_ax.set_xlim(0.0, 1.0)
    bar_ax.set_title("mean ± std over seeds %s (dots: seeds)" % ", ".join(str(s) for s in seeds))
    bar_ax.grid(axis="x", alpha=0.3)
    caffe_log.save_png(fig, png)
