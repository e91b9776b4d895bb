"""`caffe train` on K MPI processes: data-parallel training with mpi4py over stock Caffe.

    mpirun -n 2 python -m noisy_label.train -solver S [-weights W | -snapshot S] [-gpu 0,1]
    python -m noisy_label.train -solver S          # one process: the same as `caffe train`

Every rank builds the same solver with Caffe's solver count and rank set, so each stock
`Data` layer hands rank r the records r, r + K, ... of every batch (all LMDBs of a net
stay in step): the effective batch is K x the prototxt's batch_size, as with
`caffe train -gpu 0,1` on an NCCL build. Rank 0's weights are broadcast before the first
step and the gradients are averaged by one MPI allreduce between backward and update
(the solver's gradients-ready callback). Rank 0 alone logs, tests and snapshots (stock
Caffe's `root_solver` rules); it also logs the loss averaged over the ranks, which is the
loss `caffe train` would show for the whole K x batch.
"""
import argparse
import os
import signal
import sys
import tempfile
import time
import traceback

import numpy as np
from google.protobuf import text_format
from mpi4py import MPI

import caffe
from caffe.proto import caffe_pb2

from noisy_label import models


class TrainError(Exception):
    """A bad flag, solver or net: reported as one line, without a traceback."""


def parse_args(argv=None):
    """The flags of `caffe train`; each also spelled with two dashes."""
    parser = argparse.ArgumentParser(
        prog="python -m noisy_label.train",
        description="Train a Caffe solver on every MPI rank, averaging gradients "
                    "(run under mpirun -n K; one process behaves like `caffe train`).")
    parser.add_argument("-solver", "--solver", required=True,
                        help="the solver definition protocol buffer text file")
    parser.add_argument("-weights", "--weights", default="",
                        help="pretrained weights to initialize finetuning, separated by ','")
    parser.add_argument("-snapshot", "--snapshot", default="",
                        help="the snapshot solver state to resume training")
    parser.add_argument("-gpu", "--gpu", default="",
                        help="GPU ids of one host, one per rank on that host, separated by ',' "
                             "(rank i of a host uses the i-th); 'all': GPU i for local rank i")
    parser.add_argument("-level", "--level", type=int, default=0, help="network level")
    parser.add_argument("-stage", "--stage", default="",
                        help="network stages, separated by ','")
    args = parser.parse_args(argv)
    if args.weights and args.snapshot:
        parser.error("Give a snapshot to resume training or weights to finetune but not both.")
    return args


def device_ids(gpu, solver_param, ranks_on_host):
    """GPU ids for the ranks of one host from the -gpu flag, [] for the CPU.

    As `caffe train`: without -gpu, a solver with `solver_mode: GPU` uses its device_id.
    """
    if not gpu and solver_param.HasField("solver_mode") and \
            solver_param.solver_mode == caffe_pb2.SolverParameter.GPU:
        gpu = str(solver_param.device_id)
    if not gpu:
        return []
    if gpu == "all":
        return list(range(ranks_on_host))
    try:
        ids = [int(token) for token in gpu.split(",")]
    except ValueError:
        raise TrainError("-gpu %s: expected device ids separated by ',' or 'all'" % gpu)
    if len(ids) != ranks_on_host:
        raise TrainError("-gpu %s lists %d device(s) but %d rank(s) run on this host: give one "
                         "GPU per rank of a host, e.g. -gpu %s"
                         % (gpu, len(ids), ranks_on_host,
                            ",".join(str(i) for i in range(ranks_on_host))))
    return ids


def read_solver(path):
    """SolverParameter of a prototxt file; a clear error naming the file and line."""
    try:
        return models.read_prototxt(path, caffe_pb2.SolverParameter())
    except ValueError as e:
        raise TrainError("-solver %s" % e)


def train_net_param(solver_param):
    """(file name or '<solver>', NetParameter) of the train net a solver names."""
    for field in ("train_net_param", "net_param"):
        if solver_param.HasField(field):
            return "<solver %s>" % field, getattr(solver_param, field)
    path = solver_param.train_net or solver_param.net
    try:
        return path, models.read_prototxt(path, caffe_pb2.NetParameter())
    except ValueError as e:
        raise TrainError("net %s" % e)


def check_train_sources(solver_param):
    """Raise TrainError naming the layer when a TRAIN-phase Data layer's source is missing.

    Stock Caffe would LOG(FATAL) on it without naming the database.
    """
    path, net = train_net_param(solver_param)
    for layer in net.layer:
        if layer.type == "Data" and in_train(layer) and not os.path.exists(layer.data_param.source):
            raise TrainError("net %s: layer %r (Data): data_param.source %r does not exist "
                             "(relative to %s)" % (path, layer.name, layer.data_param.source,
                                                  os.getcwd()))


def in_train(layer):
    """Whether a layer's include/exclude rules keep it in the TRAIN phase (stages aside)."""
    def train(rule):
        return not rule.HasField("phase") or rule.phase == caffe_pb2.TRAIN
    if any(rule.HasField("phase") and rule.phase == caffe_pb2.TRAIN for rule in layer.exclude):
        return False
    return not layer.include or any(train(rule) for rule in layer.include)


def make_solver(solver_param):
    """A pycaffe solver of the param's type (pycaffe builds solvers from files only)."""
    with tempfile.NamedTemporaryFile("w", suffix=".solver.prototxt") as f:
        f.write(text_format.MessageToString(solver_param))
        f.flush()
        return caffe.get_solver(f.name)


