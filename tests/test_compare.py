"""make compare on the digits as users type it (a plain shell, another directory): every
method at every seed on the same LMDBs, tower, schedule and start, compare.json / .md / .png
from the logs, finished stages reused, and a new Q retraining only the stages that read it."""
import json
import os

import numpy as np
import pytest
from google.protobuf import text_format
from helpers import PYTHON, REPO, run_plain

from noisy_label import paths
from noisy_label.core import matrix_c
from noisy_label.datasets import key_lists
from noisy_label.experiments import caffe_log, compare, pipeline, report, stages

pytestmark = [pytest.mark.caffe, pytest.mark.slow]

SEEDS = (1, 2)
METHODS = ["clean only", "noisy as truth", "bootstrapping, soft (β = 0.95)",
           "bootstrapping, hard (β = 0.8)", "forward correction (estimated Q)",
           "forward correction (true Q, oracle)", "backward correction (estimated Q)", "ours",
           "relabel with ours, then train"]
COMPARE_STAGES = ["bootstrap_soft", "bootstrap_hard", "forward_corrected",
                  "forward_corrected_true_q", "backward_corrected"]


def make_compare(exp):
    return run_plain(["make", "-s", "-C", REPO, "compare", "DATASET=digits", "EXP=" + exp,
                      "SEEDS=" + " ".join(map(str, SEEDS))], cwd=os.path.dirname(exp))


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """`make compare DATASET=digits SEEDS="1 2"` from scratch (make lmdb included), as the
    README gives it but for two seeds: (exp, output)."""
    exp = str(tmp_path_factory.mktemp("compare") / "exp")
    proc = make_compare(exp)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return exp, proc.stdout


def test_the_compare_stages_are_make_compares_only():
    assert [s.name for s in stages.training("digits") if s.compare] == COMPARE_STAGES
    assert not any(s.compare for s in stages.stages("digits", compare=False))
    # Clothing1M: no true Q; noisy-as-truth and relabel-then-train are compare stages there.
    assert [s.name for s in stages.stages("clothing1M") if s.compare] == [
        "noisy_gt_ft_clean", "bootstrap_soft", "bootstrap_hard", "forward_corrected",
        "backward_corrected", "relabel", "relabel_ft_clean"]
    assert [s.label for s in compare.methods("digits")] == METHODS
    assert [s.name for s in compare.methods("clothing1M")] == [
        "clean", "noisy_gt_ft_clean", "bootstrap_soft", "bootstrap_hard", "forward_corrected",
        "backward_corrected", "noisy_label_loss_stage2", "relabel_ft_clean"]


