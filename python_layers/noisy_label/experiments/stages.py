"""The stage tables: each workflow as data, read by the prototxt generator, the pipeline and
the report alike.

    synthetic (cifar10, digits, and any dataset like them):
        clean -> noisy_gt_ft_clean -> ntype -> init -> noisy_label_loss -> test
    real_noise (clothing1M, and a user's dataset.yaml folder):
        clean (from the dataset's initial weights: ImageNet CaffeNet) -> ntype -> init
        -> noisy_label_loss_stage1 -> noisy_label_loss_stage2 (resumed from stage 1's
        solverstate) -> test

The noise-type net is fine-tuned from the clean net's final snapshot, and `init` copies both
trained nets into the joint net (init_layer_maps), as the original release did.

Each table ends with the other noise-robust methods (`compare` stages: bootstrapping soft and
hard, forward and backward correction; Clothing1M also noisy-as-truth, relabel and
relabel-then-train), which `make compare` trains and `make train` leaves out: each fine-tunes
the clean net on the mixed set with the schedule of the noisy-as-truth baseline (Clothing1M:
of ours, both stages), as ours does.
"""
import copy
import functools
import os
from typing import Dict, List, Optional, Tuple

from google.protobuf import text_format

from noisy_label import datasets, paths
from noisy_label.experiments import nets
from noisy_label.experiments import settings as settings_mod
from noisy_label.experiments.towers import TOWERS

# What reports call each role a stage plays (datasets give the original's figures by role).
ROLE_LABELS = {"clean": "clean only", "noisy_as_truth": "noisy as truth",
               "ntype": "noise-type net (noise-type accuracy)", "ours_stage1": "ours, stage 1",
               "ours": "ours", "relabelled": "relabel with ours, then train",
               "bootstrap_soft": "bootstrapping, soft (β = 0.95)",
               "bootstrap_hard": "bootstrapping, hard (β = 0.8)",
               "forward": "forward correction (estimated Q)",
               "forward_oracle": "forward correction (true Q, oracle)",
               "backward": "backward correction (estimated Q)"}


RELABELLED_LABELS = os.path.join(paths.RELABEL, paths.CORRECTED_LABELS)
RELABEL_SUMMARY = os.path.join(paths.RELABEL, "summary.json")
RELABELLED_LIST = os.path.join(paths.RELABEL, paths.CORRECTED_LABELS + ".txt")


class Stage(object):
    """One step of a workflow.

    kind: "train" (`caffe train` of `net`), "init" (the trained nets copied into the joint
    net), "relabel" (make relabel with stage `of`'s final weights), "test" (`caffe test` of
    stage `of`'s final weights on the dataset's test LMDB).
    net: file stem of the stage's net (prototxt/<dataset>/<net>.prototxt); build(ds, files):
    the NetParameter. start: where a training stage starts: None (its fillers), ("weights",
    stage) that stage's final .caffemodel (stage "init": the init step's output, "initial":
    the dataset's initial_weights), ("snapshot", stage) its final .solverstate. tests: the
    Dataset attribute naming the LMDB it tests on while training. prefix: its snapshots' file
    stem (default: its name). role: its row in reports (ROLE_LABELS, and the original release's
    figures: Dataset.reference_accuracy). reads: files in db_dir that its data comes from
    besides the LMDBs (make relabel's list, a matrix Q): their content is part of what it was
    trained from. schedule: the Dataset.schedules entry it trains with (default: its name).
    compare: trained by `make compare` only, not by `make train`. solver_fields: solver fields
    of this stage alone, over its schedule (SET still overrides them).
    """

    def __init__(self, name: str, kind: str = "train", net: Optional[str] = None, build=None,
                 start: Optional[Tuple[str, str]] = None, tests: str = "val_lmdb",
                 prefix: Optional[str] = None, role: Optional[str] = None,
                 of: Optional[str] = None, into: Optional[str] = None, reads=(),
                 schedule: Optional[str] = None, compare: bool = False,
                 solver_fields: Optional[dict] = None):
        self.name, self.kind, self.net, self.build, self.start = name, kind, net, build, start
        self.tests, self.prefix, self.role, self.reads = tests, prefix or name, role, reads
        self.of, self.into = of, into    # test: the stage tested; init: the joint stage
        self.schedule, self.compare = schedule or name, compare
        self.solver_fields = dict(solver_fields or {})

    @property
    def label(self) -> str:
        return ROLE_LABELS.get(self.role, self.name)

    def solver_file(self) -> str:
        """`<net>_solver.prototxt` with _trainval -> _solver, e.g. noisy_label_loss_solver.stage1."""
        return self.net.replace("_trainval", "_solver") + ".prototxt"


