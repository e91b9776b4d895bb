"""The noisy-label Python layers in real pycaffe nets: equal to the plain reference of
docs/model.md#the-loss-layer, C kept in snapshots, a two-tower net that learns from noisy
labels, and every bad input."""
import json
import os

import caffe
import numpy as np
import pytest
from helpers import run_caffe
from test_noisy_loss_math import random_case, random_matrix_c, reference

from noisy_label.io import blob_io

pytestmark = pytest.mark.caffe

LOSS, POSTERIOR = "SoftmaxWithNoisyLabelLoss", "NoisyLabelPosterior"
LOSS_TOPS = ("loss", "prob_y", "prob_z", "posterior")


def net_text(num, num_classes, param_str, layer=LOSS, tops=("loss",), loss_weight=1.0,
             bottoms=("clean", "ntype", "label"), learn=True, shapes=None, header=""):
    """A net feeding the layer: logits from Parameter layers (learn: they receive the diffs)
    or Input layers, labels from an Input layer. shapes overrides the bottoms' shapes."""
    shapes = dict({"clean": (num, num_classes), "ntype": (num, 3), "label": (num,)}, **(shapes or {}))
    text = [header]
    for name in ("clean", "ntype", "label"):
        dims = " ".join("dim: %d" % d for d in shapes[name])
        if learn and name != "label":
            text.append('layer { name: "%s" type: "Parameter" top: "%s" '
                        'parameter_param { shape { %s } } }' % (name, name, dims))
        else:
            text.append('layer { name: "%s" type: "Input" top: "%s" '
                        'input_param { shape { %s } } }' % (name, name, dims))
    weights = ["loss_weight: %g" % loss_weight] + ["loss_weight: 0"] * (len(tops) - 1)
    if not isinstance(param_str, str):
        param_str = json.dumps(param_str)
    text.append('layer { name: "loss_noisy" type: "Python" %s %s %s '
                'param { lr_mult: 0 decay_mult: 0 } python_param { module: "noisy_label.layers" '
                'layer: "%s" param_str: \'%s\' } }'
                % (" ".join('bottom: "%s"' % b for b in bottoms),
                   " ".join('top: "%s"' % t for t in tops),
                   " ".join(weights) if layer == LOSS else "", layer, param_str))
    return "\n".join(text) + "\n"


def make_net(tmp_path, *args, **kwargs):
    phase = kwargs.pop("phase", caffe.TRAIN)
    path = str(tmp_path / "net.prototxt")
    with open(path, "w") as f:
        f.write(net_text(*args, **kwargs))
    return caffe.Net(path, phase)


def save_matrix_c(tmp_path, matrix_c, name="matrix_c.npy"):
    path = str(tmp_path / name)
    if name.endswith(".npy"):
        np.save(path, matrix_c)
    elif name.endswith(".binaryproto"):
        blob_io.write_blobproto(path, matrix_c[None, None])
    else:
        np.savetxt(path, matrix_c, fmt="%.9g")
    return path


def feed(net, logits_clean, logits_ntype, labels):
    for name, value in (("clean", logits_clean), ("ntype", logits_ntype)):
        if name in net.params:
            net.params[name][0].data[...] = value
        else:
            net.blobs[name].data[...] = value
    net.blobs["label"].data[...] = labels


