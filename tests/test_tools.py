"""The tools/ CLIs: --help, their outputs against the stock Caffe tools, and bad input."""
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from helpers import REPO, caffe_tool

from noisy_label.io import blob_io, lmdb_io

pytestmark = pytest.mark.caffe

TOOLS = ["make_lmdb", "synthesize_noise", "estimate_matrix_c", "assign_noise_types",
         "build_image_lmdb", "build_label_lmdb", "compute_mean", "copy_params", "inspect_lmdb"]


def tool(name, *args, check=True):
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", name + ".py")] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s" % (name, proc.returncode, proc.stderr[-3000:]))
    return proc


def fails(name, *args):
    proc = tool(name, *args, check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


@pytest.mark.parametrize("name", TOOLS)
def test_help(name):
    out = tool(name, "--help").stdout
    assert out.startswith("usage: %s.py" % name)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """JPEGs and PNGs of different sizes and a `path label` list."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.RandomState(0)
    lines = []
    for i in range(24):
        h, w = rng.randint(40, 90, 2)
        image = cv2.resize(rng.randint(0, 255, (6, 6, 3)).astype(np.uint8), (int(w), int(h)))
        name = "img/%02d.%s" % (i, "png" if i % 3 == 0 else "jpg")
        os.makedirs(str(root / "img"), exist_ok=True)
        cv2.imwrite(str(root / name), image)
        lines.append("%s %d\n" % (name, i % 5))
    (root / "list.txt").write_text("".join(lines))
    return root


def test_build_image_lmdb_matches_convert_imageset(images, tmp_path):
    stock, ours = str(tmp_path / "stock"), str(tmp_path / "ours")
    subprocess.run([caffe_tool("convert_imageset"), "-resize_height", "32", "-resize_width", "24",
                    str(images) + "/", str(images / "list.txt"), stock],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tool("build_image_lmdb", str(images), str(images / "list.txt"), ours,
         "--resize-height", "32", "--resize-width", "24", "--processes", "2",
         "--mean", str(tmp_path / "mean.binaryproto"))
    stock_records, our_records = lmdb_io.read_datums(stock), list(lmdb_io.read_datums(ours))
    for (key, want), (our_key, got) in zip(stock_records, our_records):
        assert key == our_key
        # Same fields, same values, same bytes: convert_imageset's Datum exactly.
        assert got.SerializeToString() == want.SerializeToString(), key
    assert len(our_records) == 24
    stock_mean = str(tmp_path / "stock_mean.binaryproto")
    subprocess.run([caffe_tool("compute_image_mean"), stock, stock_mean], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tool("compute_mean", ours, str(tmp_path / "tool_mean.binaryproto"))
    for path in ("mean.binaryproto", "tool_mean.binaryproto"):
        np.testing.assert_allclose(blob_io.read_blobproto(str(tmp_path / path)),
                                   blob_io.read_blobproto(stock_mean), atol=1e-3)


def test_build_image_lmdb_encoded_like_convert_imageset(images, tmp_path):
    stock, ours = str(tmp_path / "stock"), str(tmp_path / "ours")
    subprocess.run([caffe_tool("convert_imageset"), "-encoded", "-encode_type", "png", "-shuffle",
                    str(images) + "/", str(images / "list.txt"), stock],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tool("build_image_lmdb", str(images), str(images / "list.txt"), ours, "--encoded",
         "--encode-type", "png", "--shuffle")
    stock_records = dict(lmdb_io.read_datums(stock))
    our_records = list(lmdb_io.read_datums(ours))
    assert len(our_records) == 24
    assert sorted(k.split("_", 1)[1] for k, _ in our_records) == sorted(
        k.split("_", 1)[1] for k in stock_records)
    by_path = {k.split("_", 1)[1]: d for k, d in stock_records.items()}
    for key, datum in our_records:
        want = by_path[key.split("_", 1)[1]]
        assert set(f.name for f, _ in datum.ListFields()) == set(f.name for f, _ in want.ListFields())
        assert datum.encoded and datum.label == want.label
        if key.endswith(".png"):   # a PNG's own bytes are stored as they are
            assert datum.data == want.data
        decoded = [cv2.imdecode(np.frombuffer(d.data, np.uint8), cv2.IMREAD_COLOR) for d in (datum, want)]
        assert np.array_equal(*decoded), key


def test_build_image_lmdb_bad_images(images, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("img/01.jpg 1\nimg/missing.jpg 2\n")
    db = str(tmp_path / "db")
    err = fails("build_image_lmdb", str(images), str(listing), db)
    assert "1 of 2 images are missing, the first: " in err and "img/missing.jpg" in err
    assert not os.path.exists(db) and not os.path.exists(db + ".tmp")
    out = tool("build_image_lmdb", str(images), str(listing), db, "--skip-bad").stdout
    assert "1 images -> " in out and "skipped img/missing.jpg" in out
    listing.write_text("img/01.jpg 1\nimg/02.jpg 7\n")
    err = fails("build_image_lmdb", str(images), str(listing), str(tmp_path / "db2"), "--num-classes", "5")
    assert "list.txt:2: label 7 of img/02.jpg is outside 0..4" in err
    listing.write_text("img/01.jpg one\n")
    assert "list.txt:1: label 'one' of img/01.jpg is not an integer (ASCII digits only)" in fails(
        "build_image_lmdb", str(images), str(listing), str(tmp_path / "db3"))
    listing.write_text("\n")
    assert "the image list is empty" in fails("build_image_lmdb", str(images), str(listing),
                                              str(tmp_path / "db4"))


def test_build_label_lmdb_and_inspect(tmp_path):
    listing = tmp_path / "labels.txt"
    listing.write_text("a.jpg 3\nb.jpg -1\nc.jpg 3\n")
    db = str(tmp_path / "labels")
    tool("build_label_lmdb", str(listing), db, "--num-classes", "4")
    records = list(lmdb_io.read_datums(db))
    assert [k for k, _ in records] == ["00000000", "00000001", "00000002"]
    assert [(d.channels, d.height, d.width, list(d.float_data)) for _, d in records] == [
        (1, 1, 1, [3.0]), (1, 1, 1, [-1.0]), (1, 1, 1, [3.0])]
    out = tool("inspect_lmdb", db).stdout
    assert "3 records (1x1x1: 3), keys 00000000 .. 00000002" in out and "labels -1:1 3:2" in out
    listing.write_text("a.jpg 3\nb.jpg 4\n")
    assert "labels.txt:2: label 4 is outside -1..3" in fails("build_label_lmdb", str(listing),
                                                            str(tmp_path / "x"), "--num-classes", "4")
    listing.write_text("a.jpg three\n")
    assert "labels.txt:1: label 'three' is not an integer" in fails(
        "build_label_lmdb", str(listing), str(tmp_path / "x"))
    assert "no LMDB at" in fails("inspect_lmdb", str(tmp_path / "nothing"))


def test_noise_matrix_c_and_noise_type_tools(tmp_path):
    rng = np.random.RandomState(0)
    keys = ["img/%03d.jpg" % i for i in range(400)]
    labels = rng.randint(0, 4, 400)
    (tmp_path / "clean.txt").write_text("".join("%s %d\n" % kl for kl in zip(keys, labels)))
    out = tool("synthesize_noise", str(tmp_path / "clean.txt"), str(tmp_path / "noisy.txt"),
               "--num-classes", "4", "--noise-level", "0.4",
               "--matrix-q", str(tmp_path / "q.binaryproto")).stdout
    achieved = float(re.search(r"400 labels, noise level asked 0\.400, achieved ([0-9.]+)", out).group(1))
    assert abs(achieved - 0.4) < 0.08
    q = blob_io.read_blobproto(str(tmp_path / "q.binaryproto"))[0, 0]
    np.testing.assert_allclose(np.diag(q), 0.6, atol=1e-6)
    assert np.loadtxt(str(tmp_path / "q.txt")).shape == (4, 4)
    noisy = [int(line.split()[1]) for line in open(str(tmp_path / "noisy.txt"))]

    out = tool("estimate_matrix_c", str(tmp_path / "clean.txt"), str(tmp_path / "noisy.txt"),
               str(tmp_path / "c.binaryproto"), "--num-classes", "4").stdout
    assert "C from 400 pairs" in out
    from test_noise_and_matrix_c import reference_matrix_c
    expected = reference_matrix_c(labels, noisy, 4)
    c = blob_io.read_blobproto(str(tmp_path / "c.binaryproto"))
    assert c.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(c[0, 0], expected, atol=1e-6)

    tool("assign_noise_types", str(tmp_path / "clean.txt"), str(tmp_path / "noisy.txt"),
         str(tmp_path / "c.binaryproto"), str(tmp_path / "ntype.txt"))
    types = [int(line.split()[1]) for line in open(str(tmp_path / "ntype.txt"))]
    want = [0 if y == n else 2 if expected[n, y] >= 1 / 3. else 1 for y, n in zip(labels, noisy)]
    assert types == want

    # A class that is never mislabelled is reported, and its column stays zero.
    (tmp_path / "same.txt").write_text("a 0\nb 1\nc 0\n")
    (tmp_path / "other.txt").write_text("a 0\nb 0\nc 0\n")
    out = tool("estimate_matrix_c", str(tmp_path / "same.txt"), str(tmp_path / "other.txt"),
               str(tmp_path / "c2.binaryproto"), "--num-classes", "3").stdout
    assert "classes never seen mislabelled (no confusing noise, C column all zero): 0, 2" in out
    assert "NOISE_LEVEL must be in [0, 1], got 1.5" in fails(
        "synthesize_noise", str(tmp_path / "clean.txt"), str(tmp_path / "n2.txt"),
        "--num-classes", "4", "--noise-level", "1.5")
    first = int(np.flatnonzero(labels == 3)[0])
    assert "clean.txt:%d: label 3 of img/%03d.jpg is outside 0..2" % (first + 1, first) in fails(
        "synthesize_noise", str(tmp_path / "clean.txt"), str(tmp_path / "n2.txt"), "--num-classes", "3")
    assert "no key of" in fails("estimate_matrix_c", str(tmp_path / "same.txt"),
                                str(tmp_path / "noisy.txt"), str(tmp_path / "c3.binaryproto"),
                                "--num-classes", "4")


SOURCE_NET = """input: "data" input_shape { dim: 2 dim: 5 }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 } } }
"""
TARGET_NET = """input: "data" input_shape { dim: 2 dim: 5 }
layer { name: "ip1_clean" type: "InnerProduct" bottom: "data" top: "ip1_clean"
  inner_product_param { num_output: 3 } }
