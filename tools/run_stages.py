#!/usr/bin/env python
"""Run the stages of a dataset's training workflow with the stock `caffe` tool
(noisy_label.pipeline; for data-parallel `caffe train` on MPI ranks see noisy_label.train).

    python tools/run_stages.py cifar10                 # every stage, skipping finished ones
    python tools/run_stages.py clothing1M --stage test # one stage
"""
import argparse
import os
import sys

# Quiet pycaffe's own INFO logging (net set-up in the init stage); caffe runs keep theirs.
os.environ.setdefault("GLOG_minloglevel", "1")

from noisy_label import paths, pipeline  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("dataset", choices=paths.DATASETS)
    parser.add_argument("--exp", help="experiment root (default: $EXP or exp/)")
    parser.add_argument("--stage", action="append", help="run only this stage (repeatable)")
    parser.add_argument("--seed", type=int, default=1, help="the solvers' random_seed (default 1)")
    parser.add_argument("--gpu", default="auto",
                        help="GPU id for -gpu, 'none' for CPU, 'auto' (default): 0 when a GPU is present")
    args = parser.parse_args()
    gpu = {"auto": 0 if pipeline.gpu_available() else None, "none": None}.get(args.gpu, args.gpu)
    try:
        pipeline.Experiment(args.dataset, args.exp, gpu=gpu, seed=args.seed).run(args.stage)
    except pipeline.StageError as e:
        sys.exit("error: %s" % e)


if __name__ == "__main__":
    main()
