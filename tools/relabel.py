#!/usr/bin/env python3
"""Clean a noisy dataset with the trained joint model (`make relabel`): corrected labels, the
probability that each noisy label is right, flags, and LMDBs of the cleaned set in
$EXP/db/<dataset>/relabel/ (noisy_label.experiments.relabel).

    .venv/bin/python tools/relabel.py digits                       # threshold: F1 on held-out pairs
    .venv/bin/python tools/relabel.py digits --threshold precision:0.95
    .venv/bin/python tools/relabel.py clothing1M --threshold 0.3
"""
import argparse
import os

os.environ.setdefault("GLOG_minloglevel", "1")

from noisy_label import cli, datasets, paths  # noqa: E402
from noisy_label.experiments import pipeline, relabel  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("dataset", help="a built-in dataset (%s) or a folder's with a "
                        "dataset.yaml" % ", ".join(datasets.builtin_names()))
    parser.add_argument("--exp", help="experiment root (default: $EXP or exp/)")
    parser.add_argument("--data-root", help="a user dataset's folder (its dataset.yaml), when "
                        "not <exp>/datasets/<dataset>")
    parser.add_argument("--seed", type=int, default=1, help="the seed root, as make train SEED=n")
    parser.add_argument("--set", dest="settings", default="", help="as make train SET=...")
    parser.add_argument("--threshold", default=None,
                        help="flag a noisy label when p(y = ỹ | ỹ, x) is below this: a number in "
                             "[0, 1]; auto (default): the best F1 on the held-out pairs; "
                             "precision:<p>: the largest threshold whose precision on the "
                             "held-out pairs is at least p (no held-out pairs: 0.5); a "
                             "dataset.yaml's `threshold` changes the default")
    parser.add_argument("--gpu", default="auto", help="GPU id, 'none', or 'auto' (default)")
    args = parser.parse_args()
    ds = datasets.find(args.dataset, args.exp, args.data_root, args.seed)
    threshold = args.threshold or ds.relabel_threshold or relabel.DEFAULT_THRESHOLD
    relabel.parse_threshold(threshold)       # a bad THRESHOLD is one line, before any work
    experiment = pipeline.Experiment(args.dataset, args.exp, seed=args.seed, settings=args.settings)
    with experiment.locked("make relabel"):
        experiment.check_lmdbs()   # a whole build, or a one-line refusal naming make lmdb
        summary = relabel.relabel(experiment, threshold, pipeline.gpu_choice(args.gpu))
    print(relabel.format_summary(summary))
    print("written: %s (labels.csv, label_issues.csv, summary.json, confusion.png, %s, %s)"
          % (summary["out_dir"], paths.CORRECTED_LABELS, paths.CORRECTED_TRAIN))


if __name__ == "__main__":
    cli.run(main, "relabel")
