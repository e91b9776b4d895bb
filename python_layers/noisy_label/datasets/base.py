"""`make lmdb DATASET=...`: the dataset objects and what they share.

A built-in dataset is one module (noisy_label.datasets.<name>) holding a `Dataset` subclass,
registered by name, as py-faster-rcnn's imdb classes: its class count, `make lmdb` options
(declared as `Option`s), raw reader and label sets, and the shape of its experiments (tower,
transform, batch sizes, schedules, which LMDB each net tests on, its stage table). A user's
dataset is a folder with a `dataset.yaml` (noisy_label.datasets.folder), registered when
`find` first meets its name. `get_dataset(name)` gives a registered one.

Outputs come in groups (an LMDB with its list file; the mixed set with its mean; matrix C),
each recorded in `manifest.json` with what it was built from: a re-run skips a group that is
complete and built from the same inputs and options, unless `force`. The four mixed LMDBs
(mixed_train_images and mixed_train_label_{clean,noisy,ntype}) hold the same records in the
same order, so four `Data` layers with one batch size stay aligned; a missing label is -1.
"""
import collections
import dataclasses
import math
import os
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

from noisy_label import paths
from noisy_label.core import matrix_c
from noisy_label.io import imageset, lmdb_io, lock, text_io
from noisy_label.io import manifest as manifest_io

LABEL_FIELDS = ("clean", "noisy", "ntype")
MANIFEST_FORMAT = 2   # of db_dir/manifest.json (write_outputs)
# Outputs that score results (the truth), which no net trains on: adding or rebuilding them
# leaves trained stages up to date.
NOT_TRAINED_ON = (paths.TRUE_LABELS, paths.TRUE_MATRIX_Q, paths.ESTIMATED_MATRIX_Q)
# Outputs that are not an LMDB with a `<db>.txt` list (make lmdb's summary counts the rest).
NOT_LISTED = ("mixed", "dataset", paths.MATRIX_C, paths.TRUE_MATRIX_Q, paths.TRUE_LABELS,
              paths.ESTIMATED_MATRIX_Q)
MIXED_FILES = [paths.MIXED_IMAGES, paths.MIXED_IMAGES + ".txt"] + \
    [paths.MIXED_LABELS[f] + ext for f in LABEL_FIELDS for ext in ("", ".txt")]


class Output(object):
    """One group of files in db_dir: an image LMDB with its list, or the mixed set, or a matrix.

    inputs: what this group alone reads (a JSON-able value, or a function giving one, e.g.
    the signature of its images), beside the build's common signature.
    """

    def __init__(self, name: str, files, write, count=None, inputs=None):
        self.name, self.files, self.write, self.count = name, files, write, count
        self.inputs = inputs


@dataclasses.dataclass(frozen=True)
class Option(object):
    """One `make lmdb` option of a dataset: NAME=value on make's command line, --name on
    tools/make_lmdb.py's. type: int, float or str (how the text is read); default None: unset."""
    name: str
    type: type
    default: Any
    help: str

    def parse(self, text: str, dataset: str):
        """`text` as this option's type; ValueError naming the option and the dataset."""
        try:
            return self.type(text)
        except (TypeError, ValueError):
            raise ValueError("%s=%r: not %s (%s: %s)" % (
                self.name.upper(), text, {int: "an integer", float: "a number"}.get(
                    self.type, "a " + self.type.__name__), dataset, self.help))


@dataclasses.dataclass
class Prepared(object):
    """What a dataset's `prepare` gives `make lmdb`: the Outputs to write, the label sets they
    come from (matrix_c and never_mislabelled at least), the input signatures (None: none
    beyond the options), and how the noise of this family is summarised."""
    outputs: List[Output]
    label_sets: Dict[str, Any]
    inputs: Any = None
    # (options) -> {summary key: value}: the noise rates make lmdb prints
    noise_summary: Callable[[dict], dict] = lambda opts: {}


# ---- the datasets, by name ------------------------------------------------------------------

_REGISTRY = collections.OrderedDict()
_CHECKS = []     # functions(dataset) run at registration (on_register)


def register(cls) -> type:
    """Class decorator: make a Dataset subclass known by its `name`."""
    add(cls())
    return cls


def add(ds: "Dataset") -> "Dataset":
    """Register a Dataset instance (a user's, from its dataset.yaml), replacing one of the same
    name that is not built in; the on_register checks run first (ValueError)."""
    if ds.name in _REGISTRY and _REGISTRY[ds.name].builtin and ds is not _REGISTRY[ds.name]:
        raise ValueError("%s: %r is a built-in dataset's name; give yours another"
                         % (ds.defined_in, ds.name))
    for check in _CHECKS:
        check(ds)
    _REGISTRY[ds.name] = ds
    return ds


