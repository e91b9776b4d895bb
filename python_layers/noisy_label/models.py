"""The nets and solvers of every experiment, written as prototxt into `prototxt/<dataset>/`.

One definition per architecture (a "tower" of layers whose names take a suffix), put
together the way the original release did:

    clean            the tower on the clean labels                (layers conv1 ... ip2)
    noisy_gt_ft_clean  the same, fine-tuned on the mixed set, noisy labels taken as truth
    ntype            the convs of the clean tower + its own head predicting the noise type
    noisy_label_loss the joint net: `*_clean` tower, `*_ntype` tower (TRAIN only), the
                     clean loss on clean labels, the noise-type loss, and the Python
                     SoftmaxWithNoisyLabelLoss layer on the noisy labels

Only stock layer types and `type: "Python"` layers from `noisy_label.layers`. Sources are
written relative to the repository root (`exp/db/...`), as `caffe train` runs from there;
`write_dataset(..., exp=...)` writes a copy that points at another experiment root.

    python tools/make_prototxt.py            # regenerate prototxt/ (a test checks it is current)
"""
import json
import os

from google.protobuf import text_format

from noisy_label import paths
from noisy_label.noisy_loss import NUM_NOISE_TYPES

TRAIN, TEST = 0, 1
PHASE_TRAIN = {"include": [{"phase": TRAIN}]}

# The reference accuracies of SPEC §5, shown beside ours in reports.
REFERENCE_ACCURACY = {
    "cifar10": {"clean": 0.620, "noisy_gt_ft_clean": 0.658, "ntype": 0.689,
                "noisy_label_loss": 0.689},
    "clothing1M": {"clean": 0.724, "ntype": 0.641, "noisy_label_loss_stage1": 0.756,
                   "noisy_label_loss": 0.773},
}


