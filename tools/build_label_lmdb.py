#!/usr/bin/env python3
"""Build a label LMDB: one Datum per line (1x1x1, the label as float_data), keyed %08d.

The label is the last field of each `[name] label` line; -1 marks a missing label.
"""
import argparse

from noisy_label import cli
from noisy_label.io import imageset, lmdb_io


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("list", help="`[name] label` lines")
    parser.add_argument("db", help="output LMDB (written as DB.tmp, renamed when complete)")
    parser.add_argument("--num-classes", type=cli.at_least(1), default=None,
                        help="check labels in -1..N-1")
    args = parser.parse_args()
    labels = imageset.read_label_list(args.list, args.num_classes)
    lmdb_io.write_label_lmdb(args.db, labels)
    print("%d labels -> %s" % (len(labels), args.db))


if __name__ == "__main__":
    cli.run(main, "build_label_lmdb")
