"""Long runs: stages snapshot along the way, resume after Ctrl-C or a kill, and never reuse
results trained from other data, solvers or weights (the stage manifests). Real `caffe`,
real LMDBs, run as a user types them (tools/run_stages.py from a plain shell)."""
import glob
import os
import signal
import subprocess
import time

import pytest
from helpers import PYTHON, REPO, plain_env, run_plain

from noisy_label import paths
from noisy_label.experiments import pipeline
from noisy_label.io import manifest, snapshots

pytestmark = [pytest.mark.caffe, pytest.mark.slow]

RUN_STAGES = os.path.join(REPO, "tools", "run_stages.py")
# A clean stage long enough to be interrupted in the middle: ~20 s on a 2-core CPU.
LONG = "clean.max_iter=12000 clean.snapshot=1000"
SHORT = "max_iter=40 snapshot=20 test_interval=20"


@pytest.fixture
def exp(tmp_path):
    """A fresh experiment root with the digits LMDBs (make lmdb DATASET=digits)."""
    root = str(tmp_path / "exp")
    proc = run_plain([PYTHON, os.path.join(REPO, "tools", "make_lmdb.py"), "digits", "--exp", root],
                     cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:]
    return root


def stages(exp, *args, cwd=None):
    """tools/run_stages.py digits --exp exp ARGS from a plain shell; the CompletedProcess."""
    return run_plain([PYTHON, RUN_STAGES, "digits", "--exp", exp] + list(args),
                     cwd=cwd or os.path.dirname(exp))


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def start_stages(exp, *args):
    """run_stages.py in its own process group (as a terminal runs a command), stdout/err piped."""
    return subprocess.Popen([PYTHON, RUN_STAGES, "digits", "--exp", exp] + list(args),
                            cwd=os.path.dirname(exp), env=plain_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_iteration(exp, stage, iteration, proc, timeout=120):
    """Wait until the stage's log (being written) shows `Iteration <iteration>`."""
    log = os.path.join(paths.log_dir("digits", exp), stage + ".log.tmp")
    start = time.time()
    while time.time() - start < timeout:
        if os.path.exists(log) and "Iteration %d, " % iteration in open(log).read():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no Iteration %d in %s after %d s" % (iteration, log, timeout))


def clean_prefix(exp):
    return os.path.join(paths.snapshot_dir("digits", exp), "clean")


def test_ctrl_c_snapshots_and_a_rerun_resumes_from_there(exp):
    proc = start_stages(exp, "--stage", "clean", "--set", LONG)
    wait_for_iteration(exp, "clean", 2000, proc)
    os.killpg(proc.pid, signal.SIGINT)               # Ctrl-C: the terminal signals the group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    # Caffe stopped at the end of its iteration and snapshotted there (its -sigint_effect).
    (stopped, state), = [s for s in snapshots.listed(clean_prefix(exp)) if s[0] % 1000]
    assert 2000 < stopped < 12000
    assert "[digits] clean interrupted (Caffe saved %s" % os.path.relpath(
        state, os.path.dirname(exp)) in err
    assert snapshots.check_solverstate(state) == stopped
    assert not os.path.exists(snapshots.path(clean_prefix(exp), 12000))

    out = ok(stages(exp, "--stage", "clean", "--set", LONG))
    assert "[digits] clean: resuming from iteration %d" % stopped in out
    assert os.path.exists(snapshots.path(clean_prefix(exp), 12000))
    log = open(os.path.join(paths.log_dir("digits", exp), "clean.log")).read()
    # One log across both runs: the first run's lines, then the resumed one's.
    assert log.count("# caffe train") == 2 and "Resuming from" in log
    assert "Iteration 1000, " in log and "Iteration 11000, " in log
    # Done now: the same command skips it.
    assert "[digits] clean: done" in ok(stages(exp, "--stage", "clean", "--set", LONG))


def test_a_killed_run_resumes_from_its_newest_complete_snapshot(exp):
    """kill -9 of the pipeline (its caffe dies on the broken pipe), and a snapshot cut short:
    the re-run skips the truncated one and resumes from the one before."""
    proc = start_stages(exp, "--stage", "clean", "--set", LONG)
    wait_for_iteration(exp, "clean", 3000, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    listed = snapshots.listed(clean_prefix(exp))
    assert [i for i, _ in listed][-2:] == [2000, 1000], listed
    newest, state = listed[0]
    with open(state, "r+b") as f:                     # as if killed while writing it
        f.truncate(os.path.getsize(state) // 2)
    out = ok(stages(exp, "--stage", "clean", "--set", LONG))
    assert "not resuming from %s is truncated" % state in out
    assert "[digits] clean: resuming from iteration %d" % listed[1][0] in out
    assert os.path.exists(snapshots.path(clean_prefix(exp), 12000))


def test_keep_snapshots_keeps_the_newest_intermediate_ones(exp):
    ok(stages(exp, "--stage", "clean", "--set", "clean.max_iter=120 clean.snapshot=20",
              "--keep-snapshots", "2"))
    assert [i for i, _ in snapshots.listed(clean_prefix(exp))] == [120, 100, 80]


def test_changed_data_solver_or_weights_retrain_what_depends_on_them(exp):
    out = ok(stages(exp, "--stage", "clean", "--stage", "noisy_gt_ft_clean", "--set", SHORT))
    record = manifest.load(paths.stage_manifest("digits", "noisy_gt_ft_clean", exp))
    assert record["complete"] and record["signature"]["start"]["path"].endswith(
        "clean_iter_40.caffemodel")
    assert "[digits] clean: done" in ok(stages(exp, "--stage", "clean", "--set", SHORT))

    # make lmdb FORCE=1 with another noise level: both stages trained again, saying why.
    proc = run_plain([PYTHON, os.path.join(REPO, "tools", "make_lmdb.py"), "digits", "--exp", exp,
                      "--force", "--noise-level", "0.3"], cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:]
    out = ok(stages(exp, "--stage", "clean", "--stage", "noisy_gt_ft_clean", "--set", SHORT))
    assert "[digits] clean: starting again, its inputs changed: LMDBs (noise_level)\n" in out
    assert "[digits] noisy_gt_ft_clean: starting again, its inputs changed: " in out
    assert "done" not in out

    # Another solver for clean only: clean retrains, and the stage fine-tuned from it follows.
    out = ok(stages(exp, "--stage", "clean", "--stage", "noisy_gt_ft_clean",
                    "--set", SHORT + " clean.base_lr=0.02"))
    assert "[digits] clean: starting again, its inputs changed: solver" in out
    assert "[digits] noisy_gt_ft_clean: starting again, its inputs changed: start" in out


def test_a_stage_without_a_record_is_not_taken_as_done(exp):
    """Snapshots of unknown origin (an older checkout, another copy) are retrained, not reused."""
    ok(stages(exp, "--stage", "clean", "--set", SHORT))
    os.remove(paths.stage_manifest("digits", "clean", exp))
    out = ok(stages(exp, "--stage", "clean", "--set", SHORT))
    assert ("[digits] clean: starting again, its inputs changed: no record of what its "
            "snapshots were trained from") in out


def test_init_is_redone_when_a_net_it_copies_changed(exp):
    ok(stages(exp, "--stage", "clean", "--stage", "ntype", "--stage", "init", "--set", SHORT))
    target = os.path.join(paths.snapshot_dir("digits", exp), "noisy_label_loss_init.caffemodel")
    assert os.path.exists(target) and not os.path.exists(target + ".partial")
    assert "[digits] init: done" in ok(stages(exp, "--stage", "init", "--set", SHORT))
    ok(stages(exp, "--stage", "ntype", "--set", SHORT + " ntype.base_lr=0.002"))
    out = ok(stages(exp, "--stage", "init", "--set", SHORT + " ntype.base_lr=0.002"))
    assert "[digits] init: starting again, its inputs changed: start" in out


def test_another_seed_trains_in_its_own_root(exp, tmp_path):
    """SEED=2 never reuses (nor overwrites) seed 1's models: it lives in EXP/seeds/2."""
    proc = stages(exp, "--seed", "2", "--stage", "clean", "--set", SHORT)
    assert proc.returncode == 1
    seed2 = os.path.join(exp, "seeds", "2")
    assert ("run_stages: [digits] no LMDBs in %s: run make lmdb DATASET=digits SEED=2 first"
            % paths.db_dir("digits", seed2)) in proc.stdout
    proc = run_plain([PYTHON, os.path.join(REPO, "tools", "make_lmdb.py"), "digits", "--exp", exp,
                      "--seed", "2"], cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert manifest.load(os.path.join(paths.db_dir("digits", seed2), paths.MANIFEST))[
        "groups"]["clean_train"]["signature"]["seed"] == 2
    ok(stages(exp, "--seed", "2", "--stage", "clean", "--set", SHORT))
    assert os.path.exists(os.path.join(paths.snapshot_dir("digits", seed2), "clean_iter_40.caffemodel"))
    assert not os.path.exists(paths.snapshot_dir("digits", exp))


def test_a_bad_setting_is_one_line(exp):
    proc = stages(exp, "--set", "max_iter=ten")
    assert proc.returncode == 1 and "Traceback" not in proc.stdout
    assert "run_stages: SET: 'max_iter=ten': max_iter must be a positive integer" in proc.stdout


def test_a_truncated_snapshot_given_to_the_mpi_trainer_is_named(exp):
    ok(stages(exp, "--stage", "clean", "--set", "clean.max_iter=40 clean.snapshot=20"))
    state = snapshots.path(clean_prefix(exp), 40, ".solverstate")
    with open(state, "r+b") as f:
        f.truncate(100)
    experiment = pipeline.Experiment("digits", exp, settings="clean.max_iter=40 clean.snapshot=20")
    proc = run_plain([PYTHON, "-m", "noisy_label.train", "-solver", experiment.solver_file("clean"),
                      "-snapshot", state], cwd=REPO)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout, proc.stdout[-3000:]
    assert ("error: -snapshot %s is truncated or not a solver state (a snapshot cut short?); the "
            "newest complete snapshot is %s" % (state, snapshots.path(
                clean_prefix(exp), 20, ".solverstate"))) in proc.stdout
    assert glob.glob(clean_prefix(exp) + "_iter_*.caffemodel")


def test_an_interrupted_lmdb_group_is_never_recorded_as_up_to_date(tmp_path, capsys):
    """make lmdb stopped between two files of a group (new noise level): the manifest no
    longer calls the group's old files up to date, so the old options rebuild it too."""
    from noisy_label import datasets
    db = str(tmp_path)

    def writer(text, stop_after_first=False):
        def write():
            for name in ("a", "b"):
                with open(os.path.join(db, name), "w") as f:
                    f.write(text)
                if stop_after_first:
                    raise KeyboardInterrupt
        return write

    datasets.write_outputs(db, [datasets.Output("group", ["a", "b"], writer("old"))], {"level": 1})
    with pytest.raises(KeyboardInterrupt):
        datasets.write_outputs(db, [datasets.Output("group", ["a", "b"], writer("new", True))],
                               {"level": 2})
    recorded = manifest.load(os.path.join(db, paths.MANIFEST))
    assert "group" not in recorded["groups"] and "build" not in recorded
    assert datasets.write_outputs(db, [datasets.Output("group", ["a", "b"], writer("old"))],
                                  {"level": 1}) == ["group"]
    assert open(os.path.join(db, "a")).read() == "old"
