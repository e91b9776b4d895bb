#!/usr/bin/env python
"""Write the nets and solvers of each dataset's workflow into prototxt/<dataset>/ (or --exp)."""
import argparse

from noisy_label import cli, datasets
from noisy_label.experiments import stages


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("datasets", nargs="*", default=list(datasets.builtin_names()),
                        help="datasets (default: all of %s; a user's needs --exp)"
                        % ", ".join(datasets.builtin_names()))
    parser.add_argument("--exp", help="write a copy whose sources point under this experiment root")
    parser.add_argument("--seed", type=int, default=1, help="the solvers' random_seed (default 1)")
    args = parser.parse_args()
    for name in args.datasets:
        print(stages.write_dataset(datasets.find(name, args.exp, seed=args.seed).name, args.exp,
                                   args.seed))


if __name__ == "__main__":
    cli.run(main, "make_prototxt")
