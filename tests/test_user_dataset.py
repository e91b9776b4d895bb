"""A user's own noisy dataset, as a user brings it: scikit-learn's digits written as PNG files
in Clothing1M's layout with a dataset.yaml, in a folder outside the repository; make lmdb,
make train, make relabel, make compare and `caffe test` from a plain shell with EXP there.
Nothing in the checkout may change. And a bad dataset.yaml is one line naming the file and
the key."""
import json
import os
import re
import subprocess

import numpy as np
import pytest
from helpers import PYTHON, REPO, VENV_BIN, run_plain

from noisy_label import datasets, paths
from noisy_label.datasets import folder

pytestmark = [pytest.mark.caffe, pytest.mark.slow]

NAME = "handwritten"
NOISE = 0.4          # share of noisy labels flipped to another class, class-dependent
YAML = """\
# scikit-learn's digits, 8x8 gray PNGs, with noisy labels on most of them
num_classes: 10
tower: digits
resize: [8, 8]
gray: true
epochs: {clean: 40, ntype: 10, noisy_label_loss_stage1: 4, noisy_label_loss_stage2: 2}
"""


def write_folder(root, yaml_text=YAML, seed=0):
    """sklearn's 1,797 digits as images/<class>/<n>.png with the layout's six text files: 300
    clean test keys, 150 clean val, 200 clean train (both also noisy-labelled: the pairs C
    comes from), the other 1,147 noisy train only. Returns {key: true label}."""
    import cv2
    from sklearn.datasets import load_digits
    digits = load_digits()
    rng = np.random.RandomState(seed)
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target
    # Class-dependent noise: each class goes to one confusable class (y -> y + 1 mod 10).
    noisy = np.where(rng.rand(len(labels)) < NOISE, (labels + 1) % 10, labels)
    keys = []
    for i, (image, label) in enumerate(zip(images, labels)):
        key = "images/%d/%04d.png" % (label, i)
        os.makedirs(os.path.join(root, os.path.dirname(key)), exist_ok=True)
        assert cv2.imwrite(os.path.join(root, key), image)
        keys.append(key)
    order = rng.permutation(len(keys))
    split = {"clean_test": order[:300], "clean_val": order[300:450], "clean_train": order[450:650],
             "noisy_train": order[650:]}
    clean = np.concatenate([split["clean_test"], split["clean_val"], split["clean_train"]])
    paired = np.concatenate([split["clean_val"], split["clean_train"], split["noisy_train"]])

    def write(name, lines):
        with open(os.path.join(root, name), "w") as f:
            f.write("".join(line + "\n" for line in lines))
    write("clean_label_kv.txt", ["%s %d" % (keys[i], labels[i]) for i in clean])
    write("noisy_label_kv.txt", ["%s %d" % (keys[i], noisy[i]) for i in paired])
    for split_name, idx in split.items():
        write(split_name + "_key_list.txt", [keys[i] for i in idx])
    write("dataset.yaml", [yaml_text])
    return dict(zip(keys, labels))


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def git_status():
    return subprocess.run(["git", "status", "--porcelain"], cwd=REPO, stdout=subprocess.PIPE,
                          text=True, check=True).stdout


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """The four commands of the README's "Your own noisy dataset" from a plain shell in a
    directory outside the repository, EXP and the data there too."""
    home = str(tmp_path_factory.mktemp("user"))
    exp = os.path.join(home, "exp")
    data = os.path.join(home, "data", NAME)        # not under EXP: DATA_ROOT names it
    write_folder(data)
    before = git_status()
    make = ["make", "-s", "-C", REPO]
    env = dict(EXP=exp, OPENBLAS_NUM_THREADS="1")
    out = {"lmdb": ok(run_plain(make + ["lmdb", "DATASET=" + NAME, "DATA_ROOT=" + data],
                                cwd=home, **env))}
    # make train finds the dataset by the copy make lmdb kept: no DATA_ROOT any more.
    out["train"] = ok(run_plain(make + ["train", "DATASET=" + NAME], cwd=home, **env))
    out["relabel"] = ok(run_plain(make + ["relabel", "DATASET=" + NAME], cwd=home, **env))
    out["compare"] = ok(run_plain(make + ["compare", "DATASET=" + NAME, "SEEDS=1"], cwd=home,
                                  **env))
    return {"home": home, "exp": exp, "data": data, "out": out, "git_before": before}


