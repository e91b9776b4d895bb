"""`make lmdb DATASET=...`: each dataset's LMDBs, mean file and matrix C in paths.db_dir(name).

    cifar10     the python batches (downloaded when missing), synthetic noise at NOISE_LEVEL,
                NUM_CLEAN images keep their clean labels; records BGR as convert_imageset
                wrote them in the original (JPEG_QUALITY also repeats its lossy JPEG step)
    digits      scikit-learn's 1,797 8x8 digits (no download): 500 test images, 1,297 training
                images of which NUM_CLEAN (100) keep clean labels; stored as 1x8x8 grayscale
                0..255, the size the digits demo net reads
    clothing1M  the layout of SPEC §4 under DATA_ROOT, images resized to RESIZE x RESIZE

The four mixed LMDBs (mixed_train_images and mixed_train_label_{clean,noisy,ntype}) hold the
same records in the same order, so four `Data` layers with one batch size stay aligned; a
missing label is -1. Outputs come in groups (an LMDB with its list file; the mixed set with its
mean; matrix C), each recorded in `manifest.json` with what it was built from: a re-run skips a
group that is complete and built from the same inputs and options, unless `force`.
"""
import collections
import os
import pickle
import shutil
import tarfile
import tempfile

import numpy as np

from noisy_label import download, imageset, lmdb_io, matrix_c, mean, noise, paths, text_io
from noisy_label import manifest as manifest_io

NUM_CLASSES = {"cifar10": 10, "digits": 10, "clothing1M": 14}
# The options each dataset takes, with their defaults (`make lmdb` passes only those given).
DEFAULTS = {
    "cifar10": {"noise_level": 0.5, "num_clean": 10000, "jpeg_quality": None},
    # 100 clean digits (ten a class) give a clearly weaker net than all 1,297, so the noisy
    # rest matters: with 300 the clean-only net is within a few test digits of its ceiling
    # and the stages differ by less than the test set can tell (measured over 6 seeds).
    "digits": {"noise_level": 0.5, "num_clean": 100},
    "clothing1M": {"resize": 256, "upsample": 1.0},
}
NTYPE_TRAIN_FRACTION = 0.8   # the original split the 10,000 cifar10 pairs 8,000 / 2,000
DIGITS_NUM_TEST = 500        # five test batches of 100
CIFAR10_TRAIN_BATCHES = ["data_batch_%d" % i for i in range(1, 6)]
CIFAR10_TEST_BATCH = "test_batch"
CIFAR10_DOWNLOAD_TIMEOUT = 15  # seconds without data before giving up

LABEL_FIELDS = ("clean", "noisy", "ntype")


class Output(object):
    """One group of files in db_dir: an image LMDB with its list, or the mixed set, or a matrix."""

    def __init__(self, name, files, write, count=None):
        self.name, self.files, self.write, self.count = name, files, write, count


# ---- reading the raw datasets -------------------------------------------------------------


def cifar10_dir(data_root, url=paths.CIFAR10_URL):
    """The directory holding CIFAR-10's python batches under data_root, downloaded if missing."""
    for candidate in (os.path.join(data_root, paths.CIFAR10_BATCHES), data_root):
        if os.path.isfile(os.path.join(candidate, CIFAR10_TEST_BATCH)):
            return candidate
    target = os.path.join(data_root, paths.CIFAR10_BATCHES)
    print("CIFAR-10 python batches not found in %s; downloading %s" % (data_root, url))
    created = not os.path.isdir(data_root)
    try:
        os.makedirs(data_root, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".cifar10.", dir=data_root)
        try:
            tarball = download.fetch(url, os.path.join(tmp, "cifar-10-python.tar.gz"),
                                     CIFAR10_DOWNLOAD_TIMEOUT)
            with tarfile.open(tarball) as tar:
                # Only the batch files: no links or paths outside (no tarfile filters in 3.11.2).
                tar.extractall(tmp, [m for m in tar.getmembers() if m.isfile()
                                     and m.name.startswith(paths.CIFAR10_BATCHES + "/")
                                     and ".." not in m.name.split("/")])
            os.rename(os.path.join(tmp, paths.CIFAR10_BATCHES), target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, tarfile.TarError, ValueError) as e:
        if created:
            shutil.rmtree(data_root, ignore_errors=True)
        raise IOError("CIFAR-10 is not in DATA_ROOT=%s and the download from %s failed (%s).\n"
                      "Put the python version's %s/ (data_batch_1..5, test_batch) there, or pass "
                      "DATA_ROOT=<the directory holding it>." % (data_root, url, e,
                                                                  paths.CIFAR10_BATCHES))
    return target