def _synthetic():
    return [
        Stage("clean", net="clean_trainval", build=nets.clean_net, role="clean"),
        Stage("noisy_gt_ft_clean", net="noisy_gt_ft_clean_trainval",
              build=functools.partial(nets.clean_net, train_lmdb=paths.MIXED_TRAIN,
                                      name="noisy_gt_ft_clean"),
              start=("weights", "clean"), role="noisy_as_truth"),
        Stage("ntype", net="ntype_trainval", build=nets.ntype_net, start=("weights", "clean"),
              tests="ntype_val_lmdb", role="ntype"),
        Stage("init", kind="init", into="noisy_label_loss"),
        Stage("noisy_label_loss", net="noisy_label_loss_trainval",
              build=nets.noisy_label_loss_net, start=("weights", "init"), role="ours"),
    ] + _relabelled("noisy_label_loss") + [
        Stage("test", kind="test", net="noisy_label_loss_test", build=nets.test_net,
              of="noisy_label_loss")] + _compare("noisy_gt_ft_clean", oracle=True)


def _joint(stage: str):
    """The build of a joint-net stage with the dataset's loss weights for it
    (Dataset.stage_loss_weights: Clothing1M's stage 1 and 2)."""
    return lambda ds, files: nets.noisy_label_loss_net(ds, files, **ds.stage_loss_weights[stage])


def _real_noise():
    # Stage 2 resumes stage 1's solver state (the same snapshot prefix) with other loss
    # weights (the dataset's stage_loss_weights).
    return [
        Stage("clean", net="clean_trainval", build=nets.clean_net, start=("weights", "initial"),
              role="clean"),
        Stage("ntype", net="ntype_trainval", build=nets.ntype_net, start=("weights", "clean"),
              tests="ntype_val_lmdb", role="ntype"),
        Stage("init", kind="init", into="noisy_label_loss_stage1"),
        Stage("noisy_label_loss_stage1", net="noisy_label_loss_trainval.stage1",
              build=_joint("noisy_label_loss_stage1"),
              start=("weights", "init"), prefix="noisy_label_loss", role="ours_stage1"),
        Stage("noisy_label_loss_stage2", net="noisy_label_loss_trainval.stage2",
              build=_joint("noisy_label_loss_stage2"),
              start=("snapshot", "noisy_label_loss_stage1"), prefix="noisy_label_loss",
              role="ours"),
        Stage("test", kind="test", net="noisy_label_loss_test", build=nets.test_net,
              of="noisy_label_loss_stage2"),
        # The mixed images' own labels are the clean one where kept, else the noisy one.
        Stage("noisy_gt_ft_clean", net="noisy_gt_ft_clean_trainval",
              build=functools.partial(nets.clean_net, train_lmdb=paths.MIXED_IMAGES,
                                      name="noisy_gt_ft_clean"),
              start=("weights", "clean"), role="noisy_as_truth",
              schedule="noisy_label_loss_stage2", compare=True),
    ] + _compare("noisy_label_loss_stage2", oracle=False) + _relabelled(
        "noisy_label_loss_stage2", schedule="noisy_label_loss_stage2", compare=True)


def _relabelled(joint: str, schedule: Optional[str] = None, compare: bool = False):
    """Clean the mixed set with the final model of stage `joint` (make relabel), then fine-tune
    the clean net on the corrected labels: the mixed images with make relabel's label LMDB."""
    return [Stage("relabel", kind="relabel", of=joint, compare=compare),
            Stage("relabel_ft_clean", net="relabel_ft_clean_trainval",
                  build=functools.partial(nets.clean_net, train_lmdb=paths.MIXED_IMAGES,
                                          label_lmdb=RELABELLED_LABELS, name="relabel_ft_clean"),
                  start=("weights", "clean"), reads=(RELABELLED_LIST,), role="relabelled",
                  schedule=schedule, compare=compare)]


