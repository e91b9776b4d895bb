"""Images/s of `noisy_label.train` on K = 1 and 2 ranks beside stock `caffe train`.

    python bench/bench_mpi.py [--iters 40] [--batch 100] [--repeat 2] [--gpu] [--allreduce nccl]

Also the share of training time spent in the gradient allreduce, and the allreduce alone.

The net is the CIFAR-10 noisy-label joint net of `noisy_label.models` (two CIFAR-quick
towers, the Python noisy-label loss, four Data layers in step) over synthetic 3x32x32
LMDBs. Each rank reads `--batch` images per iteration (`--batch-per-rank`: the batch is
K x batch, so the runs compare throughput at a fixed per-rank batch). Speed comes from Caffe's
own `Iteration N (X iter/s ...)` lines after the first display interval. On the CPU every rank
gets one BLAS thread; with `--gpu` rank i uses GPU i (modulo the GPUs present; needs a CUDA
build of Caffe), and gradients go through NCCL when there is one GPU per rank (MPI through
host memory otherwise: NCCL refuses two ranks on one GPU).
"""
import argparse
import copy
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile

import machine
import numpy as np
from google.protobuf import text_format
from tqdm import tqdm

from noisy_label import datasets, paths
from noisy_label.datasets import random_db
from noisy_label.experiments import nets

# One BLAS thread per rank; OpenMPI refuses root without the two ALLOW variables.
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
           OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
DATASET = "cifar10"


def joint_net(exp, batch):
    """The CIFAR-10 joint net of `noisy_label.experiments.nets`, `batch` per rank, files under exp."""
    ds = copy.copy(datasets.get_dataset(DATASET))
    ds.train_batch = batch
    return ds, nets.noisy_label_loss_net(ds, nets.Files(DATASET, exp))


def write_solver(exp, ds, net, iters, display):
    """The net and a solver without tests or snapshots; return the solver's path."""
    net_file = os.path.join(exp, "bench_net.prototxt")
    with open(net_file, "w") as f:
        f.write(text_format.MessageToString(net))
    solver = nets.solver(ds, nets.Files(DATASET, exp), "noisy_label_loss", net_file, ds.val_lmdb,
                         "bench")
    solver.max_iter, solver.display, solver.average_loss = iters, display, 1
    solver.snapshot, solver.snapshot_after_train = 0, False
    for field in ("test_iter", "test_interval"):
        solver.ClearField(field)
    path = os.path.join(exp, "bench_solver.prototxt")
    with open(path, "w") as f:
        f.write(text_format.MessageToString(solver))
    return path


def run(command):
    """(log, CPU seconds of the command and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if proc.returncode != 0:
        sys.exit("%s failed:\n%s" % (" ".join(command), proc.stdout[-4000:]))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc.stdout, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def iterations_per_second(log):
    """Mean of Caffe's `(X iter/s` figures, leaving out iteration 0 and the first interval."""
    rates = [float(x) for x in re.findall(r"Iteration \d+ \(([0-9.e+-]+) iter/s", log)][2:]
    if not rates:
        sys.exit("too few display lines to time; raise --iters:\n" + log[-2000:])
    return float(np.mean(rates))


def allreduce_share(log):
    """(floats, ms per iteration, percent of training) from noisy_label.train's summary."""
    found = re.search(r"Allreduce of (\d+) floats: ([0-9.]+) ms per iteration, ([0-9.]+)%", log)
    return (int(found.group(1)), float(found.group(2)), float(found.group(3))) if found else None