def on_register(check) -> None:
    """Run check(dataset) on every dataset registered, now and later (a layer above, such as
    the stage tables, checking the datasets against its own tables): ValueError refuses one."""
    _CHECKS.append(check)
    for ds in list(_REGISTRY.values()):
        check(ds)


def unregister(name: str) -> None:
    """Forget dataset `name` (a test's own dataset, say)."""
    _REGISTRY.pop(name, None)


def names() -> Tuple[str, ...]:
    """The registered datasets' names, in registration order."""
    return tuple(_REGISTRY)


def builtin_names() -> Tuple[str, ...]:
    """The built-in datasets' names (those with committed prototxts)."""
    return tuple(name for name, ds in _REGISTRY.items() if ds.builtin)


def get_dataset(name: str) -> "Dataset":
    """The Dataset called `name`; ValueError listing the known ones."""
    if name not in _REGISTRY:
        raise ValueError("unknown dataset %r; expected one of: %s, or a folder with a "
                         "dataset.yaml (make lmdb DATASET=<name> DATA_ROOT=<folder>)"
                         % (name, ", ".join(_REGISTRY)))
    return _REGISTRY[name]


class Dataset(object):
    """A dataset: its facts, how `make lmdb` builds it, and the shape of its experiments.

    Subclasses set the class attributes and implement `prepare`.
    """
    name = None
    num_classes = None
    options = ()                 # the make lmdb options: Option(name (lower case), ...)
    builtin = True               # a module of this package, with committed prototxt/<name>
    defined_in = None            # where it is defined, for errors (a dataset.yaml)
    # The experiments (noisy_label.experiments): the stage table, the tower by name
    # (experiments.nets.TOWERS), the data transform, batch sizes, solvers.
    workflow = "synthetic"       # experiments.stages.WORKFLOWS
    tower = None
    transform = {}
    train_batch = test_batch = None
    solver = {}                  # solver fields common to every stage
    schedules = {}               # {stage: solver fields}; `snapshot` defaults to max_iter
    clean_head = ""              # suffix of the clean net's classifier
    ntype_kwargs = {}            # tower arguments of the noise-type net
    bias_decay = 0               # the biases' decay_mult
    data_root = None             # where its raw data is when not <exp>/datasets/<name>
    relabel_threshold = None     # its THRESHOLD for make relabel and the relabel stage (None:
                                 # make relabel's auto, the stage's 0.5)
    ntype_head_lr_mult = 10      # lr_mult of the noise-type net's classifier
    val_lmdb = paths.TEST        # what the clean and joint nets test on while training
    ntype_val_lmdb = paths.NTYPE_TEST
    test_lmdb = paths.TEST       # `caffe test` of the final model
    record_counts = {}           # records of the LMDBs tested on (default options): test_iter
    initial_weights = None       # (file name, URL) the clean net starts from, under EXP/snapshots
    image_shape = None           # (C, H, W) of its image records with the default options
    reference_accuracy = {}      # the original release's test accuracy by stage role
    reference_name = None        # the column title of those figures in reports

    def raw_root(self, exp: Optional[str] = None) -> str:
        """Where its raw data is read from: its own data_root, else <exp>/datasets/<name>
        (exp: the experiment root, not a seed's)."""
        return self.data_root or paths.data_root(self.name, exp)

    def option_defaults(self) -> Dict[str, Any]:
        """{option name: default} of the make lmdb options."""
        return {option.name: option.default for option in self.options}

    def test_iter(self, lmdb: str) -> int:
        """Test iterations that cover the `lmdb` once: ceil(records / test_batch)."""
        return int(math.ceil(self.record_counts[lmdb] / float(self.test_batch)))

    def for_data(self, db_dir: str) -> "Dataset":
        """This dataset as its prototxts see the LMDBs in db_dir: built-in ones are fixed (their
        figures are the original release's); a user's derives batch sizes, test_iter and
        schedules from the records make lmdb wrote there."""
        return self

    def prepare(self, db_dir: str, data_root: str, opts, seed: int, encoding, skip_bad: bool,
                bad) -> Prepared:
        """The outputs of make lmdb and what they come from."""
        raise NotImplementedError


# ---- label kv files and key lists (Clothing1M's formats) -----------------------------------


