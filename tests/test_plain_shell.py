"""The README's commands as a user types them: from a plain shell (no activated venv:
.venv/bin off PATH, no VIRTUAL_ENV, no PYTHONPATH) and, where allowed, another directory.
The rest of the suite runs inside `make test`'s activated venv, which hid a broken
`make train` once."""
import os
import shutil

import pytest
from helpers import PYTHON, REPO, VENV_BIN, plain_env, run_plain

from noisy_label import paths
from noisy_label.experiments import pipeline

pytestmark = [pytest.mark.caffe, pytest.mark.mpi, pytest.mark.slow]

# Every stage of the digits workflow, short: the commands are under test, not the model.
SET = "max_iter=30 snapshot=10 test_interval=10"
MPI_ENV = dict(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OPENBLAS_NUM_THREADS="1")


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """make lmdb + make train DATASET=digits from a plain shell in another directory."""
    home = str(tmp_path_factory.mktemp("home"))
    exp = os.path.join(home, "exp")
    assert "caffe" not in (shutil.which("caffe", path=plain_env()["PATH"]) or "")
    ok(run_plain(["make", "-s", "-C", REPO, "lmdb", "DATASET=digits", "EXP=" + exp], cwd=home))
    out = ok(run_plain(["make", "-s", "-C", REPO, "train", "DATASET=digits", "EXP=" + exp,
                        "SET=" + SET], cwd=home))
    return home, exp, out


def test_plain_env_has_no_venv():
    env = plain_env()
    assert "VIRTUAL_ENV" not in env and "PYTHONPATH" not in env
    assert VENV_BIN not in env["PATH"].split(os.pathsep)


def test_make_lmdb_and_make_train(trained):
    home, exp, out = trained
    assert "[digits] test accuracy: " in out
    for stage in ("clean", "noisy_gt_ft_clean", "ntype", "noisy_label_loss", "relabel_ft_clean"):
        assert os.path.exists(os.path.join(paths.snapshot_dir("digits", exp),
                                           "%s_iter_30.caffemodel" % stage)), stage


def test_the_dataset_script_from_another_directory(trained):
    home, exp, _ = trained
    out = ok(run_plain([os.path.join(REPO, "scripts", "digits", "train.sh"), "--exp", exp,
                        "--set", SET], cwd=home))
    assert out.count(": done (") == 7 and "[digits] test accuracy: " in out


def test_tools_with_the_venv_python_from_another_directory(trained, tmp_path):
    home, exp, _ = trained
    ok(run_plain([PYTHON, os.path.join(REPO, "tools", "inspect_lmdb.py"),
                  paths.lmdb_path("digits", paths.TEST, exp)], cwd=home))
    ok(run_plain([PYTHON, os.path.join(REPO, "tools", "parse_log.py"),
                  os.path.join(paths.log_dir("digits", exp), "clean.log"),
                  "--out-dir", str(tmp_path)], cwd=home))
    assert (tmp_path / "clean.train.csv").exists()
    out = ok(run_plain([PYTHON, os.path.join(REPO, "tools", "report.py"), "digits", "--exp", exp],
                       cwd=home))
    assert "| ours |" in out


def test_the_caffe_launcher_runs_python_layers(trained):
    """.venv/bin/caffe finds noisy_label.layers and pycaffe without an activated venv."""
    home, exp, _ = trained
    experiment = pipeline.Experiment("digits", exp, settings=SET)
    net = experiment.solver("noisy_label_loss").net
    out = ok(run_plain([os.path.join(VENV_BIN, "caffe"), "time", "-model", net, "-iterations",
                        "2"], cwd=REPO, GLOG_minloglevel="0"))
    assert "Average Forward-Backward" in out


def test_mpirun_with_the_venv_python(trained):
    home, exp, _ = trained
    experiment = pipeline.Experiment("digits", exp, settings=SET)
    out = ok(run_plain([shutil.which("mpirun"), "--oversubscribe", "-n", "2", PYTHON, "-m",
                        "noisy_label.train", "-solver", experiment.solver_file("ntype"),
                        "-weights", experiment.final("clean")], cwd=REPO, **MPI_ENV))
    assert "Data-parallel training on 2 MPI ranks" in out


def test_benchmarks_with_the_venv_python(tmp_path):
    out = ok(run_plain([PYTHON, os.path.join(REPO, "bench", "bench_lmdb.py"), "--images", "20",
                        "--size", "32", "--repeat", "1"], cwd=str(tmp_path)))
    assert "convert_imageset" in out
    out = ok(run_plain([PYTHON, os.path.join(REPO, "bench", "bench_robust_losses.py"), "--iters",
                        "2"], cwd=str(tmp_path)))
    assert "backward correction" in out and "ratio" in out and "machine: " in out