@pytest.mark.parametrize("num_classes,num", [(10, 1), (10, 128), (14, 1), (14, 128)])
@pytest.mark.parametrize("update_noise_lr", [None, 0.0, 0.1, 1.0])
def test_loss_layer_equals_the_reference(tmp_path, num_classes, num, update_noise_lr):
    rng = np.random.RandomState(num + num_classes)
    matrix_c = random_matrix_c(rng, num_classes, zero_columns=(1, 5))
    param_str = {"matrix_c": save_matrix_c(tmp_path, matrix_c)}
    if update_noise_lr is not None:
        param_str["update_noise_lr"] = update_noise_lr
    case = random_case(rng, num, num_classes)
    for num_tops in range(1, 5):
        loss_weight = 2.5 if num_tops % 2 else 1.0
        net = make_net(tmp_path, num, num_classes, param_str, tops=LOSS_TOPS[:num_tops],
                       loss_weight=loss_weight)
        feed(net, *case)
        ref = reference(*case, matrix_c=matrix_c, loss_weight=loss_weight,
                        update_noise_lr=1.0 if update_noise_lr is None else update_noise_lr)
        out = net.forward()
        assert sorted(out) == sorted(LOSS_TOPS[:num_tops])
        np.testing.assert_allclose(out["loss"], [ref[0]], rtol=2e-5)
        for name, want in zip(LOSS_TOPS[1:num_tops], ref[1:4]):
            np.testing.assert_allclose(out[name].reshape(want.shape), want, rtol=2e-5, atol=1e-7)
        assert out.get("posterior", np.zeros((num, num_classes, 3, 1))).shape == (num, num_classes, 3, 1)
        net.backward()
        np.testing.assert_allclose(net.params["clean"][0].diff, ref[4], rtol=2e-5, atol=1e-8)
        np.testing.assert_allclose(net.params["ntype"][0].diff, ref[5], rtol=2e-5, atol=1e-8)
        assert net.params["loss_noisy"][0].data.shape == (1, 1, num_classes, num_classes)
        np.testing.assert_array_equal(net.params["loss_noisy"][0].data[0, 0], matrix_c)
        assert not net.params["loss_noisy"][0].diff.any()


@pytest.mark.parametrize("num_tops", [1, 2])
def test_posterior_layer_in_test_phase(tmp_path, num_tops):
    rng = np.random.RandomState(7)
    matrix_c = random_matrix_c(rng, 14)
    case = random_case(rng, 128, 14)
    net = make_net(tmp_path, 128, 14, {"matrix_c": save_matrix_c(tmp_path, matrix_c, "c.txt")},
                   layer=POSTERIOR, tops=("posterior", "p_y_given_noisy")[:num_tops],
                   learn=False, phase=caffe.TEST)
    feed(net, *case)
    out = net.forward()
    q = reference(*case, matrix_c=matrix_c)[3]
    np.testing.assert_allclose(out["posterior"], q[..., None], rtol=2e-5, atol=1e-7)
    if num_tops == 2:
        np.testing.assert_allclose(out["p_y_given_noisy"], q.sum(axis=2), rtol=2e-5, atol=1e-7)


def test_matrix_c_from_binaryproto_npy_and_text(tmp_path):
    rng = np.random.RandomState(8)
    matrix_c = random_matrix_c(rng, 10, zero_columns=(0, 9))
    case = random_case(rng, 16, 10)
    losses = []
    for name in ("c.binaryproto", "c.npy", "c.txt"):
        net = make_net(tmp_path, 16, 10, {"matrix_c": save_matrix_c(tmp_path, matrix_c, name)})
        np.testing.assert_array_equal(net.params["loss_noisy"][0].data[0, 0], matrix_c)
        feed(net, *case)
        losses.append(float(net.forward()["loss"][0]))
    assert losses[0] == losses[1] == losses[2]


# ---- a two-tower net: training, snapshots --------------------------------------------------

TWO_TOWERS = """name: "two_towers"
layer {{ name: "data" type: "Input" top: "data" top: "label_noisy"
  input_param {{ shape {{ dim: {batch} dim: {dim} }} shape {{ dim: {batch} }} }} }}
layer {{ name: "ip_clean" type: "InnerProduct" bottom: "data" top: "ip_clean"
  inner_product_param {{ num_output: {num_classes} weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "ip_ntype" type: "InnerProduct" bottom: "data" top: "ip_ntype"
  inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss_noisy" type: "Python" bottom: "ip_clean" bottom: "ip_ntype" bottom: "label_noisy"
  top: "loss_noisy" loss_weight: 1 param {{ lr_mult: 0 decay_mult: 0 }}
  python_param {{ module: "noisy_label.layers" layer: "{layer}"
    param_str: '{{"matrix_c": "{matrix_c}", "update_noise_lr": 1.0}}' }} }}
"""

