"""The training workflow of each dataset, stage by stage, with the stock `caffe` tool.

    cifar10, digits: clean -> noisy_gt_ft_clean -> ntype -> init -> noisy_label_loss -> test
    clothing1M:      clean (from ImageNet CaffeNet) -> ntype -> init -> noisy_label_loss_stage1
                     -> noisy_label_loss_stage2 (resumed from stage 1's solverstate) -> test

The noise-type net is fine-tuned from the clean net's final snapshot, and `init` copies both
trained nets into the joint net (models.init_layer_maps), as the original release did.

Each training stage is `caffe train -solver prototxt/<dataset>/<stage>_solver.prototxt
[-weights W | -snapshot S] [-gpu 0]`, run from the repository root, logged to
`$EXP/logs/<dataset>/<stage>.log`. A stage whose final snapshot exists is skipped, so a
re-run resumes where the last one stopped.
"""
import math
import os
import shutil
import subprocess
import sys

from tqdm import tqdm

from noisy_label import caffe_log, download, lmdb_io, models, paths

IMAGENET_WEIGHTS = "bvlc_reference_caffenet.caffemodel"
IMAGENET_URL = "http://dl.caffe.berkeleyvision.org/bvlc_reference_caffenet.caffemodel"
CLOTHING1M_TEST_ITERATIONS = 106  # x batch 100 covers the 10,526 clean test images


class StageError(RuntimeError):
    pass


