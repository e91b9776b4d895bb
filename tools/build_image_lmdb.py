#!/usr/bin/env python3
"""Build an image LMDB from a `path label` list, like convert_imageset, decoding in parallel.

    python tools/build_image_lmdb.py ROOT/ LIST DB [--resize-height 256 --resize-width 256]

Records are Datums keyed %08d_<path>: raw channel-major pixels, or --encoded JPEG/PNG.
"""
import argparse
import os

import cv2

from noisy_label import cli
from noisy_label.io import imageset, mean


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="folder the listed paths are relative to")
    parser.add_argument("list", help="`path label` lines")
    parser.add_argument("db", help="output LMDB (written as DB.tmp, renamed when complete)")
    parser.add_argument("--resize-height", type=cli.at_least(0), default=0)
    parser.add_argument("--resize-width", type=cli.at_least(0), default=0)
    parser.add_argument("--gray", action="store_true", help="one grayscale channel")
    parser.add_argument("--encoded", action="store_true", help="store encoded images")
    parser.add_argument("--encode-type", default="jpg", help="jpg or png (with --encoded)")
    parser.add_argument("--shuffle", action="store_true", help="shuffle the list first")
    parser.add_argument("--seed", type=cli.at_least(0), default=0, help="seed of --shuffle")
    parser.add_argument("--skip-bad", action="store_true", help="skip missing / corrupt images")
    parser.add_argument("--num-classes", type=cli.at_least(1), default=None,
                        help="check labels in 0..N-1")
    parser.add_argument("--processes", type=cli.at_least(1), default=None,
                        help="decoders (default: all cores)")
    parser.add_argument("--mean", default=None, help="also write the mean file (.binaryproto)")
    args = parser.parse_args()
    if bool(args.resize_height) != bool(args.resize_width):
        parser.error("--resize-height and --resize-width go together")
    if args.encoded and not cv2.haveImageWriter("." + args.encode_type):
        parser.error("--encode-type %s: OpenCV cannot write it (jpg, png)" % args.encode_type)
    if not os.path.isdir(args.root):
        raise IOError("the image root %s is not a directory" % args.root)
    if args.mean and os.path.isdir(args.mean):
        raise IOError("cannot write the mean file %s: it is a directory" % args.mean)
    resize = (args.resize_height, args.resize_width) if args.resize_height else None
    items = imageset.read_image_list(args.list, args.num_classes)
    built = imageset.build_image_lmdb(
        args.db, items, args.root, resize, args.gray, args.encode_type if args.encoded else None,
        args.shuffle, args.seed, args.skip_bad, args.processes)
    if args.mean:
        if built["mean"] is None:
            raise ValueError("the images differ in size: no mean (resize them)")
        mean.write_mean_file(args.mean, built["mean"])
    print("%d images -> %s" % (built["count"], args.db))
    for path, error in built["bad"]:
        print("skipped %s: %s" % (path, error))


if __name__ == "__main__":
    cli.run(main, "build_image_lmdb")
