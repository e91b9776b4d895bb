"""The nets and solvers of the experiments, built from a dataset (noisy_label.datasets) and
the towers; the stage table (stages.py) says which stage uses which:

    clean_net            the tower on the clean labels (and, on the mixed set, the noisy-as-truth
                         baseline)
    ntype_net            the clean tower's convs + its own head predicting the noise type
    noisy_label_loss_net the joint net: `*_clean` tower, `*_ntype` tower (TRAIN only), the clean
                         loss on clean labels, the noise-type loss, and the Python
                         SoftmaxWithNoisyLabelLoss layer on the noisy labels
    robust_loss_net      the other noise-robust losses (make compare): the clean tower on the
                         mixed set, the clean loss on its clean labels and a Python loss
                         (bootstrapping, forward / backward correction) on its noisy ones
    test_net             deploy-style: the `*_clean` tower on the test LMDB (`caffe test`)

Only stock layer types and `type: "Python"` layers from `noisy_label.layers`.
"""
import json
import os
from typing import List, Optional

from noisy_label import paths
from noisy_label.experiments import settings as settings_mod
from noisy_label.experiments.towers import (
    NUM_NOISE_TYPES,
    PHASE_TRAIN,
    TEST,
    TOWERS,
    TRAIN,
    _assign,
    add_layer,
)
from noisy_label.io.prototxt import read_prototxt  # noqa: F401  (pipeline.py calls nets')


def _net(name: str):
    from caffe.proto import caffe_pb2
    net = caffe_pb2.NetParameter()
    net.name = name
    return net


def _data(net, ds, files, name: str, tops, lmdb: str, phase, batch, transform=True):
    params = dict(data_param=dict(source=files.lmdb(lmdb), batch_size=batch, backend=1),
                  include=[{"phase": phase}])
    if transform:
        tp = dict(ds.transform, mean_file=files.mean_file)
        if phase == TEST and "mirror" in tp:
            tp["mirror"] = False
        params["transform_param"] = tp
    add_layer(net, name, "Data", top=tops, **params)


def _loss(net, name: str, logits, label, weight=None, ignore=True, **extra):
    params = dict(extra)
    if ignore:
        # -1 marks "no such label" in the mixed set; normalise by the whole batch as the original.
        params["loss_param"] = dict(ignore_label=-1, normalization=2)
    if weight is not None:
        params["loss_weight"] = [weight]
    add_layer(net, name, "SoftmaxWithLoss", [logits, label], **params)


def _accuracy(net, logits, label):
    add_layer(net, "accuracy", "Accuracy", [logits, label], include=[{"phase": TEST}])


class Files(object):
    """Where a dataset's LMDBs, mean file, matrix C and snapshots live, as written into prototxt."""

    def __init__(self, name: str, exp: Optional[str] = None):
        root = exp or os.path.join(paths.REPO_ROOT, paths.DEFAULT_EXP)
        # The committed prototxt names them relative to the repository root, where caffe runs.
        self.rel = (lambda p: os.path.relpath(p, paths.REPO_ROOT)) if exp is None else os.path.abspath
        self.name, self.root = name, root
        self.mean_file = self.rel(paths.mean_file(name, root))
        self.matrix_c = self.rel(paths.matrix_c_file(name, root))
        self.snapshots = self.rel(paths.snapshot_dir(name, root))

    def lmdb(self, db: str) -> str:
        return self.rel(paths.lmdb_path(self.name, db, self.root))

    def matrix(self, matrix: str) -> str:
        """A matrix make lmdb writes (paths.ESTIMATED_MATRIX_Q, ...): its .binaryproto."""
        return self.rel(os.path.join(paths.db_dir(self.name, self.root), matrix + ".binaryproto"))


def clean_net(ds, files, train_lmdb=paths.CLEAN_TRAIN, name: str = "clean",
              label_lmdb: Optional[str] = None):
    """The clean-label classifier (also the noisy-as-truth net, on the mixed set). label_lmdb:
    a label LMDB aligned with train_lmdb that replaces its labels (make relabel's)."""
    net = _net("%s_%s" % (ds.name, name))
    if label_lmdb:
        _data(net, ds, files, "data", ["data"], train_lmdb, TRAIN, ds.train_batch)
        _data(net, ds, files, "label", ["label"], label_lmdb, TRAIN, ds.train_batch,
              transform=False)
    else:
        _data(net, ds, files, "data", ["data", "label"], train_lmdb, TRAIN, ds.train_batch)
    _data(net, ds, files, "data", ["data", "label"], ds.val_lmdb, TEST, ds.test_batch)
    logits, _ = TOWERS[ds.tower](net, "data", ds.num_classes, head_suffix=ds.clean_head,
                         bias_decay=ds.bias_decay)
    _accuracy(net, logits, "label")
    _loss(net, "loss", logits, "label", ignore=False)
    return net


def ntype_net(ds, files):
    """The noise-type classifier: the clean net's convs (fine-tuned) + an `_ntype` head."""
    net = _net("%s_ntype" % ds.name)
    _data(net, ds, files, "data", ["data", "label_ntype"], paths.NTYPE_TRAIN, TRAIN, ds.train_batch)
    _data(net, ds, files, "data", ["data", "label_ntype"], ds.ntype_val_lmdb, TEST,
          ds.test_batch)
    logits, _ = TOWERS[ds.tower](net, "data", NUM_NOISE_TYPES, head_suffix="_ntype",
                         head_lr_mult=ds.ntype_head_lr_mult, bias_decay=ds.bias_decay,
                         **ds.ntype_kwargs)
    _accuracy(net, logits, "label_ntype")
    _loss(net, "loss_ntype", logits, "label_ntype", ignore=False)
    return net


