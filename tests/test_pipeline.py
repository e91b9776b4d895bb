"""The digits workflow end to end with the real `caffe` tool: stages, init, skip, report, logs."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO

from noisy_label import paths
from noisy_label.datasets import random_db
from noisy_label.experiments import caffe_log, pipeline, report, stages

pytestmark = [pytest.mark.caffe, pytest.mark.slow]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One full digits run (seed 1) in a fresh experiment root; returns (experiment, stdout)."""
    exp = str(tmp_path_factory.mktemp("exp"))
    subprocess.check_call([sys.executable, os.path.join(REPO, "tools", "make_lmdb.py"), "digits",
                           "--exp", exp, "--seed", "1"], stdout=subprocess.DEVNULL)
    experiment = pipeline.Experiment("digits", exp, seed=1)
    experiment.run()
    return experiment


def test_every_stage_leaves_its_snapshot_and_log(digits_run):
    for stage in stages.stage_nets("digits", compare=False):
        assert os.path.exists(digits_run.final(stage)), stage
        log = open(os.path.join(digits_run.log_dir, stage + ".log")).read()
        assert "Optimization Done" in log
    assert os.path.exists(digits_run.init_weights())
    test_log = open(os.path.join(digits_run.log_dir, "test.log")).read()
    # caffe test over the 500 test digits: the joint net's clean tower classifies them.
    assert caffe_log.final_test(test_log) > 0.8


def assert_joint_starts_from_the_trained_nets(joint, clean, ntype):
    """Every `*_clean` / `*_ntype` layer of the joint net equals the trained net's layer of the
    same name, else of its unsuffixed name (the original release's init step)."""
    towers = {"_clean": clean, "_ntype": ntype}
    checked = 0
    for layer, blobs in joint.params.items():
        suffix = layer[-6:]
        if suffix not in towers:
            continue
        source = towers[suffix]
        name = layer if layer in source.params else layer[:-len(suffix)]
        assert len(blobs) == len(source.params[name]), layer
        for i, blob in enumerate(blobs):
            np.testing.assert_array_equal(blob.data, source.params[name][i].data,
                                          err_msg="%s <- %s[%d]" % (layer, name, i))
        checked += 1
    return checked


def test_init_copies_both_trained_nets_whole(digits_run):
    import caffe
    def net(stage):
        return digits_run.solver(stage).net
    clean = caffe.Net(net("clean"), caffe.TEST, weights=digits_run.final("clean"))
    ntype = caffe.Net(net("ntype"), caffe.TEST, weights=digits_run.final("ntype"))
    joint = caffe.Net(net("noisy_label_loss"), caffe.TRAIN, weights=digits_run.init_weights())
    # conv1, conv2, ip1, ip2 of each tower, the noise-type head (ip1_ntype, ip2_ntype) included.
    assert assert_joint_starts_from_the_trained_nets(joint, clean, ntype) == 8
    # C is the loss layer's parameter blob, carried in the snapshot.
    assert joint.params["loss_noisy"][0].data.shape == (1, 1, 10, 10)


def test_clothing1m_init_copies_caffenet_towers_whole(tmp_path):
    """Clothing1M's init on two random CaffeNets: fc8_clean and fc6_ntype..fc8_ntype too."""
    import caffe
    random_db.write("clothing1M", str(tmp_path / "exp"), num=2)
    experiment = pipeline.Experiment("clothing1M", str(tmp_path / "exp"))
    os.makedirs(experiment.snapshot_dir)
    for stage in ("clean", "ntype"):
        caffe.Net(experiment.solver(stage).net, caffe.TRAIN).save(experiment.final(stage))
    experiment.init()
    def net(stage):
        return experiment.solver(stage).net
    clean = caffe.Net(net("clean"), caffe.TEST, weights=experiment.final("clean"))
    ntype = caffe.Net(net("ntype"), caffe.TEST, weights=experiment.final("ntype"))
    joint = caffe.Net(net("noisy_label_loss_stage1"), caffe.TRAIN,
                      weights=experiment.init_weights())
    assert assert_joint_starts_from_the_trained_nets(joint, clean, ntype) == 16


