"""The one place that names the datasets and where their files live.

Everything is relative to the experiment root `EXP` (default `exp/` in the
repository, as the prototxts expect when Caffe runs from the repository root):

    $EXP/datasets/<name>/   raw downloads / the Clothing1M tree
    $EXP/db/<name>/         LMDBs, mean files, matrix C
    $EXP/snapshots/<name>/  .caffemodel / .solverstate
    $EXP/logs/<name>/       Caffe logs, CSVs, reports
"""
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATASETS = ("digits", "cifar10", "clothing1M")
DEFAULT_EXP = "exp"


def exp_root(exp=None):
    """The experiment root: `exp`, else $EXP, else `exp/` in the repository."""
    exp = exp or os.environ.get("EXP") or os.path.join(REPO_ROOT, DEFAULT_EXP)
    return os.path.abspath(exp)


def check_dataset(name):
    """Return `name` if it is a known dataset, else raise ValueError listing them."""
    if name not in DATASETS:
        raise ValueError("unknown dataset %r; expected one of: %s" % (name, ", ".join(DATASETS)))
    return name


def data_root(name, exp=None):
    return os.path.join(exp_root(exp), "datasets", check_dataset(name))


def db_dir(name, exp=None):
    return os.path.join(exp_root(exp), "db", check_dataset(name))


def snapshot_dir(name, exp=None):
    return os.path.join(exp_root(exp), "snapshots", check_dataset(name))


def log_dir(name, exp=None):
    return os.path.join(exp_root(exp), "logs", check_dataset(name))
