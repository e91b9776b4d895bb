"""Clothing1M (Xiao et al., CVPR 2015): 14 classes, 1M images with noisy labels from the
web, 72k with clean labels; the layout of the original release under DATA_ROOT, images
resized to RESIZE x RESIZE; CaffeNet from ImageNet weights."""
import os

import numpy as np

from noisy_label import paths
from noisy_label.core import matrix_c
from noisy_label.datasets.base import (
    MIXED_FILES,
    Dataset,
    Output,
    label_lmdbs,
    matrix_output,
    read_key_list,
    read_label_kv,
    register,
)
from noisy_label.io import imageset, mean
from noisy_label.io import manifest as manifest_io

MAX_UPSAMPLE = 100   # the clean keys repeated at most 100x the noisy keys (memory grows with it)


@register
class Clothing1M(Dataset):
    name = "clothing1M"
    num_classes = 14
    options = {"resize": 256, "upsample": 1.0}
    workflow = "clothing1M"
    tower = "caffenet"
    image_shape = (3, 256, 256)   # RESIZE
    transform = {"crop_size": 227, "mirror": True}
    train_batch, test_batch = 128, 100
    solver = dict(momentum=0.9, weight_decay=0.0005, display=20, average_loss=20,
                  lr_policy="step", gamma=0.1, test_initialization=True, test_interval=200)
    # The original release's solvers, snapshots every 10,000 iterations included. The noise-type
    # stage keeps its test_iter (75): the size of ntype_val depends on the kv files' overlap.
    schedules = {"clean": dict(base_lr=0.001, stepsize=10000, max_iter=15000, snapshot=10000),
                 "ntype": dict(base_lr=0.001, stepsize=3000, max_iter=5000, test_iter=75),
                 "noisy_label_loss_stage1": dict(base_lr=0.001, stepsize=50000, max_iter=100000,
                                                 snapshot=10000),
                 "noisy_label_loss_stage2": dict(base_lr=0.001, stepsize=50000, max_iter=160000,
                                                 snapshot=10000)}
    clean_head = "_clean"
    ntype_kwargs = {"fc7_outputs": 1024, "fc67_suffix": "_ntype"}
    ntype_head_lr_mult = 1
    val_lmdb, ntype_val_lmdb, test_lmdb = paths.CLEAN_VAL, paths.NTYPE_VAL, paths.CLEAN_TEST
    record_counts = {paths.CLEAN_VAL: 14313, paths.CLEAN_TEST: 10526}
    # From the original release's logs (the paper reports 0.7824 for ours).
    reference_accuracy = {"clean": 0.724, "ntype": 0.641, "ours_stage1": 0.756, "ours": 0.773}
    reference_name = "Clothing1M"
    initial_weights = ("bvlc_reference_caffenet.caffemodel",
                       "http://dl.caffe.berkeleyvision.org/bvlc_reference_caffenet.caffemodel")

    def prepare(self, db_dir: str, data_root: str, opts, seed: int, encoded: bool, skip_bad: bool,
                bad):
        if not os.path.isdir(data_root):
            raise IOError("DATA_ROOT=%s does not exist: put the Clothing1M tree there (%s, images/) "
                          "or pass DATA_ROOT=<its directory>"
                          % (data_root, ", ".join(sorted(paths.CLOTHING1M_FILES.values()))))
        files = {k: os.path.join(data_root, v) for k, v in paths.CLOTHING1M_FILES.items()
                 if k != "category_names"}
        clean_kv = read_label_kv(files["clean_kv"], self.num_classes)
        noisy_kv = read_label_kv(files["noisy_kv"], self.num_classes)
        lists = {k: read_key_list(files[k], clean_kv, files["clean_kv"])
                 for k in ("clean_train", "clean_val", "clean_test")}
        lists["noisy_train"] = read_key_list(files["noisy_train"], noisy_kv, files["noisy_kv"])
        check_disjoint(lists, files)
        sets = clothing1m_label_sets(clean_kv, noisy_kv, lists, self.num_classes, opts["upsample"],
                                     seed)
        # The label files by content (an edit that keeps the size and mtime still counts);
        # the images by size and mtime, per output (image_output).
        inputs = [manifest_io.content_signature(f) for f in sorted(files.values())]
        outputs = clothing1m_outputs(db_dir, data_root, clean_kv, lists, sets, int(opts["resize"]),
                                     "jpg" if encoded else None, skip_bad, seed, bad)
        return outputs, sets, None, inputs


# Clean splits that must not share a key: a clean label trained on and tested on leaks the
# test. (noisy_train may hold val/test images: only their noisy label enters the mixed set,
# as in the original; docs/data.md#the-mixed-training-set.)
_DISJOINT = [("clean_train", "clean_val"), ("clean_train", "clean_test"), ("clean_val", "clean_test")]


def check_disjoint(lists, files) -> None:
    """ValueError naming the key and both files when two splits that must be disjoint share
    a key (lists: {split: keys}; files: {split: path})."""
    for first, second in _DISJOINT:
        shared = set(lists[first]).intersection(lists[second])
        if shared:
            key = next(k for k in lists[second] if k in shared)
            raise ValueError("key %s is in both %s and %s (%d keys shared): a %s key in %s "
                             "leaks it" % (key, files[first], files[second], len(shared), second,
                                           first))


