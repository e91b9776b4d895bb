#!/usr/bin/env python3
"""Compute the per-pixel mean of an image LMDB as a 1xCxHxW BlobProto, like compute_image_mean."""
import argparse

from noisy_label import cli
from noisy_label.io import mean


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", help="image LMDB (raw or encoded Datums)")
    parser.add_argument("out", help="output .binaryproto")
    args = parser.parse_args()
    image_mean = mean.compute_mean(args.db)
    mean.write_mean_file(args.out, image_mean)
    print("mean %s -> %s; per channel: %s" % ("x".join(map(str, image_mean.shape)), args.out,
                                               " ".join("%.3f" % v for v in image_mean.mean(axis=(1, 2)))))


if __name__ == "__main__":
    cli.run(main, "compute_mean")
