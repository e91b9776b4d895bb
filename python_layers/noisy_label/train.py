"""`caffe train` on K MPI processes: data-parallel training with mpi4py over stock Caffe.

    mpirun -n 2 python -m noisy_label.train -solver S [-weights W | -snapshot S] [-gpu 0,1]
    python -m noisy_label.train -solver S          # one process: the same as `caffe train`

The prototxt's batch_size is the global batch, as the original release's `mpirun -n K ...
-gpu 0,1,...` used it: each rank reads batch_size / K records of every batch (stock `Data`
and `HDF5Data` layers hand rank r the records r, r + K, ...), so one solver file trains the
same on any number of ranks. `--batch-per-rank` keeps stock Caffe's multi-GPU semantics
instead (every rank takes the whole batch_size: K x the batch).

Rank 0's weights go to every rank before the first step, and the gradients are averaged
before each update (noisy_label.gradient_sync): by NCCL on GPU ranks, by an MPI allreduce
through host memory on CPU ranks or with `--allreduce mpi`. Rank 0 alone logs, tests and
snapshots (stock Caffe's `root_solver` rules); it also logs the loss averaged over the ranks,
the loss of the whole batch.

Ctrl-C ends the job at once, without a snapshot (mpirun gives its ranks a SIGTERM, then a
SIGKILL two seconds later: too short to agree on a last iteration and snapshot). Resume from
the newest snapshot the solver's `snapshot` interval left, with `-snapshot`; one cut short by
the kill is refused, naming the newest complete one.
"""
import argparse
import os
import signal
import sys
import tempfile
import time
import traceback

import caffe
from caffe.proto import caffe_pb2
from google.protobuf import text_format

from noisy_label import gradient_sync
from noisy_label.io import snapshots
from noisy_label.io.prototxt import read_prototxt

# Stock data layers that read every rank's share of a batch (Skip by solver rank / count).
SHARDED_DATA = {"Data": "data_param", "HDF5Data": "hdf5_data_param"}
# Stock data layers that do not: every rank would read the same records.
UNSHARDED_DATA = ("ImageData", "WindowData", "MemoryData")


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
    parser.add_argument("--batch-per-rank", action="store_true",
                        help="every rank takes the prototxt's whole batch_size (stock Caffe's "
                             "multi-GPU semantics: the batch is K x batch_size); default: the "
                             "batch_size is the global batch, batch_size / K per rank")
    parser.add_argument("--allreduce", choices=("auto", "nccl", "mpi"), default="auto",
                        help="how gradients are averaged: nccl (on the GPUs; the default on GPU "
                             "ranks), mpi (through host memory; the default on CPU ranks)")
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
        return read_prototxt(path, caffe_pb2.SolverParameter())
    except ValueError as e:
        raise TrainError("-solver %s" % e)


def train_net_param(solver_param):
    """(file name or '<solver>', NetParameter) of the train net a solver names."""
    for field in ("train_net_param", "net_param"):
        if solver_param.HasField(field):
            return "<solver %s>" % field, getattr(solver_param, field)
    path = solver_param.train_net or solver_param.net
    try:
        return path, read_prototxt(path, caffe_pb2.NetParameter())
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


def shard_batches(net, ranks):
    """A copy of NetParameter `net` whose TRAIN-phase data layers read batch_size / ranks.

    Raises TrainError naming the layer when a batch is not divisible by the ranks, or when a
    TRAIN data layer does not read by rank (its records would repeat on every rank).
    """
    net = caffe_pb2.NetParameter.FromString(net.SerializeToString())
    for layer in net.layer:
        if not in_train(layer):
            continue
        if layer.type in UNSHARDED_DATA:
            raise TrainError("layer %r (%s) reads the same records on every rank, so the batch "
                             "cannot be split across %d ranks: use Data or HDF5Data layers, or "
                             "--batch-per-rank" % (layer.name, layer.type, ranks))
        if layer.type in SHARDED_DATA:
            param = getattr(layer, SHARDED_DATA[layer.type])
            if param.batch_size % ranks:
                raise TrainError("layer %r (%s): batch_size %d is the global batch and %d ranks "
                                 "do not divide it; give a batch_size divisible by %d, or "
                                 "--batch-per-rank" % (layer.name, layer.type, param.batch_size,
                                                       ranks, ranks))
            param.batch_size //= ranks
    return net


def shard_solver(solver_param, ranks):
    """Put the train net, its batches split over `ranks`, inline into the solver; return
    [(layer, global batch, per-rank batch)] for the log."""
    path, net = train_net_param(solver_param)
    sharded = shard_batches(net, ranks)
    if solver_param.HasField("train_net") or solver_param.HasField("train_net_param"):
        solver_param.ClearField("train_net")
        solver_param.train_net_param.CopyFrom(sharded)
    else:  # one net for train and test: TEST-phase layers keep their batch
        solver_param.ClearField("net")
        solver_param.net_param.CopyFrom(sharded)
    return [(before.name, getattr(before, SHARDED_DATA[before.type]).batch_size,
             getattr(after, SHARDED_DATA[after.type]).batch_size)
            for before, after in zip(net.layer, sharded.layer)
            if in_train(before) and before.type in SHARDED_DATA]


def shared_gpus(gpus):
    """The GPU ids that more than one rank of a host uses (-gpu 0,0), sorted."""
    return sorted({i for i in gpus if gpus.count(i) > 1})