SOLVER = """net: "{net}"
base_lr: 0.1
momentum: 0.9
weight_decay: 0.0005
lr_policy: "fixed"
max_iter: {max_iter}
display: 0
snapshot_prefix: "{prefix}"
random_seed: 1
solver_mode: CPU
"""


def noisy_dataset(rng, num=2000, num_classes=10, dim=16):
    """Gaussian classes; noisy labels drawn by the paper's model (docs/model.md): noise type 0
    keeps y, 1 draws a uniform other class, 2 draws C[:, y] (class y confused with y + 1); 10%
    have no label (-1)."""
    means = rng.randn(num_classes, dim)
    true = rng.randint(num_classes, size=num)
    data = (means[true] + rng.randn(num, dim)).astype(np.float32)
    matrix_c = np.zeros((num_classes, num_classes), np.float32)
    matrix_c[(np.arange(num_classes) + 1) % num_classes, np.arange(num_classes)] = 1
    noise_type = np.where(true % 2, rng.choice(3, num, p=[0.3, 0.3, 0.4]),
                          rng.choice(3, num, p=[0.8, 0.1, 0.1]))
    other = (true + rng.randint(1, num_classes, size=num)) % num_classes
    noisy = np.choose(noise_type, [true, other, (true + 1) % num_classes])
    noisy[rng.rand(num) < 0.1] = -1
    return data, true, noisy, matrix_c


def write_two_towers(tmp_path, matrix_c, batch=50, max_iter=1000, layer=LOSS, name="net"):
    c_file = save_matrix_c(tmp_path, matrix_c, "matrix_c.binaryproto")
    net = str(tmp_path / ("%s.prototxt" % name))
    solver = str(tmp_path / ("%s_solver.prototxt" % name))
    with open(net, "w") as f:
        f.write(TWO_TOWERS.format(batch=batch, dim=16, num_classes=len(matrix_c), layer=layer,
                                  matrix_c=c_file))
    with open(solver, "w") as f:
        f.write(SOLVER.format(net=net, max_iter=max_iter, prefix=str(tmp_path / "snap")))
    return solver, net, c_file


def train(solver, data, noisy, iters, rng, batch=50):
    losses = []
    for _ in range(iters):
        index = rng.randint(len(data), size=batch)
        solver.net.blobs["data"].data[...] = data[index]
        solver.net.blobs["label_noisy"].data[...] = noisy[index]
        solver.step(1)
        losses.append(float(solver.net.blobs["loss_noisy"].data[0]))
    return losses


def test_training_two_towers_lowers_the_loss_and_learns_the_true_classes(tmp_path):
    rng = np.random.RandomState(0)
    data, true, noisy, matrix_c = noisy_dataset(rng)
    assert (noisy == true).mean() < 0.55
    solver = caffe.SGDSolver(write_two_towers(tmp_path, matrix_c)[0])
    losses = train(solver, data, noisy, 300, rng)
    assert np.mean(losses[-20:]) < 0.6 * np.mean(losses[:20]), losses[::20]
    weights, bias = (b.data for b in solver.net.params["ip_clean"])
    accuracy = ((data.dot(weights.T) + bias).argmax(axis=1) == true).mean()
    assert accuracy > 0.7, accuracy  # the noisy labels themselves are right < 55% of the time
    np.testing.assert_array_equal(solver.net.params["loss_noisy"][0].data[0, 0], matrix_c)