def test_every_method_at_every_seed_from_the_logs(compared):
    exp, out = compared
    log_dir = paths.log_dir("digits", exp)
    result = json.load(open(os.path.join(log_dir, "compare.json")))
    assert list(result["methods"]) == METHODS and result["seeds"] == list(SEEDS)
    for label, row in result["methods"].items():
        logs = [os.path.join(paths.log_dir("digits", paths.seed_root(exp, seed)),
                             row["stage"] + ".log") for seed in SEEDS]
        expected = [caffe_log.final_test(open(log).read()) for log in logs]
        assert [row["seeds"][str(seed)] for seed in SEEDS] == expected, label
        assert row["mean"] == pytest.approx(np.mean(expected))
        assert row["std"] == pytest.approx(np.std(expected))
    methods = result["methods"]
    assert methods["ours"]["mean"] > 0.8     # trained, not a chance-level 0.1
    text = open(os.path.join(log_dir, "compare.md")).read()
    assert text in out and "| seed 1 | seed 2 |" in text
    for label in METHODS:
        assert "| %s | %s |" % (label, methods[label]["stage"]) in text
    with open(os.path.join(log_dir, "compare.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_methods_share_data_schedule_and_start(compared):
    from caffe.proto import caffe_pb2
    exp, _ = compared
    experiment = pipeline.Experiment("digits", exp, seed=2)
    baseline = experiment.solver("noisy_gt_ft_clean")
    clean_final = experiment.final("clean")
    for stage in COMPARE_STAGES:
        solver = experiment.solver(stage)
        for field in ("base_lr", "max_iter", "stepsize", "gamma", "momentum", "weight_decay",
                      "random_seed", "test_iter"):
            assert getattr(solver, field) == getattr(baseline, field), (stage, field)
        # Backward correction alone clips its gradients (its loss is unbounded below).
        assert solver.clip_gradients == (10.0 if stage == "backward_corrected" else -1), stage
        net = text_format.Merge(open(solver.net).read(), caffe_pb2.NetParameter())
        sources = {layer.data_param.source for layer in net.layer
                   if layer.type == "Data" and layer.include[0].phase == 0}
        assert sources == {paths.lmdb_path("digits", db, experiment.exp) for db in (
            paths.MIXED_IMAGES, paths.MIXED_LABELS["clean"], paths.MIXED_LABELS["noisy"])}
        log = open(os.path.join(experiment.log_dir, stage + ".log")).read()
        assert log.startswith("# caffe train -solver %s -weights %s\n"
                              % (experiment.solver_file(stage), clean_final)), stage
        assert "Optimization Done" in log


def test_a_rerun_trains_nothing(compared):
    exp, _ = compared
    logs = {(seed, stage): os.path.getmtime(os.path.join(
        paths.log_dir("digits", paths.seed_root(exp, seed)), stage + ".log"))
        for seed in SEEDS for stage in stages.stage_nets("digits")}
    proc = make_compare(exp)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert proc.stdout.count(": done (") == len(SEEDS) * (len(stages.stage_nets("digits")) + 2)
    for (seed, stage), mtime in logs.items():
        assert os.path.getmtime(os.path.join(paths.log_dir(
            "digits", paths.seed_root(exp, seed)), stage + ".log")) == mtime, (seed, stage)


def test_the_demo_report_points_to_the_comparison(compared, tmp_path):
    exp, _ = compared
    text = report.write("digits", [exp], [1], str(tmp_path))
    assert "`make compare DATASET=digits`" in text and "[compare.md](compare.md)" in text
    assert "bootstrapping" not in text.split("\n\n![")[0]   # make train's stages only


def test_a_new_estimated_q_retrains_only_the_stages_that_read_it(compared, capsys):
    exp, _ = compared
    experiment = pipeline.Experiment("digits", exp, seed=2)
    db = paths.db_dir("digits", experiment.exp)
    true_q = matrix_c.load_matrix_q(os.path.join(db, paths.TRUE_MATRIX_Q + ".binaryproto"), 10)
    matrix_c.save_matrix(os.path.join(db, paths.ESTIMATED_MATRIX_Q + ".binaryproto"), true_q)
    experiment.run(["bootstrap_soft", "forward_corrected", "backward_corrected"])
    out = capsys.readouterr().out
    assert "[digits] bootstrap_soft: done" in out
    for stage in ("forward_corrected", "backward_corrected"):
        assert "[digits] %s: starting again, its inputs changed: reads" % stage in out


def test_report_only_without_logs_names_what_to_run(tmp_path):
    with pytest.raises(ValueError, match=r"no final test accuracy for clean only \(stage clean\) "
                                         r"at seed 1 in .*: run make compare DATASET=digits"):
        compare.results("digits", str(tmp_path), [1])


def test_a_seed_without_lmdbs_or_raw_data_is_one_line(tmp_path):
    proc = run_plain([PYTHON, os.path.join(REPO, "tools", "compare.py"), "clothing1M", "--exp",
                      str(tmp_path / "exp"), "--data-root", "nowhere", "--seeds", "2"],
                     cwd=str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stdout
    assert proc.stdout.splitlines()[-2:] == [
        "no LMDBs for seed 2 yet: make lmdb DATASET=clothing1M SEED=2",
        "compare: DATA_ROOT=nowhere does not exist: put the Clothing1M tree there (%s, images/) "
        "or pass DATA_ROOT=<its directory>" % ", ".join(sorted(key_lists.LAYOUT.values()))]