def test_make_lmdb_builds_the_layout_with_its_yaml(workflow):
    out, db = workflow["out"]["lmdb"], paths.db_dir(NAME, workflow["exp"])
    assert "clean_train" in out and "noise rate of the 350 clean train/val keys" in out
    for db_name in ("clean_train", "clean_val", "clean_test", "ntype_train", "ntype_val",
                    "mixed_train_images", "mixed_train_label_noisy"):
        assert os.path.isdir(os.path.join(db, db_name)), db_name
    assert os.path.isfile(os.path.join(db, "matrix_c.binaryproto"))
    with open(os.path.join(db, "clean_test.txt")) as f:
        assert sum(1 for _ in f) == 300
    # The copy make lmdb kept names where the data is.
    import yaml
    copy = yaml.safe_load(open(os.path.join(db, "dataset.yaml")))
    assert copy["data_root"] == workflow["data"] and copy["num_classes"] == 10
    # Gray 8x8 records, as the yaml asked.
    from noisy_label.io import lmdb_io
    _, datum = next(lmdb_io.read_datums(os.path.join(db, "clean_test")))
    assert (datum.channels, datum.height, datum.width) == (1, 8, 8)


def test_make_train_is_above_chance_with_derived_schedules(workflow):
    out, exp = workflow["out"]["train"], workflow["exp"]
    accuracy = float(re.search(r"\[%s\] test accuracy: ([0-9.]+)" % NAME, out).group(1))
    assert accuracy > 0.5, out[-2000:]        # chance is 0.1
    # The prototxts went under EXP, sized from the records: 300 test images in batches of
    # 100 (the smallest tested set, ntype_val: 150 pairs, allows 100), 40 epochs of 200 clean
    # images at 50 a batch = 160 iterations; stage 2 counts on from stage 1.
    prototxt = os.path.join(exp, "prototxt", NAME)
    solver = open(os.path.join(prototxt, "clean_solver.prototxt")).read()
    assert "max_iter: 160\n" in solver and "test_iter: 2\n" in solver, solver
    stage1 = open(os.path.join(prototxt, "noisy_label_loss_solver.stage1.prototxt")).read()
    stage2 = open(os.path.join(prototxt, "noisy_label_loss_solver.stage2.prototxt")).read()
    mixed = 2 * 1147      # UPSAMPLE=1: as many clean train records (200, repeated) as noisy
    first = int(np.ceil(4 * mixed / 50.0))
    assert "max_iter: %d\n" % first in stage1
    assert "max_iter: %d\n" % (first + int(np.ceil(2 * mixed / 50.0))) in stage2
    assert not os.path.exists(os.path.join(REPO, "prototxt", NAME))


def test_make_relabel_writes_its_summary(workflow):
    out, exp = workflow["out"]["relabel"], workflow["exp"]
    assert re.search(r"relabelled 2294 records \(1147 with a noisy label, 1147 with a clean "
                     r"one\)", out), out
    summary = json.load(open(os.path.join(paths.db_dir(NAME, exp), "relabel", "summary.json")))
    assert summary["records"] == 2294 and summary["flagged"] > 0


def test_make_compare_tabulates_every_method(workflow):
    exp = workflow["exp"]
    table = open(os.path.join(paths.log_dir(NAME, exp), "compare.md")).read()
    for method in ("clean only", "noisy as truth", "ours", "forward correction (estimated Q)",
                   "bootstrapping, soft"):
        assert method in table, table
    results = json.load(open(os.path.join(paths.log_dir(NAME, exp), "compare.json")))
    assert results["chance"] == pytest.approx(0.1)
    ours = results["methods"]["ours"]["seeds"]["1"]
    assert ours > 0.5, table


def test_caffe_test_as_a_user_types_it(workflow):
    exp = workflow["exp"]
    model = os.path.join(exp, "prototxt", NAME, "noisy_label_loss_test.prototxt")
    weights = os.path.join(paths.snapshot_dir(NAME, exp), "noisy_label_loss_iter_%d.caffemodel"
                           % (int(np.ceil(4 * 2294 / 50.0)) + int(np.ceil(2 * 2294 / 50.0))))
    proc = run_plain([os.path.join(VENV_BIN, "caffe"), "test", "-model", model, "-weights",
                      weights, "-iterations", "3"], cwd=workflow["home"])
    out = ok(proc)
    assert float(re.findall(r"accuracy = ([0-9.]+)", out)[-1]) > 0.5


def test_the_checkout_is_unchanged(workflow):
    assert git_status() == workflow["git_before"]


