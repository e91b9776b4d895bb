"""The data tools as a user types them, from a plain shell in another directory: a bad input,
Ctrl-C or a kill ends in one line without a traceback, and never leaves a file at an
output's name that looks complete (nor a leftover temporary)."""
import argparse
import os
import signal
import subprocess
import time

import cv2
import lmdb
import numpy as np
import pytest
from helpers import PYTHON, REPO, plain_env, run_plain

from noisy_label import cli
from noisy_label.experiments import caffe_log
from noisy_label.io import atomic, blob_io, imageset, lmdb_io

pytestmark = pytest.mark.caffe


def command(name, *args):
    return [PYTHON, os.path.join(REPO, "tools", name + ".py")] + [str(a) for a in args]


def lines(output):
    """The lines of a tool's output, less tqdm's progress bars."""
    return [line for line in output.replace("\r", "\n").splitlines()
            if line.strip() and "%|" not in line]


def fails(cwd, name, *args, status=1):
    """Run tool `name` from `cwd`; assert it fails with `status` and no traceback, and for a
    bad input (status 1) with the one line `name: reason`. Returns the last line."""
    proc = run_plain(command(name, *args), cwd, timeout=120)
    out = lines(proc.stdout)
    assert proc.returncode == status and "Traceback" not in proc.stdout, proc.stdout[-3000:]
    if status == 1:
        assert len(out) == 1 and out[0].startswith(name + ": "), proc.stdout[-3000:]
    return out[-1]