def _assign(message, params):
    """Fill a protobuf message from nested dicts / lists (as caffe.net_spec does)."""
    for key, value in params.items():
        field = getattr(message, key)
        if isinstance(value, dict):
            _assign(field, value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _assign(field.add(), item)
                else:
                    field.append(item)
        else:
            setattr(message, key, value)


def add_layer(net, name, type_, bottom=(), top=None, **params):
    """Append a LayerParameter to `net`; `top` defaults to [name]."""
    layer = net.layer.add()
    layer.name, layer.type = name, type_
    layer.bottom.extend(bottom)
    layer.top.extend([name] if top is None else top)
    _assign(layer, params)
    return layer


def _learnable(lr_mult=1, std=0.01, bias=0.0, bias_decay=0):
    """param / filler settings for a conv or inner-product layer (biases: 2x lr, bias_decay)."""
    return dict(param=[{"lr_mult": lr_mult, "decay_mult": 1},
                       {"lr_mult": 2 * lr_mult, "decay_mult": bias_decay}],
                filler={"weight_filler": {"type": "gaussian", "std": std},
                        "bias_filler": {"type": "constant", "value": bias}})


def conv(net, name, bottom, num_output, kernel_size, std, pad=0, stride=1, group=1, bias=0.0,
         lr_mult=1, bias_decay=0, **extra):
    spec = _learnable(lr_mult, std, bias, bias_decay)
    cp = dict(num_output=num_output, kernel_size=[kernel_size], pad=[pad], stride=[stride],
              group=group, **spec["filler"])
    return add_layer(net, name, "Convolution", [bottom], param=spec["param"],
                     convolution_param=cp, **extra)


def fc(net, name, bottom, num_output, std, bias=0.0, lr_mult=1, bias_decay=0, **extra):
    spec = _learnable(lr_mult, std, bias, bias_decay)
    return add_layer(net, name, "InnerProduct", [bottom], param=spec["param"],
                     inner_product_param=dict(num_output=num_output, **spec["filler"]), **extra)


def relu(net, name, blob, **extra):
    return add_layer(net, name, "ReLU", [blob], [blob], **extra)


def pool(net, name, bottom, method, kernel_size=3, stride=2, **extra):
    return add_layer(net, name, "Pooling", [bottom],
                     pooling_param=dict(pool=method, kernel_size=kernel_size, stride=stride), **extra)


POOL_MAX, POOL_AVE = 0, 1

# ---- towers: each returns (name of its output blob, names of its conv layers) --------


def cifar_quick_tower(net, data, num_output, suffix="", head_suffix=None, head_lr_mult=1,
                      bias_decay=0, **extra):
    """BVLC's CIFAR-10 quick net. Layers conv1..conv3, ip1, ip2 + suffix (head: head_suffix)."""
    s, h = suffix, suffix if head_suffix is None else head_suffix
    learn = dict(extra, bias_decay=bias_decay)
    conv(net, "conv1" + s, data, 32, 5, 0.0001, pad=2, **learn)
    pool(net, "pool1" + s, "conv1" + s, POOL_MAX, **extra)
    relu(net, "relu1" + s, "pool1" + s, **extra)
    conv(net, "conv2" + s, "pool1" + s, 32, 5, 0.01, pad=2, **learn)
    relu(net, "relu2" + s, "conv2" + s, **extra)
    pool(net, "pool2" + s, "conv2" + s, POOL_AVE, **extra)
    conv(net, "conv3" + s, "pool2" + s, 64, 5, 0.01, pad=2, **learn)
    relu(net, "relu3" + s, "conv3" + s, **extra)
    pool(net, "pool3" + s, "conv3" + s, POOL_AVE, **extra)
    fc(net, "ip1" + h, "pool3" + s, 64, 0.1, **learn)
    fc(net, "ip2" + h, "ip1" + h, num_output, 0.1, lr_mult=head_lr_mult, **learn)
    return "ip2" + h, ["conv1", "conv2", "conv3"]


def digits_tower(net, data, num_output, suffix="", head_suffix=None, head_lr_mult=1,
                 bias_decay=0, **extra):
    """A small conv net for the 8x8 digits: conv1, conv2 (3x3), ip1 (64), ip2."""
    s, h = suffix, suffix if head_suffix is None else head_suffix
    learn = dict(extra, bias_decay=bias_decay)
    conv(net, "conv1" + s, data, 16, 3, 0.1, pad=1, **learn)
    relu(net, "relu1" + s, "conv1" + s, **extra)
    pool(net, "pool1" + s, "conv1" + s, POOL_MAX, kernel_size=2, stride=2, **extra)
    conv(net, "conv2" + s, "pool1" + s, 32, 3, 0.1, pad=1, **learn)
    relu(net, "relu2" + s, "conv2" + s, **extra)
    pool(net, "pool2" + s, "conv2" + s, POOL_MAX, kernel_size=2, stride=2, **extra)
    fc(net, "ip1" + h, "pool2" + s, 64, 0.1, **learn)
    relu(net, "relu3" + h, "ip1" + h, **extra)
    fc(net, "ip2" + h, "ip1" + h, num_output, 0.1, lr_mult=head_lr_mult, **learn)
    return "ip2" + h, ["conv1", "conv2"]


def caffenet_tower(net, data, num_output, suffix="", head_suffix=None, head_lr_mult=1,
                   fc7_outputs=4096, fc67_suffix=None, bias_decay=0, **extra):
    """BVLC reference CaffeNet: conv1..conv5 + suffix, fc6/fc7 + fc67_suffix, fc8 + head_suffix.

    The clean net keeps ImageNet's names up to fc7 (so `-weights` CaffeNet fills them);
    the noise-type net has its own, narrower fc6_ntype/fc7_ntype.
    """
    s, h = suffix, suffix if head_suffix is None else head_suffix
    learn = dict(extra, bias_decay=bias_decay)
    conv(net, "conv1" + s, data, 96, 11, 0.01, stride=4, **learn)
    relu(net, "relu1" + s, "conv1" + s, **extra)
    pool(net, "pool1" + s, "conv1" + s, POOL_MAX, **extra)
    lrn = dict(lrn_param=dict(local_size=5, alpha=0.0001, beta=0.75))
    add_layer(net, "norm1" + s, "LRN", ["pool1" + s], **dict(lrn, **extra))
    conv(net, "conv2" + s, "norm1" + s, 256, 5, 0.01, pad=2, group=2, bias=1.0, **learn)
    relu(net, "relu2" + s, "conv2" + s, **extra)
    pool(net, "pool2" + s, "conv2" + s, POOL_MAX, **extra)
    add_layer(net, "norm2" + s, "LRN", ["pool2" + s], **dict(lrn, **extra))
    conv(net, "conv3" + s, "norm2" + s, 384, 3, 0.01, pad=1, **learn)
    relu(net, "relu3" + s, "conv3" + s, **extra)
    conv(net, "conv4" + s, "conv3" + s, 384, 3, 0.01, pad=1, group=2, bias=1.0, **learn)
    relu(net, "relu4" + s, "conv4" + s, **extra)
    conv(net, "conv5" + s, "conv4" + s, 256, 3, 0.01, pad=1, group=2, bias=1.0, **learn)
    relu(net, "relu5" + s, "conv5" + s, **extra)
    pool(net, "pool5" + s, "conv5" + s, POOL_MAX, **extra)
    f = suffix if fc67_suffix is None else fc67_suffix
    fc6, fc7 = "fc6" + f, "fc7" + f
    fc(net, fc6, "pool5" + s, 4096, 0.005, bias=1.0, **learn)
    relu(net, "relu6" + s, fc6, **extra)
    add_layer(net, "drop6" + s, "Dropout", [fc6], [fc6], dropout_param=dict(dropout_ratio=0.5), **extra)
    fc(net, fc7, fc6, fc7_outputs, 0.005, bias=1.0, **learn)
    relu(net, "relu7" + s, fc7, **extra)
    add_layer(net, "drop7" + s, "Dropout", [fc7], [fc7], dropout_param=dict(dropout_ratio=0.5), **extra)
    fc(net, "fc8" + h, fc7, num_output, 0.01, lr_mult=head_lr_mult, **learn)
    return "fc8" + h, ["conv1", "conv2", "conv3", "conv4", "conv5"]


# ---- datasets -----------------------------------------------------------------------


class Dataset(object):
    """How one dataset's experiments are shaped: tower, data transform, schedules.

    schedules: {stage: solver fields}; a stage's `snapshot` defaults to its max_iter.
    bias_decay: the biases' decay_mult. ntype_head_lr_mult: lr_mult of the noise-type net's
    classifier.
    """

    def __init__(self, name, num_classes, tower, transform, train_batch, test_batch,
                 test_iter, solver, schedules, clean_head="", ntype_kwargs=None, bias_decay=0,
                 ntype_head_lr_mult=10):
        self.name, self.num_classes, self.tower = name, num_classes, tower
        self.transform, self.train_batch, self.test_batch = transform, train_batch, test_batch
        self.test_iter, self.solver, self.schedules = test_iter, solver, schedules
        self.clean_head = clean_head          # suffix of the clean net's classifier
        self.ntype_kwargs = ntype_kwargs or {}
        self.bias_decay, self.ntype_head_lr_mult = bias_decay, ntype_head_lr_mult


# cifar10 and clothing1M follow the original release's prototxts field by field (see the
# README's "Differences from the original release" for what does not).
DATASETS = {
    "cifar10": Dataset(
        "cifar10", num_classes=10, tower=cifar_quick_tower, transform={}, train_batch=100,
        test_batch=100, test_iter=100,
        solver=dict(momentum=0.9, weight_decay=0.004, display=100, average_loss=100,
                    lr_policy="step", gamma=0.1),
        # Snapshots every 1000 (500) iterations, where the original kept only the last: a
        # stage that stops early resumes from its newest one.
        schedules={"clean": dict(base_lr=0.001, stepsize=4000, max_iter=5000, test_interval=500,
                                 test_initialization=False, snapshot=1000),
                   "noisy_gt_ft_clean": dict(base_lr=0.001, stepsize=4000, max_iter=6000,
                                             test_interval=500, snapshot=1000),
                   "ntype": dict(base_lr=0.0001, stepsize=1000, max_iter=1500, test_interval=500,
                                 test_initialization=False, snapshot=500),
                   "noisy_label_loss": dict(base_lr=0.001, stepsize=4000, max_iter=6000,
                                            test_interval=500, snapshot=1000)},
        bias_decay=1),   # the original's `param { lr_mult: 2 }` keeps the default decay_mult 1
    "digits": Dataset(
        "digits", num_classes=10, tower=digits_tower, transform={"scale": 0.00390625},
        train_batch=50, test_batch=100, test_iter=5,
        solver=dict(momentum=0.9, weight_decay=0.0005, display=50, average_loss=50,
                    lr_policy="step", gamma=0.1),
        # The clean, baseline and joint stages at one learning rate (the mixed set must move
        # the net for the noisy labels to matter at all); the noise-type net fine-tuned at a
        # tenth of it with a drop at 2/3, the shape of CIFAR-10's (0.0001, step 1000 of 1500):
        # its trained head starts the joint net's, so it must not overfit the 80 pairs.
        schedules={"clean": dict(base_lr=0.01, stepsize=800, max_iter=1000, test_interval=100,
                                 snapshot=250),
                   "noisy_gt_ft_clean": dict(base_lr=0.01, stepsize=800, max_iter=1000,
                                             test_interval=100, snapshot=250),
                   "ntype": dict(base_lr=0.001, stepsize=333, max_iter=500, test_interval=100,
                                 snapshot=100),
                   "noisy_label_loss": dict(base_lr=0.01, stepsize=800, max_iter=1000,
                                            test_interval=100, snapshot=250)}),
    "clothing1M": Dataset(
        "clothing1M", num_classes=14, tower=caffenet_tower,
        transform={"crop_size": 227, "mirror": True}, train_batch=128, test_batch=100,
        test_iter=144,
        solver=dict(momentum=0.9, weight_decay=0.0005, display=20, average_loss=20,
                    lr_policy="step", gamma=0.1, test_initialization=True, test_interval=200),
        schedules={"clean": dict(base_lr=0.001, stepsize=10000, max_iter=15000, snapshot=10000),
                   "ntype": dict(base_lr=0.001, stepsize=3000, max_iter=5000, test_iter=75),
                   "noisy_label_loss_stage1": dict(base_lr=0.001, stepsize=50000, max_iter=100000,
                                                   snapshot=10000),
                   "noisy_label_loss_stage2": dict(base_lr=0.001, stepsize=50000, max_iter=160000,
                                                   snapshot=10000)},
        clean_head="_clean", ntype_kwargs={"fc7_outputs": 1024, "fc67_suffix": "_ntype"},
        ntype_head_lr_mult=1),
}


def _net(name):
    from caffe.proto import caffe_pb2
    net = caffe_pb2.NetParameter()
    net.name = name
    return net


def _data(net, ds, files, name, tops, lmdb, phase, batch, transform=True):
    params = dict(data_param=dict(source=files.lmdb(lmdb), batch_size=batch, backend=1),
                  include=[{"phase": phase}])
    if transform:
        tp = dict(ds.transform, mean_file=files.mean_file)
        if phase == TEST and "mirror" in tp:
            tp["mirror"] = False
        params["transform_param"] = tp
    add_layer(net, name, "Data", top=tops, **params)


def _loss(net, name, logits, label, weight=None, ignore=True, **extra):
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

    def __init__(self, name, exp=None):
        root = exp or os.path.join(paths.REPO_ROOT, paths.DEFAULT_EXP)
        # The committed prototxt names them relative to the repository root, where caffe runs.
        self.rel = (lambda p: os.path.relpath(p, paths.REPO_ROOT)) if exp is None else os.path.abspath
        self.name, self.root = name, root
        self.mean_file = self.rel(paths.mean_file(name, root))
        self.matrix_c = self.rel(paths.matrix_c_file(name, root))
        self.snapshots = self.rel(paths.snapshot_dir(name, root))

    def lmdb(self, db):
        return self.rel(paths.lmdb_path(self.name, db, self.root))


def clean_net(ds, files, train_lmdb=paths.CLEAN_TRAIN, name="clean"):
    """The clean-label classifier (also the noisy-as-truth net, on the mixed set)."""
    net = _net("%s_%s" % (ds.name, name))
    val = paths.TEST if ds.name != "clothing1M" else paths.CLEAN_VAL
    _data(net, ds, files, "data", ["data", "label"], train_lmdb, TRAIN, ds.train_batch)
    _data(net, ds, files, "data", ["data", "label"], val, TEST, ds.test_batch)
    logits, _ = ds.tower(net, "data", ds.num_classes, head_suffix=ds.clean_head,
                         bias_decay=ds.bias_decay)
    _accuracy(net, logits, "label")
    _loss(net, "loss", logits, "label", ignore=False)
    return net


def ntype_net(ds, files):
    """The noise-type classifier: the clean net's convs (fine-tuned) + an `_ntype` head."""
    net = _net("%s_ntype" % ds.name)
    test = paths.NTYPE_TEST if ds.name != "clothing1M" else paths.NTYPE_VAL
    _data(net, ds, files, "data", ["data", "label_ntype"], paths.NTYPE_TRAIN, TRAIN, ds.train_batch)
    _data(net, ds, files, "data", ["data", "label_ntype"], test, TEST, ds.test_batch)
    logits, _ = ds.tower(net, "data", NUM_NOISE_TYPES, head_suffix="_ntype",
                         head_lr_mult=ds.ntype_head_lr_mult, bias_decay=ds.bias_decay,
                         **ds.ntype_kwargs)
    _accuracy(net, logits, "label_ntype")
    _loss(net, "loss_ntype", logits, "label_ntype", ignore=False)
    return net


def noisy_label_loss_net(ds, files, clean_weight=1.0, ntype_weight=1.0, update_noise_lr=1.0,
                         name="noisy_label_loss"):
    """The joint net of the paper, trained on the four aligned mixed LMDBs."""
    net = _net("%s_%s" % (ds.name, name))
    _data(net, ds, files, "data", ["data"], paths.MIXED_IMAGES, TRAIN, ds.train_batch)
    # Four Data layers with one batch size over LMDBs in the same key order stay aligned.
    for kind in ("clean", "noisy") + (("ntype",) if ntype_weight else ()):
        _data(net, ds, files, "label_" + kind, ["label_" + kind], paths.MIXED_LABELS[kind], TRAIN,
              ds.train_batch, transform=False)
    val = paths.TEST if ds.name != "clothing1M" else paths.CLEAN_VAL
    _data(net, ds, files, "data", ["data", "label_clean"], val, TEST, ds.test_batch)
    clean_logits, _ = ds.tower(net, "data", ds.num_classes, suffix="_clean",
                               bias_decay=ds.bias_decay)
    _accuracy(net, clean_logits, "label_clean")
    _loss(net, "loss_clean", clean_logits, "label_clean", weight=clean_weight)
    ntype_logits, _ = ds.tower(net, "data", NUM_NOISE_TYPES, suffix="_ntype",
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


def test_net(ds, files, lmdb=paths.CLEAN_TEST):
    """Deploy-style test net: the `_clean` tower and accuracy on a held-out LMDB (`caffe test`)."""
    net = _net("%s_noisy_label_loss_test" % ds.name)
    _data(net, ds, files, "data", ["data", "label_clean"], lmdb, TEST, ds.test_batch)
    logits, _ = ds.tower(net, "data", ds.num_classes, suffix="_clean", bias_decay=ds.bias_decay)
    add_layer(net, "accuracy", "Accuracy", [logits, "label_clean"])
    return net


def solver(ds, files, stage, net_file, seed=1, settings=None):
    """SolverParameter for a stage; solver_mode is left at its default (as BVLC's examples).
    settings: solver fields from `parse_settings` ({field: v} for every stage, {"stage.field": v}
    for one)."""
    from caffe.proto import caffe_pb2
    sp = caffe_pb2.SolverParameter()
    sp.net = net_file
    params = dict(ds.solver)
    params.update(ds.schedules[stage])
    for key, value in (settings or {}).items():
        if key.split(".")[-1] in SOLVER_FIELDS and (key.count(".") == 0 or
                                                    key.startswith(stage + ".")):
            params[key.split(".")[-1]] = value
    params.setdefault("test_iter", ds.test_iter)
    test_iter = params.pop("test_iter")
    if test_iter:
        sp.test_iter.append(test_iter)
    params.setdefault("snapshot", params["max_iter"])
    _assign(sp, params)
    sp.snapshot_prefix = os.path.join(files.snapshots, stage.replace("_stage1", "").replace("_stage2", ""))
    sp.random_seed = seed
    return sp


def stage_nets(name):
    """{training stage: its trainval net's file stem}, in workflow order."""
    if name == "clothing1M":
        return {"clean": "clean_trainval", "ntype": "ntype_trainval",
                "noisy_label_loss_stage1": "noisy_label_loss_trainval.stage1",
                "noisy_label_loss_stage2": "noisy_label_loss_trainval.stage2"}
    return {"clean": "clean_trainval", "noisy_gt_ft_clean": "noisy_gt_ft_clean_trainval",
            "ntype": "ntype_trainval", "noisy_label_loss": "noisy_label_loss_trainval"}


def solver_file_name(name, stage):
    return stage_nets(name)[stage].replace("_trainval", "_solver") + ".prototxt"


def read_prototxt(path, message):
    """Merge a prototxt file into `message`; ValueError naming the file (and line) if it fails."""
    try:
        with open(path) as f:
            text_format.Merge(f.read(), message)
    except IOError as e:
        raise ValueError("%s: %s" % (path, e.strerror))
    except text_format.ParseError as e:
        raise ValueError("%s:%s" % (path, e))
    return message


def _learnable_layers(net):
    return [layer.name for layer in net.layer if layer.type in ("Convolution", "InnerProduct")]


def init_layer_maps(name):
    """[(source stage, {source layer: joint-net layer})] that initialise the joint net.

    As the original release's init step, whose copy_params.py adds every layer the two nets
    share by name to the renames it is given: each learnable layer of the clean net goes to
    the joint net's layer of the same name (Clothing1M's fc8_clean), else to `<layer>_clean`;
    each of the noise-type net to the same name (its `*_ntype` head), else to `<layer>_ntype`
    (its convs). So every `*_clean` and `*_ntype` layer of the joint net starts trained.
    """
    from noisy_label import net_surgery
    ds, files = DATASETS[name], Files(name)
    joint = _learnable_layers(noisy_label_loss_net(ds, files))
    maps = []
    for stage, source, suffix in (("clean", clean_net(ds, files), "_clean"),
                                  ("ntype", ntype_net(ds, files), "_ntype")):
        layers = _learnable_layers(source)
        renames = {layer: layer + suffix for layer in layers if layer not in joint}
        maps.append((stage, dict(net_surgery.layer_map(layers, joint, renames))))
    return maps


# What SET="key=value ..." may change: the dataset's batch sizes and test iterations, and any
# plain solver field (for every stage, or one: "clean.max_iter=2000").
DATASET_SETTINGS = ("train_batch", "test_batch", "test_iter")
SOLVER_FIELDS = ("base_lr", "lr_policy", "gamma", "power", "stepsize", "max_iter", "momentum",
                 "weight_decay", "snapshot", "display", "average_loss", "test_interval",
                 "test_initialization", "iter_size", "clip_gradients", "type", "delta",
                 "momentum2", "rms_decay")


def parse_settings(text, name):
    """{key: value} of SET="train_batch=64 max_iter=2000 clean.snapshot=100" for dataset
    `name`; ValueError naming the item that is not one."""
    import yaml
    stages = list(stage_nets(name))
    settings = {}
    for item in (text or "").split():
        key, sep, value = item.partition("=")
        stage, _, field = key.rpartition(".")
        if not sep or not value:
            raise ValueError("SET: %r is not key=value" % item)
        if stage and stage not in stages:
            raise ValueError("SET: %r: %s has no stage %r (stages: %s)"
                             % (item, name, stage, ", ".join(stages)))
        if field not in SOLVER_FIELDS and (stage or field not in DATASET_SETTINGS):
            raise ValueError("SET: %r: unknown setting %r; settings: %s, or a solver field "
                             "(%s), optionally for one stage as <stage>.<field>"
                             % (item, field, ", ".join(DATASET_SETTINGS), ", ".join(SOLVER_FIELDS)))
        try:
            settings[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError("SET: %r: %r is not a value" % (item, value))
        if field in DATASET_SETTINGS + ("max_iter", "snapshot", "stepsize") and (
                not isinstance(settings[key], int) or settings[key] < 1):
            raise ValueError("SET: %r: %s must be a positive integer" % (item, field))
    return settings


def experiment(name, exp=None, seed=1, settings=None):
    """(prototxt dir relative to the repository, {file name: message}) of a dataset's workflow.
    settings: from parse_settings."""
    import copy
    ds = copy.copy(DATASETS[paths.check_dataset(name)])
    settings = settings or {}
    for key in DATASET_SETTINGS:
        if key in settings:
            setattr(ds, key, settings[key])
    files = Files(name, exp)
    out_dir = os.path.join("prototxt", name) if exp is None else os.path.join(
        paths.exp_root(exp), "prototxt", name)
    nets = {"clean_trainval": clean_net(ds, files), "ntype_trainval": ntype_net(ds, files)}
    if name == "clothing1M":
        nets["noisy_label_loss_trainval.stage1"] = noisy_label_loss_net(
            ds, files, clean_weight=0.1, ntype_weight=0, update_noise_lr=0.0)
        nets["noisy_label_loss_trainval.stage2"] = noisy_label_loss_net(
            ds, files, clean_weight=1.0, ntype_weight=0.1, update_noise_lr=0.1)
        nets["noisy_label_loss_test"] = test_net(ds, files)
    else:
        nets["noisy_gt_ft_clean_trainval"] = clean_net(ds, files, paths.MIXED_TRAIN,
                                                       "noisy_gt_ft_clean")
        nets["noisy_label_loss_trainval"] = noisy_label_loss_net(ds, files)
        nets["noisy_label_loss_test"] = test_net(ds, files, lmdb=paths.TEST)
    out = {k + ".prototxt": v for k, v in nets.items()}
    for stage, net_name in stage_nets(name).items():
        out[solver_file_name(name, stage)] = solver(
            ds, files, stage, os.path.join(out_dir, net_name + ".prototxt"), seed, settings)
    return out_dir, out


def write_dataset(name, exp=None, seed=1, settings=None):
    """Write a dataset's prototxts (into prototxt/<name>, or $EXP/prototxt/<name> for another
    root); unchanged files are left as they are."""
    from noisy_label.blob_io import atomic_write_bytes
    out_dir, messages = experiment(name, exp, seed, settings)
    for file_name, message in sorted(messages.items()):
        path = os.path.join(paths.REPO_ROOT, out_dir, file_name)
        text = text_format.MessageToString(message)
        if not os.path.isfile(path) or open(path).read() != text:
            atomic_write_bytes(path, text.encode())
    return os.path.join(paths.REPO_ROOT, out_dir)