def _compare(schedule: str, oracle: bool):
    """The other noise-robust losses on the mixed set's noisy labels (docs/model.md#other-
    noise-robust-losses), each beside the clean loss on its clean labels, fine-tuned from the
    clean net with `schedule`; oracle: also forward correction with the true Q."""
    def method(name, layer, role, matrix_q=None, solver_fields=None, **params):
        build = functools.partial(nets.robust_loss_net, name=name, layer=layer, params=params,
                                  matrix_q=matrix_q)
        return Stage(name, net=name + "_trainval", build=build, start=("weights", "clean"),
                     role=role, reads=(matrix_q + ".binaryproto",) if matrix_q else (),
                     schedule=schedule, compare=True, solver_fields=solver_fields)
    # β as Reed et al. found best for each: 0.95 soft, 0.8 hard.
    table = [method("bootstrap_soft", "BootstrappingSoftmaxLoss", "bootstrap_soft",
                    beta=0.95, mode="soft"),
             method("bootstrap_hard", "BootstrappingSoftmaxLoss", "bootstrap_hard",
                    beta=0.8, mode="hard"),
             method("forward_corrected", "ForwardCorrectedSoftmaxLoss", "forward",
                    matrix_q=paths.ESTIMATED_MATRIX_Q)]
    if oracle:
        table.append(method("forward_corrected_true_q", "ForwardCorrectedSoftmaxLoss",
                            "forward_oracle", matrix_q=paths.TRUE_MATRIX_Q))
    # Backward correction's loss is unbounded below wherever (Qᵀ)⁻¹ is negative: unclipped, the
    # logits overflowed to NaN on digits (seed 1), and NaN through max pooling makes Caffe write
    # out of bounds (a crash at exit). Its gradients are clipped (L2 norm 10) so that it trains
    # to the end; it still ends near chance there.
    table.append(method("backward_corrected", "BackwardCorrectedSoftmaxLoss", "backward",
                        matrix_q=paths.ESTIMATED_MATRIX_Q,
                        solver_fields={"clip_gradients": 10.0}))
    return table


WORKFLOWS = {"synthetic": _synthetic, "real_noise": _real_noise}


def check_dataset(ds) -> None:
    """ValueError unless the dataset names a tower and a workflow and gives a schedule for
    every training stage of it, and none for a stage it does not have (run as each dataset
    registers)."""
    where = ds.defined_in or "dataset %s" % ds.name
    if ds.tower not in TOWERS:
        raise ValueError("%s: tower %r: expected one of %s" % (where, ds.tower, ", ".join(TOWERS)))
    if ds.workflow not in WORKFLOWS:
        raise ValueError("%s: workflow %r: expected one of %s" % (where, ds.workflow,
                                                                  ", ".join(WORKFLOWS)))
    fields = settings_mod.SOLVER_FIELDS + ("test_iter",)
    for what, given in [("solver", ds.solver)] + [("schedules: " + stage, schedule) for
                                                  stage, schedule in sorted(ds.schedules.items())]:
        unknown = sorted(set(given) - set(fields))
        if unknown:
            raise ValueError("%s: %s: unknown solver field %s; fields: %s"
                             % (where, what, ", ".join(unknown), ", ".join(fields)))
    table = WORKFLOWS[ds.workflow]()
    needed = {s.schedule for s in table if s.kind == "train"}
    missing = sorted(needed - set(ds.schedules))
    extra = sorted(set(ds.schedules) - needed)
    if missing or extra:
        raise ValueError("%s: schedules %s; the %s workflow's stages with a schedule: %s" % (
            where, "; ".join(filter(None, [
                "lack " + ", ".join(missing) if missing else "",
                "name no stage " + ", ".join(extra) if extra else ""])),
            ds.workflow, ", ".join(sorted(needed))))


datasets.on_register(check_dataset)