def test_snapshot_and_restore_keep_c(tmp_path):
    rng = np.random.RandomState(1)
    data, _, noisy, matrix_c = noisy_dataset(rng, num=200)
    solver_file, net_file, c_file = write_two_towers(tmp_path, matrix_c, max_iter=8)
    solver = caffe.SGDSolver(solver_file)
    train(solver, data, noisy, 5, rng)
    solver.snapshot()
    prefix = str(tmp_path / "snap_iter_5")

    other_c = random_matrix_c(np.random.RandomState(7), len(matrix_c))
    assert not np.array_equal(other_c, matrix_c)
    blob_io.write_blobproto(c_file, other_c[None, None])   # the file changes after the snapshot
    net = caffe.Net(net_file, caffe.TRAIN)
    np.testing.assert_array_equal(net.params["loss_noisy"][0].data[0, 0], other_c)

    resumed = caffe.SGDSolver(solver_file)
    resumed.restore(prefix + ".solverstate")
    assert resumed.iter == 5
    np.testing.assert_array_equal(resumed.net.params["loss_noisy"][0].data[0, 0], matrix_c)
    net = caffe.Net(net_file, prefix + ".caffemodel", caffe.TEST)          # as -weights does
    np.testing.assert_array_equal(net.params["loss_noisy"][0].data[0, 0], matrix_c)

    # The posterior layer under the same name takes the trained net's C too (relabelling).
    test_file = write_two_towers(tmp_path, matrix_c, layer=POSTERIOR, name="test")[1]
    blob_io.write_blobproto(c_file, other_c[None, None])
    net = caffe.Net(test_file, prefix + ".caffemodel", caffe.TEST)
    np.testing.assert_array_equal(net.params["loss_noisy"][0].data[0, 0], matrix_c)

    # The caffe CLI resumes with -snapshot and its final snapshot still holds the first C.
    log = run_caffe(["train", "-solver", solver_file, "-snapshot", prefix + ".solverstate"]).stdout
    assert "Resuming from" in log and "Optimization Done" in log
    net = caffe.Net(net_file, str(tmp_path / "snap_iter_8.caffemodel"), caffe.TEST)
    np.testing.assert_array_equal(net.params["loss_noisy"][0].data[0, 0], matrix_c)


# ---- bad input ----------------------------------------------------------------------------


@pytest.fixture
def c_file(tmp_path):
    return save_matrix_c(tmp_path, random_matrix_c(np.random.RandomState(9), 10))


def raises(message, layer=LOSS):
    """pytest.raises for a ValueError that names the layer, then says `message` (a regex)."""
    return pytest.raises(ValueError, match=r"^%s layer \(param_str '.*'\): %s" % (layer, message))


def setup_fails(tmp_path, message, *args, **kwargs):
    """caffe.Net raises the layer's exception from setup."""
    with raises(".*" + message, kwargs.get("layer", LOSS)):
        make_net(tmp_path, *args, **kwargs)


def bad_c_file(tmp_path, name, content):
    path = str(tmp_path / name)
    with open(path, "w") as f:
        f.write(content)
    return path


@pytest.mark.parametrize("name,content,message", [
    ("missing.npy", None, r"matrix C file .*missing.npy does not exist"),
    ("c.binaryproto", "garbage",
     r"cannot read matrix C from .*c.binaryproto: .*c.binaryproto is not a BlobProto"),
    ("wide.txt", "0 1 0\n1 0 1\n", r"wide.txt: matrix C must be square \(N x N\), got shape \(2, 3\)"),
    ("small.txt", "0 1\n1 0\n", r"small.txt: matrix C is 2x2 but the clean logits have N = 3 classes"),
    ("negative.txt", "0 1.5 0.5\n1 0 0.5\n0 -0.5 0", r"negative.txt: matrix C has 1 negative or "
                                                     r"NaN/inf entries, e.g. C\[2, 1\] = -0.5"),
    ("nan.txt", "0 1 0\n1 0 0\nnan 0 0", r"nan.txt: matrix C has 1 negative or NaN/inf entries, "
                                        r"e.g. C\[2, 0\] = nan"),
    ("column.txt", "0 1 0\n0.5 0 0\n0.49 0 0", r"column.txt: matrix C column 0 \(true class 0\) "
                                              r"sums to 0.99; each column must sum to 1"),
])
def test_bad_matrix_c_files(tmp_path, name, content, message):
    path = str(tmp_path / name) if content is None else bad_c_file(tmp_path, name, content)
    setup_fails(tmp_path, message, 4, 3, {"matrix_c": path})
    setup_fails(tmp_path, message, 4, 3, {"matrix_c": path}, layer=POSTERIOR, tops=("q",))