def allreduce_mode(requested, gpus, ranks, nccl_built=True):
    """'nccl', 'mpi' or None (one rank, nothing to average) from --allreduce, the ranks, the
    host's GPU ids and whether Caffe has NCCL. auto: NCCL on GPU ranks of a build that has it,
    each rank on its own GPU, else MPI (NCCL aborts on two ranks of one communicator sharing a
    GPU). An explicit nccl on one rank still runs NCCL (a test of it)."""
    if requested == "nccl" and not gpus:
        raise TrainError("--allreduce nccl needs GPU ranks (-gpu ...); CPU ranks use mpi")
    shared = shared_gpus(gpus)
    if requested == "nccl" and shared:
        raise TrainError("--allreduce nccl: ranks share GPU %s (-gpu %s), which NCCL refuses (one "
                         "GPU per rank); use --allreduce mpi to share a GPU"
                         % (",".join(map(str, shared)), ",".join(map(str, gpus))))
    if requested == "auto":
        requested = None if ranks == 1 else "nccl" if gpus and nccl_built and not shared else "mpi"
    return None if requested == "mpi" and ranks == 1 else requested


def make_solver(solver_param):
    """A pycaffe solver of the param's type (pycaffe builds solvers from files only)."""
    with tempfile.NamedTemporaryFile("w", suffix=".solver.prototxt") as f:
        f.write(text_format.MessageToString(solver_param))
        f.flush()
        return caffe.get_solver(f.name)


def check_snapshot(state, prefix):
    """TrainError naming a -snapshot that is missing or cut short (a job killed while rank 0
    snapshotted), and the newest complete snapshot of `prefix` to resume from instead."""
    try:
        snapshots.check_solverstate(state, os.getcwd())
    except ValueError as e:
        newest = snapshots.latest(prefix, base_dir=os.getcwd())
        raise TrainError("-snapshot %s; %s" % (e, "the newest complete snapshot is %s" % newest[1]
                                               if newest else "no complete snapshot of %s_iter_*"
                                               % prefix))


def mpi():
    """mpi4py.MPI, imported on first use (it loads the MPI library); TrainError without one."""
    try:
        return gradient_sync.mpi()
    except gradient_sync.SyncError as e:
        raise TrainError(e)


def train(args, comm=None):
    """Set up Caffe for this rank, build and synchronise the solver, and train."""
    MPI = mpi()
    comm = comm if comm is not None else MPI.COMM_WORLD
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
        # The device first: set_mode_gpu() makes Caffe's cuBLAS handle, which opens a context on
        # the current device (GPU 0 for every rank, were the device set after it).
        caffe.set_device(solver_param.device_id)
        caffe.set_mode_gpu()
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
    mode = allreduce_mode(args.allreduce, gpus, size, gradient_sync.has_nccl())
    shards = [] if size == 1 or args.batch_per_rank else shard_solver(solver_param, size)
    if rank == 0:
        caffe.log("Use CPU." if not gpus else "Using GPUs %s on each host, one per rank"
                  % ", ".join(str(i) for i in gpus))
        if size > 1 and args.batch_per_rank:
            caffe.log("Data-parallel training on %d MPI ranks, --batch-per-rank: every rank "
                      "takes the whole batch_size, the batch is %d x batch_size" % (size, size))
        elif size > 1:
            caffe.log("Data-parallel training on %d MPI ranks: %s" % (size, ", ".join(
                "layer %s batch %d = %d ranks x %d" % (name, whole, size, part)
                for name, whole, part in shards)))

    if args.snapshot:
        check_snapshot(args.snapshot, solver_param.snapshot_prefix)
    solver = make_solver(solver_param)
    if args.snapshot:
        # Every rank restores iteration and history itself, as stock Caffe's NCCL workers do.
        if rank == 0:
            caffe.log("Resuming from %s" % args.snapshot)
        solver.restore(args.snapshot)
    sync = nccl = None
    try:
        if mode == "nccl":
            nccl = gradient_sync.nccl_sync(solver, comm)
            if size > 1:
                sync = gradient_sync.LossAverage(solver, comm, solver_param.display)
        elif mode == "mpi":
            sync = gradient_sync.GradientAllreduce(solver, comm, solver_param.display)
            sync.broadcast()
    except gradient_sync.SyncError as e:
        raise TrainError(e)
    if sync:
        solver.add_callback(sync.on_start, sync.on_gradients_ready)
    if rank == 0 and mode:
        caffe.log("Gradients averaged by %s%s" % (
            "NCCL on the GPUs" if nccl else sync.summary(),
            "" if nccl or not gpus else " (ranks share a GPU: NCCL needs one per rank)"
            if shared_gpus(gpus) else " (this Caffe has no NCCL)"))

    if rank == 0:
        caffe.log("Starting Optimization")
    start = time.time()
    if rank == 0:
        solver.solve()  # Step, then rank 0's final snapshot and test
    else:
        solver.step(solver_param.max_iter - solver.iter)
    seconds = time.time() - start
    if rank == 0 and getattr(sync, "iterations", 0):
        # Includes waiting for the slowest rank: the cost of synchronous updates.
        caffe.log("Allreduce of %d floats: %.2f ms per iteration, %.1f%% of %.2f s training"
                  % (sync.buffer.size, 1000 * sync.seconds / sync.iterations,
                     100 * sync.seconds / seconds, seconds))


def main(argv=None):
    args = parse_args(argv)
    try:
        comm = mpi().COMM_WORLD
    except TrainError as e:
        sys.stderr.write("noisy_label.train: error: %s\n" % e)
        sys.exit(1)
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
