"""What cifar10 and digits share: synthetic noise drawn from a matrix Q, C estimated from the
clean subset's noisy draws, and their LMDBs (SyntheticDataset)."""
import os

import numpy as np

from noisy_label import paths
from noisy_label.core import matrix_c, noise
from noisy_label.datasets.base import (
    MIXED_FILES,
    Dataset,
    Option,
    Output,
    Prepared,
    array_lmdb_output,
    label_lmdbs,
    matrix_output,
)
from noisy_label.io import imageset, lmdb_io, mean

NTYPE_TRAIN_FRACTION = 0.8   # the original split the 10,000 cifar10 pairs 8,000 / 2,000
# The held-out pairs (the clean subset's last fifth, the noise-type test pairs) have a clean
# and a noisy label and no net trains on them, nor C: the label LMDBs aligned with ntype_test
# that make relabel chooses its threshold on.
HELD_OUT_LABELS = {"clean": "ntype_test_label_clean", "noisy": "ntype_test_label_noisy"}


class SyntheticDataset(Dataset):
    """A dataset with true labels and synthetic noise; subclasses implement `load`."""

    num_test = None              # records of the test set

    @property
    def record_counts(self):
        """The test LMDBs' records with the default options (the noise-type test pairs are the
        clean subset's last fifth)."""
        num_clean = self.option_defaults()["num_clean"]
        return {paths.TEST: self.num_test,
                paths.NTYPE_TEST: num_clean - int(round(NTYPE_TRAIN_FRACTION * num_clean))}

    def load(self, data_root: str, opts, seed: int):
        """({"train": (images, labels, names), "test": (...)}, input signatures or None)."""
        raise NotImplementedError

    def prepare(self, db_dir: str, data_root: str, opts, seed: int, encoded: bool, skip_bad: bool,
                bad):
        raw, inputs = self.load(data_root, opts, seed)
        sets = synthetic_label_sets(raw["train"][1], self.num_classes, opts["noise_level"],
                                    opts["num_clean"], seed)
        outputs = synthetic_outputs(self.name, db_dir, raw, sets, "png" if encoded else None)
        return Prepared(outputs, sets, inputs,
                        noise_summary=lambda opts: synthetic_noise_summary(raw["train"][1], sets,
                                                                           opts["noise_level"]))


def noise_options(num_clean: int, noise_level: float = 0.5):
    """The make lmdb options of a synthetic-noise dataset: NOISE_LEVEL and NUM_CLEAN."""
    return (Option("noise_level", float, noise_level, "synthetic noise level in [0, 1]"),
            Option("num_clean", int, num_clean, "training images that keep clean labels"))


def synthetic_noise_summary(labels, sets: dict, noise_level: float) -> dict:
    """The noise level asked and the rate drawn: over all training labels (labels: (M,) true)
    and over the clean subset C comes from."""
    clean = sets["clean"]
    return {"noise_level": noise_level,
            "achieved_noise_rate": noise.noise_rate(labels, sets["noisy"]),
            "achieved_noise_rate_clean_subset": noise.noise_rate(labels[clean],
                                                                 sets["noisy"][clean])}


def check_num_clean(num_clean: int, num_train: int) -> int:
    num_clean = int(num_clean)
    if not 2 <= num_clean <= num_train:
        raise ValueError("NUM_CLEAN=%d: it must be at least 2 and at most the %d training images"
                         % (num_clean, num_train))
    return num_clean