def load_cifar10_batch(path):
    """(images (n, 3, 32, 32) uint8 BGR, labels (n,) int64) of one CIFAR-10 python batch.

    The batches hold RGB; Caffe's tools and pycaffe's deploy conventions (and the original
    release's records, made by convert_imageset) are BGR, channel-major.
    """
    if not os.path.isfile(path):
        raise IOError("missing CIFAR-10 batch %s" % path)
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data, labels = batch[b"data"], batch[b"labels"]
    except Exception as e:  # a truncated or foreign file: unpickling can fail in many ways
        raise ValueError("%s is not a CIFAR-10 python batch (%s: %s)" % (path, type(e).__name__, e))
    data, labels = np.asarray(data), np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 \
            or len(labels) != len(data):
        raise ValueError("%s: expected `data` uint8 (n, 3072) and n `labels`, got %s %s and %d labels"
                         % (path, data.dtype, data.shape, len(labels)))
    try:
        labels = matrix_c.check_labels(labels, NUM_CLASSES["cifar10"])
    except ValueError as e:
        raise ValueError("%s: %s" % (path, e))
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32)[:, ::-1]), labels


def check_jpeg_quality(quality):
    if quality is not None and not 1 <= int(quality) <= 100:
        raise ValueError("JPEG_QUALITY=%s: it must be 1..100 (75: the original's scipy.misc.imsave)"
                         % quality)
    return quality


def load_cifar10(data_root, url=paths.CIFAR10_URL, jpeg_quality=None):
    """{"train": (images, labels, names), "test": (...)} from the python batches, BGR; with
    jpeg_quality, through JPEG as the original release (imageset.jpeg_roundtrip)."""
    check_jpeg_quality(jpeg_quality)
    directory = cifar10_dir(data_root, url)
    parts = [load_cifar10_batch(os.path.join(directory, name)) for name in CIFAR10_TRAIN_BATCHES]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    test = load_cifar10_batch(os.path.join(directory, CIFAR10_TEST_BATCH))
    if jpeg_quality:
        train = (imageset.jpeg_roundtrip(train[0], jpeg_quality), train[1])
        test = (imageset.jpeg_roundtrip(test[0], jpeg_quality), test[1])
    return {"train": train + (["train/%05d" % i for i in range(len(train[1]))],),
            "test": test + (["test/%05d" % i for i in range(len(test[1]))],)}


def load_digits(seed):
    """{"train", "test"}: (images (n, 1, 8, 8) uint8 0..255, labels, names) of sklearn's digits."""
    from sklearn.datasets import load_digits as sklearn_digits
    digits = sklearn_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    order = np.random.RandomState(seed).permutation(len(images))
    names = np.array(["digits/%04d" % i for i in range(len(images))])
    split = {"test": order[:DIGITS_NUM_TEST], "train": order[DIGITS_NUM_TEST:]}
    return {part: (images[idx], digits.target[idx].astype(np.int64), list(names[idx]))
            for part, idx in split.items()}


def read_label_kv(path, num_classes):
    """OrderedDict key -> label from `images/.../name.jpg LABEL` lines; errors name file:line."""
    labels, lines = collections.OrderedDict(), {}
    for number, key, label in _lines(path, 2):
        try:
            label = int(label)
        except ValueError:
            raise ValueError("%s:%d: label %r of %s is not an integer" % (path, number, label, key))
        if not 0 <= label < num_classes:
            raise ValueError("%s:%d: label %d of %s is outside 0..%d"
                             % (path, number, label, key, num_classes - 1))
        if key in labels:
            raise ValueError("%s:%d: duplicate key %s (first on line %d)"
                             % (path, number, key, lines[key]))
        labels[key], lines[key] = label, number
    return labels


def read_key_list(path, kv, kv_path):
    """The keys of a key list, each checked to be unique and present in the kv file."""
    keys, lines = [], {}
    for number, key in _lines(path, 1):
        if key in lines:
            raise ValueError("%s:%d: duplicate key %s (first on line %d)"
                             % (path, number, key, lines[key]))
        if key not in kv:
            raise ValueError("%s:%d: key %s has no label in %s" % (path, number, key, kv_path))
        keys.append(key)
        lines[key] = number
    return keys


