"""The experiment report: test accuracy per stage over seeds, beside the original's numbers.

Reads the Caffe logs that `noisy_label.pipeline` wrote under each seed's experiment root,
writes `report.md` (a table, mean ± std over seeds) and `report.png` (test-accuracy curves).
"""
import os
from typing import Dict, Optional

import numpy as np

from noisy_label import datasets, paths
from noisy_label.experiments import caffe_log, stages
from noisy_label.io import blob_io


def stage_accuracies(name: str, exp: Optional[str]) -> Dict[str, float]:
    """{stage: final test accuracy} from the training logs under one experiment root."""
    log_dir = paths.log_dir(name, exp)
    out = {}
    for stage in stages.stage_nets(name):
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
            for stage in stages.stage_nets(name) if any(stage in acc for acc in per_seed)}


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
              "", "![test accuracy](report.png)", ""]
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
    curves = {}
    for stage in summary:
        log = os.path.join(paths.log_dir(name, exps[0]), stage + ".log")
        with open(log) as f:
            curves[_label(name, stage)] = f.read()
    png = os.path.join(out_dir, "report.png")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (curve_ax, bar_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    caffe_log.plot_curves(curves, png, title="%s, seed %s: test accuracy" % (name, seeds[0]),
                          ax=curve_ax)
    labels = [_label(name, stage).replace(" (", "\n(") for stage in summary]
    bar_ax.bar(labels, [v.mean() for v in summary.values()],
               yerr=[v.std() for v in summary.values()], capsize=4, color="C0")
    bar_ax.set_ylabel("final test accuracy")
    bar_ax.set_title("mean ± std over seeds %s" % ", ".join(str(s) for s in seeds))
    bar_ax.tick_params(axis="x", labelsize="small")
    bar_ax.grid(axis="y", alpha=0.3)
    caffe_log.save_png(fig, png)
    text = markdown(name, summary, seeds)
    blob_io.atomic_write_bytes(os.path.join(out_dir, "report.md"), text.encode())
    return text
