"""Datasets in the layout of Clothing1M's release (KeyListDataset): images under a root, two
label files `<key> <label>` (clean, noisy) and four key lists (clean train / val / test, noisy
train). Clothing1M is one; a user's folder with a dataset.yaml is another
(noisy_label.datasets.folder). Both build the same LMDBs, mean, C, Q and noise types, with the
same checks."""
import os
from typing import Optional, Tuple

import numpy as np

from noisy_label import paths
from noisy_label.core import matrix_c, noise
from noisy_label.datasets.base import (
    MIXED_FILES,
    Dataset,
    Output,
    Prepared,
    label_lmdbs,
    matrix_output,
    read_key_list,
    read_label_kv,
)
from noisy_label.io import imageset, mean
from noisy_label.io import manifest as manifest_io

# The files of the layout under the data root (images/... are the keys' paths).
LAYOUT = {
    "clean_kv": "clean_label_kv.txt", "noisy_kv": "noisy_label_kv.txt",
    "clean_train": "clean_train_key_list.txt", "clean_val": "clean_val_key_list.txt",
    "clean_test": "clean_test_key_list.txt", "noisy_train": "noisy_train_key_list.txt"}
CATEGORY_NAMES = "category_names_eng.txt"   # optional: one class name a line
# The joint net's two stages (stages.py), as the original release's solvers: stage 1 with
# clean loss weight 0.1, no noise-type loss and C fixed; stage 2 (resumed from stage 1's
# solver state) with clean loss 1.0, noise-type loss 0.1, C updated at a tenth of the rate.
STAGE_LOSS_WEIGHTS = {
    "noisy_label_loss_stage1": dict(clean_weight=0.1, ntype_weight=0, update_noise_lr=0.0),
    "noisy_label_loss_stage2": dict(clean_weight=1.0, ntype_weight=0.1, update_noise_lr=0.1)}
MAX_UPSAMPLE = 100   # the clean keys repeated at most 100x the noisy keys (memory grows with it)


class KeyListDataset(Dataset):
    """A dataset in the key-list layout; subclasses say how images are resized (resize_shape)."""
    workflow = "real_noise"
    gray = False                 # one channel, as convert_imageset -gray
    stage_loss_weights = STAGE_LOSS_WEIGHTS

    def resize_shape(self, opts) -> Optional[Tuple[int, int]]:
        """(height, width) the images are resized to with these make lmdb options, or None."""
        raise NotImplementedError

    def image_settings(self) -> dict:
        """How the images are written beyond the make lmdb options (a dataset.yaml's resize
        and gray): a change rebuilds the LMDBs."""
        return {}

    def upsample(self, opts) -> float:
        """Clean train keys per noisy key in the mixed set."""
        return opts["upsample"]

    def prepare(self, db_dir: str, data_root: str, opts, seed: int, encoded: bool, skip_bad: bool,
                bad) -> Prepared:
        if not os.path.isdir(data_root):
            raise IOError("DATA_ROOT=%s does not exist: put the %s tree there (%s, images/) "
                          "or pass DATA_ROOT=<its directory>"
                          % (data_root, self.reference_name or self.name,
                             ", ".join(sorted(LAYOUT.values()))))
        resize = self.resize_shape(opts)
        files = {k: os.path.join(data_root, v) for k, v in LAYOUT.items()}
        clean_kv = read_label_kv(files["clean_kv"], self.num_classes, self.defined_in)
        noisy_kv = read_label_kv(files["noisy_kv"], self.num_classes, self.defined_in)
        lists = {k: read_key_list(files[k], clean_kv, files["clean_kv"])
                 for k in ("clean_train", "clean_val", "clean_test")}
        lists["noisy_train"] = read_key_list(files["noisy_train"], noisy_kv, files["noisy_kv"])
        check_disjoint(lists, files)
        sets = key_list_label_sets(clean_kv, noisy_kv, lists, self.num_classes,
                                   self.upsample(opts), seed)
        # The label files by content (an edit that keeps the size and mtime still counts);
        # the images by size and mtime, per output (image_output).
        inputs = [manifest_io.content_signature(f) for f in sorted(files.values())]
        if self.image_settings():
            inputs.append(self.image_settings())
        outputs = key_list_outputs(self.name, db_dir, data_root, clean_kv, lists, sets, resize,
                                   self.gray, "jpg" if encoded else None, skip_bad, seed, bad)
        return Prepared(outputs + self.extra_outputs(db_dir), sets, inputs,
                        noise_summary=lambda opts: paired_noise_summary(sets))

    def extra_outputs(self, db_dir: str) -> list:
        """Outputs beside the layout's (a user dataset's record of its dataset.yaml)."""
        return []


def paired_noise_summary(sets: dict) -> dict:
    """The noise rate of the clean train/val keys that also have a noisy label (C's pairs)."""
    return {"paired_noise_rate": noise.noise_rate(*sets["pairs"]), "num_pairs": len(sets["pairs"][0])}


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


def key_list_label_sets(clean_kv, noisy_kv, lists, num_classes: int, upsample: float, seed: int) -> dict:
    """The label side of a key-list dataset (docs/data.md#the-mixed-training-set). lists:
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


def key_list_outputs(name: str, db_dir: str, root: str, clean_kv, lists, sets, resize, gray: bool,
                     encoding, skip_bad: bool, seed: int, bad) -> list:
    """The Outputs of a key-list dataset `name`; resize: (height, width) or None (keep each
    image's size); gray: one channel. Images that were skipped are appended to `bad`."""
    mean_name = os.path.basename(paths.mean_file(name))

    def image_output(db: str, keys, labels, shuffle: bool, with_mean: bool = False):
        path = os.path.join(db_dir, db)

        def write():
            built = imageset.build_image_lmdb(path, list(zip(keys, labels)), root, resize,
                                              gray=gray, encoding=encoding, shuffle=shuffle, seed=seed,
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
        if split == "test" and not keys:
            continue   # no clean test key has a noisy label: nothing trains or tests on it
        if not keys:
            raise ValueError("no clean %s key has a noisy label (in %s): the noise-type net "
                             "has no %s pairs" % (split, root, split))
        outputs.append(image_output("ntype_" + split, keys, types, split == "train"))
    outputs.append(Output("mixed", MIXED_FILES, write_mixed, len(sets["mixed_keys"]),
                          inputs=lambda: manifest_io.files_signature(root, sets["mixed_keys"])))
    outputs.append(matrix_output(db_dir, paths.MATRIX_C, sets["matrix_c"]))
    outputs.append(matrix_output(db_dir, paths.ESTIMATED_MATRIX_Q, sets["estimated_matrix_q"]))
    return outputs
