"""Shared fixtures: the real Caffe from the project's build, and small generated data."""
import os
import re
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def caffe_tool(name="caffe"):
    """Path of a stock Caffe tool on the venv's PATH (the launcher written by setup_venv.sh)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail("%s is not on PATH; run the tests through `make test`" % name)
    return path


def run_caffe(args, cwd=REPO, env=None, check=True):
    """Run the `caffe` command; return the CompletedProcess with its log in .stdout."""
    proc = subprocess.run([caffe_tool()] + list(args), cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and proc.returncode != 0:
        raise AssertionError("caffe %s failed (%d):\n%s" % (" ".join(args), proc.returncode,
                                                           proc.stdout[-4000:]))
    return proc


def train_losses(log):
    """The `Iteration N ..., loss = X` values of a Caffe training log, in order."""
    return [float(x) for x in re.findall(r"Iteration \d+ .*?, loss = ([-0-9.e+na]+)", log)]


@pytest.fixture(scope="session")
def digits_lmdbs(tmp_path_factory):
    """train/test LMDBs of scikit-learn's digits, written once per session."""
    from noisy_label import smoke
    return smoke.write_digits_lmdbs(str(tmp_path_factory.mktemp("digits_lmdb")))