layer { name: "ip1_ntype" type: "InnerProduct" bottom: "data" top: "ip1_ntype"
  inner_product_param { num_output: 3 } }
layer { name: "ip2_clean" type: "InnerProduct" bottom: "ip1_clean" top: "ip2_clean"
  inner_product_param { num_output: 4 } }
"""


def test_copy_params(tmp_path):
    import caffe
    caffe.set_mode_cpu()
    (tmp_path / "source.prototxt").write_text(SOURCE_NET)
    (tmp_path / "target.prototxt").write_text(TARGET_NET)
    source = caffe.Net(str(tmp_path / "source.prototxt"), caffe.TEST)
    source.save(str(tmp_path / "source.caffemodel"))
    out = str(tmp_path / "init.caffemodel")
    args = [str(tmp_path / "source.prototxt"), str(tmp_path / "source.caffemodel"),
            str(tmp_path / "target.prototxt")]
    tool("copy_params", *(args + [out, "--map", "ip1:ip1_clean", "ip1:ip1_ntype"]))
    target = caffe.Net(str(tmp_path / "target.prototxt"), caffe.TEST, weights=out)
    for layer in ("ip1_clean", "ip1_ntype"):
        for i in range(2):
            np.testing.assert_array_equal(target.params[layer][i].data, source.params["ip1"][i].data)
    assert target.params["ip1_clean"][0].data.any()
    # A second call adds to the first one's output.
    tool("copy_params", *(args + [str(tmp_path / "init2.caffemodel"), "--map", "ip2:ip2_clean",
                                  "--target-weights", out]))
    target = caffe.Net(str(tmp_path / "target.prototxt"), caffe.TEST,
                       weights=str(tmp_path / "init2.caffemodel"))
    np.testing.assert_array_equal(target.params["ip2_clean"][0].data, source.params["ip2"][0].data)
    np.testing.assert_array_equal(target.params["ip1_ntype"][0].data, source.params["ip1"][0].data)

    err = fails("copy_params", *(args + [str(tmp_path / "x.caffemodel"), "--map", "ip1:ip2_clean"]))
    assert "blob 0 of layer 'ip1' is (3, 5) but" in err
    assert "target.prototxt's 'ip2_clean' needs (4, 3)" in err
    err = fails("copy_params", *(args + [str(tmp_path / "x.caffemodel"), "--map", "conv1:ip1_clean"]))
    assert "layer 'conv1' has no parameters in" in err and "(layers with parameters: ip1, ip2)" in err
    assert "missing file" in fails("copy_params", *(args[:1] + [str(tmp_path / "none.caffemodel")]
                                                    + args[2:] + [out, "--map", "ip1"]))
    assert not os.path.exists(str(tmp_path / "x.caffemodel"))


def test_make_lmdb_cli(tmp_path):
    exp = str(tmp_path / "exp")
    out = tool("make_lmdb", "digits", "--exp", exp, "--num-clean", "200", "--noise-level", "0.3").stdout
    # 200 clean digits: 160 trained on, the last fifth held out.
    assert "summary of digits" in out and "clean_train                   160 records" in out
    assert "ntype_test_label_noisy         40 records" in out
    assert "noise rate: asked 0.300" in out and "matrix C [noisy, true]:" in out
    assert "up to date" in tool("make_lmdb", "digits", "--exp", exp, "--num-clean", "200",
                                "--noise-level", "0.3").stdout
    assert "make_lmdb: NOISE_LEVEL must be in [0, 1], got -0.5" in fails(
        "make_lmdb", "digits", "--exp", exp, "--noise-level", "-0.5")
    assert "make_lmdb: DATA_ROOT=%s does not exist" % os.path.join(exp, "nowhere") in fails(
        "make_lmdb", "clothing1M", "--exp", exp, "--data-root", os.path.join(exp, "nowhere"))
    assert "make_lmdb: digits does not take UPSAMPLE" in fails(
        "make_lmdb", "digits", "--exp", exp, "--upsample", "2")