def read_label_kv(path: str, num_classes: int, num_classes_from: Optional[str] = None
                  ) -> Dict[str, int]:
    """OrderedDict key -> label from `images/.../name.jpg LABEL` lines; errors name file:line
    (and num_classes_from, the file that set num_classes, when given)."""
    labels, lines = collections.OrderedDict(), {}
    for number, key, label in _lines(path, 2):
        text_io.check_key(key, path, number)
        label = text_io.parse_label(label, path, number, key)
        if not 0 <= label < num_classes:
            raise ValueError("%s:%d: label %d of %s is outside 0..%d%s"
                             % (path, number, label, key, num_classes - 1,
                                " (num_classes: %d in %s)" % (num_classes, num_classes_from)
                                if num_classes_from else ""))
        if key in labels:
            raise ValueError("%s:%d: duplicate key %s (first on line %d)"
                             % (path, number, key, lines[key]))
        labels[key], lines[key] = label, number
    return labels


def read_key_list(path: str, kv, kv_path: str) -> List[str]:
    """The keys of a key list, each checked to be unique and present in the kv file."""
    keys, lines = [], {}
    for number, key in _lines(path, 1):   # keys are checked where they get a label (kv)
        if key in lines:
            raise ValueError("%s:%d: duplicate key %s (first on line %d)"
                             % (path, number, key, lines[key]))
        if key not in kv:
            raise ValueError("%s:%d: key %s has no label in %s" % (path, number, key, kv_path))
        keys.append(key)
        lines[key] = number
    return keys


def _lines(path: str, fields):
    """Yield (line number, field, ...) of the non-blank lines of a text file with `fields` fields."""
    for number, line in text_io.numbered_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != fields:
            raise ValueError("%s:%d: expected %s, got %r" % (
                path, number, "`key label`" if fields == 2 else "one key", line.rstrip("\n")))
        yield (number,) + tuple(parts)



# ---- writing -----------------------------------------------------------------------------


def array_lmdb_output(db_dir: str, db: str, images, labels, names, encoding):
    path = os.path.join(db_dir, db)

    def write():
        imageset.build_array_lmdb(path, images, labels, names, encoding)
        imageset.write_image_list(path + ".txt", zip(names, labels))
    return Output(db, [db, db + ".txt"], write, len(labels))


def label_lmdbs(db_dir: str, names, mixed, kept=None):
    """Write mixed_train_label_{clean,noisy,ntype} (+ lists) for the records kept."""
    for field in LABEL_FIELDS:
        labels = mixed[field] if kept is None else mixed[field][kept]
        kept_names = names if kept is None else [names[i] for i in kept]
        path = os.path.join(db_dir, paths.MIXED_LABELS[field])
        lmdb_io.write_label_lmdb(path, labels)
        imageset.write_image_list(path + ".txt", zip(kept_names, labels))


def matrix_output(db_dir: str, name: str, matrix):
    path = os.path.join(db_dir, name)
    return Output(name, [name + ".binaryproto", name + ".txt"],
                  lambda: matrix_c.save_matrix(path + ".binaryproto", matrix, path + ".txt"))


def write_outputs(db_dir: str, outputs, signature, force: bool = False) -> List[str]:
    """Write each Output unless the manifest says it was built from `signature` (and its own
    inputs) and its files still hold what was written; then record the set as one build.
    Empty sets are refused before anything is written. Returns the names written.

    The manifest (db_dir/manifest.json) is {"format", "groups": {name: {"signature",
    "inputs", "build", "files": {file: fingerprint}}}, "build": {"id", "signature",
    "groups"}}. "build" is removed before the first file is replaced and written after the
    last: an interrupted or failed run leaves no "build", and check_build refuses the set
    (a mix of two builds, or a partial one) until make lmdb finishes.
    """
    for output in outputs:
        if output.count == 0:
            raise ValueError("%s would be empty (no records): check the inputs and options"
                             % os.path.join(db_dir, output.name))
    os.makedirs(db_dir, exist_ok=True)
    manifest_path = os.path.join(db_dir, paths.MANIFEST)
    manifest = load_manifest(db_dir)
    groups = manifest["groups"]
    stale = []
    for output in outputs:
        inputs = output.inputs() if callable(output.inputs) else output.inputs
        record = groups.get(output.name)
        if force or not record or record.get("signature") != signature \
                or record.get("inputs") != inputs or _changed_files(db_dir, record):
            stale.append((output, inputs))
        else:
            print("  %-24s up to date" % output.name)
    names = [output.name for output in outputs]
    if stale or manifest.get("build", {}).get("groups") != names \
            or set(groups) - set(names):
        build_id = "%s-%s" % (time.strftime("%Y%m%dT%H%M%S"), uuid.uuid4().hex[:8])
        manifest.pop("build", None)
        for name in set(groups) - set(names):
            del groups[name]              # an output no longer built (an option changed)
        manifest_io.save(manifest_path, manifest)
        for output, inputs in stale:
            # Unrecorded before its first file is replaced, recorded after its last.
            if groups.pop(output.name, None) is not None:
                manifest_io.save(manifest_path, manifest)
            output.write()
            groups[output.name] = {
                "signature": signature, "inputs": inputs, "build": build_id,
                "files": {f: manifest_io.fingerprint(os.path.join(db_dir, f)) for f in output.files}}
            manifest_io.save(manifest_path, manifest)
            print("  %-24s written" % output.name)
        _check_mixed_counts(db_dir, names)
        manifest["build"] = {"id": build_id, "signature": signature, "groups": names}
        manifest_io.save(manifest_path, manifest)
    return [output.name for output, _ in stale]


