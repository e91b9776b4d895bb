#!/usr/bin/env python3
"""Noise-type labels of paired samples: 0 noise-free, 1 random, 2 confusing
(docs/data.md#noise-types-of-paired-samples).

Reads the keys found in both kv files (optionally only those in a key list) and the matrix C;
writes `key noise_type` lines.
"""
import argparse

from noisy_label import cli, datasets
from noisy_label.core import matrix_c
from noisy_label.io import imageset


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clean_kv", help="`key clean_label` lines")
    parser.add_argument("noisy_kv", help="`key noisy_label` lines")
    parser.add_argument("matrix_c", help="C as .binaryproto (1x1xNxN) or text")
    parser.add_argument("out", help="output: `key noise_type` lines")
    parser.add_argument("--keys", default=None, help="a key list restricting the pairs")
    args = parser.parse_args()
    estimate = matrix_c.load_matrix_c(args.matrix_c)
    num_classes = len(estimate)
    clean = datasets.read_label_kv(args.clean_kv, num_classes)
    noisy = datasets.read_label_kv(args.noisy_kv, num_classes)
    keys = datasets.read_key_list(args.keys, clean, args.clean_kv) if args.keys else list(clean)
    keys = [k for k in keys if k in noisy]
    if not keys:
        raise ValueError("no key of %s has a label in %s" % (args.clean_kv, args.noisy_kv))
    types = matrix_c.noise_types([clean[k] for k in keys], [noisy[k] for k in keys], estimate)
    imageset.write_image_list(args.out, zip(keys, types))
    print("%d pairs -> %s: %s" % (len(keys), args.out, ", ".join(
        "%s %d" % (name, (types == t).sum()) for t, name in enumerate(("noise-free", "random",
                                                                         "confusing")))))


if __name__ == "__main__":
    cli.run(main, "assign_noise_types")
