"""Data integrity under hostile input, faults and concurrency (issue 22): no code runs from a
data file, a full disk is a message, a set of LMDBs is trained on only when it is one whole
build, one writer per root, a failed re-run loses nothing, done means readable, up to date
means same content, and bad input is one line. Real tools from a plain shell, real LMDBs,
real Caffe."""
import os
import pickle
import shutil
import signal
import struct
import subprocess
import tarfile
import time
import zlib

import numpy as np
import pytest
from helpers import PYTHON, REPO, plain_env, run_plain

from noisy_label import datasets, paths
from noisy_label.datasets import cifar10 as cifar10_data
from noisy_label.datasets import key_lists
from noisy_label.experiments import caffe_log, pipeline, settings
from noisy_label.io import imageset, lmdb_io, lock, manifest, snapshots, text_io

pytestmark = pytest.mark.caffe

MAKE_LMDB = os.path.join(REPO, "tools", "make_lmdb.py")
RUN_STAGES = os.path.join(REPO, "tools", "run_stages.py")
SHORT = "max_iter=40 snapshot=20 test_interval=20"


def tool_lines(output):
    """A tool's output without tqdm's bars."""
    return [line for line in output.replace("\r", "\n").splitlines()
            if line.strip() and "%|" not in line]


def make_lmdb(exp, *args, cwd=None, **env):
    return run_plain([PYTHON, MAKE_LMDB, "digits", "--exp", exp] + [str(a) for a in args],
                     cwd=cwd or os.path.dirname(exp), **env)


def run_stages(exp, *args, **env):
    return run_plain([PYTHON, RUN_STAGES, "digits", "--exp", exp] + [str(a) for a in args],
                     cwd=os.path.dirname(exp), **env)


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def one_line_failure(proc, prog):
    """The tool failed (exit 1) with one line `prog: ...` and no traceback: that line."""
    assert proc.returncode == 1 and "Traceback" not in proc.stdout, proc.stdout[-3000:]
    last = tool_lines(proc.stdout)[-1]
    assert last.startswith(prog + ": "), proc.stdout[-3000:]
    return last


@pytest.fixture
def digits_exp(tmp_path):
    root = str(tmp_path / "exp")
    ok(make_lmdb(root))
    return root


# ---- 1. no code runs from data files -------------------------------------------------------


class _RunsCode(object):
    """What a crafted pickle does: call os.system when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, ("touch %s" % self.marker,)


def write_batches(directory, payload=None):
    """CIFAR-10's six python batches (2 images each); `payload` replaces data_batch_1's dict."""
    os.makedirs(directory)
    for name in cifar10_data.CIFAR10_TRAIN_BATCHES + [cifar10_data.CIFAR10_TEST_BATCH]:
        batch = {b"batch_label": name.encode(), b"labels": [1, 2],
                 b"data": np.zeros((2, 3072), np.uint8), b"filenames": [b"a.png", b"b.png"]}
        with open(os.path.join(directory, name), "wb") as f:
            pickle.dump(payload if payload is not None and name == "data_batch_1" else batch, f,
                        protocol=2)


def test_a_cifar10_batch_that_would_run_code_is_refused(tmp_path):
    marker = str(tmp_path / "ran")
    raw = str(tmp_path / "raw")
    write_batches(os.path.join(raw, cifar10_data.CIFAR10_BATCHES),
                  {b"data": _RunsCode(marker), b"labels": [1, 2]})
    proc = run_plain([PYTHON, MAKE_LMDB, "cifar10", "--exp", str(tmp_path / "exp"), "--data-root",
                      raw], cwd=str(tmp_path))
    line = one_line_failure(proc, "make_lmdb")
    assert "data_batch_1 is not a plain CIFAR-10 python batch: it names posix.system" in line
    assert not os.path.exists(marker)


@pytest.mark.parametrize("labels,shown", [
    (["1", "2"], "str '1'"), ([None, 1], "NoneType None"), (3, "int 3"),
    ({1: 2}, "dict {1: 2}"), ([2 ** 70, 1], "1180591620717411303424"), ([True, 1], "bool True"),
    ([1.0, 2.0], "float 1.0")])
def test_cifar10_labels_that_are_not_ints_are_one_line(tmp_path, labels, shown):
    raw = str(tmp_path / "raw")
    write_batches(os.path.join(raw, cifar10_data.CIFAR10_BATCHES),
                  {b"data": np.zeros((2, 3072), np.uint8), b"labels": labels})
    with pytest.raises(ValueError) as error:
        cifar10_data.load_cifar10(raw)
    assert "data_batch_1: " in str(error.value) and shown in str(error.value)


def test_a_cifar10_download_is_checked_against_its_published_md5(tmp_path):
    """A tarball of the right layout but not the published file is refused, nothing kept."""
    source = str(tmp_path / "source")
    write_batches(os.path.join(source, cifar10_data.CIFAR10_BATCHES))
    tarball = str(tmp_path / "cifar-10-python.tar.gz")
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(os.path.join(source, cifar10_data.CIFAR10_BATCHES), cifar10_data.CIFAR10_BATCHES)
    data_root = str(tmp_path / "data")
    with pytest.raises(IOError, match=r"not CIFAR-10's published cifar-10-python\.tar\.gz "
                                      r"\(MD5 [0-9a-f]{32}, expected c58f30108f718f92721af3b95e74349a\)"):
        cifar10_data.cifar10_dir(data_root, url="file://" + tarball)
    assert not os.path.exists(data_root)


# ---- 2. a full disk is a message, not a signal ---------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 300 KB tmpfs (root's `mount`), unmounted after the test."""
    mount_point = str(tmp_path / "tmpfs")
    os.makedirs(mount_point)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", mount_point],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN): %s"
                    % proc.stdout.strip())
    yield mount_point
    subprocess.run(["umount", "-l", mount_point])


