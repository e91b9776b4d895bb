"""The training workflow of each dataset, stage by stage (its stage table: stages.py), with
the stock `caffe` tool.

Each training stage is `caffe train -solver prototxt/<dataset>/<stage>_solver.prototxt
[-weights W | -snapshot S] [-gpu 0]`, run from the repository root, logged to
`$EXP/logs/<dataset>/<stage>.log`. What a stage was trained from (solver and net text, the
LMDBs' manifest, the weights it started from) is recorded beside its snapshots
(`<stage>.manifest.json`): a stage whose record matches and whose final snapshot exists is
skipped; one that stopped early (a crash, Ctrl-C: Caffe snapshots on SIGINT) resumes from
its newest complete snapshot; one whose inputs changed is trained again, saying what changed.
"""
import functools
import math
import os
from typing import Optional, Tuple

from noisy_label import cli, datasets, paths
from noisy_label.experiments import caffe_log, caffe_run, stages
from noisy_label.experiments.caffe_run import (  # noqa: F401 (the pipeline's names for them)
    StageError,
    StageInterrupted,
    gpu_available,
    gpu_choice,
)
from noisy_label.experiments.stage_records import StageRecord
from noisy_label.io import download, lmdb_io, lock, manifest, prototxt, snapshots


class Experiment(object):
    """One dataset's workflow at one seed under one experiment root (and its prototxts).

    exp: the experiment root (seed 1 lives in it, seed n in exp/seeds/n: paths.seed_root).
    settings: SET="key=value ..." (stages.parse_settings) or its dict; with settings, another
    root or seed the prototxts are generated into the seed root instead of prototxt/.
    keep_snapshots: keep only the newest K intermediate snapshots of each stage (None: all).
    """

    def __init__(self, name: str, exp: Optional[str] = None, gpu=None, seed: int = 1,
                 settings: Optional[dict] = None, keep_snapshots=None):
        ds = datasets.get_dataset(name)
        self.name = ds.name
        self.base = paths.exp_root(exp)
        self.exp = paths.seed_root(self.base, seed)
        self.seed, self.gpu, self.keep_snapshots = seed, gpu, keep_snapshots
        self._built = None       # the checked LMDB build (check_lmdbs)
        self._records = {}       # stage -> its StageRecord (record)
        if isinstance(settings, str):
            settings = stages.parse_settings(settings, name)
        self.settings = settings or {}
        self.log_dir = paths.log_dir(name, self.exp)
        self.snapshot_dir = paths.snapshot_dir(name, self.exp)
        default_root = os.path.realpath(os.path.join(paths.REPO_ROOT, paths.DEFAULT_EXP))
        if ds.builtin and os.path.realpath(self.exp) == default_root and not self.settings:
            self.prototxt_dir = os.path.join(paths.REPO_ROOT, "prototxt", name)
        else:
            # Another root, seed or settings, or a user's dataset: prototxts that point there.
            self.prototxt_dir = stages.write_dataset(name, self.exp, seed, self.settings)

    # ---- files ----

    def solver_file(self, stage: str) -> str:
        return os.path.join(self.prototxt_dir, stages.solver_file_name(self.name, stage))

    def solver(self, stage: str):
        from caffe.proto import caffe_pb2
        return prototxt.read_prototxt(self.solver_file(stage), caffe_pb2.SolverParameter())

    def final(self, stage: str, ext: str = ".caffemodel") -> str:
        """The snapshot a stage ends with: <snapshot_prefix>_iter_<max_iter><ext>."""
        solver = self.solver(stage)
        return snapshots.path(self._abs(solver.snapshot_prefix), solver.max_iter, ext)

    def init_weights(self) -> str:
        return paths.init_weights(self.name, self.exp)

    def initial_weights(self) -> Optional[str]:
        """The dataset's initial weights (Clothing1M: ImageNet CaffeNet, under EXP/snapshots/,
        downloaded when missing; a dataset.yaml's `weights`), or None (the fillers)."""
        ds = datasets.get_dataset(self.name)
        if not ds.initial_weights:
            return None
        file_name, url = ds.initial_weights
        path = os.path.join(self.base, "snapshots", file_name)
        if not os.path.exists(path):
            if url is None:
                raise StageError("[%s] %s: weights: %s does not exist" % (
                    self.name, ds.defined_in, path))
            fetch(url, path)
        return path

    # ---- stages ----

    def start(self, stage: "stages.Stage") -> Optional[Tuple[str, str]]:
        """(flag, path) a training stage starts from: ("-weights", W), ("-snapshot", S) or None."""
        if stage.start is None:
            return None
        how, source = stage.start
        if how == "snapshot":
            return "-snapshot", self.final(source, ".solverstate")
        if source == "initial":
            weights = self.initial_weights()
            return ("-weights", weights) if weights else None
        return "-weights", self.init_weights() if source == "init" else self.final(source)

    def stages(self, compare: bool = True):
        """[(stage name, function)] in order, from the dataset's stage table (compare: with
        the stages only make compare trains)."""
        steps = []
        for stage in stages.stages(self.name, compare):
            if stage.kind == "train":
                steps.append((stage.name, functools.partial(self._train_stage, stage)))
            elif stage.kind == "init":
                steps.append((stage.name, self.init))
            elif stage.kind == "relabel":
                steps.append((stage.name, functools.partial(self.relabel, stage.name, stage.of)))
            else:
                steps.append((stage.name, functools.partial(self.test, stage.of)))
        return steps

    def _train_stage(self, stage: "stages.Stage") -> str:
        start = self.start(stage)
        flag, path = start if start else (None, None)
        return self.train(stage.name, weights=path if flag == "-weights" else None,
                          snapshot=path if flag == "-snapshot" else None)

    def run(self, only=None, compare: bool = False) -> None:
        """Run make train's stages in order (compare: and make compare's; or just the stages
        named in `only`)."""
        names = [name for name, _ in self.stages()]
        for name in only or ():
            if name not in names:
                raise StageError("unknown stage %r for %s; stages: %s"
                                 % (name, self.name, ", ".join(names)))
        with self.locked("make train"):
            for name, step in self.stages(compare=compare or bool(only)):
                if not only or name in only:
                    step()

    def signature(self, stage: str, start) -> dict:
        """What a training stage is trained from: its solver and net text, the LMDBs' manifest
        (make lmdb), the weights or solver state it starts from (by content)."""
        solver_file = self.solver_file(stage)
        built = self.check_lmdbs()
        db_dir = paths.db_dir(self.name, self.exp)
        reads = {f: manifest.content_signature(os.path.join(db_dir, f))
                 if os.path.exists(os.path.join(db_dir, f)) else None
                 for f in stages.stage(self.name, stage).reads}
        return dict({"solver": manifest.content_signature(solver_file),
                     "net": manifest.content_signature(self._abs(self.solver(stage).net)),
                     # Each group's options, inputs, build id and content: a rebuild of
                     # one (FORCE=1 included) retrains the stages that read it.
                     "lmdb": {group: record for group, record in built.items()
                              if group not in datasets.NOT_TRAINED_ON},
                     "start": manifest.content_signature(start)},
                    **({"reads": reads} if reads else {}))

    def check_lmdbs(self) -> dict:
        """The LMDB groups of a whole make lmdb build (datasets.check_build), checked once per
        run; StageError naming make lmdb when the set is partial, mixed or changed."""
        if self._built is None:
            try:
                self._built = datasets.check_build(self.name, paths.db_dir(self.name, self.exp),
                                                   self.seed)
            except ValueError as e:
                raise StageError("[%s] %s" % (self.name, e))
        return self._built

    def locked(self, what: str):
        """The lock of this dataset's root (one writer at a time): `with exp.locked("make
        train"):`. A second run waits for it, or stops under NO_WAIT=1."""
        return lock.hold(paths.lock_file(self.name, self.exp), "%s %s" % (what, self.name))

    def record(self, stage: str) -> StageRecord:
        """The record of what `stage` was trained from (stage_records), one per stage."""
        if stage not in self._records:
            self._records[stage] = StageRecord(
                self.name, stage, paths.stage_manifest(self.name, stage, self.exp),
                os.path.join(self.snapshot_dir, ".previous", stage),
                os.path.join(self.log_dir, stage + ".log"))
        return self._records[stage]

    def train(self, stage: str, weights: Optional[str] = None, snapshot: Optional[str] = None) -> str:
        """`caffe train` for one stage: skipped when done, resumed when it stopped early."""
        solver = self.solver(stage)
        prefix = self._abs(solver.snapshot_prefix)
        final = snapshots.path(prefix, solver.max_iter)
        start = weights or snapshot
        if start and not os.path.exists(start):
            raise StageError("[%s] %s needs %s, which does not exist" % (self.name, stage, start))
        self.check_lmdbs()
        first = 0
        if snapshot:
            try:
                first = snapshots.check_solverstate(snapshot, paths.REPO_ROOT)
            except ValueError as e:
                raise StageError("[%s] %s: %s" % (self.name, stage, e))
        # This stage's snapshots: after the iteration it starts at, up to its last.
        own = [f for i, state in snapshots.listed(prefix) if first < i <= solver.max_iter
               for f in (state, snapshots.path(prefix, i))]
        record = self.record(stage)
        if record.up_to_date(self.signature(stage, start), final, own + [final]):
            return final
        skipped = []
        resume = snapshots.latest(prefix, first, solver.max_iter, paths.REPO_ROOT, skipped)
        for reason in skipped:
            print("[%s] %s: not resuming from %s" % (self.name, stage, reason))
        if resume and resume[0] == solver.max_iter:
            record.completed()   # stopped after its final snapshot, in the last test
            print("[%s] %s: done (%s)" % (self.name, stage, os.path.relpath(final)))
            return final
        args = ["train", "-solver", self.solver_file(stage)]
        if resume:
            print("[%s] %s: resuming from iteration %d (%s)"
                  % (self.name, stage, resume[0], os.path.relpath(resume[1])))
            args += ["-snapshot", resume[1]]
        elif start:
            args += ["-weights" if weights else "-snapshot", start]
        os.makedirs(self.snapshot_dir, exist_ok=True)
        try:
            self.caffe(args, stage, total=solver.max_iter, initial=resume[0] if resume else first,
                       append=bool(resume), prune=(prefix, first, solver.max_iter))
        except BaseException as e:
            if record.restore() and isinstance(e, cli.Failure):
                first, _, rest = str(e).partition("\n")
                raise type(e)(first + "; the snapshots it had finished before are kept"
                              + ("\n" + rest if rest else "")) from None
            raise
        record.drop_set_aside()
        if not os.path.exists(final):
            raise StageError("[%s] %s finished without writing %s" % (self.name, stage, final))
        record.completed()
        return final

    def init(self) -> str:
        """Copy the trained clean net into the `*_clean` tower and the noise-type net into `*_ntype`."""
        from noisy_label.experiments import net_surgery
        target = self.init_weights()
        joint_net = self._abs(self.solver(self.joint_stage()).net)
        maps = stages.init_layer_maps(self.name)
        for source_stage, _ in maps:
            if not os.path.exists(self.final(source_stage)):
                raise StageError("[%s] init needs %s, which does not exist (run the %s stage)"
                                 % (self.name, self.final(source_stage), source_stage))
        signature = {"net": manifest.content_signature(joint_net),
                     "start": [manifest.content_signature(self.final(source_stage))
                               for source_stage, _ in maps]}
        if self.record("init").up_to_date(signature, target):   # replaced when the new is whole
            return target
        # Both copies go into a file of another name, renamed when whole.
        partial = target + ".partial"
        for i, (source_stage, layer_map) in enumerate(maps):
            source_net = self.solver(source_stage).net
            print("[%s] init: %s -> %s" % (self.name, source_stage, ", ".join(
                "%s->%s" % kv for kv in sorted(layer_map.items()))))
            net_surgery.copy_params(self._abs(source_net), self.final(source_stage), joint_net,
                                    partial, layer_map, target_weights_in=partial if i else None)
        os.replace(partial, target)
        self.record("init").completed()
        return target

    def relabel(self, stage: str, of: str) -> str:
        """make relabel with stage `of`'s final model (threshold: the dataset's, else 0.5),
        unless done from it."""
        from noisy_label.experiments import relabel
        summary = os.path.join(paths.db_dir(self.name, self.exp), stages.RELABEL_SUMMARY)
        final = self.final(of)
        if not os.path.exists(final):
            raise StageError("[%s] %s needs %s, which does not exist (run the %s stage)"
                             % (self.name, stage, final, of))
        threshold = datasets.get_dataset(self.name).relabel_threshold or 0.5
        signature = {"start": manifest.content_signature(final), "threshold": threshold}
        if self.record(stage).up_to_date(signature, summary):
            return summary
        print(relabel.format_summary(relabel.relabel(self, threshold, self.gpu)))
        self.record(stage).completed()
        return summary

    def joint_stage(self) -> str:
        """The training stage whose net the init step fills."""
        return [s for s in stages.stages(self.name) if s.kind == "init"][0].into

    def test(self, stage: str) -> float:
        """`caffe test` of the final model on the held-out set (the `*_clean` tower), over
        every record of its LMDB: ceil(records / batch_size) iterations, read off the net."""
        from caffe.proto import caffe_pb2
        test_stage = [s for s in stages.stages(self.name) if s.kind == "test"][0]
        model = os.path.join(self.prototxt_dir, test_stage.net + ".prototxt")
        net = prototxt.read_prototxt(model, caffe_pb2.NetParameter())
        data = [layer.data_param for layer in net.layer if layer.type == "Data"][0]
        source = self._abs(data.source)
        if not os.path.isdir(source):
            raise StageError("[%s] test: no LMDB %s; run make lmdb DATASET=%s first"
                             % (self.name, source, self.name))
        iterations = int(math.ceil(lmdb_io.count(source) / float(data.batch_size)))
        final = self.final(stage)
        if not os.path.exists(final):
            raise StageError("[%s] test needs %s, which does not exist (run the %s stage)"
                             % (self.name, final, stage))
        log = self.caffe(["test", "-model", model, "-weights", final,
                          "-iterations", str(iterations)], "test", total=None)
        accuracy = caffe_log.final_test(log)
        print("[%s] test accuracy: %.4f" % (self.name, accuracy))
        return accuracy

    # ---- running caffe ----

    def _abs(self, path: str):
        return path if os.path.isabs(path) else os.path.join(paths.REPO_ROOT, path)

    def caffe(self, args, stage: str, total: Optional[int], initial: int = 0, append: bool = False,
              prune=None) -> str:
        """Run the caffe tool for `stage` (caffe_run.run: its log <log_dir>/<stage>.log, progress,
        Ctrl-C, a diverging loss); return the log. prune: (prefix, after, before) of snapshots
        to thin to the newest keep_snapshots as training goes."""
        if self.gpu is not None:
            args = args + ["-gpu", str(self.gpu)]
        record = self.record(stage) if stage in self._records else None

        def on_snapshot():
            if record:
                record.drop_set_aside()   # the new run has a snapshot of its own
            if prune and self.keep_snapshots is not None:
                snapshots.prune(prune[0], self.keep_snapshots, prune[1], prune[2])

        def failed_log():
            # The finished run before this one comes back as <stage>.log: this one's log
            # goes beside it.
            if record and record.set_aside:
                return os.path.join(self.log_dir, stage + ".failed.log")
            return None
        return caffe_run.run(args, os.path.join(self.log_dir, stage + ".log"), self.name, stage,
                             total=total, initial=initial, append=append, on_snapshot=on_snapshot,
                             failed_log=failed_log)


def fetch(url: str, path: str) -> None:
    """Download url to path; a StageError saying where to put the file when offline."""
    try:
        download.fetch(url, path)
    except OSError as e:
        raise StageError("could not download %s (%s).\nPut the file at %s and re-run."
                         % (url, e, path))
