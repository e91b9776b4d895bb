"""Label-error detection and correction: `make relabel` (the paper's posterior) against
cleanlab's confident learning, on the same data, several seeds.

For each seed: make lmdb + make train (the digits pipeline, or CIFAR-10 where its LMDBs can be
built), then on the noisy-labelled records of the mixed set
  ours      flags p(y = ỹ | ỹ, x) < threshold, corrects every noisy label to
            argmax_y p(y | ỹ, x); the threshold as make relabel chooses it by default (the best
            F1 on the held-out pairs, which nothing was trained on), and at the fixed 0.5
  cleanlab  cleanlab.filter.find_label_issues(noisy labels, pred_probs) with the out-of-sample
            p(y|x) of the clean-only net (it never saw these records); its suggested label
            (argmax pred_probs) replaces a flagged label
scored against the true labels: precision, recall and F1 of the flags, accuracy of the
labels after correction (and of the noisy labels before); for ours also the threshold and the
precision / recall the held-out pairs predicted. Prints a table (mean ± std over seeds, and per
seed), writes it with a PNG and JSON to $EXP/logs/<dataset>/bench_relabel.*.

    .venv/bin/python bench/bench_relabel.py [--dataset digits] [--seeds 1 2 3] [--exp DIR]
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("GLOG_minloglevel", "1")

import machine  # noqa: E402
import numpy as np  # noqa: E402

from noisy_label import datasets, paths  # noqa: E402
from noisy_label.core.noisy_loss import UNLABELLED  # noqa: E402
from noisy_label.experiments import caffe_log, pipeline, relabel  # noqa: E402
from noisy_label.io import atomic, imageset  # noqa: E402

METRICS = ("accuracy_noisy", "accuracy_corrected", "flag_precision", "flag_recall", "flag_f1")
METHODS = ("ours", "ours_0.5", "cleanlab")
# What make relabel's summary adds for ours: its threshold and what the held-out pairs predicted.
CHOICE = ("threshold", "predicted_precision", "predicted_recall")


def cleanlab_scores(probabilities, noisy, truth):
    """cleanlab's flags and suggested labels on the noisy-labelled records, scored."""
    from cleanlab.filter import find_label_issues
    rows = noisy != UNLABELLED
    issues = find_label_issues(noisy[rows], probabilities[rows])
    flagged = np.zeros(len(noisy), bool)
    flagged[np.flatnonzero(rows)[issues]] = True
    corrected = np.where(flagged, probabilities.argmax(axis=1), noisy)
    return relabel.scores(noisy, corrected, flagged, truth)


def run_seed(name, exp, seed, gpu):
    """{"ours": scores, "cleanlab": scores, "seconds": {...}} for one seed."""
    datasets.build(name, exp=paths.seed_root(exp, seed), seed=seed,
                   data_root=paths.data_root(name, exp))
    experiment = pipeline.Experiment(name, exp, gpu=gpu, seed=seed)
    experiment.run()
    fixed = relabel.relabel(experiment, 0.5, gpu)
    start = time.time()
    chosen = relabel.relabel(experiment, relabel.DEFAULT_THRESHOLD, gpu)
    ours_s = time.time() - start
    ours, ours_fixed = chosen["against_truth"], fixed["against_truth"]
    for scores, summary in ((ours, chosen), (ours_fixed, fixed)):
        held = summary.get("held_out", {})
        scores.update(threshold=summary["threshold"],
                      predicted_precision=held.get("precision", float("nan")),
                      predicted_recall=held.get("recall", float("nan")))
    start = time.time()
    probabilities = relabel.clean_model_probabilities(experiment, gpu)
    db = paths.db_dir(name, experiment.exp)
    noisy = imageset.read_label_list(os.path.join(db, paths.MIXED_LABELS["noisy"] + ".txt"))
    truth = imageset.read_label_list(os.path.join(db, paths.TRUE_LABELS + ".txt"))
    theirs = cleanlab_scores(probabilities, noisy, truth)
    return {"ours": ours, "ours_0.5": ours_fixed, "cleanlab": theirs,
            "seconds": {"ours": ours_s, "cleanlab": time.time() - start}}


def _cell(values):
    values = np.asarray(values, float)
    return "–" if np.isnan(values).all() else "%.4f ± %.4f" % (np.nanmean(values),
                                                               np.nanstd(values))


def table(results, seeds):
    """Markdown: each method's metrics, mean ± std over the seeds, then per seed."""
    columns = METRICS + CHOICE
    lines = ["| method | %s |" % " | ".join(columns), "|---" * (len(columns) + 1) + "|"]
    for method in METHODS:
        lines.append("| %s | %s |" % (method, " | ".join(
            _cell([results[s][method].get(m, float("nan")) for s in seeds]) for m in columns)))
    lines += ["", "| seed | method | %s |" % " | ".join(columns),
              "|---" * (len(columns) + 2) + "|"]
    for s in seeds:
        for method in METHODS:
            lines.append("| %d | %s | %s |" % (s, method, " | ".join(
                "%.4f" % results[s][method].get(m, float("nan")) for m in columns)))
    return "\n".join(lines)


def plot(results, seeds, path, name):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.27
    for k, method in enumerate(METHODS):
        means = [np.mean([results[s][method][m] for s in seeds]) for m in METRICS]
        stds = [np.std([results[s][method][m] for s in seeds]) for m in METRICS]
        label = {"ours": "ours (threshold: F1 on held-out pairs)",
                 "ours_0.5": "ours (threshold 0.5)"}.get(method, method)
        ax.bar(np.arange(len(METRICS)) + (k - 1) * width, means, width, yerr=stds, capsize=3,
               label=label)
    ax.set_xticks(np.arange(len(METRICS)))
    ax.set_xticklabels([m.replace("_", "\n") for m in METRICS], fontsize="small")
    ax.set_ylim(0, 1.05)
    ax.set_title("%s: label errors found and fixed, mean ± std over seeds %s"
                 % (name, ", ".join(map(str, seeds))))
    ax.legend(fontsize="small", loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    caffe_log.save_png(fig, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", choices=("digits", "cifar10"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--exp", default=None,
                        help="experiment root (default: $EXP or exp/; finished stages are reused)")
    args = parser.parse_args()
    try:
        import cleanlab
    except ImportError:
        sys.exit("bench_relabel: cleanlab is not installed (make venv installs it)")
    gpu = 0 if pipeline.gpu_available() else None
    exp = paths.exp_root(args.exp)
    results = {}
    try:
        for seed in args.seeds:
            print("== %s, seed %d" % (args.dataset, seed), flush=True)
            results[seed] = run_seed(args.dataset, exp, seed, gpu)
    except (pipeline.StageError, IOError, ValueError) as e:
        sys.exit("bench_relabel: %s" % e)
    text = table(results, args.seeds)
    out = os.path.join(paths.log_dir(args.dataset, exp), "bench_relabel")
    header = ("# %s: label errors, ours (the paper's posterior) vs cleanlab %s\n\nmachine: %s\n\n"
              % (args.dataset, cleanlab.__version__, machine.describe(gpu is not None)))
    atomic.write_text(out + ".md", header + text + "\n")
    atomic.write_text(out + ".json", json.dumps({str(s): r for s, r in results.items()},
                                                indent=1, sort_keys=True) + "\n")
    plot(results, args.seeds, out + ".png", args.dataset)
    print(header + text)
    print("written: %s.md, .json, .png" % out)


if __name__ == "__main__":
    main()
