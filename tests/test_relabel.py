"""make relabel on the digits pipeline (short runs), as users type it: the outputs align with
the mixed set record by record, clean labels are kept, the corrected labels beat the noisy
ones against the truth, the threshold moves the flags, and bad input is one line."""
import csv
import json
import os

import numpy as np
import pytest
from helpers import PYTHON, REPO, run_plain

from noisy_label import paths
from noisy_label.experiments import relabel
from noisy_label.io import imageset, lmdb_io

pytestmark = [pytest.mark.caffe, pytest.mark.slow]

SET = "max_iter=300 snapshot=100 test_interval=100"


def make(target, exp, *args, cwd=None):
    return run_plain(["make", "-s", "-C", REPO, target, "DATASET=digits", "EXP=" + exp,
                      "SET=" + SET] + list(args), cwd=cwd or os.path.dirname(exp))


@pytest.fixture(scope="module")
def relabelled(tmp_path_factory):
    exp = str(tmp_path_factory.mktemp("relabel") / "exp")
    os.makedirs(exp)
    for target in ("lmdb", "train"):
        proc = make(target, exp)
        assert proc.returncode == 0, proc.stdout[-3000:]
    proc = make("relabel", exp)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return exp, proc.stdout


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_outputs_align_with_the_mixed_set(relabelled):
    exp, out = relabelled
    db = paths.db_dir("digits", exp)
    out_dir = os.path.join(db, paths.RELABEL)
    assert "against the truth" in out and "written: %s" % out_dir in out
    images = list(lmdb_io.read_datums(paths.lmdb_path("digits", paths.MIXED_IMAGES, exp)))
    rows = read_csv(os.path.join(out_dir, "labels.csv"))
    labels = list(lmdb_io.read_datums(os.path.join(out_dir, paths.CORRECTED_LABELS)))
    corrected = list(lmdb_io.read_datums(os.path.join(out_dir, paths.CORRECTED_TRAIN)))
    assert len(rows) == len(images) == len(labels) == len(corrected) == 1277
    noisy = imageset.read_label_list(paths.list_file("digits", paths.MIXED_LABELS["noisy"], exp))
    clean = imageset.read_label_list(paths.list_file("digits", paths.MIXED_LABELS["clean"], exp))
    for i, (row, (key, image), (label_key, label), (image_key, fixed)) in enumerate(
            zip(rows, images, labels, corrected)):
        value = int(row["corrected_label"])
        assert int(row["noisy_label"]) == noisy[i]
        assert label_key == row["key"] == lmdb_io.label_key(i) and image_key == key
        assert lmdb_io.datum_label(label) == value == fixed.label
        assert fixed.data == image.data                     # the same pixels, relabelled
        if clean[i] != -1:                                  # a clean label is kept
            assert value == clean[i] and row["flagged"] == "0" and row["p_label_correct"] == ""
    issues = read_csv(os.path.join(out_dir, "label_issues.csv"))
    assert len(issues) == sum(row["flagged"] == "1" for row in rows) > 0
    p = [float(row["p_label_correct"]) for row in issues]
    with open(os.path.join(out_dir, "summary.json")) as f:
        threshold = json.load(f)["threshold"]
    assert p == sorted(p) and max(p) < threshold            # most likely wrong first
    with open(os.path.join(out_dir, "confusion.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_corrected_labels_beat_the_noisy_ones(relabelled):
    exp, _ = relabelled
    with open(os.path.join(paths.db_dir("digits", exp), paths.RELABEL, "summary.json")) as f:
        summary = json.load(f)
    truth = summary["against_truth"]
    assert truth["accuracy_corrected"] > truth["accuracy_noisy"] + 0.2, truth
    assert truth["flag_precision"] > 0.5 and truth["flag_recall"] > 0.5, truth
    assert sum(map(sum, summary["noisy_to_corrected"])) == summary["noisy_labelled"] == 1197


def test_the_default_threshold_comes_from_the_held_out_pairs_alone(relabelled):
    """THRESHOLD=auto: the best F1 on the 20 held-out pairs (no net trained on them), printed
    with what they predict beside what the truth shows; chosen from those pairs' posterior
    alone, never from the truth of the mixed set or the test set."""
    from noisy_label.experiments import pipeline
    exp, out = relabelled
    db = paths.db_dir("digits", exp)
    with open(os.path.join(db, paths.RELABEL, "summary.json")) as f:
        summary = json.load(f)
    assert summary["rule"] == "F1" and summary["held_out"]["pairs"] == 20
    assert "chosen on the held-out pairs by F1" in out
    assert "held-out pairs (20, %d with a wrong noisy label; not trained on) predict: flags " \
        "precision" % summary["held_out"]["wrong"] in out
    assert "against the truth" in out
    # The same choice recomputed from the held-out pairs' posterior alone.
    experiment = pipeline.Experiment("digits", exp, seed=1, settings=SET)
    p_correct, wrong = relabel.held_out_posterior(experiment, summary["weights"])
    assert len(p_correct) == 20 and wrong.sum() == summary["held_out"]["wrong"]
    assert relabel.choose_threshold(p_correct, wrong)["threshold"] == summary["threshold"]
    # What the choice sees: the posterior net over the held-out pairs reads their images and
    # their two label LMDBs, nothing else (not the test set, not the mixed set's truth); the
    # choice itself is a function of those pairs alone (test_thresholds.py).
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    from noisy_label.datasets.synthetic import HELD_OUT_LABELS
    net = text_format.Merge(open(os.path.join(db, paths.RELABEL, "posterior_held_out.prototxt"))
                            .read(), caffe_pb2.NetParameter())
    sources = {layer.data_param.source for layer in net.layer if layer.type == "Data"}
    assert sources == {paths.lmdb_path("digits", name, exp) for name in
                       [paths.NTYPE_TEST] + list(HELD_OUT_LABELS.values())}
    seen = []
    real = relabel.resolve_threshold
    relabel.resolve_threshold = lambda spec, held_out: seen.append(held_out) or real(spec, held_out)
    try:
        again = relabel.relabel(experiment, "auto")
    finally:
        relabel.resolve_threshold = real
    assert again["threshold"] == summary["threshold"]
    np.testing.assert_array_equal(seen[0][0], p_correct)
    np.testing.assert_array_equal(seen[0][1], wrong)
    proc = make("relabel", exp, "THRESHOLD=precision:0.9")
    assert proc.returncode == 0 and "chosen on the held-out pairs by precision >= 0.9" in proc.stdout


def test_the_threshold_moves_the_flags(relabelled):
    exp, _ = relabelled
    flagged = []
    for threshold in ("0.1", "0.9"):
        proc = make("relabel", exp, "THRESHOLD=" + threshold)
        assert proc.returncode == 0, proc.stdout[-2000:]
        with open(os.path.join(paths.db_dir("digits", exp), paths.RELABEL, "summary.json")) as f:
            summary = json.load(f)
        assert summary["threshold"] == float(threshold)
        flagged.append(summary["flagged"])
    assert flagged[0] < flagged[1]


def test_corrected_labels_and_scores():
    p_label = np.array([[0.7, 0.3], [0.2, 0.8], [0.0, 0.0], [0.45, 0.55]])
    noisy, clean = np.array([0, 0, -1, 1]), np.array([-1, -1, 1, -1])
    corrected, p_correct, flagged = relabel.corrected_labels(p_label, noisy, clean, 0.5)
    assert list(corrected) == [0, 1, 1, 1] and list(flagged) == [False, True, False, False]
    np.testing.assert_allclose(p_correct, [0.7, 0.2, np.nan, 0.55])
    assert list(relabel.corrected_labels(p_label, noisy, clean, 0.6)[2]) == [False, True, False,
                                                                             True]
    scores = relabel.scores(noisy, corrected, flagged, truth=np.array([0, 1, 1, 1]))
    assert scores["accuracy_noisy"] == pytest.approx(2 / 3)
    assert scores["accuracy_corrected"] == 1.0
    assert scores["flag_precision"] == 1.0 and scores["flag_recall"] == 1.0


@pytest.mark.parametrize("threshold", ["1.5", "-0.1", "nan", "x", "precision:2", "best"])
def test_a_bad_threshold_is_one_line_naming_the_option(tmp_path, threshold):
    proc = make("relabel", str(tmp_path / "exp"), "THRESHOLD=" + threshold, cwd=str(tmp_path))
    assert proc.returncode != 0 and "Traceback" not in proc.stdout
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("relabel")]
    assert lines == ["relabel: THRESHOLD must be auto, a number in [0, 1] or precision:<p> with "
                     "p in (0, 1], got %r" % threshold]


def test_missing_lmdbs_and_model_are_one_line(tmp_path):
    exp = str(tmp_path / "exp")
    proc = make("relabel", exp)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout
    assert ("relabel: [digits] no LMDBs in %s: run make lmdb DATASET=digits first"
            % paths.db_dir("digits", exp)) in proc.stdout
    assert make("lmdb", exp).returncode == 0
    proc = make("relabel", exp)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout
    assert "relabel: [digits] relabel needs the trained model" in proc.stdout
    assert "run make train DATASET=digits first" in proc.stdout


def test_relabel_then_train_is_a_stage_of_the_pipeline(relabelled):
    """make train ran relabel and fine-tuned the clean net on the corrected set; a threshold
    changes no corrected label, so it stays up to date; the report has its row."""
    exp, _ = relabelled
    log = open(os.path.join(paths.log_dir("digits", exp), "relabel_ft_clean.log")).read()
    assert "Optimization Done" in log
    # The mixed images, their labels from make relabel's label LMDB.
    assert os.path.join(paths.RELABEL, paths.CORRECTED_LABELS) in log
    assert paths.lmdb_path("digits", paths.MIXED_IMAGES, exp) in log
    proc = make("train", exp)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "[digits] relabel: done" in proc.stdout
    assert "[digits] relabel_ft_clean: done" in proc.stdout
    report = run_plain([PYTHON, os.path.join(REPO, "tools", "report.py"), "digits", "--exp", exp],
                       cwd=exp)
    assert "| relabel with ours, then train |" in report.stdout


def test_clothing1m_relabels_with_its_caffenet_towers(tmp_path):
    """make relabel builds and runs the Clothing1M posterior net (two CaffeNet towers, the
    stage-2 joint weights) over its mixed set: here random weights on a random fixture."""
    import caffe

    from noisy_label.datasets import random_db
    from noisy_label.experiments import pipeline
    exp = str(tmp_path / "exp")
    random_db.write("clothing1M", exp, num=4)
    experiment = pipeline.Experiment("clothing1M", exp)
    final = experiment.final("noisy_label_loss_stage2")
    os.makedirs(os.path.dirname(final))
    caffe.set_mode_cpu()
    caffe.Net(experiment.solver("noisy_label_loss_stage2").net, caffe.TRAIN).save(final)
    summary = relabel.relabel(experiment, 0.5)
    assert summary["records"] == 4 and summary["noisy_labelled"] == 2
    assert "against_truth" not in summary                     # Clothing1M has no truth file
    rows = read_csv(os.path.join(summary["out_dir"], "labels.csv"))
    assert [int(r["corrected_label"]) >= 0 for r in rows] == [True] * 4
