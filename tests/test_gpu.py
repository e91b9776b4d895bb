"""GPU mode, with the project's CUDA build of stock Caffe: the noisy-label layers equal CPU mode
inside a two-tower net with cuDNN convolutions, the digits pipeline and the Clothing1M nets
train with `-gpu 0`, snapshots keep C, and the MPI trainer's ranks on GPUs (host-staged MPI
and NCCL) end with the weights of one rank.

Every test here skips, saying why, where there is no GPU or the Caffe build is CPU_ONLY. GPU
work runs in child processes (the Caffe tools, mpirun, or a Python child for pycaffe), so that a
Caffe CHECK abort fails its test instead of ending the pytest run. NVIDIA_TF32_OVERRIDE=0 is set
by conftest.py, before caffe is first imported.
"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, run_caffe

from noisy_label import gradient_sync
from noisy_label.core import noisy_loss
from noisy_label.datasets import random_db
from noisy_label.experiments import caffe_log, pipeline, stages
from noisy_label.io import blob_io


def gpu_skip_reason():
    """Why GPU tests cannot run here, or None."""
    import shutil
    if shutil.which("nvidia-smi") is None:
        return "no GPU: nvidia-smi is not on PATH"
    if subprocess.run(["nvidia-smi", "-L"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        return "no GPU: nvidia-smi -L lists none"
    if not pipeline.gpu_available():
        return "the project's Caffe build is CPU_ONLY (build it with make caffe CUDA=1)"
    return None


REASON = gpu_skip_reason()
pytestmark = [pytest.mark.caffe, pytest.mark.gpu,
              pytest.mark.skipif(REASON is not None, reason=str(REASON))]

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           NVIDIA_TF32_OVERRIDE="0")

NUM, NUM_CLASSES, SIZE = 16, 14, 24
TWO_TOWERS = """name: "gpu_two_towers"
layer {{ name: "input" type: "Input" top: "data" top: "label_noisy"
  input_param {{ shape {{ dim: {num} dim: 3 dim: {size} dim: {size} }} shape {{ dim: {num} }} }} }}
