"""A user's noisy dataset: a folder in Clothing1M's layout (noisy_label.datasets.key_lists)
with any number of classes, plus a `dataset.yaml` beside the key lists (docs/data.md#your-own-
noisy-dataset has every key):

    num_classes: 50          # required
    tower: caffenet          # digits | cifar_quick | caffenet
    resize: [256, 256]       # height width, as convert_imageset -resize_height / -resize_width
    weights: bvlc_reference_caffenet.caffemodel   # what the clean net starts from

`find(name)` registers it the first time a tool meets a name that is not built in: from
DATA_ROOT, else $EXP/datasets/<name>/, else the copy make lmdb keeps in its LMDB directory.
Nothing of it is written into the package or the repository: its prototxts are generated
under $EXP. What the yaml leaves out is derived from the tower and, once make lmdb has run,
from the records (batch sizes, test_iter, schedules in epochs: FolderDataset.for_data).
"""
import copy
import math
import os
import re
from typing import Optional

from noisy_label import paths
from noisy_label.core import thresholds
from noisy_label.datasets import base
from noisy_label.datasets.key_lists import MAX_UPSAMPLE, KeyListDataset
from noisy_label.io import atomic, lmdb_io, text_io

YAML = "dataset.yaml"
TRAIN_STAGES = ("clean", "ntype", "noisy_label_loss_stage1", "noisy_label_loss_stage2")
# Epochs of each stage over the records it trains on: Clothing1M's schedule in epochs (clean:
# 15,000 x 128 over 47,570 clean train images is 40; the joint net's stage 1: 100,000 x 128
# over the ~2M mixed records is 6.4, stage 2 then 3.8 more; the noise-type net 25).
# Stage 2 resumes stage 1, so its epochs are counted after stage 1's.
EPOCHS = {"clean": 40, "ntype": 25, "noisy_label_loss_stage1": 6.4, "noisy_label_loss_stage2": 3.8}
# The learning rate drops tenfold at this fraction of each stage (Clothing1M's: 10k of 15k, 3k
# of 5k, 50k of 100k; stage 2 keeps stage 1's step).
STEP_AT = {"clean": 2 / 3.0, "ntype": 0.6, "noisy_label_loss_stage1": 0.5}
# What each tower starts from when the yaml does not say: the size its nets were made for, a
# batch that fits a CPU or one GPU, the learning rate of its original solvers.
TOWERS = {
    "digits": dict(resize=[28, 28], crop=0, mirror=False, scale=0.00390625, train_batch=50,
                   test_batch=100, base_lr=0.01, weight_decay=0.0005, ntype_kwargs={},
                   ntype_head_lr_mult=10),
    "cifar_quick": dict(resize=[32, 32], crop=0, mirror=False, scale=None, train_batch=100,
                        test_batch=100, base_lr=0.001, weight_decay=0.004, ntype_kwargs={},
                        ntype_head_lr_mult=10),
    "caffenet": dict(resize=[256, 256], crop=227, mirror=True, scale=None, train_batch=128,
                     test_batch=100, base_lr=0.001, weight_decay=0.0005,
                     ntype_kwargs={"fc7_outputs": 1024, "fc67_suffix": "_ntype"},
                     ntype_head_lr_mult=1)}
