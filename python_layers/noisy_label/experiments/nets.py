"""The nets and solvers of the experiments, built from a dataset (noisy_label.datasets) and
the towers. A NetFamily(ds, files) owns the layer names its nets share, and builds them; the
stage table (stages.py) says which stage uses which:

    clean_net            the tower on the clean labels (and, on the mixed set, the noisy-as-truth
                         baseline)
    ntype_net            the clean tower's convs + its own head predicting the noise type
    joint_net            (noisy_label_loss_net) the joint net: `*_clean` tower, `*_ntype` tower
                         (TRAIN only), the clean loss on clean labels, the noise-type loss, and
                         the Python SoftmaxWithNoisyLabelLoss layer on the noisy labels
    robust_loss_net      the other noise-robust losses (make compare): the clean tower on the
                         mixed set, the clean loss on its clean labels and a Python loss
                         (bootstrapping, forward / backward correction) on its noisy ones
    test_net             deploy-style: the `*_clean` tower on the test LMDB (`caffe test`)
    posterior_net        make relabel's: the joint net's towers and the Python
                         NoisyLabelPosterior layer over the mixed set (TEST)
    classifier_net       make relabel's: the clean net's tower and a Softmax over the mixed set
    init_renames         the init step's layer maps: the clean and noise-type nets into the joint

Only stock layer types and `type: "Python"` layers from `noisy_label.layers`.
"""
import json
import os
from typing import Dict, List, Optional, Tuple

from noisy_label import paths
from noisy_label.experiments import net_surgery
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


def _net(name: str):
    from caffe.proto import caffe_pb2
    net = caffe_pb2.NetParameter()
    net.name = name
    return net


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


