"""The experiment prototxts: current with their generator, stock layers only, and every
net constructs in stock Caffe against small LMDBs laid out as `make lmdb` writes them."""
import glob
import json
import os
import re

import pytest
from google.protobuf import text_format
from helpers import REPO, run_caffe, run_python

from noisy_label import datasets
from noisy_label.datasets import random_db
from noisy_label.experiments import nets, stages

pytestmark = pytest.mark.caffe

# Image size and channels of each dataset's image LMDBs (Clothing1M: 256, cropped to 227).
STOCK_TYPES = {"Data", "Convolution", "Pooling", "ReLU", "LRN", "InnerProduct", "Dropout",
               "SoftmaxWithLoss", "Accuracy", "Python"}


def prototxts(name):
    return sorted(glob.glob(os.path.join(REPO, "prototxt", name, "*.prototxt")))


@pytest.mark.parametrize("name", datasets.names())
def test_committed_prototxt_matches_the_generator(name):
    out_dir, messages = stages.experiment(name)
    assert sorted(os.path.basename(p) for p in prototxts(name)) == sorted(messages)
    for file_name, message in messages.items():
        with open(os.path.join(REPO, out_dir, file_name)) as f:
            assert f.read() == text_format.MessageToString(message), (
                "%s/%s is stale: run tools/make_prototxt.py" % (out_dir, file_name))


@pytest.mark.parametrize("name", datasets.names())
def test_prototxt_uses_stock_layers_and_no_fork_fields(name):
    from caffe.proto import caffe_pb2
    for path in prototxts(name):
        text = open(path).read()
        for fork_only in ("richness", "softmax_noisy_label_loss_param", "blob_proto", "solver_mode"):
            assert fork_only not in text, (path, fork_only)
        if "_solver" in path:
            continue
        net = text_format.Merge(text, caffe_pb2.NetParameter())
        assert {layer.type for layer in net.layer} <= STOCK_TYPES, path
        for layer in net.layer:
            if layer.type == "Python":
                assert layer.python_param.module == "noisy_label.layers"
                assert list(layer.loss_weight) == [1.0]


@pytest.mark.parametrize("name", datasets.names())
def test_every_net_constructs_in_stock_caffe(name, tmp_path):
    random_db.write(name, str(tmp_path / "exp"))
    # The committed sources are relative (exp/db/<name>/...): build the nets from tmp_path.
    nets = [(path, phase) for path in prototxts(name) if "_solver" not in path
            for phase in ((1,) if path.endswith("_test.prototxt") else (0, 1))]
    shapes = run_python("import caffe, json\n"
                        "print(json.dumps([caffe.Net(path, phase).blobs['data'].data.shape[1:]"
                        " for path, phase in %r]))" % nets, cwd=str(tmp_path))
    expected = (3, 227, 227) if name == "clothing1M" else datasets.get_dataset(name).image_shape
    assert [tuple(shape) for shape in json.loads(shapes)] == [expected] * len(nets)


def test_clothing1m_joint_stages_differ_as_the_paper(tmp_path):
    _, messages = stages.experiment("clothing1M")
    stage1, stage2 = (messages["noisy_label_loss_trainval.stage%d.prototxt" % i] for i in (1, 2))
    layers1 = {layer.name: layer for layer in stage1.layer}
    layers2 = {layer.name: layer for layer in stage2.layer}
    assert list(layers1["loss_clean"].loss_weight) == [pytest.approx(0.1)]
    assert "loss_ntype" not in layers1
    assert '"update_noise_lr": 0.0' in layers1["loss_noisy"].python_param.param_str
    assert list(layers2["loss_clean"].loss_weight) == [1.0]
    assert list(layers2["loss_ntype"].loss_weight) == [pytest.approx(0.1)]
    assert '"update_noise_lr": 0.1' in layers2["loss_noisy"].python_param.param_str
    solvers = {k: v for k, v in messages.items() if "_solver" in k}
    assert solvers["noisy_label_loss_solver.stage1.prototxt"].max_iter == 100000
    assert solvers["noisy_label_loss_solver.stage2.prototxt"].max_iter == 160000
    # Stage 2 resumes stage 1's solverstate: the same snapshot prefix.
    assert (solvers["noisy_label_loss_solver.stage1.prototxt"].snapshot_prefix
            == solvers["noisy_label_loss_solver.stage2.prototxt"].snapshot_prefix)