CAFFENET_INPUT = 227     # CaffeNet's fc6 is sized for 227x227 input
# Every key of dataset.yaml: what it must be (the error says it) and how it is checked.
KEYS = {
    "num_classes": "an integer of at least 2",
    "tower": "one of " + " | ".join(TOWERS),
    "resize": "[height, width], integers of 0 or more ([0, 0] keeps each image's size)",
    "gray": "true or false",
    "crop": "an integer of 0 (none) or more",
    "mirror": "true or false",
    "scale": "a number above 0, or null",
    "train_batch": "an integer of at least 1",
    "test_batch": "an integer of at least 1",
    "base_lr": "a number above 0",
    "epochs": "a mapping {stage: epochs above 0}, stages " + ", ".join(TRAIN_STAGES),
    # Which solver fields: checked with the stage tables' (experiments.stages.check_dataset).
    "solver": "a mapping {solver field: value}",
    "schedules": "a mapping {stage: {solver field: value}}, stages " + ", ".join(TRAIN_STAGES),
    "weights": "the path of a .caffemodel (relative to dataset.yaml), or null",
    "threshold": "auto, a number in [0, 1] or precision:<p>",
    "upsample": "a number from 0 to %d" % MAX_UPSAMPLE,
    "data_root": "a directory (relative to dataset.yaml) holding the images and key lists",
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class FolderDataset(KeyListDataset):
    """A dataset defined by a dataset.yaml (load): Clothing1M's workflow on the user's folder."""
    builtin = False
    clean_head = "_clean"     # fc8_clean: a start from ImageNet weights leaves their fc8 behind
    solver = dict(momentum=0.9, lr_policy="step", gamma=0.1, test_initialization=True)

    def __init__(self, name: str, config: dict, yaml_path: str):
        """config: the checked keys of `yaml_path` (load)."""
        self.config, self.defined_in = config, yaml_path
        here = os.path.dirname(os.path.abspath(yaml_path))
        tower = TOWERS[config["tower"]]
        setting = lambda key: config[key] if key in config else tower[key]  # noqa: E731
        self.name = name
        self.num_classes = config["num_classes"]
        self.tower = config["tower"]
        self.data_root = os.path.normpath(os.path.join(here, config.get("data_root", ".")))
        self.gray = bool(config.get("gray", False))
        self.resize = [int(v) for v in setting("resize")]
        self.options = (base.Option("upsample", float, float(config.get("upsample", 1.0)),
                                    "clean train keys per noisy key in the mixed set (0 to %d)"
                                    % MAX_UPSAMPLE),)
        crop, scale = setting("crop"), setting("scale")
        self.transform = dict({"crop_size": crop} if crop else {},
                              **({"mirror": True} if setting("mirror") else {}),
                              **({"scale": scale} if scale else {}))
        self.train_batch, self.test_batch = setting("train_batch"), setting("test_batch")
        self.base_lr = setting("base_lr")
        self.solver = dict(FolderDataset.solver, weight_decay=tower["weight_decay"],
                           **config.get("solver", {}))
        self.ntype_kwargs = tower["ntype_kwargs"]
        self.ntype_head_lr_mult = tower["ntype_head_lr_mult"]
        self.val_lmdb, self.ntype_val_lmdb = paths.CLEAN_VAL, paths.NTYPE_VAL
        self.test_lmdb = paths.CLEAN_TEST
        self.epochs = dict(EPOCHS, **config.get("epochs", {}))
        # The yaml's own solver fields per stage; for_data derives the rest.
        self.schedules = {stage: dict(config.get("schedules", {}).get(stage, {}))
                          for stage in TRAIN_STAGES}
        self.record_counts = {}
        self.relabel_threshold = str(config["threshold"]) if "threshold" in config else None
        weights = config.get("weights")
        self.initial_weights = (os.path.join(here, weights), None) if weights else None
        channels = 1 if self.gray else 3
        self.image_shape = (channels,) + tuple(self.resize) if all(self.resize) else None

    def resize_shape(self, opts):
        return tuple(self.resize) if all(self.resize) else None

    def image_settings(self) -> dict:
        return {"resize": self.resize, "gray": self.gray}

    def extra_outputs(self, db_dir: str) -> list:
        """The yaml as make lmdb read it, in db_dir: make train finds the dataset by it when
        its data is elsewhere (DATA_ROOT)."""
        text = open(self.defined_in, "rb").read()
        # Its paths made absolute: the copy is read from db_dir.
        config = dict(self.config, data_root=self.data_root)
        if self.initial_weights:
            config["weights"] = self.initial_weights[0]
        path = os.path.join(db_dir, YAML)

        def write():
            import yaml
            atomic.write_text(path, "# written by make lmdb from %s\n%s" % (
                self.defined_in, yaml.safe_dump(config, default_flow_style=None, sort_keys=False)))
        return [base.Output("dataset", [YAML], write,
                            inputs={"yaml": text.decode("utf-8", "replace")})]

    def for_data(self, db_dir: str) -> "FolderDataset":
        """A copy with record_counts, batch sizes and schedules from the LMDBs in db_dir."""
        counts = {}
        for db in (paths.CLEAN_TRAIN, paths.CLEAN_VAL, paths.CLEAN_TEST, paths.NTYPE_TRAIN,
                   paths.NTYPE_VAL, paths.MIXED_IMAGES):
            if not os.path.isdir(os.path.join(db_dir, db)):
                raise ValueError("%s: no %s: run make lmdb DATASET=%s first (the prototxts of a "
                                 "dataset.yaml's dataset are sized by its records)"
                                 % (db_dir, db, self.name))
            counts[db] = lmdb_io.count(os.path.join(db_dir, db))
        self.check_built_like(db_dir)
        ds = copy.copy(self)
        ds.record_counts = counts
        # A test batch no larger than the smallest set it tests: a batch wraps around its
        # LMDB, so one larger than the set would count some images twice.
        if "test_batch" not in self.config:
            ds.test_batch = max(1, min(self.test_batch, *(counts[db] for db in (
                paths.CLEAN_VAL, paths.CLEAN_TEST, paths.NTYPE_VAL) if counts[db])))
        # The yaml's `solver` fields hold for every stage, over what is derived.
        try:
            ds.schedules = derive_schedules(counts, ds.train_batch, ds.base_lr, ds.epochs, {
                stage: dict(self.config.get("solver", {}), **self.schedules[stage])
                for stage in TRAIN_STAGES})
        except ValueError as e:
            raise ValueError("%s: %s" % (self.defined_in, e))
        return ds

    def check_built_like(self, db_dir: str) -> None:
        """ValueError when the LMDBs in db_dir were written with other image settings than
        this yaml's (it changed after make lmdb): those of the copy make lmdb kept there."""
        built = os.path.join(db_dir, YAML)
        if not os.path.isfile(built):
            return
        then = load(built, self.name).image_settings()
        changed = sorted(k for k, v in self.image_settings().items() if then[k] != v)
        if changed:
            raise ValueError("%s: %s changed since make lmdb wrote %s (%s there): run make lmdb "
                             "DATASET=%s" % (self.defined_in, ", ".join(changed), db_dir, ", ".join(
                                 "%s %s" % (k, then[k]) for k in changed), self.name))


def derive_schedules(counts: dict, train_batch: int, base_lr: float, epochs: dict,
                     given: dict) -> dict:
    """{stage: solver fields} from the records each stage trains on (counts: {LMDB: records}),
    `epochs` of each, and `given` {stage: solver fields} over them. The joint net's stage 2
    resumes stage 1: its max_iter counts on from stage 1's (as given), with its step."""
    trains_on = {"clean": paths.CLEAN_TRAIN, "ntype": paths.NTYPE_TRAIN,
                 "noisy_label_loss_stage1": paths.MIXED_IMAGES,
                 "noisy_label_loss_stage2": paths.MIXED_IMAGES}
    iterations = {stage: max(1, int(math.ceil(epochs[stage] * counts[db] / float(train_batch))))
                  for stage, db in trains_on.items()}
    schedules = {}
    for stage in TRAIN_STAGES:
        max_iter = iterations[stage]
        step = STEP_AT.get(stage)
        if stage == "noisy_label_loss_stage2":
            first = schedules["noisy_label_loss_stage1"]
            max_iter += first["max_iter"]
            stepsize = first["stepsize"]
        else:
            stepsize = max(1, int(round(step * max_iter)))
        schedules[stage] = dict(
            base_lr=base_lr, stepsize=stepsize, max_iter=max_iter,
            # Four snapshots a stage (a stopped one resumes from the newest), ten tests, a
            # loss line for every twentieth of it.
            snapshot=max(1, int(math.ceil(iterations[stage] / 4.0))),
            test_interval=max(1, int(math.ceil(iterations[stage] / 10.0))),
            display=max(1, min(20, iterations[stage] // 20)),
            average_loss=max(1, min(20, iterations[stage] // 20)))
        schedules[stage].update(given.get(stage, {}))
    first, second = (schedules[s]["max_iter"] for s in TRAIN_STAGES[2:])
    if second <= first:
        raise ValueError("noisy_label_loss_stage2's max_iter %s must be above stage 1's (%s): "
                         "stage 2 resumes stage 1's solver state" % (second, first))
    return schedules


# ---- dataset.yaml -------------------------------------------------------------------------


def load(path: str, name: Optional[str] = None) -> FolderDataset:
    """The FolderDataset of the dataset.yaml at `path` (name: the DATASET it is asked by,
    default its folder's name); ValueError in one line naming the file, the line, the key and
    what is allowed."""
    import yaml
    try:
        text = "".join(line for _, line in text_io.numbered_lines(path))
    except OSError as e:
        raise ValueError("%s: %s" % (path, e.strerror or e))
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        config = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ValueError("%s:%s not YAML: %s" % (
            path, "%d:" % (mark.line + 1) if mark else "", getattr(e, "problem", None) or e))
    if not isinstance(config, dict):
        raise ValueError("%s: expected a mapping of keys (num_classes: ..., tower: ...), got %s"
                         % (path, type(config).__name__ if config is not None else "nothing"))
    lines = {node.value: node.start_mark.line + 1 for node, _ in root.value} \
        if isinstance(root, yaml.MappingNode) else {}
    where = lambda key: "%s:%d: %s" % (path, lines[key], key) if key in lines \
        else "%s: %s" % (path, key)  # noqa: E731
    name = name or os.path.basename(os.path.dirname(os.path.abspath(path)))
    for key in config:
        if key not in KEYS:
            raise ValueError("%s: unknown key; the keys are: %s" % (where(key), ", ".join(KEYS)))
    for key in ("num_classes", "tower"):
        if key not in config:
            raise ValueError("%s: %s is required (%s)" % (path, key, KEYS[key]))
    for key, value in config.items():
        problem = _check(key, value)
        if problem:
            raise ValueError("%s: %r: %s must be %s" % (where(key), value, key, problem))
    if not NAME.match(name):
        raise ValueError("%s: dataset name %r: letters, digits, _ . - only" % (path, name))
    tower = TOWERS[config["tower"]]
    resize = config.get("resize", tower["resize"])
    crop = config.get("crop", tower["crop"])
    if crop and all(resize) and crop > min(resize):
        raise ValueError("%s: crop %d is larger than resize %s" % (where("crop"), crop, resize))
    if config["tower"] == "caffenet":
        size = crop or (min(resize) if all(resize) else None)
        if size is not None and size < CAFFENET_INPUT:
            raise ValueError("%s: the caffenet tower needs %dx%d input or more (crop, or resize "
                             "without crop), got %d" % (where("crop" if crop else "resize"),
                                                       CAFFENET_INPUT, CAFFENET_INPUT, size))
    return FolderDataset(name, config, path)


def _check(key: str, value) -> Optional[str]:
    """What `value` of `key` must be when it is not (KEYS[key]), else None."""
    def integer(v, least):
        return isinstance(v, int) and not isinstance(v, bool) and v >= least

    def number(v, above=None, least=None):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return (above is None or v > above) and (least is None or v >= least)
    ok = {
        "num_classes": lambda v: integer(v, 2),
        "tower": lambda v: v in TOWERS,
        "resize": lambda v: isinstance(v, list) and len(v) == 2 and all(integer(x, 0) for x in v)
        and (all(v) or not any(v)),
        "gray": lambda v: isinstance(v, bool), "mirror": lambda v: isinstance(v, bool),
        "crop": lambda v: integer(v, 0),
        "scale": lambda v: v is None or number(v, above=0),
        "train_batch": lambda v: integer(v, 1), "test_batch": lambda v: integer(v, 1),
        "base_lr": lambda v: number(v, above=0),
        "epochs": lambda v: isinstance(v, dict) and all(
            s in TRAIN_STAGES and number(e, above=0) for s, e in v.items()),
        "solver": lambda v: isinstance(v, dict),
        "schedules": lambda v: isinstance(v, dict) and all(
            s in TRAIN_STAGES and isinstance(f, dict) for s, f in v.items()),
        "weights": lambda v: v is None or isinstance(v, str),
        "threshold": _threshold_ok,
        "upsample": lambda v: number(v, least=0) and v <= MAX_UPSAMPLE,
        "data_root": lambda v: isinstance(v, str) and v != "",
    }[key]
    return None if ok(value) else KEYS[key]


def _threshold_ok(value) -> bool:
    """Whether make relabel takes `value` as THRESHOLD."""
    try:
        thresholds.parse_threshold(value)
    except ValueError:
        return False
    return True


def find(name: str, exp: Optional[str] = None, data_root: Optional[str] = None,
         seed: int = 1) -> base.Dataset:
    """The dataset `name`: a built-in one, else the dataset.yaml in DATA_ROOT, in
    <exp>/datasets/<name>/, or the copy make lmdb kept in the seed's (or seed 1's) LMDB
    directory, registered. ValueError saying where it looked otherwise."""
    if name in base.builtin_names():
        return base.get_dataset(name)
    candidates = ([os.path.join(data_root, YAML)] if data_root else []) + [
        os.path.join(paths.data_root(name, exp), YAML),
        os.path.join(paths.db_dir(name, paths.seed_root(exp, seed)), YAML),
        os.path.join(paths.db_dir(name, exp), YAML)]
    for path in candidates:
        if os.path.isfile(path):
            return base.add(load(path, name))
    raise ValueError("unknown dataset %r: not one of the built-in %s, and no %s in %s"
                     % (name, ", ".join(base.builtin_names()), YAML,
                        " or ".join(sorted(set(os.path.dirname(c) for c in candidates)))))
