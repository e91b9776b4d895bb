#!/usr/bin/env python
"""Write report.md and report.png (test accuracy per stage, mean ± std over seeds) for a dataset."""
import argparse
import sys

from noisy_label import paths, report


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset", choices=paths.DATASETS)
    parser.add_argument("--exp", help="experiment root (default: $EXP or exp/)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1],
                        help="seeds whose runs to aggregate: seed 1 lives in EXP, seed n "
                             "in EXP/seeds/<n> (default: 1)")
    args = parser.parse_args()
    exps = [paths.seed_root(args.exp, seed) for seed in args.seeds]
    out_dir = paths.log_dir(args.dataset, args.exp)
    try:
        print(report.write(args.dataset, exps, args.seeds, out_dir))
    except ValueError as e:
        sys.exit("error: %s" % e)
    print("written: %s/report.md, report.png" % out_dir)


if __name__ == "__main__":
    main()
