#!/usr/bin/env python3
"""Print each LMDB's record count, Datum shapes, label histogram and first / last keys."""
import argparse

from noisy_label import cli
from noisy_label.io import lmdb_io


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", nargs="+", help="LMDB directories")
    args = parser.parse_args()
    for db in args.db:
        info = lmdb_io.inspect_lmdb(db)
        shapes = ", ".join("%s: %d" % (s if s == "encoded" else "x".join(map(str, s)), n)
                           for s, n in info["shapes"].items())
        print("%s: %d records (%s), keys %s .. %s" % (db, info["count"], shapes,
                                                     info["first_key"], info["last_key"]))
        print("  labels " + " ".join("%s:%d" % kv for kv in info["labels"].items()))


if __name__ == "__main__":
    cli.run(main, "inspect_lmdb")
