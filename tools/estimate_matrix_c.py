#!/usr/bin/env python3
"""Estimate the confusion matrix C [noisy, true] from paired labels
(docs/data.md#estimating-c-from-paired-labels).

The pairs are the keys found in both kv files (`key label` lines), optionally only those in
the given key lists (e.g. Clothing1M's clean train and val lists). Writes C as a 1x1xNxN
binaryproto (the noisy-label loss layer's matrix_c) and as text.
"""
import argparse
import os

from noisy_label import cli, datasets
from noisy_label.core import matrix_c


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clean_kv", help="`key clean_label` lines")
    parser.add_argument("noisy_kv", help="`key noisy_label` lines")
    parser.add_argument("out", help="output .binaryproto")
    parser.add_argument("--num-classes", type=cli.at_least(2), required=True)
    parser.add_argument("--text", default=None, help="text copy (default: OUT with .txt)")
    parser.add_argument("--keys", nargs="*", default=None, help="key lists restricting the pairs")
    args = parser.parse_args()
    text = args.text or os.path.splitext(args.out)[0] + ".txt"
    if os.path.abspath(text) == os.path.abspath(args.out):
        raise ValueError("the text copy of C would overwrite %s: give --text another name" % args.out)
    clean = datasets.read_label_kv(args.clean_kv, args.num_classes)
    noisy = datasets.read_label_kv(args.noisy_kv, args.num_classes)
    keys = list(clean)
    if args.keys:
        keys = [k for path in args.keys for k in datasets.read_key_list(path, clean, args.clean_kv)]
    keys = [k for k in keys if k in noisy]
    if not keys:
        raise ValueError("no key of %s has a label in %s" % (args.clean_kv, args.noisy_kv))
    estimate, never = matrix_c.estimate_matrix_c([clean[k] for k in keys],
                                                 [noisy[k] for k in keys], args.num_classes)
    matrix_c.save_matrix(args.out, estimate, text)
    print("C from %d pairs -> %s, %s" % (len(keys), args.out, text))
    print(matrix_c.format_matrix(estimate), end="")
    if len(never):
        print("classes never seen mislabelled (no confusing noise, C column all zero): %s"
              % ", ".join(map(str, never)))


if __name__ == "__main__":
    cli.run(main, "estimate_matrix_c")