def load_manifest(db_dir: str) -> dict:
    """The manifest of db_dir in its current format ({"format", "groups"} at least); one of an
    older version of the tools counts as empty (its outputs are rebuilt)."""
    manifest = _current_manifest(db_dir)
    if manifest is None:
        print("  %s is from an older version of the tools: rebuilding what it lists"
              % os.path.join(db_dir, paths.MANIFEST))
    return manifest or {"format": MANIFEST_FORMAT, "groups": {}}


def _current_manifest(db_dir: str) -> Optional[dict]:
    """db_dir's manifest: {} when there is none, None when an older version wrote it."""
    manifest = manifest_io.load(os.path.join(db_dir, paths.MANIFEST))
    if manifest and (manifest.get("format") != MANIFEST_FORMAT
                     or not isinstance(manifest.get("groups"), dict)):
        return None
    return manifest


def _changed_files(db_dir: str, record: dict) -> List[str]:
    """The files of a group that are missing or no longer hold what was recorded."""
    changed = []
    for name, recorded in sorted(record.get("files", {}).items()):
        path = os.path.join(db_dir, name)
        try:
            if not os.path.exists(path) or manifest_io.fingerprint(path) != recorded:
                changed.append(name)
        except (OSError, lmdb_io.lmdb.Error):
            changed.append(name)
    return changed if record.get("files") else ["(no files recorded)"]


def _check_mixed_counts(db_dir: str, names) -> None:
    """ValueError unless the four aligned mixed LMDBs hold the same number of records."""
    if "mixed" not in names:
        return
    counts = {db: lmdb_io.count(os.path.join(db_dir, db))
              for db in [paths.MIXED_IMAGES] + [paths.MIXED_LABELS[f] for f in LABEL_FIELDS]}
    if len(set(counts.values())) != 1:
        raise ValueError("%s: the mixed LMDBs hold different numbers of records (%s); they must "
                         "be aligned record by record" % (db_dir, ", ".join(
                             "%s %d" % kv for kv in counts.items())))


def check_build(name: str, db_dir: str, seed: int = 1) -> dict:
    """The manifest's groups of a whole build in db_dir, checked: recorded as one build,
    every group from its options, its files unchanged since, the mixed LMDBs aligned.
    ValueError naming what is wrong and the `make lmdb` that fixes it otherwise."""
    again = "make lmdb DATASET=%s%s" % (name, "" if int(seed) == 1 else " SEED=%d" % int(seed))
    if not os.path.isdir(db_dir):
        raise ValueError("no LMDBs in %s: run %s first" % (db_dir, again))
    manifest = _current_manifest(db_dir) or {}
    build = manifest.get("build")
    if not build:
        raise ValueError("the LMDBs in %s are not one whole build (make lmdb was interrupted, "
                         "failed, is still running, or is from an older version): run %s"
                         % (db_dir, again))
    groups = manifest["groups"]
    for group in build["groups"]:
        record = groups.get(group)
        if record is None or record.get("signature") != build["signature"]:
            raise ValueError("%s: %s is not from the same make lmdb as the rest of the set "
                             "(a mix of two builds): run %s" % (db_dir, group, again))
        # The truth and Q score or correct, never train: whoever reads them signs them by
        # content (a stage's `reads`), so one put there by hand is taken.
        changed = _changed_files(db_dir, record) if group not in NOT_TRAINED_ON else []
        if changed:
            raise ValueError("%s: %s changed after make lmdb wrote it (missing, or not what it "
                             "wrote): run %s FORCE=1" % (db_dir, ", ".join(changed), again))
    _check_mixed_counts(db_dir, build["groups"])
    return groups


# ---- make lmdb --------------------------------------------------------------------------


