"""Label-error detection and correction: `make relabel` (the paper's posterior) against
cleanlab's confident learning, on the same data, several seeds.

For each seed: make lmdb + make train (the digits pipeline, or CIFAR-10 where its LMDBs can be
built), then on the noisy-labelled records of the mixed set
  ours      flags p(y = ỹ | ỹ, x) < 0.5, corrects to argmax_y p(y | ỹ, x)
  cleanlab  cleanlab.filter.find_label_issues(noisy labels, pred_probs) with the out-of-sample
            p(y|x) of the clean-only net (it never saw these records); its suggested label
            (argmax pred_probs) replaces a flagged label
scored against the true labels: precision, recall and F1 of the flags, accuracy of the
labels after correction (and of the noisy labels before). Prints a table (mean ± std over
seeds, and per seed), writes it with a PNG and JSON to $EXP/logs/<dataset>/bench_relabel.*.

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
    start = time.time()
    ours = relabel.relabel(experiment, 0.5, gpu)["against_truth"]
    ours_s = time.time() - start
    start = time.time()
    probabilities = relabel.clean_model_probabilities(experiment, gpu)
    db = paths.db_dir(name, experiment.exp)
    noisy = imageset.read_label_list(os.path.join(db, paths.MIXED_LABELS["noisy"] + ".txt"))
    truth = imageset.read_label_list(os.path.join(db, paths.TRUE_LABELS + ".txt"))
    theirs = cleanlab_scores(probabilities, noisy, truth)
    return {"ours": ours, "cleanlab": theirs,
            "seconds": {"ours": ours_s, "cleanlab": time.time() - start}}


def table(results, seeds):
    """Markdown: each method's metrics, mean ± std over the seeds, then per seed."""
    lines = ["| method | %s |" % " | ".join(METRICS), "|---" * (len(METRICS) + 1) + "|"]
    for method in ("ours", "cleanlab"):
        values = {m: np.array([results[s][method][m] for s in seeds]) for m in METRICS}
        lines.append("| %s | %s |" % (method, " | ".join(
            "%.4f ± %.4f" % (values[m].mean(), values[m].std()) for m in METRICS)))
    lines += ["", "| seed | method | %s |" % " | ".join(METRICS),
              "|---" * (len(METRICS) + 2) + "|"]
    for s in seeds:
        for method in ("ours", "cleanlab"):
            lines.append("| %d | %s | %s |" % (s, method, " | ".join(
                "%.4f" % results[s][method][m] for m in METRICS)))
    return "\n".join(lines)


def plot(results, seeds, path, name):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.38
    for k, method in enumerate(("ours", "cleanlab")):
        means = [np.mean([results[s][method][m] for s in seeds]) for m in METRICS]
        stds = [np.std([results[s][method][m] for s in seeds]) for m in METRICS]
        ax.bar(np.arange(len(METRICS)) + (k - 0.5) * width, means, width, yerr=stds, capsize=3,
               label=method)
    ax.set_xticks(np.arange(len(METRICS)))
    ax.set_xticklabels([m.replace("_", "\n") for m in METRICS], fontsize="small")
    ax.set_ylim(0, 1.05)
    ax.set_title("%s: label errors found and fixed, mean ± std over seeds %s"
                 % (name, ", ".join(map(str, seeds))))
    ax.legend()
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