class GradientAllreduce(object):
    """Solver callback: average the param diffs of all ranks before each update.

    All diffs travel in one flat float32 buffer (plus the iteration's loss, so that rank 0
    can log the loss of the whole K x batch), reduced in place.
    """

    def __init__(self, solver, comm, display=0):
        self.solver, self.comm, self.display = solver, comm, display
        net = solver.net
        # Shared params appear under every layer that uses them: keep each memory once.
        blobs = {}
        for layer_blobs in net.params.values():
            for blob in layer_blobs:
                blobs.setdefault(blob.diff.ctypes.data, blob)
        self.blobs = list(blobs.values())
        self.losses = [(net.blobs[name], weight) for name, weight in net.blob_loss_weights.items()
                       if weight]
        self.buffer = np.zeros(sum(blob.count for blob in self.blobs) + 1, dtype=np.float32)
        self.seconds = 0.0
        self.iterations = 0

    def _gather(self, field):
        offset = 0
        for blob in self.blobs:
            self.buffer[offset:offset + blob.count] = getattr(blob, field).ravel()
            offset += blob.count

    def _scatter(self, field):
        offset = 0
        for blob in self.blobs:
            array = getattr(blob, field)
            array[...] = self.buffer[offset:offset + blob.count].reshape(array.shape)
            offset += blob.count

    def broadcast(self):
        """Give every rank rank 0's weights."""
        self._gather("data")
        self.comm.Bcast(self.buffer, root=0)
        self._scatter("data")

    def on_start(self):
        pass

    def on_gradients_ready(self):
        """diff <- mean over ranks of diff; rank 0 logs the mean loss on display iterations."""
        start = time.time()
        self._gather("diff")
        self.buffer[-1] = sum(weight * blob.data.sum() for blob, weight in self.losses)
        self.comm.Allreduce(MPI.IN_PLACE, self.buffer, op=MPI.SUM)
        self.buffer /= self.comm.size
        self._scatter("diff")
        self.seconds += time.time() - start
        self.iterations += 1
        if self.comm.rank == 0 and self.display and self.solver.iter % self.display == 0:
            caffe.log("Iteration %d, loss averaged over %d ranks = %g"
                      % (self.solver.iter, self.comm.size, self.buffer[-1]))


def train(args, comm=MPI.COMM_WORLD):
    """Set up Caffe for this rank, build and synchronise the solver, and train."""
    rank, size = comm.rank, comm.size
    host = comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks on this machine, for -gpu
    # Rank 0 logs as `caffe train`; the others say only warnings and errors.
    caffe.init_log(0 if rank == 0 else 1, True)
    # glog's failure handler would print a stack dump when mpirun ends a healthy rank; and
    # Python's SIGINT handler would wait for the C++ solver to return. pycaffe exposes no
    # solver action hook, so Ctrl-C ends the job at once (no snapshot, unlike `caffe train`).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    solver_param = read_solver(args.solver)
    gpus = device_ids(args.gpu, solver_param, host.size)
    check_train_sources(solver_param)
    if gpus:
        solver_param.device_id = gpus[host.rank]
        caffe.set_mode_gpu()
        caffe.set_device(solver_param.device_id)
    else:
        caffe.set_mode_cpu()
    caffe.set_solver_count(size)
    caffe.set_solver_rank(rank)
    caffe.set_multiprocess(True)  # else stock PythonLayer refuses TRAIN with solver_count > 1
    solver_param.train_state.level = args.level
    if args.stage:
        solver_param.train_state.stage.extend(args.stage.split(","))
    if rank > 0:
        # Only rank 0 tests (Solver::Step): spare the others the test nets' memory and reads.
        for field in ("test_net", "test_net_param", "test_iter", "test_state"):
            solver_param.ClearField(field)
    if args.snapshot or args.weights:
        del solver_param.weights[:]
        if args.weights:
            solver_param.weights.append(args.weights)
    if rank == 0:
        caffe.log("Use CPU." if not gpus else "Using GPUs %s on each host, one per rank"
                  % ", ".join(str(i) for i in gpus))
        if size > 1:
            caffe.log("Data-parallel training on %d MPI ranks: effective batch = %d x batch_size"
                      % (size, size))

    solver = make_solver(solver_param)
    if args.snapshot:
        # Every rank restores iteration and history itself, as stock Caffe's NCCL workers do.
        if rank == 0:
            caffe.log("Resuming from %s" % args.snapshot)
        solver.restore(args.snapshot)
    sync = None
    if size > 1:
        sync = GradientAllreduce(solver, comm, solver_param.display)
        sync.broadcast()
        solver.add_callback(sync.on_start, sync.on_gradients_ready)

    if rank == 0:
        caffe.log("Starting Optimization")
    start = time.time()
    if rank == 0:
        solver.solve()  # Step, then rank 0's final snapshot and test
    else:
        solver.step(solver_param.max_iter - solver.iter)
    seconds = time.time() - start
    if rank == 0 and sync and sync.iterations:
        # Includes waiting for the slowest rank: the cost of synchronous updates.
        caffe.log("Allreduce of %d floats: %.2f ms per iteration, %.1f%% of %.2f s training"
                  % (sync.buffer.size, 1000 * sync.seconds / sync.iterations,
                     100 * sync.seconds / seconds, seconds))


def main(argv=None):
    args = parse_args(argv)
    comm = MPI.COMM_WORLD
    try:
        train(args, comm)
    except Exception as e:
        where = "rank %d of %d" % (comm.rank, comm.size)
        if isinstance(e, TrainError):
            sys.stderr.write("noisy_label.train (%s): error: %s\n" % (where, e))
        else:
            sys.stderr.write("noisy_label.train (%s) failed:\n%s"
                             % (where, "".join(traceback.format_exc())))
        sys.stderr.flush()
        if comm.size > 1:
            comm.Abort(1)  # the other ranks wait in a collective: end them all now
        sys.exit(1)


if __name__ == "__main__":
    main()
