"""Peak memory of reading Clothing1M's label files and estimating C, against the number of keys.

    python bench/bench_memory.py [--keys 50000 200000 1000000] [--work DIR]

For each size, writes kv files and key lists in Clothing1M's layout (noisy keys = KEYS, clean
keys = 7.2% of them as in the real release, half of those also noisy), then runs, in a fresh
process each, what `make lmdb DATASET=clothing1M` does before it reads an image: read and check
both kv files and the four key lists (datasets.read_label_kv / read_key_list, the splits' leak
check), and build the label sets (C, Q, noise types, the mixed set). Prints seconds, peak RSS
(the process's ru_maxrss, Python itself included), KB per key above the interpreter's own
baseline, and the machine. No stock Caffe tool reads these files; the figure to hold is the
issue's measurement: about 0.37 KB a key, linear, 557 MB at 1,000,000 keys.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import machine
import numpy as np

from noisy_label.datasets import key_lists

MEASURE = r"""
import resource, sys, time
from noisy_label import datasets, paths
from noisy_label.datasets import key_lists
root = sys.argv[1]
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.time()
files = {k: root + "/" + v for k, v in key_lists.LAYOUT.items()}
clean_kv = datasets.read_label_kv(files["clean_kv"], 14)
noisy_kv = datasets.read_label_kv(files["noisy_kv"], 14)
lists = {k: datasets.read_key_list(files[k], clean_kv, files["clean_kv"])
         for k in ("clean_train", "clean_val", "clean_test")}
lists["noisy_train"] = datasets.read_key_list(files["noisy_train"], noisy_kv, files["noisy_kv"])
key_lists.check_disjoint(lists, files)
sets = key_lists.key_list_label_sets(clean_kv, noisy_kv, lists, 14, 1.0, 1)
print(time.time() - start, baseline, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_tree(root, num_keys, seed=0):
    """Clothing1M's label files for `num_keys` noisy keys (no images: only labels are read)."""
    if os.path.exists(os.path.join(root, "done")):
        return
    os.makedirs(root, exist_ok=True)
    rng = np.random.RandomState(seed)
    num_clean = int(0.0724 * num_keys)
    keys = ["images/%d/%07d.jpg" % (i % 10, i) for i in range(num_keys + num_clean // 2)]
    clean_keys, noisy_keys = keys[:num_clean], keys[num_clean // 2:]
    true = rng.randint(0, 14, len(keys))
    noisy = np.where(rng.rand(len(keys)) < 0.4, rng.randint(0, 14, len(keys)), true)
    files = key_lists.LAYOUT

    def write(name, lines):
        with open(os.path.join(root, files[name]), "w") as f:
            f.writelines(lines)
    write("clean_kv", ("%s %d\n" % (k, true[i]) for i, k in enumerate(clean_keys)))
    write("noisy_kv", ("%s %d\n" % (k, noisy[i + num_clean // 2]) for i, k in enumerate(noisy_keys)))
    train, val = int(0.657 * num_clean), int(0.855 * num_clean)
    write("clean_train", (k + "\n" for k in clean_keys[:train]))
    write("clean_val", (k + "\n" for k in clean_keys[train:val]))
    write("clean_test", (k + "\n" for k in clean_keys[val:]))
    write("noisy_train", (k + "\n" for k in noisy_keys))
    open(os.path.join(root, "done"), "w").close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[50000, 200000, 1000000])
    parser.add_argument("--work", default=None, help="where the label files go (default: a temp dir)")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="bench_memory.")
    print("machine: %s" % machine.describe())
    print("%10s %10s %14s %12s %10s" % ("noisy keys", "seconds", "peak RSS (MB)", "above base",
                                        "KB / key"))
    rows = []
    for num_keys in args.keys:
        root = os.path.join(work, str(num_keys))
        write_tree(root, num_keys)
        out = subprocess.run([sys.executable, "-c", MEASURE, root], check=True,
                             stdout=subprocess.PIPE, text=True).stdout.split()
        seconds, baseline, peak = float(out[0]), int(out[1]), int(out[2])
        per_key = (peak - baseline) / float(num_keys)
        rows.append((num_keys, peak))
        print("%10d %10.2f %14.0f %10.0f MB %10.3f" % (num_keys, seconds, peak / 1024.0,
                                                       (peak - baseline) / 1024.0, per_key))
    if len(rows) > 1:
        slope = np.polyfit([r[0] for r in rows], [r[1] for r in rows], 1)[0]
        print("growth: %.3f KB per key (least squares over the sizes above; the issue measured "
              "about 0.37)" % slope)


if __name__ == "__main__":
    main()