def clothing1m_label_sets(clean_kv, noisy_kv, lists, num_classes: int, upsample: float, seed: int) -> dict:
    """The label side of Clothing1M (docs/data.md#the-mixed-training-set). lists:
    {"clean_train", "clean_val", "clean_test", "noisy_train"} key lists. Returns matrix_c,
    never_mislabelled, pairs (clean, noisy labels of the keys C came from), ntype {split:
    (keys, types)}, mixed keys and mixed[field] labels."""
    upsample = float(upsample)
    if not 0 <= upsample <= MAX_UPSAMPLE:
        raise ValueError("UPSAMPLE=%r: it must be a number from 0 to %d (clean train keys per "
                         "noisy key in the mixed set)" % (upsample, MAX_UPSAMPLE))
    rng = np.random.RandomState(seed)
    # C comes from the clean train + val keys that also have a noisy label.
    paired = [k for k in lists["clean_train"] + lists["clean_val"] if k in noisy_kv]
    if not paired:
        raise ValueError("no clean train/val key has a noisy label: matrix C cannot be estimated")
    pairs = (np.array([clean_kv[k] for k in paired]), np.array([noisy_kv[k] for k in paired]))
    estimate, never = matrix_c.estimate_matrix_c(pairs[0], pairs[1], num_classes)
    estimated_q = matrix_c.estimate_matrix_q(pairs[0], pairs[1], num_classes)
    ntype = {}
    for split in ("train", "val", "test"):
        keys = [k for k in lists["clean_" + split] if k in noisy_kv]
        types = matrix_c.noise_types([clean_kv[k] for k in keys], [noisy_kv[k] for k in keys],
                                     estimate) if keys else np.zeros(0, np.int64)
        ntype[split] = (keys, types)
    # Clean train keys up-sampled to `upsample` x the noisy keys, then all shuffled together.
    clean_train = lists["clean_train"]
    wanted = int(round(upsample * len(lists["noisy_train"])))
    repeats = np.concatenate([np.tile(np.arange(len(clean_train)), wanted // len(clean_train)),
                              rng.permutation(len(clean_train))[:wanted % len(clean_train)]]) \
        if clean_train else np.zeros(0, np.int64)
    keys = [clean_train[i] for i in repeats] + list(lists["noisy_train"])
    keys = [keys[i] for i in rng.permutation(len(keys))]
    # Only clean *train* labels may enter the mixed set: val/test keys get their noisy label.
    clean_train_set = set(clean_train)
    ntype_train = dict(zip(*ntype["train"]))
    has_clean = np.array([k in clean_train_set for k in keys], bool)
    mixed = {"clean": np.array([clean_kv[k] if c else -1 for k, c in zip(keys, has_clean)], np.int64),
             "noisy": np.array([-1 if c else noisy_kv[k] for k, c in zip(keys, has_clean)], np.int64),
             "ntype": np.array([ntype_train.get(k, -1) for k in keys], np.int64)}
    mixed["truth_or_noisy"] = np.where(has_clean, mixed["clean"], mixed["noisy"])
    return {"matrix_c": estimate, "estimated_matrix_q": estimated_q,
            "never_mislabelled": never, "pairs": pairs, "ntype": ntype,
            "mixed_keys": keys, "mixed": mixed}


def clothing1m_outputs(db_dir: str, root: str, clean_kv, lists, sets, resize, encoding,
                       skip_bad: bool, seed: int, bad) -> list:
    """The Outputs of Clothing1M; images that were skipped are appended to `bad`."""
    resize = (resize, resize) if resize else None
    mean_name = os.path.basename(paths.mean_file("clothing1M"))

    def image_output(db: str, keys, labels, shuffle: bool, with_mean: bool = False):
        path = os.path.join(db_dir, db)

        def write():
            built = imageset.build_image_lmdb(path, list(zip(keys, labels)), root, resize,
                                              encoding=encoding, shuffle=shuffle, seed=seed,
                                              skip_bad=skip_bad)
            bad.extend(built["bad"])
            imageset.write_image_list(path + ".txt", [built["items"][i] for i in built["kept"]])
            if with_mean:
                if built["mean"] is None:
                    raise ValueError("the %s images differ in size: no mean file (set RESIZE)" % db)
                mean.write_mean_file(os.path.join(db_dir, mean_name), built["mean"])
            return built
        return Output(db, [db, db + ".txt"] + ([mean_name] if with_mean else []), write, len(keys),
                      inputs=lambda: manifest_io.files_signature(root, keys))

    def write_mixed():
        keys, mixed = sets["mixed_keys"], sets["mixed"]
        built = image_output(paths.MIXED_IMAGES, keys, mixed["truth_or_noisy"], False).write()
        label_lmdbs(db_dir, keys, mixed, built["kept"])

    outputs = []
    for split in ("train", "val", "test"):
        keys = lists["clean_" + split]
        # The mean file comes from clean_train, as the original's make_db.sh.
        outputs.append(image_output("clean_" + split, keys, [clean_kv[k] for k in keys],
                                    split == "train", with_mean=split == "train"))
    for split in ("train", "val", "test"):
        keys, types = sets["ntype"][split]
        outputs.append(image_output("ntype_" + split, keys, types, split == "train"))
    outputs.append(Output("mixed", MIXED_FILES, write_mixed, len(sets["mixed_keys"]),
                          inputs=lambda: manifest_io.files_signature(root, sets["mixed_keys"])))
    outputs.append(matrix_output(db_dir, paths.MATRIX_C, sets["matrix_c"]))
    outputs.append(matrix_output(db_dir, paths.ESTIMATED_MATRIX_Q, sets["estimated_matrix_q"]))
    return outputs