def _lines(path, fields):
    """Yield (line number, field, ...) of the non-blank lines of a text file with `fields` fields."""
    for number, line in text_io.numbered_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != fields:
            raise ValueError("%s:%d: expected %s, got %r" % (
                path, number, "`key label`" if fields == 2 else "one key", line.rstrip("\n")))
        yield (number,) + tuple(parts)


# ---- label sets -------------------------------------------------------------------------


def check_num_clean(num_clean, num_train):
    num_clean = int(num_clean)
    if not 2 <= num_clean <= num_train:
        raise ValueError("NUM_CLEAN=%d: it must be at least 2 and at most the %d training images"
                         % (num_clean, num_train))
    return num_clean


def synthetic_label_sets(labels, num_classes, noise_level, num_clean, seed):
    """The label side of cifar10 / digits: synthetic noise, C, noise types and the mixed set.

    labels: (M,) true training labels. Returns a dict of index / label arrays:
    matrix_q, noisy (M,), clean (K,) indices that keep clean labels, matrix_c, never_mislabelled,
    ntype (K,), ntype_train / ntype_test (index arrays into `clean`), mixed_order (M,) and
    mixed[field] (M,) labels in that order for field in clean/noisy/ntype/truth_or_noisy.
    """
    rng = np.random.RandomState(seed)
    noise_level = noise.check_noise_level(noise_level)
    num_clean = check_num_clean(num_clean, len(labels))
    matrix_q = noise.synthesize_matrix_q(num_classes, noise_level, rng)
    noisy = noise.draw_noisy_labels(labels, matrix_q, rng)
    clean = rng.permutation(len(labels))[:num_clean]
    # The clean images' noisy draws are kept only to estimate C and their noise types.
    estimate, never = matrix_c.estimate_matrix_c(labels[clean], noisy[clean], num_classes)
    ntype = matrix_c.noise_types(labels[clean], noisy[clean], estimate)
    num_ntype_train = int(round(NTYPE_TRAIN_FRACTION * num_clean))
    is_clean = np.zeros(len(labels), bool)
    is_clean[clean] = True
    ntype_of = np.full(len(labels), -1)
    ntype_of[clean[:num_ntype_train]] = ntype[:num_ntype_train]
    order = rng.permutation(len(labels))
    mixed = {"clean": np.where(is_clean, labels, -1)[order],
             "noisy": np.where(is_clean, -1, noisy)[order],
             "ntype": ntype_of[order],
             "truth_or_noisy": np.where(is_clean, labels, noisy)[order]}
    return {"matrix_q": matrix_q, "noisy": noisy, "clean": clean, "matrix_c": estimate,
            "never_mislabelled": never, "ntype": ntype,
            "ntype_train": np.arange(num_ntype_train), "ntype_test": np.arange(num_ntype_train, num_clean),
            "mixed_order": order, "mixed": mixed}