layer {{ name: "conv_clean" type: "Convolution" bottom: "data" top: "conv_clean"
  convolution_param {{ num_output: 8 kernel_size: 5 stride: 2 engine: CUDNN
    weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "relu_clean" type: "ReLU" bottom: "conv_clean" top: "conv_clean" }}
layer {{ name: "ip_clean" type: "InnerProduct" bottom: "conv_clean" top: "ip_clean"
  inner_product_param {{ num_output: {classes} weight_filler {{ type: "gaussian" std: 0.05 }} }} }}
layer {{ name: "conv_ntype" type: "Convolution" bottom: "data" top: "conv_ntype"
  convolution_param {{ num_output: 8 kernel_size: 5 stride: 2 engine: CUDNN
    weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "relu_ntype" type: "ReLU" bottom: "conv_ntype" top: "conv_ntype" }}
layer {{ name: "ip_ntype" type: "InnerProduct" bottom: "conv_ntype" top: "ip_ntype"
  inner_product_param {{ num_output: 3 weight_filler {{ type: "gaussian" std: 0.05 }} }} }}
layer {{ name: "loss_noisy" type: "Python" bottom: "ip_clean" bottom: "ip_ntype" bottom: "label_noisy"
  top: "loss_noisy" top: "prob_y" top: "prob_z" top: "posterior"
  loss_weight: 1 loss_weight: 0 loss_weight: 0 loss_weight: 0 param {{ lr_mult: 0 decay_mult: 0 }}
  python_param {{ module: "noisy_label.layers" layer: "SoftmaxWithNoisyLabelLoss"
    param_str: '{{"matrix_c": "{matrix_c}", "update_noise_lr": 0.1}}' }} }}
layer {{ name: "relabel" type: "Python" bottom: "ip_clean" bottom: "ip_ntype" bottom: "label_noisy"
  top: "q" top: "p_y_given_noisy"
  python_param {{ module: "noisy_label.layers" layer: "NoisyLabelPosterior"
    param_str: '{{"matrix_c": "{matrix_c}"}}' }} }}
"""
TOPS = ("loss_noisy", "prob_y", "prob_z", "posterior", "q", "p_y_given_noisy")


def relative_error(actual, expected):
    return np.linalg.norm(np.float64(actual) - expected) / max(np.linalg.norm(expected), 1e-30)


@pytest.fixture(scope="module")
def two_towers(tmp_path_factory):
    """(net file, weights file, inputs) of the two-tower cuDNN net with a random C."""
    import caffe
    out = tmp_path_factory.mktemp("gpu_two_towers")
    rng = np.random.RandomState(0)
    matrix_c = rng.rand(NUM_CLASSES, NUM_CLASSES)
    np.fill_diagonal(matrix_c, 0)
    matrix_c /= matrix_c.sum(axis=0)
    blob_io.write_blobproto(str(out / "matrix_c.binaryproto"), matrix_c[None, None])
    net_file = str(out / "net.prototxt")
    with open(net_file, "w") as f:
        f.write(TWO_TOWERS.format(num=NUM, size=SIZE, classes=NUM_CLASSES,
                                  matrix_c=str(out / "matrix_c.binaryproto")))
    caffe.set_mode_cpu()
    weights = str(out / "weights.caffemodel")
    caffe.Net(net_file, caffe.TRAIN).save(weights)
    labels = rng.randint(-1, NUM_CLASSES, size=NUM).astype(np.float32)
    return net_file, weights, {"data": rng.randn(NUM, 3, SIZE, SIZE).astype(np.float32),
                               "label_noisy": labels}


def forward_backward(net_file, weights, inputs, gpu):
    """{top or logits diff: array} of one forward + backward in CPU or GPU mode."""
    import caffe
    if gpu:
        caffe.set_device(0)
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()
    net = caffe.Net(net_file, caffe.TRAIN, weights=weights)
    for name, value in inputs.items():
        net.blobs[name].data[...] = value
    net.forward()
    net.backward()
    out = {name: net.blobs[name].data.copy() for name in TOPS}
    out.update({name + " diff": net.blobs[name].diff.copy() for name in ("ip_clean", "ip_ntype")})
    out["logits"] = (net.blobs["ip_clean"].data.copy(), net.blobs["ip_ntype"].data.copy())
    caffe.set_mode_cpu()
    return out


CHILD = """import sys, numpy as np
sys.path.insert(0, {tests!r})
from test_gpu import forward_backward
inputs = dict(np.load({inputs!r}))
out = forward_backward({net!r}, {weights!r}, inputs, gpu=True)
clean, ntype = out.pop("logits")
np.savez({out!r}, logits_clean=clean, logits_ntype=ntype, **out)
"""


def gpu_forward_backward(net_file, weights, inputs, tmp_path):
    """forward_backward(..., gpu=True) in a child Python: a CHECK abort fails this test alone."""
    np.savez(str(tmp_path / "inputs.npz"), **inputs)
    code = CHILD.format(tests=os.path.dirname(os.path.abspath(__file__)), net=net_file,
                        weights=weights, inputs=str(tmp_path / "inputs.npz"),
                        out=str(tmp_path / "gpu.npz"))
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=ENV)
    assert proc.returncode == 0, "GPU forward/backward failed (%d):\n%s" % (
        proc.returncode, proc.stdout[-4000:])
    out = dict(np.load(str(tmp_path / "gpu.npz")))
    out["logits"] = (out.pop("logits_clean"), out.pop("logits_ntype"))
    return out


def test_layers_in_gpu_mode_equal_cpu_mode_in_a_cudnn_two_tower_net(two_towers, tmp_path):
    cpu = forward_backward(*two_towers, gpu=False)
    gpu = gpu_forward_backward(*two_towers, tmp_path)
    for name in TOPS + ("ip_clean diff", "ip_ntype diff"):
        assert relative_error(gpu[name], cpu[name]) <= 1e-5, name
    # And the layer itself on the GPU net's own logits: the math of noisy_loss exactly.
    labels = two_towers[2]["label_noisy"].astype(np.int64)
    matrix_c = blob_io.read_blobproto(os.path.join(os.path.dirname(two_towers[0]),
                                                   "matrix_c.binaryproto"))[0, 0]
    loss, prob_y, prob_z, q = noisy_loss.forward(*gpu["logits"], labels, matrix_c)
    assert relative_error(gpu["loss_noisy"], [loss]) <= 1e-6
    assert relative_error(gpu["posterior"].reshape(q.shape), q) <= 1e-6
    d_clean, d_ntype = noisy_loss.gradients(prob_y, prob_z, q, 1.0, 0.1)
    assert relative_error(gpu["ip_clean diff"], d_clean) <= 1e-6
    assert relative_error(gpu["ip_ntype diff"], d_ntype) <= 1e-6


def test_make_train_digits_uses_the_gpu_by_itself(tmp_path):
    exp = str(tmp_path / "exp")
    for target in ("lmdb", "train"):
        proc = subprocess.run(["make", "-s", target, "DATASET=digits", "EXP=" + exp], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
        assert proc.returncode == 0, proc.stdout[-4000:]
    logs = os.path.join(exp, "logs", "digits")
    for stage in ("clean", "noisy_gt_ft_clean", "ntype", "noisy_label_loss"):
        log = open(os.path.join(logs, stage + ".log")).read()
        assert log.startswith("# caffe train ") and " -gpu 0" in log.splitlines()[0], stage
        assert "Use GPU with device ID 0" in log, stage
    assert caffe_log.final_test(open(os.path.join(logs, "test.log")).read()) > 0.8


def test_clothing1m_nets_build_and_step_on_the_gpu(tmp_path):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    random_db.write("clothing1M", str(tmp_path / "exp"), num=4)
    for stage in stages.stage_nets("clothing1M"):
        path = os.path.join(REPO, "prototxt", "clothing1M", stages.solver_file_name("clothing1M", stage))
        solver = text_format.Merge(open(path).read(), caffe_pb2.SolverParameter())
        solver.net = os.path.join(REPO, solver.net)
        solver.max_iter, solver.display, solver.test_interval = 2, 1, 1000
        solver.test_initialization, solver.snapshot_after_train = False, False
        solver.ClearField("snapshot")
        copy = str(tmp_path / ("%s_solver.prototxt" % stage))
        with open(copy, "w") as f:
            f.write(text_format.MessageToString(solver))
        log = run_caffe(["train", "-solver", copy, "-gpu", "0"], cwd=str(tmp_path), env=ENV).stdout
        assert "Use GPU with device ID 0" in log and "Optimization Done" in log, stage
        assert re.search(r"Iteration 1 .*loss = [0-9.]+", log), stage


def test_snapshot_and_resume_on_the_gpu_keep_c(tmp_path):
    from test_layers import noisy_dataset, write_two_towers
    rng = np.random.RandomState(4)
    _, _, _, matrix_c = noisy_dataset(rng)
    solver, _, c_file = write_two_towers(tmp_path, matrix_c, max_iter=20)
    with open(solver, "a") as f:
        f.write("snapshot: 10\n")
    run_caffe(["train", "-solver", solver, "-gpu", "0"], env=ENV)
    # Setup reads the file again on resume; the solverstate's C must replace what it says.
    other = np.roll(matrix_c, 1, axis=0)
    blob_io.write_blobproto(c_file, other[None, None])
    run_caffe(["train", "-solver", solver, "-gpu", "0",
               "-snapshot", str(tmp_path / "snap_iter_10.solverstate")], env=ENV)
    from caffe.proto import caffe_pb2
    for name in ("snap_iter_10.caffemodel", "snap_iter_20.caffemodel"):
        net = caffe_pb2.NetParameter.FromString(open(str(tmp_path / name), "rb").read())
        blob = [layer for layer in net.layer if layer.name == "loss_noisy"][0].blobs[0]
        np.testing.assert_array_equal(np.array(blob.data, np.float32).reshape(matrix_c.shape),
                                      matrix_c.astype(np.float32))


# ---- the MPI trainer on GPUs ---------------------------------------------------------------

def gpu_count():
    out = subprocess.run(["nvidia-smi", "-L"], stdout=subprocess.PIPE, text=True).stdout
    return len([line for line in out.splitlines() if line.startswith("GPU")])


@pytest.fixture(scope="module")
def stock_gpu_run(tmp_path_factory, noisy_digits):
    """`caffe train -gpu 0` on the MPI tests' noisy-digits solver: (out dir, solver args)."""
    from test_mpi_train import BATCH
    out = tmp_path_factory.mktemp("gpu_mpi")
    args = (out, noisy_digits, BATCH)
    run_caffe(["train", "-solver", gpu_solver(*args, name="stock"), "-gpu", "0"], env=ENV)
    return args


@pytest.fixture(scope="module")
def noisy_digits(tmp_path_factory, digits_lmdbs):
    from test_mpi_train import write_noisy_digits
    return write_noisy_digits(tmp_path_factory.mktemp("gpu_noisy_digits"), digits_lmdbs)


def gpu_solver(out, files, batch, name):
    from test_mpi_train import write_solver
    return write_solver(out, files, batch, name)


def same_weights_as_stock(out, name):
    from test_mpi_train import assert_same_weights, caffemodel
    for iteration in (12, 24):
        assert_same_weights(caffemodel(str(out / ("%s_iter_%d.caffemodel" % (name, iteration)))),
                            caffemodel(str(out / ("stock_iter_%d.caffemodel" % iteration))))


def compute_mode(gpu=0):
    """nvidia-smi's compute mode of a GPU: Default, Exclusive_Process or Prohibited."""
    return subprocess.run(["nvidia-smi", "-i", str(gpu), "--query-gpu=compute_mode",
                           "--format=csv,noheader"], stdout=subprocess.PIPE,
                          text=True).stdout.strip()


def test_two_ranks_sharing_gpu_0_equal_one_rank(stock_gpu_run):
    from test_mpi_train import run_train
    mode = compute_mode(0)
    if mode in ("Exclusive_Process", "Prohibited"):
        pytest.skip("GPU 0 is in compute mode %s: two processes cannot share it" % mode)
    out, files, batch = stock_gpu_run
    solver = gpu_solver(out, files, batch, "two_mpi")
    proc, _ = run_train(2, ["-solver", solver, "-gpu", "0,0", "--allreduce", "mpi"], env=ENV)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Gradients averaged by MPI allreduce" in proc.stdout
    same_weights_as_stock(out, "two_mpi")


def test_nccl_on_one_rank_equals_caffe_train(stock_gpu_run):
    """The NCCL path end to end (unique id from rank 0, broadcast, layer-wise allreduce) on the
    one GPU a single-GPU machine has; NCCL across GPUs needs the test below."""
    from test_mpi_train import run_train
    assert gradient_sync.has_nccl(), "a CUDA build of this project has NCCL (USE_NCCL=ON)"
    out, files, batch = stock_gpu_run
    solver = gpu_solver(out, files, batch, "one_nccl")
    proc, _ = run_train(None, ["-solver", solver, "-gpu", "0", "--allreduce", "nccl"], env=ENV)
    assert proc.returncode == 0, proc.stdout[-4000:]
    same_weights_as_stock(out, "one_nccl")


@pytest.mark.skipif(REASON is None and gpu_count() < 2,
                    reason="NCCL across ranks needs one GPU per rank: this machine has one GPU")
def test_two_ranks_with_nccl_equal_one_rank(stock_gpu_run):
    from test_mpi_train import run_train
    out, files, batch = stock_gpu_run
    solver = gpu_solver(out, files, batch, "two_nccl")
    proc, _ = run_train(2, ["-solver", solver, "-gpu", "0,1"], env=ENV)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Gradients averaged by NCCL on the GPUs" in proc.stdout
    same_weights_as_stock(out, "two_nccl")


def test_nccl_unique_id_is_whole(tmp_path):
    """The 128-byte ncclUniqueId survives pycaffe (BVLC 99bd997 cut it at its first NUL byte)."""
    script = ("import caffe; from noisy_label import gradient_sync as g; "
              "from mpi4py import MPI; print(len(g.nccl_unique_id(MPI.COMM_WORLD)))")
    proc = subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=ENV)
    assert proc.stdout.strip().endswith("128"), proc.stdout[-2000:]