def test_negative_zero_is_not_negative(tmp_path):
    make_net(tmp_path, 4, 3, {"matrix_c": bad_c_file(tmp_path, "c.txt", "0 1 0.5\n1 0 0.5\n0 -0 0")})


@pytest.mark.parametrize("param_str,message", [
    ({"matrix_c": "C", "update_noise_rate": 0.1}, r"unknown param_str keys \['update_noise_rate'\] "
                                                  r"\(known: matrix_c, update_noise_lr\)"),
    ({"update_noise_lr": 0.1}, r'param_str must be a mapping with "matrix_c"'),
    ("matrix_c.npy", r'param_str must be a mapping with "matrix_c"'),
    ("{matrix_c: [}", r"param_str is not a YAML/JSON mapping"),
    ({"matrix_c": "C", "update_noise_lr": "fast"}, r"update_noise_lr must be a number, got 'fast'"),
    ({"matrix_c": "C", "update_noise_lr": float("nan")},
     r"update_noise_lr must be a finite number >= 0, got nan"),
    ({"matrix_c": "C", "update_noise_lr": -0.1}, r"update_noise_lr must be a finite number >= 0, got -0\.1"),
])
def test_bad_param_str(tmp_path, param_str, message):
    setup_fails(tmp_path, message, 4, 10, param_str)


def test_yaml_param_str_and_json_exponents(tmp_path, c_file):
    net = make_net(tmp_path, 4, 10, "{matrix_c: %s, update_noise_lr: 1e-1}" % c_file)
    assert net.params["loss_noisy"][0].data.shape == (1, 1, 10, 10)


@pytest.mark.parametrize("kwargs,message", [
    (dict(bottoms=("clean", "ntype")),
     r"wants 3 bottoms \(clean logits, noise-type logits, noisy labels\), got 2"),
    (dict(shapes={"ntype": (4, 4)}),
     r"bottom 1 \(noise-type logits\) must be M x 3 with M = 4, got shape \(4, 4\)"),
    (dict(shapes={"ntype": (5, 3)}),
     r"bottom 1 \(noise-type logits\) must be M x 3 with M = 4, got shape \(5, 3\)"),
    (dict(shapes={"clean": (4, 10, 2)}),
     r"bottom 0 \(clean logits\) must be M x N, got shape \(4, 10, 2\)"),
    (dict(shapes={"label": (4, 2)}),
     r"bottom 2 \(noisy labels\) must hold M = 4 values, got shape \(4, 2\)"),
    (dict(shapes={"clean": (4, 14)}), r"C is 10x10 but the clean logits have N = 14 classes"),
    (dict(tops=LOSS_TOPS + ("extra",)), r"wants 1 to 4 tops, got 5"),
    (dict(tops=("q", "p", "extra"), layer=POSTERIOR), r"wants 1 to 2 tops, got 3"),
])
def test_bad_bottoms_and_tops(tmp_path, c_file, kwargs, message):
    setup_fails(tmp_path, message, 4, 10, {"matrix_c": c_file}, learn=False, **kwargs)


def test_bottoms_reshaped_after_setup(tmp_path, c_file):
    net = make_net(tmp_path, 4, 10, {"matrix_c": c_file}, learn=False)
    net.blobs["clean"].reshape(4, 11)
    with raises(r"clean logits have N = 11 classes but C \(parameter blob 0\) has shape "
                r"\(1, 1, 10, 10\)"):
        net.forward()
    net.blobs["clean"].reshape(4, 10)
    net.blobs["label"].reshape(3)
    with raises(r"bottom 2 \(noisy labels\) must hold M = 4 values"):
        net.forward()