def test_a_full_disk_is_one_line_and_leaves_no_tmp(small_tmpfs):
    exp = os.path.join(small_tmpfs, "exp")
    proc = make_lmdb(exp, cwd=REPO)
    assert "Bus error" not in proc.stdout and proc.returncode != -signal.SIGBUS
    line = one_line_failure(proc, "make_lmdb")
    assert line.startswith("make_lmdb: no space left on device: %s/" % paths.db_dir("digits", exp))
    leftovers = [os.path.join(d, f) for d, dirs, files in os.walk(small_tmpfs)
                 for f in dirs + files if ".tmp" in f or f.startswith(".") and f != ".digits.lock"]
    assert not leftovers
    # Never a whole build: make train refuses what is there.
    line = one_line_failure(run_stages(exp), "run_stages")
    assert "are not one whole build" in line


def test_a_full_disk_keeps_the_build_that_was_there(tmp_path, small_tmpfs):
    """A rebuild that finds the disk full keeps the LMDBs it was to replace, readable."""
    exp = os.path.join(small_tmpfs, "exp")
    db = paths.db_dir("digits", exp)
    built = str(tmp_path / "built")
    ok(make_lmdb(built, cwd=REPO))
    # Only the test set's LMDB fits beside the ballast: a FORCE rebuild must fail at the next.
    os.makedirs(db)
    shutil.copytree(os.path.join(paths.db_dir("digits", built), paths.TEST),
                    os.path.join(db, paths.TEST))
    before = manifest.fingerprint(os.path.join(db, paths.TEST))
    with open(os.path.join(small_tmpfs, "ballast"), "wb") as f:
        f.write(b"\0" * (shutil.disk_usage(small_tmpfs).free - 60000))
    line = one_line_failure(make_lmdb(exp, "--force", cwd=REPO), "make_lmdb")
    assert "no space left on device: %s/" % db in line and "(needs about 0.08 MB, " in line
    assert manifest.fingerprint(os.path.join(db, paths.TEST)) == before
    assert sorted(os.listdir(db)) == [paths.MANIFEST, paths.TEST]


# ---- 3. a set of LMDBs is trained on only when whole and from one build --------------------


