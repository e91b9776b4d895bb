"""Image LMDB build and mean file: noisy_label against stock convert_imageset / compute_image_mean.

    python bench/bench_lmdb.py [--images 2000] [--size 256] [--work DIR]

Both builders get the same list of generated JPEGs (300-500 px, smooth structure plus
texture so their file sizes are realistic) resized to size x size, in one run; then both
mean tools read the same LMDB. Prints images/s, seconds, the ratios and the machine.
"""
import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import cv2
import machine
import numpy as np

from noisy_label import paths
from noisy_label.io import imageset, mean


def make_jpegs(out_dir, count, seed=0):
    """Write `count` JPEGs of 300-500 px: blurred colour blobs, edges and noise."""
    list_path = os.path.join(out_dir, "list.txt")
    if os.path.isfile(list_path) and len(open(list_path).readlines()) == count:
        return list_path    # made by an earlier run with the same --work
    rng = np.random.RandomState(seed)
    lines = []
    for i in range(count):
        height, width = rng.randint(300, 501, size=2)
        coarse = rng.randint(0, 256, size=(rng.randint(4, 12), rng.randint(4, 12), 3)).astype(np.uint8)
        image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        for _ in range(rng.randint(3, 8)):
            centre = (int(rng.randint(width)), int(rng.randint(height)))
            cv2.circle(image, centre, int(rng.randint(10, 80)), rng.randint(0, 256, 3).tolist(), -1)
        image = cv2.add(image, rng.randint(0, 24, size=image.shape).astype(np.uint8))
        name = "%04d/img_%05d.jpg" % (i // 500, i)
        os.makedirs(os.path.join(out_dir, os.path.dirname(name)), exist_ok=True)
        cv2.imwrite(os.path.join(out_dir, name), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        lines.append("%s %d\n" % (name, i % 14))
    with open(list_path, "w") as f:
        f.writelines(lines)
    return list_path


def timed(fn):
    """(wall seconds, CPU seconds of this process and its children, fn's result)."""
    def cpu():
        own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                             resource.RUSAGE_CHILDREN))
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    start, start_cpu = time.perf_counter(), cpu()
    result = fn()
    return time.perf_counter() - start, cpu() - start_cpu, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--work", default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args()

    work = args.work or tempfile.mkdtemp(prefix="bench_lmdb_")
    os.makedirs(work, exist_ok=True)
    try:
        images_dir = os.path.join(work, "images")
        print("%d JPEGs in %s" % (args.images, images_dir))
        list_path = make_jpegs(images_dir, args.images)
        size_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(images_dir)
                      for f in fs if f.endswith(".jpg")) / 1e6
        print("  %.1f MB of JPEG, %.0f KB each" % (size_mb, size_mb * 1e3 / args.images))
        # Warm the page cache so neither side pays for the first read.
        subprocess.run(["cat"] + [os.path.join(images_dir, line.split()[0]) for line in open(list_path)],
                       stdout=subprocess.DEVNULL, check=True)

        stock_db, ours_db = os.path.join(work, "stock_lmdb"), os.path.join(work, "ours_lmdb")
        items = imageset.read_image_list(list_path)
        stock_runs, our_runs = [], []
        # Alternate the two and keep each one's best run: other load on the machine hits both.
        for _ in range(args.repeat):
            for db in (stock_db, ours_db):
                shutil.rmtree(db, ignore_errors=True)
            stock_runs.append(timed(lambda: subprocess.run(
                [paths.caffe_tool("convert_imageset"), "-resize_height", str(args.size), "-resize_width",
                 str(args.size), images_dir + "/", list_path, stock_db],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)))
            our_runs.append(timed(lambda: imageset.build_image_lmdb(
                ours_db, items, root=images_dir, resize=(args.size, args.size))))
        stock_s, stock_cpu, _ = min(stock_runs, key=lambda run: run[0])
        ours_s, ours_cpu, built = min(our_runs, key=lambda run: run[0])
        assert built["count"] == args.images

        stock_mean_s = min(timed(lambda: subprocess.run(
            [paths.caffe_tool("compute_image_mean"), stock_db, os.path.join(work, "stock_mean.binaryproto")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True))[0]
            for _ in range(args.repeat))
        mean_runs = [timed(lambda: mean.compute_mean(stock_db)) for _ in range(args.repeat)]
        ours_mean_s, _, ours_mean = min(mean_runs, key=lambda run: run[0])
        mean.write_mean_file(os.path.join(work, "ours_mean.binaryproto"), ours_mean)
        diff = float(np.abs(ours_mean - built["mean"]).max())

        print("machine: %s; load average %.1f (other work shares the cores)"
              % (machine.describe() + ", OpenCV " + cv2.__version__, os.getloadavg()[0]))
        print("image LMDB, %d JPEGs -> %dx%d raw, best of %d:" % (args.images, args.size, args.size,
                                                                 args.repeat))
        print("  convert_imageset   %7.2f s  %7.0f images/s  %.2f ms CPU/image"
              % (stock_s, args.images / stock_s, 1e3 * stock_cpu / args.images))
        print("  noisy_label        %7.2f s  %7.0f images/s  %.2f ms CPU/image (%d processes)"
              % (ours_s, args.images / ours_s, 1e3 * ours_cpu / args.images, os.cpu_count()))
        print("  ratio              %7.2fx   (target >= 1.5x)" % (stock_s / ours_s))
        print("mean file of the %d-record LMDB:" % args.images)
        print("  compute_image_mean %7.3f s" % stock_mean_s)
        print("  noisy_label        %7.3f s  (max |mean - mean of the build pass| = %.2g)"
              % (ours_mean_s, diff))
        print("  ratio              %7.2fx   (target >= 1x)" % (stock_mean_s / ours_mean_s))
        print("(compute_image_mean's time includes its process start; the build-pass mean "
              "comes free with the LMDB)")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