def clothing1m_label_sets(clean_kv, noisy_kv, lists, num_classes, upsample, seed):
    """The label side of Clothing1M (SPEC §4). lists: {"clean_train", "clean_val", "clean_test",
    "noisy_train"} key lists. Returns matrix_c, never_mislabelled, pairs (clean, noisy labels of
    the keys C came from), ntype {split: (keys, types)}, mixed keys and mixed[field] labels."""
    upsample = float(upsample)
    if not upsample >= 0:
        raise ValueError("UPSAMPLE must be >= 0, got %r" % upsample)
    rng = np.random.RandomState(seed)
    # C comes from the clean train + val keys that also have a noisy label.
    paired = [k for k in lists["clean_train"] + lists["clean_val"] if k in noisy_kv]
    if not paired:
        raise ValueError("no clean train/val key has a noisy label: matrix C cannot be estimated")
    pairs = (np.array([clean_kv[k] for k in paired]), np.array([noisy_kv[k] for k in paired]))
    estimate, never = matrix_c.estimate_matrix_c(pairs[0], pairs[1], num_classes)
    ntype = {}
    for split in ("train", "val", "test"):
        keys = [k for k in lists["clean_" + split] if k in noisy_kv]
        types = matrix_c.noise_types([clean_kv[k] for k in keys], [noisy_kv[k] for k in keys],
                                     estimate) if keys else np.zeros(0, np.int64)
        ntype[split] = (keys, types)
    # Clean train keys up-sampled to `upsample` x the noisy keys, then all shuffled together.
    clean_train = lists["clean_train"]
    wanted = int(round(upsample * len(lists["noisy_train"])))
    repeats = np.concatenate([np.tile(np.arange(len(clean_train)), wanted // len(clean_train)),
                              rng.permutation(len(clean_train))[:wanted % len(clean_train)]]) \
        if clean_train else np.zeros(0, np.int64)
    keys = [clean_train[i] for i in repeats] + list(lists["noisy_train"])
    keys = [keys[i] for i in rng.permutation(len(keys))]
    # Only clean *train* labels may enter the mixed set: val/test keys get their noisy label.
    clean_train_set = set(clean_train)
    ntype_train = dict(zip(*ntype["train"]))
    has_clean = np.array([k in clean_train_set for k in keys], bool)
    mixed = {"clean": np.array([clean_kv[k] if c else -1 for k, c in zip(keys, has_clean)], np.int64),
             "noisy": np.array([-1 if c else noisy_kv[k] for k, c in zip(keys, has_clean)], np.int64),
             "ntype": np.array([ntype_train.get(k, -1) for k in keys], np.int64)}
    mixed["truth_or_noisy"] = np.where(has_clean, mixed["clean"], mixed["noisy"])
    return {"matrix_c": estimate, "never_mislabelled": never, "pairs": pairs, "ntype": ntype,
            "mixed_keys": keys, "mixed": mixed}


# ---- writing -----------------------------------------------------------------------------


def _array_lmdb_output(db_dir, db, images, labels, names, encoding):
    path = os.path.join(db_dir, db)

    def write():
        imageset.build_array_lmdb(path, images, labels, names, encoding)
        imageset.write_image_list(path + ".txt", zip(names, labels))
    return Output(db, [db, db + ".txt"], write, len(labels))


def _label_lmdbs(db_dir, names, mixed, kept=None):
    """Write mixed_train_label_{clean,noisy,ntype} (+ lists) for the records kept."""
    for field in LABEL_FIELDS:
        labels = mixed[field] if kept is None else mixed[field][kept]
        kept_names = names if kept is None else [names[i] for i in kept]
        path = os.path.join(db_dir, paths.MIXED_LABELS[field])
        lmdb_io.write_label_lmdb(path, labels)
        imageset.write_image_list(path + ".txt", zip(kept_names, labels))


MIXED_FILES = [paths.MIXED_IMAGES, paths.MIXED_IMAGES + ".txt"] + \
    [paths.MIXED_LABELS[f] + ext for f in LABEL_FIELDS for ext in ("", ".txt")]


def _matrix_output(db_dir, name, matrix):
    path = os.path.join(db_dir, name)
    return Output(name, [name + ".binaryproto", name + ".txt"],
                  lambda: matrix_c.save_matrix(path + ".binaryproto", matrix, path + ".txt"))


def synthetic_outputs(name, db_dir, data, sets, encoding):
    """The Outputs of cifar10 / digits from the loaded data and synthetic_label_sets."""
    (train_images, train_labels, train_names), test = data["train"], data["test"]
    train_names = np.array(train_names)
    clean, order, mixed = sets["clean"], sets["mixed_order"], sets["mixed"]
    ntype_images = train_images[clean]
    mean_name = os.path.basename(paths.mean_file(name))

    def write_mixed():
        _array_lmdb_output(db_dir, paths.MIXED_IMAGES, train_images[order],
                           mixed["truth_or_noisy"], train_names[order], encoding).write()
        _label_lmdbs(db_dir, list(train_names[order]), mixed)
        mean.write_mean_file(os.path.join(db_dir, mean_name), train_images.mean(axis=0))

    return [
        _array_lmdb_output(db_dir, paths.TEST, test[0], test[1], test[2], encoding),
        _array_lmdb_output(db_dir, paths.CLEAN_TRAIN, train_images[clean], train_labels[clean],
                           train_names[clean], encoding),
        _array_lmdb_output(db_dir, paths.NTYPE_TRAIN, ntype_images[sets["ntype_train"]],
                           sets["ntype"][sets["ntype_train"]],
                           train_names[clean][sets["ntype_train"]], encoding),
        _array_lmdb_output(db_dir, paths.NTYPE_TEST, ntype_images[sets["ntype_test"]],
                           sets["ntype"][sets["ntype_test"]],
                           train_names[clean][sets["ntype_test"]], encoding),
        _array_lmdb_output(db_dir, paths.MIXED_TRAIN, train_images[order], mixed["truth_or_noisy"],
                           train_names[order], encoding),
        Output("mixed", MIXED_FILES + [mean_name], write_mixed, len(order)),
        _matrix_output(db_dir, paths.MATRIX_C, sets["matrix_c"]),
        _matrix_output(db_dir, paths.TRUE_MATRIX_Q, sets["matrix_q"]),
    ]


def clothing1m_outputs(db_dir, root, clean_kv, lists, sets, resize, encoding, skip_bad, seed, bad):
    """The Outputs of Clothing1M; images that were skipped are appended to `bad`."""
    resize = (resize, resize) if resize else None
    mean_name = os.path.basename(paths.mean_file("clothing1M"))

    def image_output(db, keys, labels, shuffle, with_mean=False):
        path = os.path.join(db_dir, db)

        def write():
            built = imageset.build_image_lmdb(path, list(zip(keys, labels)), root, resize,
                                              encoding=encoding, shuffle=shuffle, seed=seed,
                                              skip_bad=skip_bad)
            bad.extend(built["bad"])
            imageset.write_image_list(path + ".txt", [built["items"][i] for i in built["kept"]])
            if with_mean:
                if built["mean"] is None:
                    raise ValueError("the %s images differ in size: no mean file (set RESIZE)" % db)
                mean.write_mean_file(os.path.join(db_dir, mean_name), built["mean"])
            return built
        return Output(db, [db, db + ".txt"] + ([mean_name] if with_mean else []), write, len(keys))

    def write_mixed():
        keys, mixed = sets["mixed_keys"], sets["mixed"]
        built = image_output(paths.MIXED_IMAGES, keys, mixed["truth_or_noisy"], False).write()
        _label_lmdbs(db_dir, keys, mixed, built["kept"])

    outputs = []
    for split in ("train", "val", "test"):
        keys = lists["clean_" + split]
        # The mean file comes from clean_train, as the original's make_db.sh.
        outputs.append(image_output("clean_" + split, keys, [clean_kv[k] for k in keys],
                                    split == "train", with_mean=split == "train"))
    for split in ("train", "val", "test"):
        keys, types = sets["ntype"][split]
        outputs.append(image_output("ntype_" + split, keys, types, split == "train"))
    outputs.append(Output("mixed", MIXED_FILES, write_mixed, len(sets["mixed_keys"])))
    outputs.append(_matrix_output(db_dir, paths.MATRIX_C, sets["matrix_c"]))
    return outputs


def write_outputs(db_dir, outputs, signature, force=False):
    """Write each Output unless the manifest says it is complete and built from `signature`.
    Empty sets are refused before anything is written. Returns the names written."""
    for output in outputs:
        if output.count == 0:
            raise ValueError("%s would be empty (no records): check the inputs and options"
                             % os.path.join(db_dir, output.name))
    os.makedirs(db_dir, exist_ok=True)
    manifest_path = os.path.join(db_dir, paths.MANIFEST)
    manifest = {}
    if not force:
        manifest = manifest_io.load(manifest_path)
    written = []
    for output in outputs:
        complete = all(os.path.exists(os.path.join(db_dir, f)) for f in output.files)
        if not force and complete and manifest.get(output.name) == signature:
            print("  %-24s up to date" % output.name)
            continue
        # Unrecorded before the first file of the group is replaced, recorded after the last:
        # an interrupted run leaves the group unrecorded (rebuilt next time), never a mix of
        # old and new files that the manifest calls up to date.
        if manifest.pop(output.name, None) is not None or force:
            manifest_io.save(manifest_path, manifest)
        output.write()
        manifest[output.name] = signature
        manifest_io.save(manifest_path, manifest)
        print("  %-24s written" % output.name)
        written.append(output.name)
    return written


# ---- the builders ----------------------------------------------------------------------


def build(name, exp=None, data_root=None, seed=1, force=False, encoded=False, skip_bad=False,
          **options):
    """Build every output of dataset `name` into paths.db_dir(name, exp); print a summary.

    options: the dataset's own (DEFAULTS[name]): noise_level / num_clean, or resize / upsample.
    Returns the summary dict.
    """
    paths.check_dataset(name)
    unknown = sorted(k for k, v in options.items() if v is not None and k not in DEFAULTS[name])
    if unknown:
        raise ValueError("%s does not take %s (it takes: %s)" % (
            name, ", ".join(k.upper() for k in unknown),
            ", ".join(k.upper() for k in sorted(DEFAULTS[name]))))
    opts = dict(DEFAULTS[name])
    opts.update((k, v) for k, v in options.items() if v is not None)
    db_dir = paths.db_dir(name, exp)
    data_root = data_root or paths.data_root(name, exp)
    num_classes = NUM_CLASSES[name]
    signature = dict(opts, dataset=name, seed=int(seed), encoded=bool(encoded),
                     skip_bad=bool(skip_bad))
    bad = []
    if name == "clothing1M":
        if not os.path.isdir(data_root):
            raise IOError("DATA_ROOT=%s does not exist: put the Clothing1M tree there (%s, images/) "
                          "or pass DATA_ROOT=<its directory>"
                          % (data_root, ", ".join(sorted(paths.CLOTHING1M_FILES.values()))))
        files = {k: os.path.join(data_root, v) for k, v in paths.CLOTHING1M_FILES.items()
                 if k != "category_names"}
        clean_kv = read_label_kv(files["clean_kv"], num_classes)
        noisy_kv = read_label_kv(files["noisy_kv"], num_classes)
        lists = {k: read_key_list(files[k], clean_kv, files["clean_kv"])
                 for k in ("clean_train", "clean_val", "clean_test")}
        lists["noisy_train"] = read_key_list(files["noisy_train"], noisy_kv, files["noisy_kv"])
        sets = clothing1m_label_sets(clean_kv, noisy_kv, lists, num_classes, opts["upsample"], seed)
        signature["inputs"] = [manifest_io.file_signature(f) for f in sorted(files.values())]
        outputs = clothing1m_outputs(db_dir, data_root, clean_kv, lists, sets, int(opts["resize"]),
                                     "jpg" if encoded else None, skip_bad, seed, bad)
    else:
        if name == "cifar10":
            data = load_cifar10(data_root, jpeg_quality=opts["jpeg_quality"])
            signature["inputs"] = [manifest_io.file_signature(os.path.join(cifar10_dir(data_root), b))
                                   for b in CIFAR10_TRAIN_BATCHES + [CIFAR10_TEST_BATCH]]
        else:
            data = load_digits(seed)
        sets = synthetic_label_sets(data["train"][1], num_classes, opts["noise_level"],
                                    opts["num_clean"], seed)
        outputs = synthetic_outputs(name, db_dir, data, sets, "png" if encoded else None)
    print("%s -> %s" % (name, db_dir))
    write_outputs(db_dir, outputs, signature, force)
    summary = summarize(name, db_dir, outputs, sets, opts, data if name != "clothing1M" else None,
                        bad)
    print(format_summary(summary))
    return summary


def summarize(name, db_dir, outputs, sets, opts, data, bad):
    """Counts and label histograms of the LMDBs, the asked / achieved noise rate, C."""
    lmdbs = [o.name for o in outputs if o.name not in ("mixed", paths.MATRIX_C, paths.TRUE_MATRIX_Q)]
    lmdbs += [paths.MIXED_IMAGES] + [paths.MIXED_LABELS[f] for f in LABEL_FIELDS]
    counts, histograms = {}, {}
    for db in lmdbs:
        labels = [int(line.rsplit(" ", 1)[1]) for line in open(os.path.join(db_dir, db + ".txt"))]
        counts[db] = lmdb_io.count(os.path.join(db_dir, db))
        histograms[db] = dict(sorted(collections.Counter(labels).items()))
    summary = {"dataset": name, "db_dir": db_dir, "counts": counts, "labels": histograms,
               "matrix_c": sets["matrix_c"], "never_mislabelled": list(sets["never_mislabelled"]),
               "bad_images": bad}
    if data is not None:
        labels = data["train"][1]
        summary["noise_level"] = opts["noise_level"]
        summary["achieved_noise_rate"] = noise.noise_rate(labels, sets["noisy"])
        summary["achieved_noise_rate_clean_subset"] = noise.noise_rate(labels[sets["clean"]],
                                                                       sets["noisy"][sets["clean"]])
    else:
        summary["paired_noise_rate"] = noise.noise_rate(*sets["pairs"])
        summary["num_pairs"] = len(sets["pairs"][0])
    return summary


def format_summary(summary):
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