def test_an_image_setting_changed_after_make_lmdb_is_refused(workflow):
    """The yaml's resize edited after make lmdb: make train says to rebuild, in one line,
    instead of training nets sized for images the LMDBs do not hold."""
    yaml_path = os.path.join(workflow["data"], "dataset.yaml")
    original = open(yaml_path).read()
    try:
        with open(yaml_path, "w") as f:
            f.write(original.replace("resize: [8, 8]", "resize: [12, 12]"))
        proc = run_plain(["make", "-s", "-C", REPO, "train", "DATASET=" + NAME,
                          "DATA_ROOT=" + workflow["data"]], cwd=workflow["home"],
                         EXP=workflow["exp"])
        assert proc.returncode != 0 and "Traceback" not in proc.stdout
        assert re.search(r"dataset.yaml: resize changed since make lmdb wrote .* \(resize "
                         r"\[8, 8\] there\): run make lmdb DATASET=%s" % NAME, proc.stdout), \
            proc.stdout
    finally:
        with open(yaml_path, "w") as f:
            f.write(original)


# ---- a bad dataset.yaml, or data that does not match it: one line --------------------------

BAD = [
    ("tower: digits\n", r"dataset.yaml: num_classes is required \(an integer of at least 2\)"),
    ("num_classes: 10\ntower: resnet\n", r"dataset.yaml:2: tower: 'resnet': tower must be one "
                                         r"of digits \| cifar_quick \| caffenet"),
    ("num_classes: 10\ntower: digits\nbatch: 5\n", r"dataset.yaml:3: batch: unknown key; the "
                                                   r"keys are: num_classes, tower"),
    ("num_classes: ten\ntower: digits\n", r"dataset.yaml:1: num_classes: 'ten': num_classes "
                                          r"must be an integer of at least 2"),
    ("num_classes: 10\ntower: digits\nresize: 8\n", r"dataset.yaml:3: resize: 8: resize must "
                                                    r"be \[height, width\]"),
    ("num_classes: 10\ntower: digits\nepochs: {clen: 3}\n", r"dataset.yaml:3: epochs: .*stages "
                                                            r"clean, ntype"),
    ("num_classes: 10\ntower: digits\ngray: yes please\n", r"dataset.yaml:3: gray: 'yes please'"),
    ("num_classes: 10\ntower: [digits\n", r"dataset.yaml:3: not YAML"),
    ("num_classes: 10\ntower: caffenet\nresize: [64, 64]\ncrop: 0\n",
     r"dataset.yaml:3: resize: the caffenet tower needs 227x227 input or more"),
    # The data against the yaml: a label outside 0..num_classes-1.
    ("num_classes: 5\ntower: digits\nresize: [8, 8]\n",
     r"clean_label_kv.txt:\d+: label \d of images/\d/\d+.png is outside 0..4 \(num_classes: 5 "
     r"in .*dataset.yaml\)"),
]


@pytest.fixture(scope="module")
def folder_tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("bad"))
    write_folder(root)
    return root


@pytest.mark.parametrize("text,expected", BAD, ids=[
    "no num_classes", "unknown tower", "unknown key", "wrong type", "resize scalar",
    "unknown stage", "gray string", "not yaml", "caffenet too small", "label out of range"])