def test_caffe_test_runs_the_clothing1m_test_net(tmp_path):
    random_db.write("clothing1M", str(tmp_path / "exp"), num=3)
    model = os.path.join(REPO, "prototxt", "clothing1M", "noisy_label_loss_test.prototxt")
    run_python("import caffe; caffe.Net(%r, caffe.TEST).save('random.caffemodel')" % model,
               cwd=str(tmp_path))
    log = run_caffe(["test", "-model", model, "-weights", str(tmp_path / "random.caffemodel"),
                     "-iterations", "2"], cwd=str(tmp_path)).stdout
    assert "Use CPU." in log or "Use GPU" in log
    assert re.search(r"caffe.cpp:\d+\] accuracy = [0-9.]+", log), log[-2000:]


def test_init_layer_maps_follow_the_original_release():
    # Its init scripts' renames plus every layer both nets have by name (copy_params.py).
    (clean_stage, clean), (ntype_stage, ntype) = stages.init_layer_maps("cifar10")
    assert (clean_stage, ntype_stage) == ("clean", "ntype")
    assert clean == {n: n + "_clean" for n in ("conv1", "conv2", "conv3", "ip1", "ip2")}
    assert ntype == dict({n: n + "_ntype" for n in ("conv1", "conv2", "conv3")},
                         ip1_ntype="ip1_ntype", ip2_ntype="ip2_ntype")
    (_, clean), (_, ntype) = stages.init_layer_maps("clothing1M")
    assert clean == dict({n: n + "_clean" for n in ("conv1", "conv2", "conv3", "conv4", "conv5",
                                                     "fc6", "fc7")}, fc8_clean="fc8_clean")
    assert ntype == dict({n: n + "_ntype" for n in ("conv1", "conv2", "conv3", "conv4", "conv5")},
                         fc6_ntype="fc6_ntype", fc7_ntype="fc7_ntype", fc8_ntype="fc8_ntype")


# The original release's solvers (models/<dataset>/*_solver.prototxt), field by field; ours
# differ in random_seed (fixed, for repeatable runs), solver_mode (left to -gpu) and, for
# CIFAR-10, `snapshot` (SNAPSHOT_EVERY: the original kept only the last one) and the noise-type
# stage's test_iter (derived from the LMDB it tests on, as every test_iter).
ORIGINAL_SOLVERS = {
    ("cifar10", "clean"): dict(test_iter=[100], test_interval=500, test_initialization=False,
                               base_lr=0.001, stepsize=4000, max_iter=5000, snapshot=5000),
    ("cifar10", "noisy_gt_ft_clean"): dict(test_iter=[100], test_interval=500,
                                           test_initialization=True, base_lr=0.001,
                                           stepsize=4000, max_iter=6000, snapshot=6000),
    ("cifar10", "ntype"): dict(test_iter=[100], test_interval=500, test_initialization=False,
                               base_lr=0.0001, stepsize=1000, max_iter=1500, snapshot=1500),
    ("cifar10", "noisy_label_loss"): dict(test_iter=[100], test_interval=500,
                                          test_initialization=True, base_lr=0.001, stepsize=4000,
                                          max_iter=6000, snapshot=8000),
    ("clothing1M", "clean"): dict(test_iter=[144], test_interval=200, test_initialization=True,
                                  base_lr=0.001, stepsize=10000, max_iter=15000, snapshot=10000),
    ("clothing1M", "ntype"): dict(test_iter=[75], test_interval=200, test_initialization=True,
                                  base_lr=0.001, stepsize=3000, max_iter=5000, snapshot=5000),
    ("clothing1M", "noisy_label_loss_stage1"): dict(
        test_iter=[144], test_interval=200, test_initialization=True, base_lr=0.001,
        stepsize=50000, max_iter=100000, snapshot=10000),
    ("clothing1M", "noisy_label_loss_stage2"): dict(
        test_iter=[144], test_interval=200, test_initialization=True, base_lr=0.001,
        stepsize=50000, max_iter=160000, snapshot=10000),
}
COMMON = {"cifar10": dict(lr_policy="step", gamma=0.1, display=100, average_loss=100,
                          momentum=0.9, weight_decay=0.004),
          "clothing1M": dict(lr_policy="step", gamma=0.1, display=20, average_loss=20,
                             momentum=0.9, weight_decay=0.0005)}


SNAPSHOT_EVERY = {("cifar10", "clean"): 1000, ("cifar10", "noisy_gt_ft_clean"): 1000,
                  ("cifar10", "ntype"): 500, ("cifar10", "noisy_label_loss"): 1000}