def test_an_interrupted_rebuild_is_not_trained_on(digits_exp):
    """Ctrl-C in a FORCE=1 rebuild with another noise level leaves LMDBs of two builds:
    make train refuses them, naming make lmdb, until make lmdb finishes."""
    proc = subprocess.Popen([PYTHON, MAKE_LMDB, "digits", "--exp", digits_exp, "--force",
                             "--noise-level", "0.2"], cwd=REPO, start_new_session=True,
                            env=plain_env(PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    written = []
    for line in proc.stdout:
        line = line.split("\r")[-1].strip()      # past tqdm's bars
        if line.endswith(" written"):
            written.append(line.split()[0])
            if len(written) == 2:
                os.killpg(proc.pid, signal.SIGINT)
                break
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, out
    assert written[:2] == [paths.TEST, paths.CLEAN_TRAIN]
    line = one_line_failure(run_stages(digits_exp, "--stage", "clean", "--set", SHORT), "run_stages")
    assert line == ("run_stages: [digits] the LMDBs in %s are not one whole build (make lmdb was "
                    "interrupted, failed, is still running, or is from an older version): run "
                    "make lmdb DATASET=digits" % paths.db_dir("digits", digits_exp))
    # make lmdb finishes the rebuild (the two groups already written are up to date).
    out = ok(make_lmdb(digits_exp, "--noise-level", "0.2"))
    assert "  %-24s up to date" % paths.TEST in out and "  %-24s written" % "mixed" in out
    ok(run_stages(digits_exp, "--stage", "clean", "--set", SHORT))


def test_images_of_another_seed_are_not_trained_on(digits_exp):
    """Seed 2's mixed images copied over seed 1's (same count, same shape): refused."""
    ok(make_lmdb(digits_exp, "--seed", "2"))
    seed1 = paths.lmdb_path("digits", paths.MIXED_IMAGES, digits_exp)
    shutil.rmtree(seed1)
    shutil.copytree(paths.lmdb_path("digits", paths.MIXED_IMAGES,
                                    paths.seed_root(digits_exp, 2)), seed1)
    line = one_line_failure(run_stages(digits_exp, "--stage", "clean", "--set", SHORT), "run_stages")
    assert ("%s: mixed_train_images changed after make lmdb wrote it (missing, or not what it "
            "wrote): run make lmdb DATASET=digits FORCE=1" % paths.db_dir("digits", digits_exp)) in line
    # make lmdb sees it too, and rebuilds the group.
    assert "  %-24s written" % "mixed" in ok(make_lmdb(digits_exp))


def test_mixed_lmdbs_of_different_lengths_are_refused(tmp_path):
    db = str(tmp_path)
    for field, n in zip(("images", "clean", "noisy", "ntype"), (3, 3, 2, 3)):
        name = paths.MIXED_IMAGES if field == "images" else paths.MIXED_LABELS[field]
        lmdb_io.write_label_lmdb(os.path.join(db, name), [0] * n, desc=False)
    with pytest.raises(ValueError, match=r"the mixed LMDBs hold different numbers of records "
                                         r"\(mixed_train_images 3, .*mixed_train_label_noisy 2"):
        datasets.base._check_mixed_counts(db, ["mixed"])


# ---- 4. one writer per experiment root -----------------------------------------------------


def test_a_second_run_waits_for_the_first_or_stops_under_no_wait(digits_exp):
    with lock.hold(paths.lock_file("digits", digits_exp), "a test holding the root"):
        for proc, prog in ((make_lmdb(digits_exp, NO_WAIT="1"), "make_lmdb"),
                           (run_stages(digits_exp, NO_WAIT="1"), "run_stages")):
            line = one_line_failure(proc, prog)
            assert line.startswith("%s: %s is in use by pid %d (a test holding the root, since "
                                   % (prog, digits_exp, os.getpid())), line
            assert line.endswith("(NO_WAIT is set: not waiting)")
        waiting = subprocess.Popen([PYTHON, MAKE_LMDB, "digits", "--exp", digits_exp], cwd=REPO,
                                   env=plain_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        time.sleep(3)
        assert waiting.poll() is None     # still waiting for us
    out = waiting.communicate(timeout=120)[0]
    assert waiting.returncode == 0, out
    assert ("waiting for pid %d (a test holding the root, since " % os.getpid()) in out


def test_two_make_lmdb_at_once_leave_one_whole_build(digits_exp):
    runs = [subprocess.Popen([PYTHON, MAKE_LMDB, "digits", "--exp", digits_exp, "--force"],
                             cwd=REPO, env=plain_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outs
    assert sum("waiting for pid" in out for out in outs) <= 1   # 1 unless one ended first
    groups = datasets.check_build("digits", paths.db_dir("digits", digits_exp))
    assert set(groups) >= {paths.TEST, "mixed", paths.MATRIX_C}


# ---- 5. a failed or diverging run loses nothing that had finished ---------------------------


def test_a_diverging_rerun_stops_in_one_line_and_keeps_what_had_finished(digits_exp):
    ok(run_stages(digits_exp, "--stage", "clean", "--set", SHORT))
    final = snapshots.path(os.path.join(paths.snapshot_dir("digits", digits_exp), "clean"), 40)
    log_dir = paths.log_dir("digits", digits_exp)
    finished_log = open(os.path.join(log_dir, "clean.log")).read()
    # A log a killed run left behind is kept, not written over.
    with open(os.path.join(log_dir, "clean.log.tmp"), "w") as f:
        f.write("the log of a run killed with -9\n")
    proc = run_stages(digits_exp, "--stage", "clean", "--set", SHORT + " clean.base_lr=1e30 display=1")
    line = one_line_failure(proc, "run_stages")
    assert line == ("run_stages: [digits] stage clean diverged at iteration 1: loss nan; lower "
                    "base_lr (SET=clean.base_lr=...) (log: %s); the snapshots it had finished "
                    "before are kept" % os.path.join(log_dir, "clean.failed.log"))
    assert "Iteration 1" in open(os.path.join(log_dir, "clean.failed.log")).read()
    assert open(os.path.join(log_dir, "clean.killed.log")).read() == "the log of a run killed with -9\n"
    assert open(os.path.join(log_dir, "clean.log")).read() == finished_log
    snapshots.check_caffemodel(final)
    assert "[digits] clean: done" in ok(run_stages(digits_exp, "--stage", "clean", "--set", SHORT))


def test_a_rerun_killed_before_its_first_snapshot_gets_the_finished_one_back(digits_exp):
    """kill -9 of a re-run that had set the finished snapshots aside: the next run with the old
    settings puts them back instead of training again."""
    ok(run_stages(digits_exp, "--stage", "clean", "--set", SHORT))
    final = snapshots.path(os.path.join(paths.snapshot_dir("digits", digits_exp), "clean"), 40)
    proc = subprocess.Popen([PYTHON, RUN_STAGES, "digits", "--exp", digits_exp, "--stage", "clean",
                             "--set", "clean.max_iter=12000 clean.snapshot=5000"],
                            cwd=os.path.dirname(digits_exp), env=plain_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = os.path.join(paths.log_dir("digits", digits_exp), "clean.log.tmp")
    deadline = time.time() + 120
    while not (os.path.exists(log) and "Iteration 200, " in open(log).read()):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.05)
    assert not os.path.exists(final)                 # set aside while the re-run trains
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    out = ok(run_stages(digits_exp, "--stage", "clean", "--set", SHORT))
    assert "[digits] clean: putting back what a killed re-run had set aside" in out
    assert "[digits] clean: done" in out
    snapshots.check_caffemodel(final)


def test_nonfinite_and_negative_settings_are_refused():
    stage_names = ("clean",)
    for item, message in (("base_lr=nan", "base_lr must be a finite number"),
                          ("base_lr=inf", "base_lr must be a finite number"),
                          ("clean.base_lr=-1", "base_lr must be a number above 0"),
                          ("gamma=.inf", "gamma must be a finite number"),
                          ("max_iter=true", "max_iter must be a positive integer")):
        with pytest.raises(ValueError, match="SET: %r: %s" % (item, message)):
            settings.parse(item, stage_names)


def test_the_progress_parser_reads_nan_and_inf_losses():
    for text, value in (("-nan", "nan"), ("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"),
                        ("1.5e-05", "1.5e-05"), ("0.25", "0.25")):
        m = caffe_log._ITER_LOSS.search("I1202 solver.cpp:243] Iteration 20 (9.8 iter/s, 2.0s/20 "
                                        "iters), loss = %s" % text)
        assert m and str(float(m.group(2))) == str(float(value))


# ---- 6. done means readable ----------------------------------------------------------------


def test_a_truncated_final_model_is_not_done(digits_exp):
    ok(run_stages(digits_exp, "--stage", "clean", "--set", SHORT))
    prefix = os.path.join(paths.snapshot_dir("digits", digits_exp), "clean")
    final = snapshots.path(prefix, 40)
    size = os.path.getsize(final)
    with open(final, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(ValueError, match="is truncated or not a Caffe model"):
        snapshots.check_caffemodel(final)
    out = ok(run_stages(digits_exp, "--stage", "clean", "--set", SHORT))
    assert "[digits] clean: not done after all: %s is truncated" % final in out
    assert "[digits] clean: resuming from iteration 20" in out
    snapshots.check_caffemodel(final)
    assert os.path.getsize(final) == size


# ---- 7. up to date means same content -------------------------------------------------------


def test_a_force_rebuild_retrains_the_stages_that_read_it(digits_exp):
    ok(run_stages(digits_exp, "--stage", "clean", "--set", SHORT))
    ok(make_lmdb(digits_exp, "--force"))
    out = ok(run_stages(digits_exp, "--stage", "clean", "--set", SHORT))
    assert "[digits] clean: starting again, its inputs changed: LMDBs (" in out
    assert "clean_train" in out.split("its inputs changed: LMDBs (", 1)[1].split(")")[0]


def write_png_header(path, width, height):
    """A PNG whose header claims width x height (a decompression bomb's shape)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0,
                                                                      0, 0))
                + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    path = str(tmp_path / "bomb.png")
    write_png_header(path, 9000, 9000)
    with pytest.raises(imageset.BadImageError, match=r"bomb\.png is 9000x9000, over the 67108864-"
                                                     r"pixel limit"):
        imageset.load_image(path)
    write_png_header(path, 15000, 15000)     # over Pillow's own limit too
    with pytest.raises(imageset.BadImageError, match=r"bomb\.png claims 225000000 pixels, over "
                                                     r"the 67108864-pixel limit"):
        imageset.load_image(path)


@pytest.fixture
def clothing_tree(tmp_path):
    """A tiny Clothing1M tree with real JPEGs (3 classes' worth of keys)."""
    import cv2
    root = str(tmp_path / "raw")
    keys = ["images/%d/%02d.jpg" % (i % 3, i) for i in range(24)]
    rng = np.random.RandomState(0)
    for key in keys:
        os.makedirs(os.path.join(root, os.path.dirname(key)), exist_ok=True)
        cv2.imwrite(os.path.join(root, key), rng.randint(0, 255, (12, 12, 3)).astype(np.uint8))
    files = key_lists.LAYOUT
    texts = {"clean_kv": "".join("%s %d\n" % (k, i % 14) for i, k in enumerate(keys[:12])),
             "noisy_kv": "".join("%s %d\n" % (k, (i + i % 2) % 14) for i, k in enumerate(keys[3:])),
             "clean_train": "".join(k + "\n" for k in keys[:6]),
             "clean_val": "".join(k + "\n" for k in keys[6:9]),
             "clean_test": "".join(k + "\n" for k in keys[9:12]),
             "noisy_train": "".join(k + "\n" for k in keys[12:])}
    for name, text in texts.items():
        with open(os.path.join(root, files[name]), "w") as f:
            f.write(text)
    return root


def build_clothing(root, exp):
    return datasets.build("clothing1M", exp=exp, data_root=root, resize=8)


def test_clothing1m_inputs_are_signed_by_content(clothing_tree, tmp_path, capsys):
    exp = str(tmp_path / "exp")
    build_clothing(clothing_tree, exp)
    capsys.readouterr()
    # A label edited to the same size with its mtime put back (cp -p, rsync -t).
    kv = os.path.join(clothing_tree, key_lists.LAYOUT["clean_kv"])
    stat = os.stat(kv)
    text = open(kv).read()
    with open(kv, "w") as f:
        f.write(text.replace("images/0/00.jpg 0", "images/0/00.jpg 5"))
    os.utime(kv, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.path.getsize(kv) == stat.st_size
    build_clothing(clothing_tree, exp)
    out = capsys.readouterr().out
    assert "up to date" not in out
    # An image replaced by another of the same size, mtime copied from its source (cp -p).
    build_clothing(clothing_tree, exp)
    assert "written" not in capsys.readouterr().out
    shutil.copy2(os.path.join(clothing_tree, "images/1/13.jpg"),
                 os.path.join(clothing_tree, "images/1/16.jpg"))
    build_clothing(clothing_tree, exp)
    out = capsys.readouterr().out
    assert "  %-24s written" % "mixed" in out and "  %-24s up to date" % "clean_train" in out


def test_keys_in_two_clean_splits_are_a_leak(clothing_tree, tmp_path):
    test_list = os.path.join(clothing_tree, key_lists.LAYOUT["clean_test"])
    with open(test_list, "a") as f:
        f.write("images/0/00.jpg\n")             # a clean_train key
    with pytest.raises(ValueError, match=r"key images/0/00\.jpg is in both .*clean_train_key_list"
                                         r"\.txt and .*clean_test_key_list\.txt \(1 keys shared\)"):
        build_clothing(clothing_tree, str(tmp_path / "exp"))


@pytest.mark.parametrize("upsample", [float("inf"), 1e9, -1, float("nan")])
def test_an_upsample_out_of_range_is_one_line(upsample):
    with pytest.raises(ValueError, match=r"UPSAMPLE=.*: it must be a number from 0 to 100"):
        key_lists.key_list_label_sets({"a": 0}, {}, {
            "clean_train": ["a"], "clean_val": [], "clean_test": [], "noisy_train": []}, 2, upsample, 1)


@pytest.mark.parametrize("line,message", [
    ("images/0/00.jpg 1_3", r"kv\.txt:2: label '1_3' of images/0/00\.jpg is not an integer "
                            r"\(ASCII digits only\)"),
    ("images/0/00.jpg \u0663", r"kv\.txt:2: label '\u0663' of images/0/00\.jpg is not an integer"),
    ("/etc/passwd 1", r"kv\.txt:2: key '/etc/passwd' must be a path relative to the data root"),
    ("images/../../secret.jpg 1", r"kv\.txt:2: key 'images/\.\./\.\./secret\.jpg' must be a path "
                                  r"relative to the data root, without `\.\.`"),
])
def test_kv_lines_that_int_would_take_are_refused(tmp_path, line, message):
    path = str(tmp_path / "kv.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("images/0/01.jpg 0\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        datasets.read_label_kv(path, 14)


def test_text_errors_name_the_right_line_and_the_bom(tmp_path):
    path = str(tmp_path / "kv.txt")
    with open(path, "wb") as f:
        f.write(b"".join(b"images/0/%03d.jpg 1\n" % i for i in range(110)) + b"images/\xff.jpg 1\n")
    with pytest.raises(ValueError, match=r"kv\.txt:111: not UTF-8 text"):
        datasets.read_label_kv(path, 14)
    with open(path, "wb") as f:
        f.write(b"\xef\xbb\xbfimages/0/000.jpg 1\n")
    with pytest.raises(ValueError, match=r"kv\.txt:1: starts with a UTF-8 byte-order mark \(BOM\)"):
        list(text_io.numbered_lines(path))


def test_lmdb_fingerprints_tell_builds_apart(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    lmdb_io.write_label_lmdb(a, np.arange(1000) % 10, desc=False)
    lmdb_io.write_label_lmdb(b, np.arange(1000) % 10, desc=False)
    assert manifest.fingerprint(a) == manifest.fingerprint(b)   # content, not mtime or place
    labels = np.arange(1000) % 10
    labels[-1] = 3
    lmdb_io.write_label_lmdb(b + "2", labels, desc=False)
    assert manifest.fingerprint(a) != manifest.fingerprint(b + "2")


def test_a_stage_signature_names_each_groups_build(digits_exp):
    experiment = pipeline.Experiment("digits", digits_exp, settings=SHORT)
    groups = experiment.check_lmdbs()
    signature = experiment.signature("clean", None)
    assert signature["lmdb"][paths.CLEAN_TRAIN]["build"] == groups[paths.CLEAN_TRAIN]["build"]
    assert paths.TRUE_LABELS not in signature["lmdb"]