ALLREDUCE_ALONE = """
import sys, time
import numpy as np
from mpi4py import MPI
comm, buf = MPI.COMM_WORLD, np.ones(int(sys.argv[1]), np.float32)
for i in range(60):
    if i == 10:
        comm.Barrier(); start = time.time()
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
if comm.rank == 0:
    print("%.3f" % (1000 * (time.time() - start) / 50))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--iters", type=int, default=40, help="iterations per run (default 40)")
    parser.add_argument("--batch", type=int, default=100, help="images per rank (default 100)")
    parser.add_argument("--display", type=int, default=10, help="iterations per timing interval")
    parser.add_argument("--gpu", action="store_true", help="train on GPUs (rank i on GPU i)")
    parser.add_argument("--allreduce", choices=("auto", "nccl", "mpi"), default="auto",
                        help="noisy_label.train's --allreduce for the 2-rank run (default: NCCL "
                             "with one GPU per rank, else MPI)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="rounds of all runs; the best of each is kept (default 2)")
    parser.add_argument("--num", type=int, default=2000, help="synthetic images (default 2000)")
    args = parser.parse_args()

    exp = tempfile.mkdtemp(prefix="bench_mpi.")
    try:
        ds, net = joint_net(exp, args.batch)
        random_db.write(DATASET, exp, args.num, progress=True)
        solver = write_solver(exp, ds, net, args.iters, args.display)
        num_gpus = len(machine.gpu_names()) if args.gpu else 0

        def gpu_flag(ranks):
            return ["-gpu", ",".join(str(i % num_gpus) for i in range(ranks))] if args.gpu else []

        train = [sys.executable, "-m", "noisy_label.train", "-solver", solver]
        mpirun = [shutil.which("mpirun") or "mpirun", "--oversubscribe", "-n"]
        allreduce = args.allreduce
        if allreduce == "auto":
            allreduce = "nccl" if num_gpus >= 2 else "mpi"
        two = train + ["--batch-per-rank", "--allreduce", allreduce] + gpu_flag(2)
        runs = [("caffe train (stock)", 1, [paths.caffe_tool(), "train", "-solver", solver] + gpu_flag(1)),
                ("noisy_label.train", 1, train + gpu_flag(1)),
                ("mpirun -n 2 noisy_label.train (%s)" % allreduce, 2, mpirun + ["2"] + two)]
        best = {}
        for _ in tqdm(range(args.repeat), desc="rounds", leave=False):
            for name, ranks, command in runs:  # interleaved: load from elsewhere hits all alike
                log, cpu = run(command)
                images = iterations_per_second(log) * args.batch * ranks
                if images > best.get(name, (0,))[0]:
                    # CPU time per image (whole run) is what load from elsewhere leaves alone.
                    cpu_ms = 1000 * cpu / (args.iters * args.batch * ranks)
                    best[name] = (images, cpu_ms, allreduce_share(log))
        print("machine: %s (load average %.1f at the end)"
              % (machine.describe(args.gpu), os.getloadavg()[0]))
        device = "GPU" if args.gpu else "CPU, OPENBLAS_NUM_THREADS=1 per rank"
        print("net: CIFAR-10 noisy-label joint net, %d x 3x32x32 per rank and iteration, "
              "%d iterations, %s; best of %d" % (args.batch, args.iters, device, args.repeat))
        print("%-40s %5s %10s %9s %12s  %s" % ("run", "ranks", "images/s", "vs stock",
                                                "CPU ms/image", "allreduce"))
        stock = best[runs[0][0]][0]
        floats = None
        for name, ranks, _ in runs:
            images, cpu_ms, share = best[name]
            note = ""
            if share:
                floats = share[0]
                note = "%.1f ms/iter, %.1f%% of training (incl. waiting for the other rank)" \
                    % share[1:]
            print("%-40s %5d %10.1f %9.2f %12.2f  %s" % (name, ranks, images, images / stock,
                                                        cpu_ms, note))
        if floats:
            script = os.path.join(exp, "allreduce_alone.py")
            with open(script, "w") as f:
                f.write(ALLREDUCE_ALONE)
            alone = run(mpirun + ["2", sys.executable, script, str(floats)])[0].strip()
            print("allreduce alone of the same %d floats on 2 ranks: %s ms" % (floats, alone))
    finally:
        shutil.rmtree(exp, ignore_errors=True)


if __name__ == "__main__":
    main()
