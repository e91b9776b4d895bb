"""The one place that names the datasets and where their files live.

Everything is relative to the experiment root `EXP` (default `exp/` in the
repository, as the prototxts expect when Caffe runs from the repository root):

    $EXP/datasets/<name>/   raw downloads / the Clothing1M tree
    $EXP/db/<name>/         LMDBs, mean files, matrix C
    $EXP/snapshots/<name>/  .caffemodel / .solverstate
    $EXP/logs/<name>/       Caffe logs, CSVs, reports

The file names inside `db_dir(name)` keep the original release's names, so its
prototxts' sources carry over; `make lmdb`, the tools and the prototxts take them from here.
"""
import os
import shutil
import sys
from typing import Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_EXP = "exp"


def exp_root(exp: Optional[str] = None) -> str:
    """The experiment root: `exp`, else $EXP, else `exp/` in the repository."""
    exp = exp or os.environ.get("EXP") or os.path.join(REPO_ROOT, DEFAULT_EXP)
    return os.path.abspath(exp)


def caffe_tool(name: str = "caffe") -> str:
    """A stock Caffe tool: the launcher beside this Python (the venv's, written by
    scripts/setup_venv.sh), else the one on PATH; IOError saying how to get one."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found is None:
        raise IOError("no `%s` beside %s nor on PATH: run `make venv` and use .venv/bin/python"
                      % (name, sys.executable))
    return found


def data_root(name: str, exp: Optional[str] = None) -> str:
    return os.path.join(exp_root(exp), "datasets", name)


def db_dir(name: str, exp: Optional[str] = None) -> str:
    return os.path.join(exp_root(exp), "db", name)


def snapshot_dir(name: str, exp: Optional[str] = None) -> str:
    return os.path.join(exp_root(exp), "snapshots", name)


def log_dir(name: str, exp: Optional[str] = None) -> str:
    return os.path.join(exp_root(exp), "logs", name)


def seed_root(exp: Optional[str], seed: int) -> str:
    """The experiment root of one seed: EXP itself for seed 1, EXP/seeds/<seed> for the
    others (each a complete root: db, snapshots, logs, prototxt). `make lmdb SEED=n`,
    `make train SEED=n` and `make demo` all use it; raw data stays in EXP/datasets."""
    if int(seed) == 1:
        return exp_root(exp)
    return os.path.join(exp_root(exp), "seeds", str(int(seed)))


def init_weights(name: str, exp: Optional[str] = None) -> str:
    """The joint net's starting weights, written by the init stage."""
    return os.path.join(snapshot_dir(name, exp), "noisy_label_loss_init.caffemodel")


def lock_file(name: str, exp: Optional[str] = None) -> str:
    """The lock that makes one run at a time write dataset `name` under a (seed) root: make
    lmdb, make train, make relabel and make compare hold it (noisy_label.io.lock)."""
    return os.path.join(exp_root(exp), "." + name + ".lock")


def stage_manifest(name: str, stage: str, exp: Optional[str] = None) -> str:
    """What a training stage was trained from, beside its snapshots (noisy_label.manifest)."""
    return os.path.join(snapshot_dir(name, exp), stage + "." + MANIFEST)


# ---- files inside db_dir(name), written by `make lmdb` (noisy_label.datasets) -------------

# Image LMDBs (Datum keyed %08d_<path>) and label LMDBs (one float_data, keyed %08d).
TEST = "test"                            # cifar10 / digits held-out set
CLEAN_TRAIN, CLEAN_VAL, CLEAN_TEST = "clean_train", "clean_val", "clean_test"
NTYPE_TRAIN, NTYPE_VAL, NTYPE_TEST = "ntype_train", "ntype_val", "ntype_test"
MIXED_TRAIN = "mixed_train"              # clean label where kept, else noisy: noisy-as-truth
MIXED_IMAGES = "mixed_train_images"
IMAGE_LMDBS = (TEST, CLEAN_TRAIN, CLEAN_VAL, CLEAN_TEST, NTYPE_TRAIN, NTYPE_VAL, NTYPE_TEST,
               MIXED_TRAIN, MIXED_IMAGES)
MIXED_LABELS = {"clean": "mixed_train_label_clean", "noisy": "mixed_train_label_noisy",
                "ntype": "mixed_train_label_ntype"}
MATRIX_C = "matrix_c"                    # .binaryproto (1x1xNxN) and .txt, indexed [noisy, true]
TRUE_MATRIX_Q = "true_matrix_q"          # the synthetic noise of cifar10 / digits
ESTIMATED_MATRIX_Q = "estimated_matrix_q"  # Q from the pairs C comes from (loss correction)
TRUE_LABELS = "true_labels"              # .txt: the true label of each mixed record (synthetic)
RELABEL = "relabel"                      # make relabel's outputs, a directory in db_dir
CORRECTED_LABELS = "mixed_train_label_corrected"   # in RELABEL: a label LMDB
CORRECTED_TRAIN = "mixed_train_corrected"          # in RELABEL: images, corrected labels
MANIFEST = "manifest.json"               # what each output was built from (re-runs skip it)

def lmdb_path(name: str, db: str, exp: Optional[str] = None) -> str:
    """An LMDB of dataset `name`, e.g. lmdb_path("cifar10", MIXED_IMAGES)."""
    return os.path.join(db_dir(name, exp), db)


def list_file(name: str, db: str, exp: Optional[str] = None) -> str:
    """The list (`path label ...` lines) an LMDB was built from."""
    return os.path.join(db_dir(name, exp), db + ".txt")


def mean_file(name: str, exp: Optional[str] = None) -> str:
    return os.path.join(db_dir(name, exp), "%s_mean.binaryproto" % name)


def matrix_c_file(name: str, exp: Optional[str] = None, ext: str = ".binaryproto") -> str:
    return os.path.join(db_dir(name, exp), MATRIX_C + ext)