class NetFamily(object):
    """The layer-name contract of one dataset's nets, which hand weights on by layer name.

    The clean net has the tower's own names (its head suffixed ds.clean_head); the noise-type
    net the same convs and an NTYPE head. The joint net holds both towers with every name
    suffixed CLEAN and NTYPE (a head already so named keeps its name: init_renames), and the
    loss on the noisy labels, NOISY_LOSS, whose blob is C. The test net and make relabel's
    posterior net are the joint net's layers under its names, so that its caffemodel (C
    included) loads into them; make relabel's classifier net is the clean net's.
    """

    CLEAN, NTYPE = "_clean", "_ntype"    # the joint net's two towers: their layers' suffixes
    LABELS = {"clean": "label_clean", "noisy": "label_noisy", "ntype": "label_ntype"}
    NOISY_LOSS = "loss_noisy"            # the loss on LABELS["noisy"] (the joint net's holds C)
    POSTERIOR = "p_label"                # the posterior net's p(y | ỹ, x)
    PROB = "prob"                        # the classifier net's p(y | x)
    LAYERS = "noisy_label.layers"        # the module of the Python layers

    def __init__(self, ds, files):
        self.ds, self.files = ds, files

    def _tower(self, net, num_output: int, **names):
        logits, _ = TOWERS[self.ds.tower](net, "data", num_output, bias_decay=self.ds.bias_decay,
                                          **names)
        return logits

    def clean_tower(self, net, joint: bool = False, **extra):
        """The classifier over `data`, named as in the clean net or (joint) the joint net's
        CLEAN tower; its logits. extra: fields of every layer (include)."""
        names = dict(suffix=self.CLEAN) if joint else dict(head_suffix=self.ds.clean_head)
        return self._tower(net, self.ds.num_classes, **names, **extra)

    def ntype_tower(self, net, joint: bool = False, **extra):
        """The noise-type classifier over `data`, named as in the noise-type net (the clean
        net's convs, an NTYPE head) or (joint) the joint net's NTYPE tower; its logits."""
        names = dict(suffix=self.NTYPE) if joint else dict(
            head_suffix=self.NTYPE, head_lr_mult=self.ds.ntype_head_lr_mult)
        return self._tower(net, NUM_NOISE_TYPES, **names, **self.ds.ntype_kwargs, **extra)

    def _data(self, net, name: str, tops, lmdb: str, phase, transform=True):
        batch = self.ds.train_batch if phase == TRAIN else self.ds.test_batch
        params = dict(data_param=dict(source=self.files.lmdb(lmdb), batch_size=batch, backend=1),
                      include=[{"phase": phase}])
        if transform:
            tp = dict(self.ds.transform, mean_file=self.files.mean_file)
            if phase == TEST and "mirror" in tp:
                tp["mirror"] = False
            params["transform_param"] = tp
        add_layer(net, name, "Data", top=tops, **params)

    def _mixed_data(self, net, kinds):
        """TRAIN: the mixed images and the label LMDBs of `kinds` (LABELS); TEST: val_lmdb as
        data and LABELS["clean"]."""
        self._data(net, "data", ["data"], paths.MIXED_IMAGES, TRAIN)
        # Data layers with one batch size over LMDBs in the same key order stay aligned.
        for kind in kinds:
            self._data(net, self.LABELS[kind], [self.LABELS[kind]], paths.MIXED_LABELS[kind],
                       TRAIN, transform=False)
        self._data(net, "data", ["data", self.LABELS["clean"]], self.ds.val_lmdb, TEST)

    def _noisy_label_layer(self, net, layer: str, logits, param_str: dict, **params):
        """Python layer `layer` over both towers' logits and the noisy labels, named NOISY_LOSS
        wherever it is, so that C, its blob, loads by name (the solver leaves it: lr_mult 0)."""
        add_layer(net, self.NOISY_LOSS, "Python", list(logits) + [self.LABELS["noisy"]],
                  param=[{"lr_mult": 0, "decay_mult": 0}],
                  python_param=dict(module=self.LAYERS, layer=layer,
                                    param_str=json.dumps(param_str)), **params)

    def clean_net(self, train_lmdb=paths.CLEAN_TRAIN, name: str = "clean",
                  label_lmdb: Optional[str] = None):
        """The clean-label classifier (also the noisy-as-truth net, on the mixed set). label_lmdb:
        a label LMDB aligned with train_lmdb that replaces its labels (make relabel's)."""
        net = _net("%s_%s" % (self.ds.name, name))
        if label_lmdb:
            self._data(net, "data", ["data"], train_lmdb, TRAIN)
            self._data(net, "label", ["label"], label_lmdb, TRAIN, transform=False)
        else:
            self._data(net, "data", ["data", "label"], train_lmdb, TRAIN)
        self._data(net, "data", ["data", "label"], self.ds.val_lmdb, TEST)
        logits = self.clean_tower(net)
        _accuracy(net, logits, "label")
        _loss(net, "loss", logits, "label", ignore=False)
        return net

    def ntype_net(self):
        """The noise-type classifier: the clean net's convs (fine-tuned) + an NTYPE head."""
        net = _net("%s_ntype" % self.ds.name)
        label = self.LABELS["ntype"]
        self._data(net, "data", ["data", label], paths.NTYPE_TRAIN, TRAIN)
        self._data(net, "data", ["data", label], self.ds.ntype_val_lmdb, TEST)
        logits = self.ntype_tower(net)
        _accuracy(net, logits, label)
        _loss(net, "loss_ntype", logits, label, ignore=False)
        return net

    def joint_net(self, clean_weight: float = 1.0, ntype_weight: float = 1.0,
                  update_noise_lr: float = 1.0, name: str = "noisy_label_loss"):
        """The joint net of the paper, trained on the four aligned mixed LMDBs."""
        net = _net("%s_%s" % (self.ds.name, name))
        self._mixed_data(net, ("clean", "noisy") + (("ntype",) if ntype_weight else ()))
        clean_logits = self.clean_tower(net, joint=True)
        _accuracy(net, clean_logits, self.LABELS["clean"])
        _loss(net, "loss_clean", clean_logits, self.LABELS["clean"], weight=clean_weight)
        ntype_logits = self.ntype_tower(net, joint=True, **PHASE_TRAIN)
        if ntype_weight:
            _loss(net, "loss_ntype", ntype_logits, self.LABELS["ntype"], weight=ntype_weight,
                  **PHASE_TRAIN)
        param_str = {"matrix_c": self.files.matrix_c}
        if update_noise_lr != 1.0:
            param_str["update_noise_lr"] = update_noise_lr
        self._noisy_label_layer(net, "SoftmaxWithNoisyLabelLoss", [clean_logits, ntype_logits],
                                param_str, loss_weight=[1.0], **PHASE_TRAIN)
        return net

    def robust_loss_net(self, name: str, layer: str, params: dict,
                        matrix_q: Optional[str] = None):
        """Another noise-robust loss on the mixed set, with the information ours has: the clean
        loss on the clean labels, and the Python loss `layer` (noisy_label.layers) with
        `params` (+ {"matrix_q": the file of make lmdb's matrix `matrix_q`}) on the noisy
        ones. The tower keeps the clean net's layer names, so that `-weights` of the clean
        net fills it."""
        net = _net("%s_%s" % (self.ds.name, name))
        self._mixed_data(net, ("clean", "noisy"))
        logits = self.clean_tower(net)
        _accuracy(net, logits, self.LABELS["clean"])
        _loss(net, "loss_clean", logits, self.LABELS["clean"], weight=1.0)
        params = dict(params, **({"matrix_q": self.files.matrix(matrix_q)} if matrix_q else {}))
        add_layer(net, self.NOISY_LOSS, "Python", [logits, self.LABELS["noisy"]],
                  loss_weight=[1.0],
                  python_param=dict(module=self.LAYERS, layer=layer,
                                    param_str=json.dumps(params, sort_keys=True)), **PHASE_TRAIN)
        return net

    def test_net(self):
        """Deploy-style test net: the joint net's CLEAN tower and accuracy on a held-out LMDB
        (`caffe test`)."""
        net = _net("%s_noisy_label_loss_test" % self.ds.name)
        label = self.LABELS["clean"]
        self._data(net, "data", ["data", label], self.ds.test_lmdb, TEST)
        logits = self.clean_tower(net, joint=True)
        add_layer(net, "accuracy", "Accuracy", [logits, label])
        return net

    def posterior_net(self, images: str = paths.MIXED_IMAGES, labels=None):
        """make relabel's TEST-phase net over the mixed set (or another image LMDB `images`
        with its aligned label LMDBs labels = {"clean": db, "noisy": db}): the joint net's
        two towers and NoisyLabelPosterior in NOISY_LOSS's place (tops: q and POSTERIOR)."""
        labels = labels or paths.MIXED_LABELS
        net = _net("%s_relabel" % self.ds.name)
        self._data(net, "data", ["data"], images, TEST)
        for kind in ("clean", "noisy"):
            self._data(net, self.LABELS[kind], [self.LABELS[kind]], labels[kind], TEST,
                       transform=False)
        clean_logits = self.clean_tower(net, joint=True)
        ntype_logits = self.ntype_tower(net, joint=True)
        self._noisy_label_layer(net, "NoisyLabelPosterior", [clean_logits, ntype_logits],
                                {"matrix_c": self.files.matrix_c}, top=["q", self.POSTERIOR])
        return net

    def classifier_net(self):
        """make relabel's clean net over the mixed set, with a Softmax PROB: the out-of-sample
        p(y|x) of the clean-only model, for cleanlab."""
        net = _net("%s_clean_probabilities" % self.ds.name)
        self._data(net, "data", ["data"], paths.MIXED_IMAGES, TEST)
        add_layer(net, self.PROB, "Softmax", [self.clean_tower(net)])
        return net

    def init_renames(self) -> List[Tuple[str, Dict[str, str]]]:
        """[(source net, {its layer: the joint net's layer})] for the clean and the noise-type
        net, the init step's copies into the joint net.

        As the original release's init step, whose copy_params.py adds every layer the two
        nets share by name to the renames it is given: each learnable layer of the clean net
        goes to the joint net's layer of the same name (Clothing1M's fc8_clean), else to
        `<layer>` + CLEAN; each of the noise-type net to the same name (its NTYPE head), else
        to `<layer>` + NTYPE (its convs). So every layer of the joint net's towers starts
        trained.
        """
        joint = learnable_layers(self.joint_net())
        maps = []
        for source, net, suffix in (("clean", self.clean_net(), self.CLEAN),
                                    ("ntype", self.ntype_net(), self.NTYPE)):
            layers = learnable_layers(net)
            renames = {layer: layer + suffix for layer in layers if layer not in joint}
            maps.append((source, dict(net_surgery.layer_map(layers, joint, renames))))
        return maps


# The stage tables' build(ds, files) and the benches': the nets of NetFamily(ds, files).

def clean_net(ds, files, **options):
    return NetFamily(ds, files).clean_net(**options)


def ntype_net(ds, files):
    return NetFamily(ds, files).ntype_net()


def noisy_label_loss_net(ds, files, **options):
    return NetFamily(ds, files).joint_net(**options)


def robust_loss_net(ds, files, **options):
    return NetFamily(ds, files).robust_loss_net(**options)


def test_net(ds, files):
    return NetFamily(ds, files).test_net()


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