def build(name: str, exp: Optional[str] = None, data_root: Optional[str] = None, seed: int = 1,
          force: bool = False, encoded: bool = False, skip_bad: bool = False,
          **options) -> dict:
    """`make lmdb`: build every output of dataset `name` into paths.db_dir(name, exp).

    Parameters
    ----------
    name : str
        A registered dataset.
    exp : str, optional
        The experiment root (default: $EXP or exp/).
    data_root : str, optional
        The raw data (default: Dataset.raw_root).
    seed : int
        Seed of the noise, splits and shuffles.
    force : bool
        Rebuild outputs the manifest calls up to date.
    encoded : bool
        Store JPEG / PNG records instead of raw pixels.
    skip_bad : bool
        Skip (and list) unreadable images instead of stopping.
    **options
        The dataset's own (its `options`, e.g. noise_level / num_clean, resize / upsample);
        None means the default.

    Returns
    -------
    dict
        The summary (counts, label histograms, noise rates, C), also printed.
    """
    ds = get_dataset(name)
    declared = {option.name for option in ds.options}
    unknown = sorted(k for k, v in options.items() if v is not None and k not in declared)
    if unknown:
        raise ValueError("%s does not take %s (%s)" % (
            name, ", ".join(k.upper() for k in unknown),
            "it takes: " + ", ".join(sorted(k.upper() for k in declared)) if declared
            else "it takes no options"))
    opts = ds.option_defaults()
    opts.update((k, v) for k, v in options.items() if v is not None)
    db_dir = paths.db_dir(name, exp)
    data_root = data_root or ds.raw_root(exp)
    signature = dict(opts, dataset=name, seed=int(seed), encoded=bool(encoded),
                     skip_bad=bool(skip_bad))
    bad = []
    # One writer per root: a second make lmdb (or a make train reading these LMDBs) waits.
    with lock.hold(paths.lock_file(name, exp), "make lmdb %s" % name):
        prepared = ds.prepare(db_dir, data_root, opts, seed, encoded, skip_bad, bad)
        if prepared.inputs is not None:
            signature["inputs"] = prepared.inputs
        print("%s -> %s" % (name, db_dir))
        write_outputs(db_dir, prepared.outputs, signature, force)
        summary = summarize(name, db_dir, prepared, opts, bad)
    print(format_summary(summary))
    return summary


def summarize(name: str, db_dir: str, prepared: Prepared, opts: dict, bad: list) -> dict:
    """Counts and label histograms of the LMDBs, the family's noise rates, C."""
    lmdbs = [o.name for o in prepared.outputs if o.name not in NOT_LISTED]
    lmdbs += [paths.MIXED_IMAGES] + [paths.MIXED_LABELS[f] for f in LABEL_FIELDS]
    counts, histograms = {}, {}
    for db in lmdbs:
        labels = [int(line.rsplit(" ", 1)[1]) for line in open(os.path.join(db_dir, db + ".txt"))]
        counts[db] = lmdb_io.count(os.path.join(db_dir, db))
        histograms[db] = dict(sorted(collections.Counter(labels).items()))
    sets = prepared.label_sets
    return dict({"dataset": name, "db_dir": db_dir, "counts": counts, "labels": histograms,
                 "matrix_c": sets["matrix_c"], "never_mislabelled": list(sets["never_mislabelled"]),
                 "bad_images": bad}, **prepared.noise_summary(opts))


def format_summary(summary) -> str:
    lines = ["summary of %s (%s):" % (summary["dataset"], summary["db_dir"])]
    for db, count in summary["counts"].items():
        histogram = " ".join("%d:%d" % kv for kv in summary["labels"][db].items())
        lines.append("  %-24s %8d records  labels %s" % (db, count, histogram))
    if "noise_level" in summary:
        lines.append("  noise rate: asked %.3f, achieved %.3f (all training labels), %.3f (the clean "
                     "subset C comes from)" % (summary["noise_level"], summary["achieved_noise_rate"],
                                               summary["achieved_noise_rate_clean_subset"]))
    else:
        lines.append("  noise rate of the %d clean train/val keys with a noisy label: %.3f"
                     % (summary["num_pairs"], summary["paired_noise_rate"]))
    lines.append("  matrix C [noisy, true]:")
    lines.extend("    " + row for row in matrix_c.format_matrix(summary["matrix_c"]).splitlines())
    if summary["never_mislabelled"]:
        lines.append("  classes never seen mislabelled (no confusing noise, C column all zero): %s"
                     % ", ".join(map(str, summary["never_mislabelled"])))
    if summary["bad_images"]:
        lines.append("  %d images skipped (SKIP_BAD):" % len(summary["bad_images"]))
        lines.extend("    %s: %s" % item for item in summary["bad_images"])
    return "\n".join(lines)
