#!/usr/bin/env python3
"""Train the noise-robust methods on one dataset and compare them (`make compare`): clean only,
noisy as truth, bootstrapping, forward / backward correction, ours and relabel-then-train, on
the same LMDBs, tower, schedule and seeds; writes compare.md, compare.png and compare.json in
$EXP/logs/<dataset>/ (noisy_label.experiments.compare).

    .venv/bin/python tools/compare.py digits                  # seeds 1 2 3 4 5 6
    .venv/bin/python tools/compare.py cifar10 --seeds 1 2 3 4 5
    .venv/bin/python tools/compare.py digits --report-only     # the files from the logs

Finished stages are skipped (make train's included), stopped ones resumed.
"""
import argparse
import os
import time

os.environ.setdefault("GLOG_minloglevel", "1")

from noisy_label import cli, datasets, paths  # noqa: E402
from noisy_label.experiments import compare, pipeline  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("dataset", help="a built-in dataset (%s) or a folder's with a "
                        "dataset.yaml" % ", ".join(datasets.builtin_names()))
    parser.add_argument("--exp", help="experiment root (default: $EXP or exp/)")
    # Six seeds: what fits in about 3 minutes for digits on 2 cores; the paired 95% interval of
    # two leading methods is then about ±1.5 points (README: a 1-point difference is not
    # detectable in that time).
    parser.add_argument("--seeds", type=cli.at_least(1), nargs="+", default=[1, 2, 3, 4, 5, 6],
                        help="seed roots, as make lmdb / make train SEED=n (default 1 2 3 4 5 6)")
    parser.add_argument("--data-root", help="the raw data (a user dataset's folder with its "
                        "dataset.yaml), for a seed without LMDBs (default: "
                        "<exp>/datasets/<dataset>)")
    parser.add_argument("--set", dest="settings", default="", help="as make train SET=...")
    parser.add_argument("--keep-snapshots", type=cli.at_least(0), default=None, metavar="K",
                        help="keep only the newest K intermediate snapshots of each stage")
    parser.add_argument("--gpu", default="auto", help="GPU id, 'none', or 'auto' (default)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: write the comparison from the logs there are")
    args = parser.parse_args()
    seeds = sorted(set(args.seeds))
    datasets.find(args.dataset, args.exp, args.data_root, seeds[0])
    start = time.time()
    if not args.report_only:
        compare.run(args.dataset, args.exp, seeds, pipeline.gpu_choice(args.gpu), args.settings,
                    args.keep_snapshots, args.data_root)
    print(compare.write(args.dataset, args.exp, seeds, gpu=pipeline.gpu_choice(args.gpu)))
    out_dir = paths.log_dir(args.dataset, args.exp)
    print("compare: %s (.png, .json) (%.0f s)" % (os.path.join(out_dir, "compare.md"),
                                                 time.time() - start))


if __name__ == "__main__":
    cli.run(main, "compare")
