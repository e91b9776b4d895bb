#!/usr/bin/env python
"""Write report.md and report.png (test accuracy per stage over seeds, 95% intervals, paired
differences against noisy as truth; the noise-type net beside its majority-type rate)."""
import argparse

from noisy_label import cli, datasets, paths
from noisy_label.experiments import report


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset", help="a built-in dataset (%s) or a folder's with a "
                        "dataset.yaml" % ", ".join(datasets.builtin_names()))
    parser.add_argument("--exp", help="experiment root (default: $EXP or exp/)")
    parser.add_argument("--seeds", type=cli.at_least(0), nargs="+", default=[1],
                        help="seeds whose runs to aggregate: seed 1 lives in EXP, seed n "
                             "in EXP/seeds/<n> (default: 1)")
    args = parser.parse_args()
    datasets.find(args.dataset, args.exp, seed=args.seeds[0])
    exps = [paths.seed_root(args.exp, seed) for seed in args.seeds]
    out_dir = paths.log_dir(args.dataset, args.exp)
    print(report.write(args.dataset, exps, args.seeds, out_dir))
    print("written: %s/report.md, report.png" % out_dir)


if __name__ == "__main__":
    cli.run(main, "report")