class Experiment(object):
    """One dataset's workflow under one experiment root (and the prototxts that point there)."""

    def __init__(self, name, exp=None, gpu=None, seed=1):
        self.name = paths.check_dataset(name)
        self.exp = paths.exp_root(exp)
        self.seed = seed
        self.gpu = gpu
        self.log_dir = paths.log_dir(name, self.exp)
        self.snapshot_dir = paths.snapshot_dir(name, self.exp)
        default_root = os.path.realpath(os.path.join(paths.REPO_ROOT, paths.DEFAULT_EXP))
        if os.path.realpath(self.exp) == default_root and seed == 1:
            self.prototxt_dir = os.path.join(paths.REPO_ROOT, "prototxt", name)
        else:
            # Another root or seed: a copy of the prototxts that points there.
            self.prototxt_dir = models.write_dataset(name, self.exp, seed)

    # ---- files ----

    def solver_file(self, stage):
        return os.path.join(self.prototxt_dir, models.solver_file_name(self.name, stage))

    def solver(self, stage):
        from caffe.proto import caffe_pb2
        return models.read_prototxt(self.solver_file(stage), caffe_pb2.SolverParameter())

    def final(self, stage, ext=".caffemodel"):
        """The snapshot a stage ends with: <snapshot_prefix>_iter_<max_iter><ext>."""
        solver = self.solver(stage)
        prefix = solver.snapshot_prefix
        if not os.path.isabs(prefix):
            prefix = os.path.join(paths.REPO_ROOT, prefix)
        return "%s_iter_%d%s" % (prefix, solver.max_iter, ext)

    def init_weights(self):
        return os.path.join(self.snapshot_dir, "noisy_label_loss_init.caffemodel")

    def imagenet_weights(self):
        path = os.path.join(paths.exp_root(self.exp), "snapshots", IMAGENET_WEIGHTS)
        if not os.path.exists(path):
            fetch(IMAGENET_URL, path)
        return path

    # ---- stages ----

    def stages(self):
        """[(stage name, function)] in order."""
        if self.name == "clothing1M":
            return [("clean", lambda: self.train("clean", weights=self.imagenet_weights())),
                    ("ntype", lambda: self.train("ntype", weights=self.final("clean"))),
                    ("init", self.init),
                    ("noisy_label_loss_stage1",
                     lambda: self.train("noisy_label_loss_stage1", weights=self.init_weights())),
                    ("noisy_label_loss_stage2",
                     lambda: self.train("noisy_label_loss_stage2", snapshot=self.final(
                         "noisy_label_loss_stage1", ".solverstate"))),
                    ("test", lambda: self.test("noisy_label_loss_stage2"))]
        return [("clean", lambda: self.train("clean")),
                ("noisy_gt_ft_clean",
                 lambda: self.train("noisy_gt_ft_clean", weights=self.final("clean"))),
                ("ntype", lambda: self.train("ntype", weights=self.final("clean"))),
                ("init", self.init),
                ("noisy_label_loss",
                 lambda: self.train("noisy_label_loss", weights=self.init_weights())),
                ("test", lambda: self.test("noisy_label_loss"))]

    def run(self, only=None):
        """Run the stages in order (or just those named in `only`)."""
        names = [name for name, _ in self.stages()]
        for name in only or ():
            if name not in names:
                raise StageError("unknown stage %r for %s; stages: %s"
                                 % (name, self.name, ", ".join(names)))
        for name, step in self.stages():
            if not only or name in only:
                step()

    def train(self, stage, weights=None, snapshot=None):
        """`caffe train` for one stage, unless its final snapshot exists."""
        final = self.final(stage)
        if os.path.exists(final):
            print("[%s] %s: done (%s)" % (self.name, stage, os.path.relpath(final)))
            return final
        args = ["train", "-solver", self.solver_file(stage)]
        for flag, path in (("-weights", weights), ("-snapshot", snapshot)):
            if path:
                if not os.path.exists(path):
                    raise StageError("[%s] %s needs %s, which does not exist" % (self.name, stage, path))
                args += [flag, path]
        db = paths.db_dir(self.name, self.exp)
        if not os.path.isdir(db):
            raise StageError("[%s] %s: no LMDBs in %s; run make lmdb DATASET=%s first"
                             % (self.name, stage, db, self.name))
        os.makedirs(self.snapshot_dir, exist_ok=True)
        self.caffe(args, stage, total=self.solver(stage).max_iter)
        if not os.path.exists(final):
            raise StageError("[%s] %s finished without writing %s" % (self.name, stage, final))
        return final

    def init(self):
        """Copy the trained clean net into the `*_clean` tower and the noise-type net into `*_ntype`."""
        from noisy_label import net_surgery
        target = self.init_weights()
        if os.path.exists(target):
            print("[%s] init: done (%s)" % (self.name, os.path.relpath(target)))
            return target
        joint_net = self.solver(self.joint_stage()).net
        for source_stage, layer_map in models.init_layer_maps(self.name):
            source_net = self.solver(source_stage).net
            print("[%s] init: %s -> %s" % (self.name, source_stage, ", ".join(
                "%s->%s" % kv for kv in sorted(layer_map.items()))))
            net_surgery.copy_params(self._abs(source_net), self.final(source_stage),
                                    self._abs(joint_net), target, layer_map,
                                    target_weights_in=target if os.path.exists(target) else None)
        return target

    def joint_stage(self):
        return "noisy_label_loss_stage1" if self.name == "clothing1M" else "noisy_label_loss"

    def test(self, stage):
        """`caffe test` of the final model on the held-out set (the `*_clean` tower)."""
        model = os.path.join(self.prototxt_dir, "noisy_label_loss_test.prototxt")
        if self.name == "clothing1M":
            iterations = CLOTHING1M_TEST_ITERATIONS
        else:
            batch = models.DATASETS[self.name].test_batch
            iterations = int(math.ceil(lmdb_io.count(os.path.join(paths.db_dir(self.name, self.exp),
                                                               "test")) / float(batch)))
        log = self.caffe(["test", "-model", model, "-weights", self.final(stage),
                          "-iterations", str(iterations)], "test", total=None)
        accuracy = caffe_log.final_test(log)
        print("[%s] test accuracy: %.4f" % (self.name, accuracy))
        return accuracy

    # ---- running caffe ----

    def _abs(self, path):
        return path if os.path.isabs(path) else os.path.join(paths.REPO_ROOT, path)

    def caffe(self, args, stage, total):
        """Run the caffe tool, log to <log_dir>/<stage>.log, show progress; return the log."""
        if self.gpu is not None:
            args = args + ["-gpu", str(self.gpu)]
        os.makedirs(self.log_dir, exist_ok=True)
        log_path = os.path.join(self.log_dir, stage + ".log")
        tool = shutil.which("caffe")
        if tool is None:
            raise StageError("no `caffe` on PATH: activate the venv (source .venv/bin/activate)")
        lines = []
        bar = tqdm(total=total, desc="%s %s" % (self.name, stage), unit="it", leave=True,
                   disable=None)
        with open(log_path + ".tmp", "w") as log:
            log.write("# caffe %s\n" % " ".join(args))
            # The progress bar and the logs need Caffe's INFO lines, whatever the caller set.
            env = dict(os.environ, GLOG_minloglevel="0")
            proc = subprocess.Popen([tool] + args, cwd=paths.REPO_ROOT, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in proc.stdout:
                log.write(line)
                lines.append(line)
                _progress(bar, line)
            proc.wait()
        bar.close()
        os.replace(log_path + ".tmp", log_path)
        if proc.returncode != 0:
            tail = "".join(lines[-25:])
            raise StageError("[%s] %s failed (caffe exit %d); log: %s\n%s"
                             % (self.name, stage, proc.returncode, log_path, tail))
        return "".join(lines)


def _progress(bar, line):
    """Advance a tqdm bar from Caffe's `Iteration N` lines; show loss / test accuracy."""
    m = caffe_log._ITER_LOSS.search(line)
    if m:
        bar.update(int(m.group(1)) - bar.n)
        bar.set_postfix(loss=float(m.group(2)), refresh=False)
    elif "Test net output" in line and "accuracy =" in line:
        bar.set_postfix_str("test accuracy %s" % line.rsplit("=", 1)[1].strip())


def fetch(url, path):
    """Download url to path; a StageError saying where to put the file when offline."""
    try:
        download.fetch(url, path)
    except OSError as e:
        raise StageError("could not download %s (%s).\nPut the file at %s and re-run."
                         % (url, e, path))


def gpu_available():
    """True when nvidia-smi lists a GPU and the Caffe build is not CPU_ONLY."""
    if shutil.which("nvidia-smi") is None:
        return False
    if subprocess.run(["nvidia-smi", "-L"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        return False
    import caffe
    directory = os.path.dirname(os.path.realpath(caffe.__file__))
    while directory != os.path.dirname(directory):
        info = os.path.join(directory, "BUILDINFO")
        if os.path.exists(info):
            return "-DCPU_ONLY=OFF" in open(info).read()
        directory = os.path.dirname(directory)
    return False