def stages(name: str, compare: bool = True) -> List[Stage]:
    """The stage table of dataset `name`, in order (without the compare stages: make train's)."""
    table = WORKFLOWS[datasets.get_dataset(name).workflow]()
    return [s for s in table if compare or not s.compare]


def stage(name: str, stage_name: str) -> Stage:
    """One Stage of dataset `name` by its name; ValueError listing the stages."""
    table = stages(name)
    for s in table:
        if s.name == stage_name:
            return s
    raise ValueError("unknown stage %r for %s; stages: %s"
                     % (stage_name, name, ", ".join(s.name for s in table)))


def training(name: str, compare: bool = True) -> List[Stage]:
    """The training stages of dataset `name`, in order (compare: with the compare stages)."""
    return [s for s in stages(name, compare) if s.kind == "train"]


def stage_nets(name: str, compare: bool = True) -> Dict[str, str]:
    """{training stage: its trainval net's file stem}, in workflow order."""
    return {s.name: s.net for s in training(name, compare)}


def solver_file_name(name: str, stage_name: str) -> str:
    return stage(name, stage_name).solver_file()


def parse_settings(text: str, name: str) -> dict:
    """settings.parse for dataset `name`'s training stages."""
    return settings_mod.parse(text, [s.name for s in training(name)])


def init_layer_maps(name: str) -> List[Tuple[str, Dict[str, str]]]:
    """[(source stage, {source layer: joint-net layer})] that initialise the joint net: the
    net family's init_renames, whose clean and noise-type nets the stages `clean` and `ntype`
    train."""
    return nets.NetFamily(datasets.get_dataset(name), nets.Files(name)).init_renames()


def experiment(name: str, exp: Optional[str] = None, seed: int = 1,
               settings: Optional[dict] = None) -> Tuple[str, Dict[str, object]]:
    """The prototxts of a dataset's workflow, from its stage table.

    Parameters
    ----------
    name : str
        A registered dataset.
    exp : str, optional
        None for the committed prototxt/<name> of a built-in dataset (sources relative to the
        repository), else the experiment root the copy points at.
    seed : int
        The solvers' random_seed.
    settings : dict, optional
        From parse_settings.

    Returns
    -------
    out_dir : str
        Where the files go (relative to the repository for the committed ones).
    messages : dict
        {file name: NetParameter or SolverParameter}.
    """
    ds = datasets.get_dataset(name)
    if exp is None and not ds.builtin:
        raise ValueError("%s is not built in: its prototxts go under an experiment root, "
                         "not into prototxt/" % name)
    root = exp or os.path.join(paths.REPO_ROOT, paths.DEFAULT_EXP)
    ds = copy.copy(ds.for_data(paths.db_dir(name, root)))
    settings = settings or {}
    for key in ("train_batch", "test_batch"):
        if key in settings:
            setattr(ds, key, settings[key])
    files = nets.Files(name, exp)
    out_dir = os.path.join("prototxt", name) if exp is None else os.path.join(
        paths.exp_root(exp), "prototxt", name)
    out = {}
    for s in stages(name):
        if s.net:
            out[s.net + ".prototxt"] = s.build(ds, files)
        if s.kind == "train":
            own = {"%s.%s" % (s.name, k): v for k, v in s.solver_fields.items()}
            out[s.solver_file()] = nets.solver(
                ds, files, s.name, os.path.join(out_dir, s.net + ".prototxt"),
                getattr(ds, s.tests), s.prefix, seed, dict(own, **settings),
                schedule=s.schedule)
    return out_dir, out


def write_dataset(name: str, exp: Optional[str] = None, seed: int = 1,
                  settings: Optional[dict] = None) -> str:
    """Write a dataset's prototxts (into prototxt/<name>, or $EXP/prototxt/<name> for another
    root); unchanged files are left as they are."""
    from noisy_label.io.blob_io import atomic_write_bytes
    out_dir, messages = experiment(name, exp, seed, settings)
    for file_name, message in sorted(messages.items()):
        path = os.path.join(paths.REPO_ROOT, out_dir, file_name)
        text = text_format.MessageToString(message)
        if not os.path.isfile(path) or open(path).read() != text:
            atomic_write_bytes(path, text.encode())
    return os.path.join(paths.REPO_ROOT, out_dir)