def test_a_bad_dataset_yaml_is_one_line(folder_tree, tmp_path, text, expected):
    with open(os.path.join(folder_tree, "dataset.yaml"), "w") as f:
        f.write(text)
    proc = run_plain([PYTHON, os.path.join(REPO, "tools", "make_lmdb.py"), "mine",
                      "--data-root", folder_tree, "--exp", str(tmp_path)], cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stdout
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stdout, proc.stdout
    assert lines[0].startswith("make_lmdb: ") and re.search(expected, lines[0]), lines[0]
    assert not os.path.exists(paths.db_dir("mine", str(tmp_path), )) or \
        not os.listdir(paths.db_dir("mine", str(tmp_path)))


def test_an_unknown_solver_field_is_one_line_at_make_train(folder_tree, tmp_path):
    """Solver fields are checked against the stage tables' own list when the dataset
    registers, before anything is trained."""
    with open(os.path.join(folder_tree, "dataset.yaml"), "w") as f:
        f.write("num_classes: 10\ntower: digits\nschedules: {clean: {max_iters: 5}}\n")
    proc = run_plain([PYTHON, os.path.join(REPO, "tools", "run_stages.py"), "mine",
                      "--data-root", folder_tree, "--exp", str(tmp_path)], cwd=str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stdout, proc.stdout
    assert re.match(r"run_stages: .*dataset.yaml: schedules: clean: unknown solver field "
                    r"max_iters; fields: base_lr, ", proc.stdout), proc.stdout


def test_an_unknown_dataset_says_where_it_looked(tmp_path):
    proc = run_plain(["make", "-s", "-C", REPO, "lmdb", "DATASET=nowhere"], cwd=str(tmp_path),
                     EXP=str(tmp_path))
    assert proc.returncode != 0
    assert re.search(r"unknown dataset 'nowhere': not one of the built-in cifar10, clothing1M, "
                     r"digits, and no dataset.yaml in .*datasets/nowhere", proc.stdout), proc.stdout


def test_a_dataset_option_it_does_not_take_is_refused(tmp_path):
    """make lmdb passes every NAME=value on as a dataset option: a misspelt one is an error,
    not silently ignored."""
    proc = run_plain(["make", "-s", "-C", REPO, "lmdb", "DATASET=digits", "NOISE_LEVL=0.3"],
                     cwd=str(tmp_path), EXP=str(tmp_path))
    assert proc.returncode != 0
    assert "make_lmdb: digits does not take NOISE_LEVL (it takes: NOISE_LEVEL, NUM_CLEAN)" \
        in proc.stdout, proc.stdout
    proc = run_plain(["make", "-s", "-C", REPO, "lmdb", "DATASET=digits", "NOISE_LEVEL=high"],
                     cwd=str(tmp_path), EXP=str(tmp_path))
    assert "make_lmdb: NOISE_LEVEL='high': not a number" in proc.stdout, proc.stdout


# ---- the derivations, without Caffe ------------------------------------------------------


@pytest.mark.parametrize("bad", ["missing", "schedule"])
def test_registration_checks_the_schedules(tmp_path, bad):
    """A dataset whose schedules miss a stage of its workflow, or name one it lacks, is
    refused when it registers (the stage tables check every dataset)."""
    from noisy_label.experiments import stages
    ds = datasets.get_dataset("digits")
    broken = type("Broken", (type(ds),), {"name": "broken", "schedules": dict(
        ds.schedules, **({"no_such_stage": {}} if bad == "schedule" else {}))})()
    if bad == "missing":
        broken.schedules = {k: v for k, v in ds.schedules.items() if k != "ntype"}
    with pytest.raises(ValueError, match="schedules (lack ntype|name no stage no_such_stage)"):
        stages.check_dataset(broken)


def test_derived_schedules_follow_the_records():
    counts = {paths.CLEAN_TRAIN: 1000, paths.NTYPE_TRAIN: 500, paths.MIXED_IMAGES: 20000}
    schedules = folder.derive_schedules(counts, 100, 0.001, folder.EPOCHS,
                                        {"ntype": {"base_lr": 0.0001}})
    assert schedules["clean"]["max_iter"] == 400 and schedules["clean"]["stepsize"] == 267
    assert schedules["ntype"]["base_lr"] == 0.0001 and schedules["ntype"]["max_iter"] == 125
    first = schedules["noisy_label_loss_stage1"]
    assert first["max_iter"] == 1280 and first["stepsize"] == 640
    assert schedules["noisy_label_loss_stage2"]["max_iter"] == 1280 + 760
    assert schedules["noisy_label_loss_stage2"]["stepsize"] == 640


def test_find_looks_in_the_experiment_roots_datasets_folder(tmp_path):
    """A folder at $EXP/datasets/<name> needs no DATA_ROOT; a built-in name is refused."""
    exp = str(tmp_path / "exp")
    root = os.path.join(paths.data_root("shirts", exp))
    os.makedirs(root)
    with open(os.path.join(root, "dataset.yaml"), "w") as f:
        f.write("num_classes: 3\ntower: caffenet\nweights: imagenet.caffemodel\n")
    try:
        ds = datasets.find("shirts", exp)
        assert ds.data_root == root and ds.num_classes == 3 and not ds.builtin
        assert ds.transform == {"crop_size": 227, "mirror": True} and ds.train_batch == 128
        assert ds.initial_weights == (os.path.join(root, "imagenet.caffemodel"), None)
        assert datasets.get_dataset("shirts") is ds
    finally:
        datasets.unregister("shirts")
    with pytest.raises(ValueError, match="'digits' is a built-in dataset's name"):
        datasets.add(folder.load(os.path.join(root, "dataset.yaml"), "digits"))


def test_stage_two_must_train_past_stage_one():
    counts = {paths.CLEAN_TRAIN: 100, paths.NTYPE_TRAIN: 50, paths.MIXED_IMAGES: 1000}
    with pytest.raises(ValueError, match="noisy_label_loss_stage2's max_iter 10 must be above "
                                         "stage 1's \\(128\\)"):
        folder.derive_schedules(counts, 50, 0.01, folder.EPOCHS,
                                {"noisy_label_loss_stage2": {"max_iter": 10}})
