#!/usr/bin/env python
"""Parse a Caffe training log into CSV (train and test rows) and optionally plot test curves.

    python tools/parse_log.py exp/logs/cifar10/clean.log            # writes clean.train.csv, clean.test.csv
    python tools/parse_log.py a.log b.log --plot curves.png        # test accuracy of several logs
"""
import argparse
import os

from noisy_label import cli
from noisy_label.experiments import caffe_log
from noisy_label.io import blob_io


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("logs", nargs="+")
    parser.add_argument("--out-dir", help="where the CSVs go (default: beside each log)")
    parser.add_argument("--plot", help="also draw the test curves of all logs into this PNG")
    parser.add_argument("--key", default="accuracy", help="test output to plot (default: accuracy)")
    args = parser.parse_args()
    texts = {}
    for path in args.logs:
        with open(path, errors="replace") as f:
            texts[path] = f.read()
        rows = caffe_log.parse(texts[path])
        if not rows["train"] and not rows["test"]:
            raise ValueError("%s has no Caffe training or test lines" % path)
        stem = os.path.splitext(os.path.basename(path))[0]
        out_dir = args.out_dir or os.path.dirname(os.path.abspath(path))
        for part in ("train", "test"):
            out = os.path.join(out_dir, "%s.%s.csv" % (stem, part))
            blob_io.atomic_write_bytes(out, caffe_log.to_csv(rows[part]).encode())
            print("%s: %d rows" % (out, len(rows[part])))
    if args.plot:
        caffe_log.plot_curves({os.path.basename(p): t for p, t in texts.items()}, args.plot, args.key)
        print("plot: %s" % args.plot)


if __name__ == "__main__":
    cli.run(main, "parse_log")
