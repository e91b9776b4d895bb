"""Per-item test outcomes of a trained stage: which test images (or noise-type pairs) its final
model gets right, for error bars and paired comparisons (noisy_label.core.intervals).

A stage's trainval net in TEST phase reads its test LMDB (the dataset's val_lmdb, or
ntype_val_lmdb for the noise-type net) and ends in an `Accuracy` layer; its two bottoms are
the logits and the label. pycaffe runs that net with the stage's final weights over every
record once; the outcomes are cached beside the logs
($EXP/logs/<dataset>/outcomes/<stage>.npz), keyed by the weights' size and mtime.
"""
import json
import os
from typing import Dict, Optional

import numpy as np

from noisy_label import paths
from noisy_label.io import lmdb_io


def _accuracy_inputs(net_param):
    """(logits blob, label blob, LMDB source, batch size) of a net's TEST phase."""
    from noisy_label.experiments.towers import TEST
    accuracy = [layer for layer in net_param.layer if layer.type == "Accuracy"]
    data = [layer for layer in net_param.layer if layer.type == "Data" and (
        not layer.include or any(rule.phase == TEST for rule in layer.include))]
    if not accuracy or not data:
        raise ValueError("net %s has no TEST-phase Data and Accuracy layers" % net_param.name)
    return (accuracy[0].bottom[0], accuracy[0].bottom[1], data[0].data_param.source,
            data[0].data_param.batch_size)


class Run(object):
    """One seed root's trained stages as they are on disk, read-only: its prototxts (the copy
    that make train generated in the root, where it did so: another root, seed or SET; else
    the committed prototxt/<name>) and their snapshots. Unlike pipeline.Experiment it writes
    no prototxt, so reading a SET=... run without that SET changes nothing."""

    def __init__(self, name: str, exp: str, seed: int = 1):
        self.name, self.exp, self.seed = name, os.path.abspath(exp), int(seed)
        generated = os.path.join(self.exp, "prototxt", name)
        self.prototxt_dir = generated if os.path.isdir(generated) else os.path.join(
            paths.REPO_ROOT, "prototxt", name)

    def _abs(self, path: str) -> str:
        return path if os.path.isabs(path) else os.path.join(paths.REPO_ROOT, path)

    def solver(self, stage: str):
        from caffe.proto import caffe_pb2

        from noisy_label.experiments import stages
        from noisy_label.io.prototxt import read_prototxt
        return read_prototxt(os.path.join(self.prototxt_dir,
                                               stages.solver_file_name(self.name, stage)),
                                  caffe_pb2.SolverParameter())

    def final(self, stage: str, ext: str = ".caffemodel") -> str:
        """The snapshot a stage ends with: <snapshot_prefix>_iter_<max_iter><ext>."""
        from noisy_label.io import snapshots
        solver = self.solver(stage)
        return snapshots.path(self._abs(solver.snapshot_prefix), solver.max_iter, ext)


def _key(path: str) -> str:
    st = os.stat(path)
    return json.dumps([os.path.abspath(path), st.st_size, st.st_mtime_ns])


def stage_outcomes(experiment, stage: str, gpu: Optional[int] = None) -> Dict[str, np.ndarray]:
    """{"correct" (n,) bool, "predicted" (n,) int64, "label" (n,) int64} of stage `stage`'s
    final model on the n records of its TEST LMDB, in LMDB order.

    experiment: a Run or a pipeline.Experiment (its seed root and prototxts). IOError if the
    stage has no final snapshot.
    """
    from caffe.proto import caffe_pb2

    from noisy_label.experiments import relabel
    weights = experiment.final(stage)
    if not os.path.exists(weights):
        raise IOError("no final snapshot %s of stage %s: run make train / make compare first"
                      % (weights, stage))
    cache = os.path.join(paths.log_dir(experiment.name, experiment.exp), "outcomes",
                         stage + ".npz")
    key = _key(weights)
    if os.path.exists(cache):
        with np.load(cache) as saved:
            if str(saved["key"]) == key:
                return {k: saved[k] for k in ("correct", "predicted", "label")}
    from google.protobuf import text_format

    from noisy_label.io import atomic
    from noisy_label.io.prototxt import read_prototxt
    solver = experiment.solver(stage)
    net_param = read_prototxt(experiment._abs(solver.net), caffe_pb2.NetParameter())
    # The committed prototxts name their files relative to the repository root: made absolute.
    for layer in net_param.layer:
        if layer.HasField("data_param"):
            layer.data_param.source = experiment._abs(layer.data_param.source)
        if layer.transform_param.mean_file:
            layer.transform_param.mean_file = experiment._abs(layer.transform_param.mean_file)
    logits, label, source, _ = _accuracy_inputs(net_param)
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    net_file = os.path.join(os.path.dirname(cache), stage + ".prototxt")
    atomic.write_text(net_file, text_format.MessageToString(net_param))
    count = lmdb_io.count(source)
    out = relabel.run_net(net_file, weights, count, (logits, label), gpu, desc=stage)
    predicted = out[logits].argmax(axis=1).astype(np.int64)
    truth = np.rint(out[label][:, 0]).astype(np.int64)
    result = {"correct": predicted == truth, "predicted": predicted, "label": truth}
    tmp = cache + ".tmp.npz"
    np.savez(tmp, key=np.array(key), **result)
    os.replace(tmp, cache)
    return result