@pytest.mark.parametrize("layer", [LOSS, POSTERIOR])
@pytest.mark.parametrize("bad,message", [
    (10, r"bottom 2: noisy label 10.0 of sample 3 is not an integer in -1..9 \(N = 10\); 1 bad in all"),
    (2.5, r"bottom 2: noisy label 2.5 of sample 3"),
    (-2, r"bottom 2: noisy label -2.0 of sample 3"),
])
def test_bad_labels(tmp_path, c_file, layer, bad, message):
    net = make_net(tmp_path, 4, 10, {"matrix_c": c_file}, layer=layer, tops=("t",), learn=False)
    net.blobs["label"].data[...] = [0, -1, 9, bad]
    with raises(message, layer):
        net.forward()
    net.blobs["label"].data[...] = [0, -1, 9, 3]
    net.forward()


@pytest.mark.parametrize("layer", [LOSS, POSTERIOR])
def test_force_backward_gives_the_labels_a_zero_gradient(tmp_path, layer):
    """`force_backward: true` nets (gradient checks, saliency, net surgery) run as with the
    original C++ layer: the labels get a zero diff, the logits their usual gradients."""
    rng = np.random.RandomState(11)
    matrix_c = random_matrix_c(rng, 10)
    case = random_case(rng, 8, 10)
    net = make_net(tmp_path, 8, 10, {"matrix_c": save_matrix_c(tmp_path, matrix_c)}, layer=layer,
                   tops=("t",), learn=False, header="force_backward: true")
    feed(net, *case)
    net.forward()
    for name in ("clean", "ntype", "label"):
        net.blobs[name].diff[...] = 7.0          # poison: every diff must be written
    net.backward()
    assert not net.blobs["label"].diff.any()
    ref = reference(*case, matrix_c=matrix_c)
    want = (ref[4], ref[5]) if layer == LOSS else (0 * ref[4], 0 * ref[5])
    np.testing.assert_allclose(net.blobs["clean"].diff, want[0], rtol=2e-5, atol=1e-8)
    np.testing.assert_allclose(net.blobs["ntype"].diff, want[1], rtol=2e-5, atol=1e-8)


def test_caffe_train_runs_a_force_backward_net(tmp_path):
    rng = np.random.RandomState(2)
    _, _, _, matrix_c = noisy_dataset(rng)
    solver, net, _ = write_two_towers(tmp_path, matrix_c, max_iter=3)
    with open(net) as f:
        text = f.read()
    with open(net, "w") as f:
        f.write("force_backward: true\n" + text)
    log = run_caffe(["train", "-solver", solver]).stdout
    assert "Optimization Done" in log
    assert os.path.exists(str(tmp_path / "snap_iter_3.caffemodel"))


def test_changed_matrix_c_is_refused(tmp_path, c_file):
    net = make_net(tmp_path, 4, 10, {"matrix_c": c_file})
    net.forward()
    net.params["loss_noisy"][0].data[0, 0, 0, 0] += 0.5
    with raises(r"parameter blob 0: matrix C column 0 .* \(C must stay fixed: "
                r"param \{ lr_mult: 0 decay_mult: 0 \}\)"):
        net.forward()


def test_the_caffe_tool_prints_the_error(tmp_path):
    """`caffe` aborts on a Python exception without printing it: the layer says it on stderr."""
    path = str(tmp_path / "net.prototxt")
    with open(path, "w") as f:
        f.write(net_text(4, 10, {"matrix_c": str(tmp_path / "missing.binaryproto")}))
    with open(str(tmp_path / "solver.prototxt"), "w") as f:
        f.write(SOLVER.format(net=path, max_iter=1, prefix=str(tmp_path / "snap")))
    proc = run_caffe(["train", "-solver", str(tmp_path / "solver.prototxt")], check=False)
    assert proc.returncode != 0
    assert ("SoftmaxWithNoisyLabelLoss layer (param_str '{\"matrix_c\": \"%s\"}'): matrix C file %s "
            "does not exist" % ((str(tmp_path / "missing.binaryproto"),) * 2)) in proc.stdout
