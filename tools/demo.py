#!/usr/bin/env python
"""The digits demo (`make demo`): `make lmdb` + `make train` for DATASET=digits at several
seeds, then a report of test accuracy per stage (mean over seeds, 95% intervals, paired
differences; the noise-type net beside its majority-type rate) beside the original release's
CIFAR-10 and Clothing1M numbers: $EXP/logs/digits/report.md and report.png.

Seed 1 lives in EXP itself (exp/db/digits, exp/snapshots/digits, exp/logs/digits), seed n
in EXP/seeds/<n>/ (as make lmdb / make train SEED=n). Finished stages are skipped, stopped
ones resumed, so a re-run only reports.
"""
import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("GLOG_minloglevel", "1")

from noisy_label import cli, paths  # noqa: E402
from noisy_label.experiments import pipeline, report  # noqa: E402

DATASET = "digits"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--exp", help="experiment root (default: $EXP or exp/)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--noise-level", type=float, help="synthetic noise level (default 0.5)")
    parser.add_argument("--num-clean", type=int, help="training images that keep clean labels")
    args = parser.parse_args()
    start = time.time()
    gpu = 0 if pipeline.gpu_available() else None
    exps = []
    for seed in args.seeds:
        exp = paths.seed_root(args.exp, seed)
        exps.append(exp)
        print("== digits, seed %d (%s)" % (seed, exp), flush=True)
        lmdb = [sys.executable, os.path.join(paths.REPO_ROOT, "tools", "make_lmdb.py"), DATASET,
                "--seed", str(seed)] + (["--exp", args.exp] if args.exp else [])
        for flag, value in (("--noise-level", args.noise_level), ("--num-clean", args.num_clean)):
            if value is not None:
                lmdb += [flag, str(value)]
        code = subprocess.call(lmdb)
        if code != 0:
            sys.exit(code if code == 130 else "demo: make lmdb DATASET=digits failed for seed %d"
                     % seed)
        pipeline.Experiment(DATASET, args.exp, gpu=gpu, seed=seed).run()
    out_dir = paths.log_dir(DATASET, args.exp)
    print(report.write(DATASET, exps, args.seeds, out_dir, gpu=gpu))
    print("report: %s, %s (%.0f s)" % (os.path.join(out_dir, "report.md"),
                                       os.path.join(out_dir, "report.png"), time.time() - start))


if __name__ == "__main__":
    cli.run(main, "demo")