def synthetic_label_sets(labels, num_classes: int, noise_level: float, num_clean: int, seed: int) -> dict:
    """The label side of cifar10 / digits: synthetic noise, C, noise types and the mixed set.

    labels: (M,) true training labels. Returns a dict of index / label arrays:
    matrix_q, noisy (M,), clean (K,) indices that keep clean labels, matrix_c, never_mislabelled,
    ntype (K,), ntype_train / ntype_test (index arrays into `clean`), clean_train (the
    K_train = round(0.8 K) indices of `clean` that are trained on), mixed_order (M - K + K_train,)
    and mixed[field] labels in that order for field in clean/noisy/ntype/truth_or_noisy.

    The held-out pairs clean[ntype_test] (the last fifth) are kept out of everything that is
    trained or estimated: the clean and mixed sets, C and the estimated Q. They are the
    noise-type test pairs, and the pairs make relabel chooses its threshold on.
    """
    rng = np.random.RandomState(seed)
    noise_level = noise.check_noise_level(noise_level)
    num_clean = check_num_clean(num_clean, len(labels))
    matrix_q = noise.synthesize_matrix_q(num_classes, noise_level, rng)
    noisy = noise.draw_noisy_labels(labels, matrix_q, rng)
    clean = rng.permutation(len(labels))[:num_clean]
    num_ntype_train = int(round(NTYPE_TRAIN_FRACTION * num_clean))
    trained = clean[:num_ntype_train]
    # The trained clean images' noisy draws are kept only to estimate C and their noise types.
    estimate, never = matrix_c.estimate_matrix_c(labels[trained], noisy[trained], num_classes)
    estimated_q = matrix_c.estimate_matrix_q(labels[trained], noisy[trained], num_classes)
    ntype = matrix_c.noise_types(labels[clean], noisy[clean], estimate)
    is_clean = np.zeros(len(labels), bool)
    is_clean[trained] = True
    held_out = np.zeros(len(labels), bool)
    held_out[clean[num_ntype_train:]] = True
    ntype_of = np.full(len(labels), -1)
    ntype_of[trained] = ntype[:num_ntype_train]
    kept = np.flatnonzero(~held_out)
    order = kept[rng.permutation(len(kept))]
    mixed = {"clean": np.where(is_clean, labels, -1)[order],
             "noisy": np.where(is_clean, -1, noisy)[order],
             "ntype": ntype_of[order],
             "truth_or_noisy": np.where(is_clean, labels, noisy)[order]}
    return {"matrix_q": matrix_q, "estimated_matrix_q": estimated_q, "noisy": noisy,
            "clean": clean, "clean_train": trained, "matrix_c": estimate,
            "never_mislabelled": never, "ntype": ntype,
            "ntype_train": np.arange(num_ntype_train), "ntype_test": np.arange(num_ntype_train, num_clean),
            "mixed_order": order, "mixed": mixed}


def synthetic_outputs(name: str, db_dir: str, data: dict, sets: dict, encoding) -> list:
    """The Outputs of cifar10 / digits from the loaded data and synthetic_label_sets."""
    (train_images, train_labels, train_names), test = data["train"], data["test"]
    train_names = np.array(train_names)
    clean, order, mixed = sets["clean"], sets["mixed_order"], sets["mixed"]
    trained, held_out = sets["clean_train"], clean[sets["ntype_test"]]
    ntype_images = train_images[clean]
    mean_name = os.path.basename(paths.mean_file(name))

    def write_mixed():
        array_lmdb_output(db_dir, paths.MIXED_IMAGES, train_images[order],
                           mixed["truth_or_noisy"], train_names[order], encoding).write()
        label_lmdbs(db_dir, list(train_names[order]), mixed)
        mean.write_mean_file(os.path.join(db_dir, mean_name), train_images[order].mean(axis=0))

    def write_held_out():
        for kind, labels in (("clean", train_labels[held_out]), ("noisy", sets["noisy"][held_out])):
            path = os.path.join(db_dir, HELD_OUT_LABELS[kind])
            lmdb_io.write_label_lmdb(path, labels)
            imageset.write_image_list(path + ".txt", zip(train_names[held_out], labels))

    return [
        array_lmdb_output(db_dir, paths.TEST, test[0], test[1], test[2], encoding),
        array_lmdb_output(db_dir, paths.CLEAN_TRAIN, train_images[trained], train_labels[trained],
                           train_names[trained], encoding),
        array_lmdb_output(db_dir, paths.NTYPE_TRAIN, ntype_images[sets["ntype_train"]],
                           sets["ntype"][sets["ntype_train"]],
                           train_names[clean][sets["ntype_train"]], encoding),
        array_lmdb_output(db_dir, paths.NTYPE_TEST, ntype_images[sets["ntype_test"]],
                           sets["ntype"][sets["ntype_test"]],
                           train_names[clean][sets["ntype_test"]], encoding),
        array_lmdb_output(db_dir, paths.MIXED_TRAIN, train_images[order], mixed["truth_or_noisy"],
                           train_names[order], encoding),
        Output("mixed", MIXED_FILES + [mean_name], write_mixed, len(order)),
        # The held-out pairs' labels, aligned with ntype_test (no net trains on them); the
        # group is named after its noisy-label LMDB, which make lmdb's summary counts.
        Output(HELD_OUT_LABELS["noisy"], [HELD_OUT_LABELS[k] + ext for k in ("clean", "noisy")
                                  for ext in ("", ".txt")], write_held_out, len(held_out)),
        matrix_output(db_dir, paths.MATRIX_C, sets["matrix_c"]),
        matrix_output(db_dir, paths.ESTIMATED_MATRIX_Q, sets["estimated_matrix_q"]),
        matrix_output(db_dir, paths.TRUE_MATRIX_Q, sets["matrix_q"]),
        # The truth of every mixed record, in LMDB order: what make relabel is scored against.
        Output(paths.TRUE_LABELS, [paths.TRUE_LABELS + ".txt"], lambda: imageset.write_image_list(
            os.path.join(db_dir, paths.TRUE_LABELS + ".txt"),
            zip(train_names[order], train_labels[order])), len(order)),
    ]