def _mixed_data(net, ds, files, kinds):
    """TRAIN: the mixed images and the label LMDBs `label_<kind>` of `kinds`; TEST: val_lmdb
    as data and label_clean."""
    _data(net, ds, files, "data", ["data"], paths.MIXED_IMAGES, TRAIN, ds.train_batch)
    # Data layers with one batch size over LMDBs in the same key order stay aligned.
    for kind in kinds:
        _data(net, ds, files, "label_" + kind, ["label_" + kind], paths.MIXED_LABELS[kind], TRAIN,
              ds.train_batch, transform=False)
    _data(net, ds, files, "data", ["data", "label_clean"], ds.val_lmdb, TEST, ds.test_batch)


def noisy_label_loss_net(ds, files, clean_weight: float = 1.0, ntype_weight: float = 1.0,
                         update_noise_lr: float = 1.0, name: str = "noisy_label_loss"):
    """The joint net of the paper, trained on the four aligned mixed LMDBs."""
    net = _net("%s_%s" % (ds.name, name))
    _mixed_data(net, ds, files, ("clean", "noisy") + (("ntype",) if ntype_weight else ()))
    clean_logits, _ = TOWERS[ds.tower](net, "data", ds.num_classes, suffix="_clean",
                               bias_decay=ds.bias_decay)
    _accuracy(net, clean_logits, "label_clean")
    _loss(net, "loss_clean", clean_logits, "label_clean", weight=clean_weight)
    ntype_logits, _ = TOWERS[ds.tower](net, "data", NUM_NOISE_TYPES, suffix="_ntype",
                               bias_decay=ds.bias_decay, **dict(ds.ntype_kwargs, **PHASE_TRAIN))
    if ntype_weight:
        _loss(net, "loss_ntype", ntype_logits, "label_ntype", weight=ntype_weight, **PHASE_TRAIN)
    param_str = {"matrix_c": files.matrix_c}
    if update_noise_lr != 1.0:
        param_str["update_noise_lr"] = update_noise_lr
    add_layer(net, "loss_noisy", "Python", [clean_logits, ntype_logits, "label_noisy"],
              loss_weight=[1.0], param=[{"lr_mult": 0, "decay_mult": 0}],
              python_param=dict(module="noisy_label.layers", layer="SoftmaxWithNoisyLabelLoss",
                                param_str=json.dumps(param_str)), **PHASE_TRAIN)
    return net


def robust_loss_net(ds, files, name: str, layer: str, params: dict, matrix_q: Optional[str] = None):
    """Another noise-robust loss on the mixed set, with the information ours has: the clean
    loss on the clean labels, and the Python loss `layer` (noisy_label.layers) with `params`
    (+ {"matrix_q": the file of make lmdb's matrix `matrix_q`}) on the noisy ones. The tower
    keeps the clean net's layer names, so that `-weights` of the clean net fills it."""
    net = _net("%s_%s" % (ds.name, name))
    _mixed_data(net, ds, files, ("clean", "noisy"))
    logits, _ = TOWERS[ds.tower](net, "data", ds.num_classes, head_suffix=ds.clean_head,
                                 bias_decay=ds.bias_decay)
    _accuracy(net, logits, "label_clean")
    _loss(net, "loss_clean", logits, "label_clean", weight=1.0)
    params = dict(params, **({"matrix_q": files.matrix(matrix_q)} if matrix_q else {}))
    add_layer(net, "loss_noisy", "Python", [logits, "label_noisy"], loss_weight=[1.0],
              python_param=dict(module="noisy_label.layers", layer=layer,
                                param_str=json.dumps(params, sort_keys=True)), **PHASE_TRAIN)
    return net


def test_net(ds, files):
    """Deploy-style test net: the `_clean` tower and accuracy on a held-out LMDB (`caffe test`)."""
    net = _net("%s_noisy_label_loss_test" % ds.name)
    _data(net, ds, files, "data", ["data", "label_clean"], ds.test_lmdb, TEST, ds.test_batch)
    logits, _ = TOWERS[ds.tower](net, "data", ds.num_classes, suffix="_clean", bias_decay=ds.bias_decay)
    add_layer(net, "accuracy", "Accuracy", [logits, "label_clean"])
    return net


def solver(ds, files, stage: str, net_file: str, test_lmdb: str, prefix: str, seed: int = 1,
           settings: Optional[dict] = None, schedule: Optional[str] = None):
    """SolverParameter for a training stage; solver_mode is left at its default (as BVLC's
    examples). test_iter covers `test_lmdb` once unless the schedule or SET gives one; prefix:
    the snapshot prefix's file stem. settings: solver fields from settings.parse ({field: v}
    for every stage, {"stage.field": v} for one). schedule: the ds.schedules entry (default:
    the stage's)."""
    from caffe.proto import caffe_pb2
    sp = caffe_pb2.SolverParameter()
    sp.net = net_file
    params = dict(ds.solver)
    params.update(ds.schedules[schedule or stage])
    for key, value in (settings or {}).items():
        if key.split(".")[-1] in settings_mod.SOLVER_FIELDS and (key.count(".") == 0 or
                                                    key.startswith(stage + ".")):
            params[key.split(".")[-1]] = value
    if "test_iter" in (settings or {}):
        params["test_iter"] = settings["test_iter"]
    elif "test_iter" not in params:
        params["test_iter"] = ds.test_iter(test_lmdb)
    test_iter = params.pop("test_iter")
    if test_iter:
        sp.test_iter.append(test_iter)
    params.setdefault("snapshot", params["max_iter"])
    _assign(sp, params)
    sp.snapshot_prefix = os.path.join(files.snapshots, prefix)
    sp.random_seed = seed
    return sp


def learnable_layers(net) -> List[str]:
    return [layer.name for layer in net.layer if layer.type in ("Convolution", "InnerProduct")]