def ok(cwd, name, *args):
    proc = run_plain(command(name, *args), cwd, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A directory of good and bad inputs, and a label LMDB (`labels_db`)."""
    d = tmp_path_factory.mktemp("inputs")
    os.makedirs(str(d / "img"))
    for i in range(4):
        cv2.imwrite(str(d / "img" / ("%d.jpg" % i)),
                    np.random.RandomState(i).randint(0, 255, (20, 20, 3)).astype(np.uint8))
    files = {
        "list.txt": "".join("img/%d.jpg %d\n" % (i, i % 2) for i in range(4)),
        "clean.txt": "a 0\nb 1\nc 0\nd 1\n", "noisy.txt": "a 1\nb 1\nc 0\nd 0\n",
        "empty.txt": "", "c_bad.txt": "0 1\n1 abc\n", "c_range.txt": "0 2\n1 0\n",
        "bad.prototxt": 'layer { name: "x" type: \n',
        "net.prototxt": 'input: "data" input_shape { dim: 2 dim: 5 }\nlayer { name: "ip" '
                        'type: "InnerProduct" bottom: "data" top: "ip" '
                        'inner_product_param { num_output: 3 } }\n',
    }
    for name, text in files.items():
        (d / name).write_text(text)
    (d / "garbage.bin").write_bytes(b"\x80\xff" + bytes(range(256)) * 4)   # not UTF-8 on line 1
    (d / "garbage.binaryproto").write_bytes(b"\xff\xfe\x00garbage" * 10)
    blob_io.write_blobproto(str(d / "c.binaryproto"), np.array([[[[0, 1], [1, 0]]]]))
    (d / "trunc.binaryproto").write_bytes((d / "c.binaryproto").read_bytes()[:-5])
    for name in ("dir", "emptydir", "notlmdb", "fakelmdb", "unfinished.tmp"):
        os.makedirs(str(d / name))
    (d / "notlmdb" / "notes").write_text("mine")
    (d / "fakelmdb" / "data.mdb").write_bytes(b"garbage" * 1000)
    lmdb_io.write_label_lmdb(str(d / "labels_db"), [0, 1, 1], desc=False)
    # Weights of the same layer with another shape (num_output 4, not 3).
    net = ('layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 '
           'dim: 5 } } }\nlayer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
           'inner_product_param { num_output: %d } }\n')
    (d / "ip3.prototxt").write_text(net % 3)
    (d / "ip4.prototxt").write_text(net % 4)
    import caffe
    caffe.Net(str(d / "ip4.prototxt"), caffe.TEST).save(str(d / "w4.caffemodel"))
    return d


# (tool, arguments, what the one line says, exit status): each once gave a traceback, a
# cryptic line, or silently did the wrong thing.
BAD_INPUTS = [
    # outputs
    ("build_label_lmdb", ["list.txt", "list.txt"], "list.txt exists and is not an LMDB: not replacing it", 1),
    ("synthesize_noise", ["list.txt", "dir", "--num-classes", "2"], "cannot write dir: it is a directory", 1),
    ("synthesize_noise", ["list.txt", "o.txt", "--num-classes", "2", "--matrix-q", "q.txt"],
     "the text copy of Q would overwrite q.txt", 1),
    ("estimate_matrix_c", ["clean.txt", "noisy.txt", "dir", "--num-classes", "2"],
     "cannot write dir: it is a directory", 1),
    ("estimate_matrix_c", ["clean.txt", "noisy.txt", "c.txt", "--num-classes", "2"],
     "the text copy of C would overwrite c.txt: give --text another name", 1),
    ("assign_noise_types", ["clean.txt", "noisy.txt", "c.binaryproto", "dir"],
     "cannot write dir: it is a directory", 1),
    ("build_image_lmdb", [".", "list.txt", "db", "--mean", "dir"],
     "cannot write the mean file dir: it is a directory", 1),
    # list files
    ("build_label_lmdb", ["garbage.bin", "db"], "garbage.bin:1: not UTF-8 text", 1),
    ("build_image_lmdb", [".", "garbage.bin", "db"], "garbage.bin:1: not UTF-8 text", 1),
    ("build_label_lmdb", ["missing.txt", "db"],
     "build_label_lmdb: missing.txt: No such file or directory", 1),
    ("build_image_lmdb", ["nowhere", "list.txt", "db"], "the image root nowhere is not a directory", 1),
    # matrix files
    ("assign_noise_types", ["clean.txt", "noisy.txt", "garbage.binaryproto", "o.txt"],
     "garbage.binaryproto is not a BlobProto (.binaryproto)", 1),
    ("assign_noise_types", ["clean.txt", "noisy.txt", "trunc.binaryproto", "o.txt"],
     "trunc.binaryproto is not a BlobProto (.binaryproto)", 1),
    ("assign_noise_types", ["clean.txt", "noisy.txt", "empty.txt", "o.txt"],
     "empty.txt: no matrix in the file", 1),
    ("assign_noise_types", ["clean.txt", "noisy.txt", "c_bad.txt", "o.txt"],
     "c_bad.txt:2: not a row of numbers: '1 abc'", 1),
    ("assign_noise_types", ["clean.txt", "noisy.txt", "c_range.txt", "o.txt"],
     "c_range.txt: matrix C column 1 (true class 1) sums to 2", 1),
    ("assign_noise_types", ["clean.txt", "noisy.txt", "dir", "o.txt"],
     "matrix C file dir is a directory", 1),
    # LMDBs
    ("compute_mean", ["emptydir", "m.binaryproto"], "no LMDB at emptydir: emptydir has no data.mdb", 1),
    ("compute_mean", ["fakelmdb", "m.binaryproto"], "fakelmdb is not a readable LMDB", 1),
    ("compute_mean", ["list.txt", "m.binaryproto"], "list.txt is a file (an LMDB is a directory)", 1),
    ("compute_mean", ["labels_db", "m.binaryproto"], "labels_db: record 00000000 holds 0 bytes of "
     "pixels, not the 1x1x1 its shape needs: not an image Datum", 1),
    ("inspect_lmdb", ["notlmdb"], "no LMDB at notlmdb: notlmdb has no data.mdb", 1),
    ("inspect_lmdb", ["fakelmdb"], "fakelmdb is not a readable LMDB", 1),
    ("inspect_lmdb", ["unfinished"], "no LMDB at unfinished (unfinished.tmp is an unfinished "
     "write: build it again)", 1),
    # logs, nets, weights
    ("copy_params", ["dir", "c.binaryproto", "net.prototxt", "o.caffemodel"],
     "copy_params: dir is not a file", 1),
    ("parse_log", ["garbage.bin"], "parse_log: garbage.bin has no Caffe training or test lines", 1),
    ("parse_log", ["missing.log"], "parse_log: missing.log: No such file or directory", 1),
    ("make_prototxt", ["nosuch"], "make_prototxt: unknown dataset 'nosuch'", 1),
    ("copy_params", ["bad.prototxt", "c.binaryproto", "net.prototxt", "o.caffemodel"],
     "copy_params: bad.prototxt:2:1 : ", 1),
    ("copy_params", ["net.prototxt", "c.binaryproto", "net.prototxt", "o.caffemodel"],
     "c.binaryproto is not a .caffemodel (trained weights)", 1),
    ("copy_params", ["net.prototxt", "net.prototxt", "net.prototxt", "o.caffemodel"],
     "net.prototxt is not a .caffemodel (trained weights)", 1),
    ("copy_params", ["ip3.prototxt", "w4.caffemodel", "ip3.prototxt", "o.caffemodel"],
     "copy_params: w4.caffemodel: blob 0 of layer 'ip' is (4, 5) but ip3.prototxt needs (3, 5)",
     1),
    # label kv files (noisy_label.datasets, as make lmdb clothing1M reads them)
    ("estimate_matrix_c", ["garbage.bin", "noisy.txt", "c.binaryproto", "--num-classes", "2"],
     "estimate_matrix_c: garbage.bin:1: not UTF-8 text", 1),
    ("assign_noise_types", ["dir", "noisy.txt", "c.binaryproto", "o.txt"],
     "assign_noise_types: dir is a directory, not a text file", 1),
    # option values: argparse's usage and one line, status 2
    ("build_label_lmdb", ["list.txt", "db", "--num-classes", "0"],
     "argument --num-classes: must be at least 1, got 0", 2),
    ("build_image_lmdb", [".", "list.txt", "db", "--resize-height", "-5", "--resize-width", "5"],
     "argument --resize-height: must be at least 0, got -5", 2),
    ("build_image_lmdb", [".", "list.txt", "db", "--resize-height", "5"],
     "--resize-height and --resize-width go together", 2),
    ("build_image_lmdb", [".", "list.txt", "db", "--processes", "-1"],
     "argument --processes: must be at least 1, got -1", 2),
    ("build_image_lmdb", [".", "list.txt", "db", "--encoded", "--encode-type", "xyz"],
     "--encode-type xyz: OpenCV cannot write it", 2),
    ("synthesize_noise", ["list.txt", "o.txt", "--num-classes", "1"],
     "argument --num-classes: must be at least 2, got 1", 2),
    ("synthesize_noise", ["list.txt", "o.txt", "--num-classes", "2", "--seed", "-1"],
     "argument --seed: must be at least 0, got -1", 2),
    ("synthesize_noise", ["list.txt", "o.txt", "--num-classes", "2", "--noise-level", "nan"],
     "synthesize_noise: NOISE_LEVEL must be in [0, 1], got nan", 1),
    ("estimate_matrix_c", ["clean.txt", "noisy.txt", "c.binaryproto", "--num-classes", "x"],
     "argument --num-classes: invalid int value: 'x'", 2),
    ("make_lmdb", ["digits", "--seed", "-1"], "argument --seed: must be at least 0, got -1", 2),
    ("report", ["digits", "--seeds", "-1"], "argument --seeds: must be at least 0, got -1", 2),
    ("compare", ["digits", "--seeds", "0"], "argument --seeds: must be at least 1, got 0", 2),
    ("compare", ["nosuch"], "compare: unknown dataset 'nosuch': not one of the built-in "
     "cifar10, clothing1M, digits, and no dataset.yaml in", 1),
    ("compare", ["digits", "--exp", "noexp", "--report-only"], "compare: no final test accuracy "
     "for clean only (stage clean) at seed 1 in ", 1),
]


@pytest.mark.parametrize("name,args,reason,status", BAD_INPUTS,
                         ids=["%s-%d" % (case[0], i) for i, case in enumerate(BAD_INPUTS)])
def test_bad_input_one_line(inputs, name, args, reason, status):
    before = sorted(os.listdir(str(inputs)))
    assert reason in fails(str(inputs), name, *args, status=status)
    assert sorted(os.listdir(str(inputs))) == before  # nothing written, nothing left behind


def test_lmdb_output_never_replaces_what_is_not_an_lmdb(inputs):
    # It once deleted the directory (rmtree) to put the LMDB in its place.
    for tool, args in (("build_label_lmdb", ["list.txt"]), ("build_image_lmdb", [".", "list.txt"])):
        assert "notlmdb exists and is not an LMDB: not replacing it" in fails(
            str(inputs), tool, *(args + ["notlmdb"]))
        assert os.listdir(str(inputs / "notlmdb")) == ["notes"]
    assert (inputs / "list.txt").read_text().startswith("img/0.jpg 0")
    # An LMDB (or an empty directory) is replaced, and a missing parent made.
    for out in ("emptydir2", "new/sub/db"):
        os.makedirs(str(inputs / "emptydir2"), exist_ok=True)
        ok(str(inputs), "build_label_lmdb", "list.txt", out)
        ok(str(inputs), "build_label_lmdb", "list.txt", out)
        assert lmdb_io.count(str(inputs / out)) == 4 and not os.path.exists(str(inputs / out) + ".tmp")


def test_text_copies_beside_the_binaryproto(inputs, tmp_path):
    # The text copy once went to OUT up to its first dot: v1.2/c -> v1.txt.
    out = tmp_path / "v1.2" / "c"
    ok(str(tmp_path), "estimate_matrix_c", inputs / "clean.txt", inputs / "noisy.txt", out,
       "--num-classes", "2")
    assert np.loadtxt(str(out) + ".txt").shape == (2, 2) and not (tmp_path / "v1.txt").exists()
    ok(str(tmp_path), "synthesize_noise", inputs / "list.txt", "n.txt", "--num-classes", "2",
       "--matrix-q", "q.v2.binaryproto")
    assert blob_io.read_blobproto(str(tmp_path / "q.v2.binaryproto")).shape == (1, 1, 2, 2)
    assert np.loadtxt(str(tmp_path / "q.v2.txt")).shape == (2, 2)
    assert oct(os.stat(str(tmp_path / "n.txt")).st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_closed_stdout_is_quiet(inputs):
    proc = run_plain(["bash", "-c", " ".join(command("inspect_lmdb", *["labels_db"] * 3000))
                      + " | head -1"], str(inputs))
    assert proc.stdout.startswith("labels_db: 3 records") and "Traceback" not in proc.stdout
    assert len(lines(proc.stdout)) == 1, proc.stdout


# ---- Ctrl-C and kill ---------------------------------------------------------------------


def interrupt(cwd, args, out, sig, group=True, child=False):
    """Start a tool, wait until it writes out.tmp, send `sig` to it (group: to its process
    group, as Ctrl-C in a terminal does, decoders included; child: to one of its decoder
    processes only); return (status, output)."""
    proc = subprocess.Popen(args, cwd=cwd, env=plain_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.time() + 60
        while not os.path.exists(out + ".tmp") and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "%s ended before it was interrupted:\n%s" % (
            args[1], proc.communicate()[0][-2000:])
        time.sleep(0.05)  # into writing
        if child:
            with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
                os.kill(int(f.read().split()[0]), sig)
        else:
            (os.killpg if group else os.kill)(proc.pid, sig)
        output = proc.communicate(timeout=60)[0]  # a hang fails here
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, output


def assert_stopped(status, output, tool, want_status, out):
    assert status == want_status, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert lines(output) == [tool + ": " + ("interrupted" if status == 130 else
                                           "terminated (SIGTERM)")
                             + "; " + cli.STOPPED_CLEANLY], output[-3000:]
    assert not os.path.exists(out) and not os.path.exists(out + ".tmp")


def test_ctrl_c_and_kill_build_label_lmdb(tmp_path):
    (tmp_path / "labels.txt").write_text("".join("k%07d %d\n" % (i, i % 10)
                                                 for i in range(1000000)))
    db = str(tmp_path / "db")
    args = command("build_label_lmdb", "labels.txt", "db")
    assert_stopped(*interrupt(str(tmp_path), args, db, signal.SIGINT), "build_label_lmdb", 130, db)
    assert_stopped(*interrupt(str(tmp_path), args, db, signal.SIGTERM, group=False),
                   "build_label_lmdb", 143, db)
    assert "1000000 labels -> db" in ok(str(tmp_path), "build_label_lmdb", "labels.txt", "db")
    assert lmdb_io.count(db) == 1000000


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                        (signal.SIGKILL, 1)])
def test_ctrl_c_and_kill_build_image_lmdb_with_decoders(tmp_path, sig, status):
    # With a multiprocessing.Pool, Ctrl-C printed a traceback per worker and hung the parent,
    # and so did a kill of the process group; a killed worker hung it too.
    image = cv2.resize(np.random.RandomState(0).randint(0, 255, (8, 8, 3)).astype(np.uint8),
                       (400, 300))
    cv2.imwrite(str(tmp_path / "a.jpg"), image)
    (tmp_path / "list.txt").write_text("a.jpg 1\n" * 5000)
    db = str(tmp_path / "db")
    args = command("build_image_lmdb", ".", "list.txt", "db", "--processes", "2")
    if sig != signal.SIGKILL:
        assert_stopped(*interrupt(str(tmp_path), args, db, sig), "build_image_lmdb", status, db)
        return
    code, output = interrupt(str(tmp_path), args, db, sig, child=True)  # e.g. the OOM killer
    assert code == 1 and lines(output) == ["build_image_lmdb: an image decoder process died "
                                           "(exit status -9)"], output[-3000:]
    assert not os.path.exists(db) and not os.path.exists(db + ".tmp")


# ---- in process: the library writers and cli.run ----------------------------------------


def test_writers_interrupted_leave_nothing(tmp_path, monkeypatch):
    def labels():
        for i in range(5000):
            if i == 3000:
                raise KeyboardInterrupt
            yield i % 3
    db = str(tmp_path / "db")
    with pytest.raises(KeyboardInterrupt):
        lmdb_io.write_label_lmdb(db, labels(), desc=False)
    assert os.listdir(str(tmp_path)) == []
    with pytest.raises(KeyboardInterrupt):
        imageset.write_image_list(str(tmp_path / "l.txt"), (("a", i) for i in labels()))
    assert os.listdir(str(tmp_path)) == []

    def interrupted(*args):
        raise KeyboardInterrupt
    # Ctrl-C at the last step of each writer: its rename.
    with monkeypatch.context() as m:
        m.setattr(lmdb_io.os, "rename", interrupted)
        with pytest.raises(KeyboardInterrupt):
            lmdb_io.write_label_lmdb(db, [1, 2], desc=False)
    with monkeypatch.context() as m:
        m.setattr(atomic.os, "replace", interrupted)
        with pytest.raises(KeyboardInterrupt):
            blob_io.write_blobproto(str(tmp_path / "m.binaryproto"), np.zeros((1, 3, 4, 4)))
        with pytest.raises(KeyboardInterrupt):
            caffe_log.plot_curves({"a": "Iteration 10, Testing net (#0)\n"
                                        "Test net output #0: accuracy = 0.5\n"},
                                  str(tmp_path / "p.png"))
    assert os.listdir(str(tmp_path)) == []


def test_cli_run(capsys):
    def main(error):
        def run():
            raise error
        return run
    try:
        for error, status, line in (
                (KeyboardInterrupt(), 130, "t: interrupted; " + cli.STOPPED_CLEANLY),
                (cli.Terminated(), 143, "t: terminated (SIGTERM); " + cli.STOPPED_CLEANLY),
                (FileNotFoundError(2, "No such file or directory", "a.txt"), 1,
                 "t: a.txt: No such file or directory"),
                (IOError("missing file a.txt"), 1, "t: missing file a.txt"),
                (ValueError("a.txt:3: label 7 is outside 0..4"), 1,
                 "t: a.txt:3: label 7 is outside 0..4"),
                (lmdb.InvalidError("db: MDB_INVALID"), 1, "t: db: MDB_INVALID"),
                (cli.Failure("[x] clean failed (caffe exit 1); log: l"), 1,
                 "t: [x] clean failed (caffe exit 1); log: l"),
                (cli.Interrupted("[x] clean interrupted (Caffe saved s)"), 130,
                 "t: [x] clean interrupted (Caffe saved s)")):
            with pytest.raises(SystemExit) as e:
                cli.run(main(error), "t")
            assert e.value.code == status and capsys.readouterr().err == line + "\n"
        with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
            cli.run(main(ZeroDivisionError()), "t")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    at_least = cli.at_least(2)
    assert at_least("3") == 3
    for bad in ("1", "-4"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be at least 2, got " + bad):
            at_least(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        cli.at_least(0.0, float)("nan")