@pytest.mark.parametrize("name,stage", sorted(ORIGINAL_SOLVERS))
def test_solvers_follow_the_original_release(name, stage):
    _, messages = stages.experiment(name)
    solver = messages[stages.solver_file_name(name, stage)]
    original = dict(COMMON[name], **ORIGINAL_SOLVERS[(name, stage)])
    original["snapshot"] = SNAPSHOT_EVERY.get((name, stage), original["snapshot"])
    if (name, stage) == ("cifar10", "ntype"):
        original["test_iter"] = [20]   # derived: the 2,000 noise-type test pairs once (not 5x)
    for field, value in original.items():
        got = list(getattr(solver, field)) if field == "test_iter" else getattr(solver, field)
        assert got == pytest.approx(value), (name, stage, field)


def learnable(message):
    return {layer.name: [(p.lr_mult, p.decay_mult) for p in layer.param]
            for layer in message.layer if layer.type in ("Convolution", "InnerProduct")}


def test_learning_rates_and_decay_follow_the_original_release():
    _, cifar = stages.experiment("cifar10")
    # CIFAR-10: `param { lr_mult: 1 } param { lr_mult: 2 }`: both keep decay_mult 1; the
    # noise-type net's classifier learns 10x faster.
    for file_name in ("clean_trainval.prototxt", "noisy_label_loss_trainval.prototxt"):
        for layer, params in learnable(cifar[file_name]).items():
            assert params == [(1, 1), (2, 1)], (file_name, layer)
    ntype = learnable(cifar["ntype_trainval.prototxt"])
    assert ntype.pop("ip2_ntype") == [(10, 1), (20, 1)]
    assert set(map(tuple, ntype.values())) == {((1, 1), (2, 1))}
    # Clothing1M: biases decay_mult 0, and fc8_ntype at lr_mult 1 / 2 like every layer; the
    # clean classifier is fc8_clean, so the original's caffemodels line up by name.
    _, clothing = stages.experiment("clothing1M")
    for file_name in ("clean_trainval.prototxt", "ntype_trainval.prototxt",
                      "noisy_label_loss_trainval.stage2.prototxt"):
        for layer, params in learnable(clothing[file_name]).items():
            assert params == [(1, 1), (2, 0)], (file_name, layer)
    assert "fc8_clean" in learnable(clothing["clean_trainval.prototxt"])
    assert "fc8_ntype" in learnable(clothing["ntype_trainval.prototxt"])


@pytest.mark.parametrize("name", ["digits", "cifar10", "clothing1M"])
def test_every_stage_snapshots_along_the_way(name):
    """A stage that stops early loses at most 10,000 iterations (Clothing1M, as the original)
    or a third of the stage (CIFAR-10, digits): it resumes from its newest snapshot."""
    _, messages = stages.experiment(name)
    for stage in stages.stage_nets(name):
        solver = messages[stages.solver_file_name(name, stage)]
        assert solver.snapshot <= (10000 if name == "clothing1M" else solver.max_iter // 3), stage


def test_settings_change_the_generated_solvers_and_nets():
    settings = stages.parse_settings("train_batch=64 max_iter=300 clean.snapshot=7 "
                                     "ntype.base_lr=0.5", "digits")
    assert settings == {"train_batch": 64, "max_iter": 300, "clean.snapshot": 7,
                        "ntype.base_lr": 0.5}
    _, messages = stages.experiment("digits", settings=settings)
    solvers = {stage: messages[stages.solver_file_name("digits", stage)]
               for stage in stages.stage_nets("digits")}
    assert {s.max_iter for s in solvers.values()} == {300}
    assert solvers["clean"].snapshot == 7 and solvers["noisy_gt_ft_clean"].snapshot == 250
    assert solvers["ntype"].base_lr == pytest.approx(0.5)
    assert solvers["clean"].base_lr == pytest.approx(0.01)
    train = [layer for layer in messages["clean_trainval.prototxt"].layer
             if layer.type == "Data" and layer.include[0].phase == nets.TRAIN]
    assert train[0].data_param.batch_size == 64


@pytest.mark.parametrize("text,message", [
    ("max_iter", "not key=value"), ("max_iter=", "not key=value"),
    ("bogus=3", "unknown setting 'bogus'"), ("stage9.max_iter=3", "no stage 'stage9'"),
    ("max_iter=-5", "positive integer"), ("train_batch=1.5", "positive integer"),
    ("clean.train_batch=4", "unknown setting 'train_batch'")])
def test_bad_settings_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        stages.parse_settings(text, "digits")
