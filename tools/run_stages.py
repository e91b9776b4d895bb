#!/usr/bin/env python3
"""Run the stages of a dataset's training workflow with the stock `caffe` tool
(noisy_label.pipeline; for data-parallel `caffe train` on MPI ranks see noisy_label.train).

    .venv/bin/python tools/run_stages.py cifar10                 # every stage not done yet
    .venv/bin/python tools/run_stages.py clothing1M --stage test # one stage
    .venv/bin/python tools/run_stages.py digits --seed 2 --set "max_iter=2000 clean.base_lr=0.02"

Finished stages are skipped, stopped ones resumed from their newest snapshot, and stages
whose inputs changed (LMDBs, solver, starting weights) trained again.
"""
import argparse
import os

# Quiet pycaffe's own INFO logging (net set-up in the init stage); caffe runs keep theirs.
os.environ.setdefault("GLOG_minloglevel", "1")

from noisy_label import cli, datasets  # noqa: E402
from noisy_label.experiments import pipeline  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("dataset", help="a built-in dataset (%s) or a folder's with a "
                        "dataset.yaml" % ", ".join(datasets.builtin_names()))
    parser.add_argument("--exp", help="experiment root (default: $EXP or exp/)")
    parser.add_argument("--data-root", help="a user dataset's folder (its dataset.yaml), when "
                        "not <exp>/datasets/<dataset>")
    parser.add_argument("--stage", action="append", help="run only this stage (repeatable)")
    parser.add_argument("--seed", type=int, default=1,
                        help="the solvers' random_seed and the seed root: 1 is EXP itself, "
                             "n is EXP/seeds/n, as make lmdb SEED=n (default 1)")
    parser.add_argument("--set", dest="settings", default="",
                        help="'key=value ...': train_batch, test_batch, test_iter or a solver "
                             "field (max_iter, base_lr, snapshot, ...), <stage>.<field> for one "
                             "stage; the prototxts are then generated into the seed root")
    parser.add_argument("--keep-snapshots", type=int, default=None, metavar="K",
                        help="keep only the newest K intermediate snapshots of each stage")
    parser.add_argument("--gpu", default="auto",
                        help="GPU id for -gpu, 'none' for CPU, 'auto' (default): 0 when a GPU is present")
    args = parser.parse_args()
    if args.keep_snapshots is not None and args.keep_snapshots < 0:
        parser.error("--keep-snapshots must be 0 or more")
    if args.seed < 1:
        parser.error("--seed must be 1 or more")
    gpu = pipeline.gpu_choice(args.gpu)
    datasets.find(args.dataset, args.exp, args.data_root, args.seed)
    pipeline.Experiment(args.dataset, args.exp, gpu=gpu, seed=args.seed, settings=args.settings,
                        keep_snapshots=args.keep_snapshots).run(args.stage)


if __name__ == "__main__":
    cli.run(main, "run_stages")