def test_a_rerun_skips_finished_stages(digits_run, capsys):
    logs = {stage: os.path.getmtime(os.path.join(digits_run.log_dir, stage + ".log"))
            for stage in stages.stage_nets("digits", compare=False)}
    digits_run.run([stage for stage in stages.stage_nets("digits", compare=False)] + ["init", "relabel"])
    out = capsys.readouterr().out
    assert out.count(": done (") == len(logs) + 2
    for stage, mtime in logs.items():
        assert os.path.getmtime(os.path.join(digits_run.log_dir, stage + ".log")) == mtime


def test_make_train_runs_the_dataset_script(digits_run):
    # make train -> scripts/digits/train.sh -> tools/run_stages.py; every stage is done already.
    proc = subprocess.run(["make", "-s", "train", "DATASET=digits", "EXP=" + digits_run.exp],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    for stage in list(stages.stage_nets("digits", compare=False)) + ["init"]:
        assert "[digits] %s: done" % stage in proc.stdout
    assert "[digits] test accuracy: " in proc.stdout


def test_unknown_stage_and_missing_weights_are_clear_errors(digits_run, tmp_path):
    with pytest.raises(pipeline.StageError, match="unknown stage 'cleen' for digits; stages: clean"):
        digits_run.run(["cleen"])
    empty = pipeline.Experiment("digits", str(tmp_path), seed=1)
    with pytest.raises(pipeline.StageError, match=r"noisy_gt_ft_clean needs .*clean_iter_1000"):
        empty.run(["noisy_gt_ft_clean"])
    with pytest.raises(pipeline.StageError, match=r"\[digits\] no LMDBs in %s: run make "
                       r"lmdb DATASET=digits first" % re.escape(paths.db_dir("digits", str(tmp_path)))):
        empty.run(["clean"])


def test_report_table_and_plot(digits_run, tmp_path):
    text = report.write("digits", [digits_run.exp], [1], str(tmp_path))
    assert "| clean only |" in text and "| ours |" in text and "| noisy as truth |" in text
    assert "0.620" in text and "0.773" in text          # the original release's numbers
    # The noise-type net beside the majority-type rate on the same 20 held-out pairs: always
    # answering the training pairs' most common type.
    from noisy_label.core import intervals
    from noisy_label.io import imageset
    train = imageset.read_label_list(paths.list_file("digits", paths.NTYPE_TRAIN, digits_run.exp))
    held = imageset.read_label_list(paths.list_file("digits", paths.NTYPE_TEST, digits_run.exp))
    majority, rate = intervals.majority_rate(train, held)
    majority_row = [line for line in text.splitlines() if line.startswith("| majority type |")]
    assert len(majority_row) == 1 and majority_row[0].endswith("| %.3f |" % rate), majority_row
    assert "majority type: %.4f [" % rate in text          # beside the noise-type row
    assert "(`ntype_test`, 20 pairs a seed, 20 in all" in text
    # Each stage's accuracy with a 95% interval, the differences marked where beyond noise.
    ours = [line for line in text.splitlines() if line.startswith("| ours |")][0]
    assert re.search(r"\| ours \| 0\.\d{4} \[0\.\d{4}, 0\.\d{4}\] \|", ours), ours
    assert re.search(r"\| [+-]0\.\d{3} \[[+-]0\.\d{3}, [+-]0\.\d{3}\]( \*)? \|", ours), ours
    assert "paired 95% intervals" in text
    summary = report.summarize("digits", [digits_run.exp])
    assert set(summary) == set(stages.stage_nets("digits", compare=False))
    assert all(0.0 <= v <= 1.0 for values in summary.values() for v in values)
    with open(str(tmp_path / "report.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert open(str(tmp_path / "report.md")).read() == text


def test_report_without_logs_says_what_to_run(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "report.py"), "digits",
                           "--exp", str(tmp_path)], stderr=subprocess.PIPE, text=True)
    assert proc.returncode != 0
    assert "report: no digits training logs with a test accuracy under %s" % os.path.join(
        str(tmp_path), "logs", "digits") in proc.stderr
    assert "run make train DATASET=digits first" in proc.stderr


def test_parse_log_cli_writes_csv_and_plot(digits_run, tmp_path):
    log = os.path.join(digits_run.log_dir, "noisy_label_loss.log")
    subprocess.check_call([sys.executable, os.path.join(REPO, "tools", "parse_log.py"), log,
                           "--out-dir", str(tmp_path), "--plot", str(tmp_path / "curves.png")])
    train = open(str(tmp_path / "noisy_label_loss.train.csv")).read().splitlines()
    test = open(str(tmp_path / "noisy_label_loss.test.csv")).read().splitlines()
    assert train[0].split(",")[:4] == ["iteration", "seconds", "loss", "loss_clean"]
    assert {"loss_noisy", "loss_ntype", "lr"} <= set(train[0].split(","))
    assert test[0] == "iteration,seconds,accuracy,loss_clean"
    assert len(test) == 1 + 11                          # iterations 0, 100, ..., 1000
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_parse_log_reads_the_original_release_format():
    # Lines as the 2015 fork of Caffe printed them (no rate in the Iteration line).
    log = "\n".join([
        "I0322 14:35:00.848424  8642 solver.cpp:221] Iteration 3400, loss = 1.72866",
        "I0322 14:35:00.848461  8642 solver.cpp:236]     Train net output #0: loss_clean = 0.0515"
        " (* 1 = 0.0515 loss)",
        "I0322 14:35:00.848490  8642 solver.cpp:542] Iteration 3400, lr = 0.001",
        "I0322 14:35:02.422549  8642 solver.cpp:316] Iteration 3500, Testing net (#0)",
        "I0322 14:35:02.710115  8642 solver.cpp:373]     Test net output #0: accuracy = 0.6648",
        "I0322 14:35:02.721125  8642 solver.cpp:221] Iteration 3500, loss = 1.76593"])
    rows = caffe_log.parse(log)
    assert rows["train"][0] == {"iteration": 3400, "seconds": 0.0, "loss": 1.72866,
                                "loss_clean": 0.0515, "lr": 0.001}
    assert rows["test"] == [{"iteration": 3500, "seconds": pytest.approx(1.574125),
                             "accuracy": 0.6648}]
    assert caffe_log.final_test(log) == 0.6648


def test_parse_log_rejects_a_file_without_caffe_lines(tmp_path):
    bad = tmp_path / "notes.log"
    bad.write_text("nothing to see\n")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "parse_log.py"), str(bad)],
                          stderr=subprocess.PIPE, text=True)
    assert proc.returncode != 0
    assert "notes.log has no Caffe training or test lines" in proc.stderr


def test_clothing1m_noise_type_net_starts_from_the_clean_model(tmp_path):
    # As the original's train_ntype.sh: -weights clean_iter_15000.caffemodel, not ImageNet's.
    experiment = pipeline.Experiment("clothing1M", str(tmp_path))
    with pytest.raises(pipeline.StageError, match=r"\[clothing1M\] ntype needs .*snapshots/"
                                                  r"clothing1M/clean_iter_15000\.caffemodel"):
        experiment.run(["ntype"])


def test_clothing1m_without_imagenet_weights_says_where_to_put_them(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")
    monkeypatch.setattr("urllib.request.urlopen", offline)
    experiment = pipeline.Experiment("clothing1M", str(tmp_path))
    with pytest.raises(pipeline.StageError) as error:
        experiment.run(["clean"])
    expected = os.path.join(str(tmp_path), "snapshots", "bvlc_reference_caffenet.caffemodel")
    assert "Put the file at %s" % expected in str(error.value)
    assert not os.path.exists(expected + ".part")
