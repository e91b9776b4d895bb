"""Stock BVLC Caffe from the project's build: pycaffe, the caffe CLI and Python layers."""
import os
import subprocess

import numpy as np
import pytest
import smoke
from helpers import REPO, caffe_tool, run_caffe, train_losses

pytestmark = pytest.mark.caffe


def write_net(tmp_path, digits_lmdbs, **kwargs):
    for name, path in digits_lmdbs.items():
        os.symlink(path, str(tmp_path / name))
    return smoke.write_smoke_net(str(tmp_path), **kwargs)


def test_pycaffe_comes_from_the_project_build():
    import caffe
    prefix = open(os.path.join(REPO, ".venv", "caffe-prefix")).read().strip()
    assert os.path.realpath(caffe.__file__).startswith(os.path.realpath(prefix))
    assert hasattr(caffe, "Layer") and hasattr(caffe, "SGDSolver")
    for tool in ("caffe", "convert_imageset", "compute_image_mean"):
        assert caffe_tool(tool).startswith(os.path.join(REPO, ".venv", "bin"))


def test_caffe_train_cli_runs_a_python_layer(tmp_path, digits_lmdbs):
    solver = write_net(tmp_path, digits_lmdbs, iters=200)
    log = run_caffe(["train", "-solver", solver]).stdout
    losses = train_losses(log)
    assert len(losses) >= 5, log[-2000:]
    assert losses[-1] < 0.5 * losses[0], losses
    assert "Optimization Done" in log


def test_caffe_cli_loads_layers_from_the_users_pythonpath(tmp_path, digits_lmdbs):
    user_dir = tmp_path / "mine"
    user_dir.mkdir()
    (user_dir / "my_layers.py").write_text(
        "from example_layers import Scale  # the user's own module\n")
    solver = write_net(tmp_path, digits_lmdbs, iters=20, module="my_layers")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(user_dir), os.environ["PYTHONPATH"])))
    log = run_caffe(["train", "-solver", solver], env=env).stdout
    assert "Optimization Done" in log


def test_sgdsolver_trains_the_python_layer_parameter(tmp_path, digits_lmdbs):
    import caffe
    caffe.set_mode_cpu()
    solver = caffe.SGDSolver(write_net(tmp_path, digits_lmdbs, iters=200))
    assert np.all(solver.net.params["scale1"][0].data == 1.0)
    solver.step(1)
    first = float(solver.net.blobs["loss"].data)
    solver.step(150)
    assert float(solver.net.blobs["loss"].data) < 0.5 * first
    assert not np.allclose(solver.net.params["scale1"][0].data, 1.0)


def test_snapshot_restores_the_python_layer_blob(tmp_path, digits_lmdbs):
    import caffe
    caffe.set_mode_cpu()
    solver_file = write_net(tmp_path, digits_lmdbs, iters=200)
    solver = caffe.SGDSolver(solver_file)
    solver.step(60)
    solver.snapshot()
    saved = solver.net.params["scale1"][0].data.copy()
    solver.step(20)
    assert not np.allclose(solver.net.params["scale1"][0].data, saved)
    prefix = str(tmp_path / "smoke_iter_60")

    resumed = caffe.SGDSolver(solver_file)
    resumed.restore(prefix + ".solverstate")
    assert resumed.iter == 60
    np.testing.assert_array_equal(resumed.net.params["scale1"][0].data, saved)

    net = caffe.Net(str(tmp_path / "net.prototxt"), prefix + ".caffemodel", caffe.TEST)
    np.testing.assert_array_equal(net.params["scale1"][0].data, saved)

    # The CLI resumes from the same solverstate and carries on to max_iter.
    log = run_caffe(["train", "-solver", solver_file, "-snapshot", prefix + ".solverstate"]).stdout
    assert "Resuming from" in log and "Optimization Done" in log


def build_caffe(env_extra, *args):
    env = dict(os.environ, **env_extra)
    return subprocess.run(["bash", os.path.join(REPO, "scripts", "build_caffe.sh")] + list(args),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_build_caffe_names_a_bad_caffe_src(tmp_path):
    proc = build_caffe({"CAFFE_SRC": str(tmp_path / "nowhere"), "CAFFE_CACHE": str(tmp_path)})
    assert proc.returncode != 0
    assert "CAFFE_SRC=%s is not a directory" % (tmp_path / "nowhere") in proc.stderr
    proc = build_caffe({"CAFFE_SRC": str(tmp_path), "CAFFE_CACHE": str(tmp_path)})
    assert proc.returncode != 0
    assert "does not look like a BVLC Caffe checkout" in proc.stderr


def test_a_failed_build_leaves_no_cache_entry(tmp_path):
    src, cache = tmp_path / "caffe", tmp_path / "cache"
    (src / "src" / "caffe").mkdir(parents=True)
    # Our patches apply to src/caffe/util/io.cpp: give them the line they change.
    (src / "src" / "caffe" / "util").mkdir()
    io_cpp = os.path.join(REPO, "patches", "caffe", "protobuf-settotalbyteslimit.patch")
    original = [line[1:] for line in open(io_cpp).read().splitlines()[4:]
                if line[:1] in (" ", "-")]
    (src / "src" / "caffe" / "util" / "io.cpp").write_text(
        "\n" * 49 + "\n".join(original) + "\n")
    (src / "CMakeLists.txt").write_text('cmake_minimum_required(VERSION 3.5)\nproject(x)\n'
                                        'message(FATAL_ERROR "this checkout is broken")\n')
    env = {"CAFFE_SRC": str(src), "CAFFE_CACHE": str(cache)}
    for attempt in range(2):   # a re-run after a failure fails the same way, and cleanly
        proc = build_caffe(env)
        assert proc.returncode != 0
        assert "this checkout is broken" in proc.stderr and "cmake configure failed" in proc.stderr
        # No build entry: only the failed step's whole log, kept for whoever reads it.
        assert os.listdir(str(cache)) == ["logs"], os.listdir(str(cache))
        assert "full log: %s/logs/" % cache in proc.stderr
        assert "this checkout is broken" in "".join(
            open(os.path.join(str(cache), "logs", f)).read() for f in os.listdir(str(cache / "logs")))
    assert build_caffe(env, "--prefix").returncode == 1
