"""`make lmdb` on small generated datasets in the exact on-disk formats: real LMDBs, real Caffe."""
import os
import pickle
import re
import subprocess

import cv2
import numpy as np
import pytest
from helpers import caffe_tool
from test_noise_and_matrix_c import reference_matrix_c

from noisy_label import datasets, paths
from noisy_label.datasets import cifar10 as cifar10_data
from noisy_label.datasets import key_lists, synthetic
from noisy_label.io import blob_io, lmdb_io, mean

pytestmark = pytest.mark.caffe

CLOTHING_CLASSES = 14


def read_lmdb(path):
    """[(key, Datum)] of an LMDB, in key order."""
    return list(lmdb_io.read_datums(path))


def labels_of(path):
    return np.array([lmdb_io.datum_label(d) for _, d in read_lmdb(path)])


# ---- fixtures: CIFAR-10 python batches and a Clothing1M tree ------------------------------


def write_cifar10(root, per_batch=60, num_test=100, seed=0):
    """CIFAR-10's python version: data_batch_1..5 and test_batch, pickled dicts of bytes keys."""
    rng = np.random.RandomState(seed)
    directory = os.path.join(root, cifar10_data.CIFAR10_BATCHES)
    os.makedirs(directory)
    batches = {}
    for name, n in [("data_batch_%d" % i, per_batch) for i in range(1, 6)] + [("test_batch", num_test)]:
        labels = rng.randint(0, 10, n)
        # Class-dependent colour so the images are distinguishable.
        data = (rng.randint(0, 64, (n, 3, 32, 32)) + labels[:, None, None, None] * 19).astype(np.uint8)
        batch = {b"batch_label": name.encode(), b"labels": labels.tolist(),
                 b"data": data.reshape(n, 3072), b"filenames": [b"x.png"] * n}
        with open(os.path.join(directory, name), "wb") as f:
            pickle.dump(batch, f, protocol=2)
        batches[name] = (data, labels)
    return batches


@pytest.fixture(scope="module")
def cifar10(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar10")
    batches = write_cifar10(str(root / "raw"))
    exp = str(root / "exp")
    summary = datasets.build("cifar10", exp=exp, data_root=str(root / "raw"), seed=3,
                             num_clean=100, noise_level=0.5)
    return {"exp": exp, "db": paths.db_dir("cifar10", exp), "batches": batches, "summary": summary,
            "raw": str(root / "raw")}


def write_clothing1m(root, seed=0):
    """A small Clothing1M tree: kv files, key lists, JPEGs under images/0..9/."""
    rng = np.random.RandomState(seed)
    keys = ["images/%d/%04d.jpg" % (i % 10, i) for i in range(150)]
    for key in keys:
        os.makedirs(os.path.join(root, os.path.dirname(key)), exist_ok=True)
        image = rng.randint(0, 255, (rng.randint(20, 40), rng.randint(20, 40), 3)).astype(np.uint8)
        cv2.imwrite(os.path.join(root, key), image)
    clean_keys, noisy_keys = keys[:60], keys[40:150]      # 40..59 are in both files
    clean = {k: int(rng.randint(CLOTHING_CLASSES)) for k in clean_keys}
    noisy = {}
    for k in noisy_keys:   # confusing noise: class c is often labelled c+1
        true = clean.get(k, int(rng.randint(CLOTHING_CLASSES)))
        noisy[k] = (true + 1) % CLOTHING_CLASSES if rng.rand() < 0.5 else true
    lists = {"clean_train": clean_keys[:20] + clean_keys[40:50],     # 40..49: train, also noisy
             "clean_val": clean_keys[20:30] + clean_keys[50:55],     # 50..54: val, also noisy
             "clean_test": clean_keys[30:40] + clean_keys[55:60],    # 55..59: test, also noisy
             "noisy_train": noisy_keys[:90]}                          # 40..129, incl. val/test keys
    files = dict(key_lists.LAYOUT, category_names=key_lists.CATEGORY_NAMES)

    def write(name, lines):
        with open(os.path.join(root, files[name]), "w") as f:
            f.writelines(line + "\n" for line in lines)
    write("clean_kv", ["%s %d" % kv for kv in clean.items()])
    write("noisy_kv", ["%s %d" % kv for kv in noisy.items()])
    for name, lst in lists.items():
        write(name, lst)
    write("category_names", ["class%d" % i for i in range(CLOTHING_CLASSES)])
    return clean, noisy, lists


@pytest.fixture(scope="module")
def clothing1m(tmp_path_factory):
    root = tmp_path_factory.mktemp("clothing1M")
    raw = str(root / "raw")
    clean, noisy, lists = write_clothing1m(raw)
    exp = str(root / "exp")
    summary = datasets.build("clothing1M", exp=exp, data_root=raw, seed=2, resize=16)
    return {"exp": exp, "db": paths.db_dir("clothing1M", exp), "raw": raw, "clean": clean,
            "noisy": noisy, "lists": lists, "summary": summary}


# ---- cifar10 -----------------------------------------------------------------------------


def mixed_records(db):
    """The four mixed LMDBs zipped record by record: [(image key, Datum, clean, noisy, ntype)]."""
    images = read_lmdb(os.path.join(db, paths.MIXED_IMAGES))
    labels = {}
    for field in ("clean", "noisy", "ntype"):
        records = read_lmdb(os.path.join(db, paths.MIXED_LABELS[field]))
        assert [k for k, _ in records] == ["%08d" % i for i in range(len(images))]
        for _, d in records:
            assert (d.channels, d.height, d.width, len(d.float_data)) == (1, 1, 1, 1)
        labels[field] = [d.float_data[0] for _, d in records]
    return [(key, datum, labels["clean"][i], labels["noisy"][i], labels["ntype"][i])
            for i, (key, datum) in enumerate(images)]


def test_cifar10_outputs_and_counts(cifar10):
    db = cifar10["db"]
    # 100 clean pairs: 80 trained on, 20 held out of everything (the noise-type test pairs).
    expected = {"test": 100, "clean_train": 80, "ntype_train": 80, "ntype_test": 20,
                "mixed_train": 280, "ntype_test_label_noisy": 20, "mixed_train_images": 280,
                "mixed_train_label_clean": 280, "mixed_train_label_noisy": 280,
                "mixed_train_label_ntype": 280}
    for name, count in expected.items():
        assert lmdb_io.count(os.path.join(db, name)) == count, name
        assert os.path.isfile(os.path.join(db, name + ".txt")), name
    assert cifar10["summary"]["counts"] == expected
    for name in ("cifar10_mean.binaryproto", "matrix_c.binaryproto", "matrix_c.txt",
                 "true_matrix_q.binaryproto", "true_matrix_q.txt"):
        assert os.path.isfile(os.path.join(db, name)), name
    assert not [f for f in os.listdir(db) if f.endswith(".tmp")]
    q = blob_io.read_blobproto(os.path.join(db, "true_matrix_q.binaryproto"))
    assert q.shape == (1, 1, 10, 10)
    np.testing.assert_allclose(q[0, 0].sum(axis=0), 1, atol=1e-6)
    np.testing.assert_allclose(np.diag(q[0, 0]), 0.5, atol=1e-6)


def train_images(cifar10):
    """The training images in BGR (the python batches hold RGB) and their labels."""
    batches = cifar10["batches"]
    images = np.concatenate([batches["data_batch_%d" % i][0] for i in range(1, 6)])[:, ::-1]
    labels = np.concatenate([batches["data_batch_%d" % i][1] for i in range(1, 6)])
    return images, labels


def test_cifar10_mixed_lmdbs_are_aligned_with_the_images(cifar10):
    images, labels = train_images(cifar10)
    records = mixed_records(cifar10["db"])
    seen, num_clean = set(), 0
    ntype_train = {line.split()[0]: int(line.split()[1])
                   for line in open(os.path.join(cifar10["db"], "ntype_train.txt"))}
    for i, (key, datum, clean, noisy, ntype) in enumerate(records):
        match = re.match(r"^(\d{8})_train/(\d{5})$", key)
        assert match and int(match.group(1)) == i, key
        index = int(match.group(2))
        seen.add(index)
        assert (datum.channels, datum.height, datum.width, datum.encoded) == (3, 32, 32, False)
        assert np.array_equal(np.frombuffer(datum.data, np.uint8).reshape(3, 32, 32), images[index])
        # Exactly one of clean / noisy is given; the clean one is the true label.
        assert (clean == -1) != (noisy == -1)
        if clean != -1:
            num_clean += 1
            assert clean == labels[index] == datum.label
        else:
            assert datum.label == noisy
        assert ntype == ntype_train.get("train/%05d" % index, -1)
        if ntype != -1:
            assert clean != -1
    held_out = {int(line.split()[0][-5:]) for line in open(os.path.join(cifar10["db"],
                                                                          "ntype_test.txt"))}
    assert len(held_out) == 20
    assert seen == set(range(300)) - held_out and num_clean == 80


def test_cifar10_held_out_pairs_are_in_nothing_trained(cifar10):
    """The noise-type test pairs: in no training LMDB and not in C; their clean and noisy
    labels are written aligned with ntype_test (what make relabel chooses its threshold on)."""
    _, labels = train_images(cifar10)
    db = cifar10["db"]
    sets = synthetic.synthetic_label_sets(labels, 10, 0.5, 100, seed=3)
    names = {db_name: [line.split()[0] for line in open(os.path.join(db, db_name + ".txt"))]
             for db_name in ("ntype_test", "clean_train", "ntype_train", "mixed_train",
                             paths.MIXED_IMAGES)}
    held = set(names["ntype_test"])
    for trained in ("clean_train", "ntype_train", "mixed_train", paths.MIXED_IMAGES):
        assert not held & set(names[trained]), trained
    assert held == {"train/%05d" % i for i in sets["clean"][sets["ntype_test"]]}
    for kind, want in (("clean", labels), ("noisy", sets["noisy"])):
        db_name = synthetic.HELD_OUT_LABELS[kind]
        records = read_lmdb(os.path.join(db, db_name))
        assert [k for k, _ in records] == ["%08d" % i for i in range(20)]
        got = [int(d.float_data[0]) for _, d in records]
        assert got == [int(want[int(n[-5:])]) for n in names["ntype_test"]], kind
        assert [line.split()[0] for line in open(os.path.join(db, db_name + ".txt"))] == \
            names["ntype_test"]
    # C comes from the 80 trained pairs only.
    trained = sets["clean"][sets["ntype_train"]]
    c = blob_io.read_blobproto(os.path.join(db, "matrix_c.binaryproto"))[0, 0]
    np.testing.assert_allclose(c, reference_matrix_c(labels[trained], sets["noisy"][trained], 10),
                               atol=1e-6)


def test_cifar10_matrix_c_and_noise_types_match_the_reference(cifar10):
    images, labels = train_images(cifar10)
    sets = synthetic.synthetic_label_sets(labels, 10, 0.5, 100, seed=3)
    clean = sets["clean"]
    c = blob_io.read_blobproto(os.path.join(cifar10["db"], "matrix_c.binaryproto"))
    assert c.shape == (1, 1, 10, 10)
    trained = clean[sets["ntype_train"]]
    expected = reference_matrix_c(labels[trained], sets["noisy"][trained], 10)
    np.testing.assert_allclose(c[0, 0], expected, atol=1e-6)
    np.testing.assert_allclose(np.loadtxt(os.path.join(cifar10["db"], "matrix_c.txt")), expected,
                               atol=1e-6)
    # The noise-type LMDBs: 0 if the draw kept the label, 2 if C says confusing, else 1.
    alpha = 1.0 / 9
    for name, part in (("ntype_train", sets["ntype_train"]), ("ntype_test", sets["ntype_test"])):
        records = read_lmdb(os.path.join(cifar10["db"], name))
        for (key, datum), j in zip(records, part):
            index = clean[j]
            assert key.endswith("train/%05d" % index)
            true, noisy = labels[index], sets["noisy"][index]
            want = 0 if true == noisy else (2 if expected[noisy, true] >= alpha else 1)
            assert datum.label == want
    # The asked and achieved noise rates are reported.
    assert abs(cifar10["summary"]["achieved_noise_rate"] - 0.5) < 0.1


def test_cifar10_mean_file_matches_compute_image_mean(cifar10, tmp_path):
    images, _ = train_images(cifar10)
    ours = blob_io.read_blobproto(os.path.join(cifar10["db"], "cifar10_mean.binaryproto"))
    assert ours.shape == (1, 3, 32, 32)
    mixed = [int(line.split()[0][-5:]) for line in open(os.path.join(cifar10["db"],
                                                                      "mixed_train.txt"))]
    np.testing.assert_allclose(ours[0], images[sorted(mixed)].mean(axis=0), atol=1e-4)
    stock = str(tmp_path / "stock.binaryproto")
    subprocess.run([caffe_tool("compute_image_mean"),
                    os.path.join(cifar10["db"], paths.MIXED_IMAGES), stock],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    np.testing.assert_allclose(ours, blob_io.read_blobproto(stock), atol=1e-3)
    np.testing.assert_allclose(mean.compute_mean(os.path.join(cifar10["db"], paths.MIXED_IMAGES)),
                               ours[0], atol=1e-4)


def convert_imageset(image_files, labels, out):
    """Stock convert_imageset of [path] with labels into the LMDB `out`, resized to 32x32 as the
    original's make_db.sh; returns its records."""
    listing = out + ".list"
    with open(listing, "w") as f:
        f.writelines("%s %d\n" % item for item in zip(image_files, labels))
    subprocess.run([caffe_tool("convert_imageset"), "-backend", "lmdb", "-resize_height", "32",
                    "-resize_width", "32", "/", listing, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return read_lmdb(out)


def test_cifar10_records_equal_convert_imageset_of_the_same_pixels(cifar10, tmp_path):
    """BGR, channel-major: what the original got from imsave + convert_imageset, here with the
    images saved losslessly (PNG) the way imsave saved them (RGB files, through Pillow)."""
    from PIL import Image
    data, labels = cifar10["batches"]["test_batch"]
    files = []
    for i, image in enumerate(data[:20]):
        files.append(str(tmp_path / ("%05d.png" % i)))
        Image.fromarray(image.transpose(1, 2, 0)).save(files[-1])      # RGB in, as imsave
    stock = convert_imageset(files, labels[:20], str(tmp_path / "stock"))
    ours = read_lmdb(os.path.join(cifar10["db"], "test"))[:20]
    for (_, want), (_, got) in zip(stock, ours):
        assert (got.channels, got.height, got.width, got.label) == \
            (want.channels, want.height, want.width, want.label)
        assert got.data == want.data


def test_cifar10_jpeg_quality_repeats_the_original_jpeg_step(cifar10, tmp_path):
    from PIL import Image
    exp = str(tmp_path / "exp")
    datasets.build("cifar10", exp=exp, data_root=cifar10["raw"], seed=3, num_clean=100,
                   jpeg_quality=75)
    data, labels = cifar10["batches"]["test_batch"]
    files = []
    for i, image in enumerate(data[:20]):
        files.append(str(tmp_path / ("%05d.jpg" % i)))
        Image.fromarray(image.transpose(1, 2, 0)).save(files[-1], quality=75)
    stock = convert_imageset(files, labels[:20], str(tmp_path / "stock"))
    ours = read_lmdb(os.path.join(paths.db_dir("cifar10", exp), "test"))[:20]
    assert [got.data for _, got in ours] == [want.data for _, want in stock]
    lossless = read_lmdb(os.path.join(cifar10["db"], "test"))[:20]
    assert [got.data for _, got in ours] != [raw.data for _, raw in lossless]
    with pytest.raises(ValueError, match=r"JPEG_QUALITY=0: it must be 1..100"):
        datasets.build("cifar10", exp=exp, data_root=cifar10["raw"], jpeg_quality=0)
    with pytest.raises(ValueError, match=r"digits does not take JPEG_QUALITY"):
        datasets.build("digits", exp=exp, jpeg_quality=75)


def test_rerun_skips_up_to_date_outputs_and_force_rebuilds(cifar10, capsys):
    stamp = os.path.join(cifar10["db"], "test", "data.mdb")
    before = os.stat(stamp).st_mtime_ns
    datasets.build("cifar10", exp=cifar10["exp"], data_root=cifar10["raw"], seed=3,
                   num_clean=100, noise_level=0.5)
    out = capsys.readouterr().out
    assert out.count("up to date") == 11 and "written" not in out
    assert os.stat(stamp).st_mtime_ns == before
    # Another root: all 11 outputs written; FORCE rebuilds all 11 again.
    exp = cifar10["exp"] + "_force"
    datasets.build("cifar10", exp=exp, data_root=cifar10["raw"], seed=3, num_clean=100)
    datasets.build("cifar10", exp=exp, data_root=cifar10["raw"], seed=3, num_clean=100, force=True)
    assert capsys.readouterr().out.count("written") == 22


def test_digits_build(tmp_path):
    summary = datasets.build("digits", exp=str(tmp_path))
    db = paths.db_dir("digits", str(tmp_path))
    assert summary["counts"]["test"] == 500
    assert summary["counts"]["clean_train"] == 80        # 20 of the 100 clean digits held out
    assert summary["counts"]["mixed_train_images"] == 1277
    assert (summary["counts"]["ntype_train"], summary["counts"]["ntype_test"]) == (80, 20)
    key, datum = read_lmdb(os.path.join(db, "test"))[0]
    assert (datum.channels, datum.height, datum.width) == (1, 8, 8)
    assert re.match(r"^00000000_digits/\d{4}$", key)
    pixels = np.concatenate([np.frombuffer(d.data, np.uint8) for _, d in read_lmdb(os.path.join(db, "test"))])
    assert pixels.max() == 255
    assert blob_io.read_blobproto(paths.mean_file("digits", str(tmp_path))).shape == (1, 1, 8, 8)
    # Q for forward / backward correction, from the same 100 pairs as C: a valid noise matrix.
    from noisy_label.core.matrix_c import load_matrix_q
    q = load_matrix_q(os.path.join(db, paths.ESTIMATED_MATRIX_Q + ".binaryproto"), 10)
    np.testing.assert_allclose(q.sum(axis=0), 1, atol=1e-6)
    assert os.path.exists(os.path.join(db, paths.ESTIMATED_MATRIX_Q + ".txt"))
    records = mixed_records(db)
    assert sum(r[2] != -1 for r in records) == 80


def test_encoded_records_decode_to_the_raw_pixels(cifar10, tmp_path):
    raw_db = os.path.join(cifar10["db"], "test")
    datasets.build("cifar10", exp=str(tmp_path), data_root=cifar10["raw"], seed=3, num_clean=100,
                   encoded=True)
    enc = read_lmdb(os.path.join(paths.db_dir("cifar10", str(tmp_path)), "test"))
    for (key, raw), (enc_key, encoded) in zip(read_lmdb(raw_db), enc):
        assert key == enc_key and encoded.encoded and encoded.label == raw.label
        assert np.array_equal(mean.datum_image(encoded), mean.datum_image(raw))


# ---- clothing1M --------------------------------------------------------------------------


def test_clothing1m_counts_and_labels(clothing1m):
    db, clean, _noisy, lists = clothing1m["db"], clothing1m["clean"], clothing1m["noisy"], clothing1m["lists"]
    counts = clothing1m["summary"]["counts"]
    assert (counts["clean_train"], counts["clean_val"], counts["clean_test"]) == (30, 15, 15)
    assert (counts["ntype_train"], counts["ntype_val"], counts["ntype_test"]) == (10, 5, 5)
    assert counts["mixed_train_images"] == 90 + 90          # up-sampled clean + noisy keys
    for split in ("train", "val", "test"):
        records = read_lmdb(os.path.join(db, "clean_" + split))
        keys = [k.split("_", 1)[1] for k, _ in records]
        assert sorted(keys) == sorted(lists["clean_" + split])
        for (key, datum), path in zip(records, keys):
            assert datum.label == clean[path]
            assert (datum.channels, datum.height, datum.width) == (3, 16, 16)
    # The image is the resized JPEG, as convert_imageset would store it.
    key, datum = read_lmdb(os.path.join(db, "clean_val"))[0]
    image = cv2.resize(cv2.imread(os.path.join(clothing1m["raw"], key.split("_", 1)[1])), (16, 16))
    assert datum.data == image.transpose(2, 0, 1).tobytes()


def test_clothing1m_mixed_set_and_leak_rule(clothing1m):
    db, clean, noisy, lists = clothing1m["db"], clothing1m["clean"], clothing1m["noisy"], clothing1m["lists"]
    train = set(lists["clean_train"])
    held_out = set(lists["clean_val"]) | set(lists["clean_test"])
    ntype_train = {k.split("_", 1)[1]: d.label for k, d in read_lmdb(os.path.join(db, "ntype_train"))}
    assert not held_out & set(ntype_train)
    records = mixed_records(db)
    from_clean = 0
    for i, (key, datum, c, n, t) in enumerate(records):
        assert key.startswith("%08d_" % i)
        path = key.split("_", 1)[1]
        if path in train:
            assert (c, n) == (clean[path], -1)
            from_clean += 1
        else:
            # Val/test keys among the noisy ones: their clean label never enters training.
            assert (c, n) == (-1, noisy[path])
        assert t == ntype_train.get(path, -1)
        assert datum.label == (c if c != -1 else n)
    assert from_clean == 90 + len(train & set(lists["noisy_train"]))
    assert sum(r[0].split("_", 1)[1] in held_out for r in records) == 10
    # No clean val/test label anywhere in a training LMDB.
    for name in ("clean_train", "ntype_train", paths.MIXED_IMAGES):
        paths_in = {k.split("_", 1)[1] for k, _ in read_lmdb(os.path.join(db, name))}
        if name != paths.MIXED_IMAGES:
            assert not paths_in & held_out, name


def test_clothing1m_matrix_c_from_train_and_val_pairs(clothing1m):
    clean, noisy, lists = clothing1m["clean"], clothing1m["noisy"], clothing1m["lists"]
    pairs = [k for k in lists["clean_train"] + lists["clean_val"] if k in noisy]
    assert len(pairs) == 15
    expected = reference_matrix_c([clean[k] for k in pairs], [noisy[k] for k in pairs],
                                  CLOTHING_CLASSES)
    c = blob_io.read_blobproto(os.path.join(clothing1m["db"], "matrix_c.binaryproto"))
    np.testing.assert_allclose(c[0, 0], expected, atol=1e-6)
    for split in ("val", "test"):
        for key, datum in read_lmdb(os.path.join(clothing1m["db"], "ntype_" + split)):
            path = key.split("_", 1)[1]
            true, label = clean[path], noisy[path]
            assert datum.label == (0 if true == label else 2 if expected[label, true] >= 1 / 13. else 1)
    assert clothing1m["summary"]["never_mislabelled"]   # most of the 14 classes: zero columns
    mean_blob = blob_io.read_blobproto(paths.mean_file("clothing1M", clothing1m["exp"]))
    assert mean_blob.shape == (1, 3, 16, 16)
    # From clean_train, as the original's make_db.sh, not from the mixed set.
    np.testing.assert_allclose(mean_blob[0], mean.compute_mean(
        os.path.join(clothing1m["db"], paths.CLEAN_TRAIN)), atol=1e-4)
    assert np.abs(mean_blob[0] - mean.compute_mean(
        os.path.join(clothing1m["db"], paths.MIXED_IMAGES))).max() > 1


NET = """layer { name: "data" type: "Data" top: "data" top: "label"
  data_param { source: "%(db)s/mixed_train_images" batch_size: %(batch)d backend: LMDB } }
layer { name: "label_clean" type: "Data" top: "label_clean"
  data_param { source: "%(db)s/mixed_train_label_clean" batch_size: %(batch)d backend: LMDB } }
layer { name: "label_noisy" type: "Data" top: "label_noisy"
  data_param { source: "%(db)s/mixed_train_label_noisy" batch_size: %(batch)d backend: LMDB } }
layer { name: "label_ntype" type: "Data" top: "label_ntype"
  data_param { source: "%(db)s/mixed_train_label_ntype" batch_size: %(batch)d backend: LMDB } }
layer { name: "silence" type: "Silence" bottom: "label" bottom: "data" bottom: "label_clean"
  bottom: "label_noisy" bottom: "label_ntype" }
"""


def test_four_stock_data_layers_read_the_mixed_set_in_step(clothing1m, tmp_path):
    import caffe
    caffe.set_mode_cpu()
    batch = 7    # 180 records: batches run across the end of the epoch and wrap around
    net_file = tmp_path / "net.prototxt"
    net_file.write_text(NET % {"db": clothing1m["db"], "batch": batch})
    net = caffe.Net(str(net_file), caffe.TRAIN)
    records = mixed_records(clothing1m["db"])
    position = 0
    for _ in range(30):
        net.forward()
        for j in range(batch):
            key, datum, clean, noisy, ntype = records[(position + j) % len(records)]
            pixels = np.frombuffer(datum.data, np.uint8).reshape(3, 16, 16)
            assert np.array_equal(net.blobs["data"].data[j], pixels), key
            assert net.blobs["label"].data[j] == datum.label
            assert net.blobs["label_clean"].data[j].ravel()[0] == clean, key
            assert net.blobs["label_noisy"].data[j].ravel()[0] == noisy, key
            assert net.blobs["label_ntype"].data[j].ravel()[0] == ntype, key
        position += batch
    assert position > len(records)


# ---- bad input: clear errors, nothing half-written ---------------------------------------


def build_clothing(tmp_path, raw, **kwargs):
    return datasets.build("clothing1M", exp=str(tmp_path / "exp"), data_root=raw, resize=16, **kwargs)


@pytest.fixture
def clothing_raw(tmp_path):
    raw = str(tmp_path / "raw")
    write_clothing1m(raw)
    return raw


def edit_line(path, number, text):
    lines = open(path).read().splitlines()
    lines[number - 1] = text
    open(path, "w").write("\n".join(lines) + "\n")


def no_lmdb_written(tmp_path, name="clothing1M"):
    db = paths.db_dir(name, str(tmp_path / "exp"))
    return not os.path.isdir(db) or not [f for f in os.listdir(db) if f not in (paths.MANIFEST,)
                                         and not f.endswith(".txt")]


def test_missing_image_stops_with_its_path_and_leaves_no_db(tmp_path, clothing_raw):
    victim = os.path.join(clothing_raw, "images/3/0003.jpg")   # a clean train key
    os.unlink(victim)
    with pytest.raises(ValueError, match=r"1 of 30 images are missing, the first: .*images/3/0003\.jpg"):
        build_clothing(tmp_path, clothing_raw)
    db = paths.db_dir("clothing1M", str(tmp_path / "exp"))
    assert not os.path.exists(os.path.join(db, "clean_train"))
    assert not [f for f in os.listdir(db) if f.endswith(".tmp")]


def test_corrupt_image_stops_with_its_path(tmp_path, clothing_raw):
    with open(os.path.join(clothing_raw, "images/5/0005.jpg"), "wb") as f:
        f.write(b"not a jpeg at all")
    with pytest.raises(ValueError, match=r"cannot decode image .*images/5/0005\.jpg"):
        build_clothing(tmp_path, clothing_raw)
    db = paths.db_dir("clothing1M", str(tmp_path / "exp"))
    assert not [f for f in os.listdir(db) if not f.endswith(".txt") and f != paths.MANIFEST]


def test_skip_bad_skips_and_lists_and_keeps_the_mixed_set_aligned(tmp_path, clothing_raw, capsys):
    os.unlink(os.path.join(clothing_raw, "images/1/0041.jpg"))          # clean train and noisy
    with open(os.path.join(clothing_raw, "images/0/0070.jpg"), "wb") as f:
        f.write(b"garbage")                                             # a noisy key
    summary = build_clothing(tmp_path, clothing_raw, skip_bad=True)
    out = capsys.readouterr().out
    assert "images/1/0041.jpg" in out and "images/0/0070.jpg" in out and "images skipped" in out
    db = paths.db_dir("clothing1M", str(tmp_path / "exp"))
    records = mixed_records(db)
    assert len(records) == summary["counts"]["mixed_train_images"] < 180
    assert not [r for r in records if r[0].endswith("0041.jpg") or r[0].endswith("0070.jpg")]
    assert [r[0][:8] for r in records] == ["%08d" % i for i in range(len(records))]
    listed = [line.split()[0] for line in open(os.path.join(db, paths.MIXED_LABELS["noisy"] + ".txt"))]
    assert listed == [r[0].split("_", 1)[1] for r in records]


@pytest.mark.parametrize("file_key, line, text, message", [
    ("clean_kv", 3, "images/2/0002.jpg 14", r"clean_label_kv\.txt:3: label 14 of images/2/0002\.jpg "
                                            r"is outside 0\.\.13"),
    ("noisy_kv", 2, "images/1/0041.jpg x", r"noisy_label_kv\.txt:2: label 'x' of .* is not an integer"),
    ("clean_kv", 2, "images/0/0000.jpg 3", r"clean_label_kv\.txt:2: duplicate key images/0/0000\.jpg "
                                           r"\(first on line 1\)"),
    ("clean_train", 4, "images/9/0999.jpg", r"clean_train_key_list\.txt:4: key images/9/0999\.jpg "
                                            r"has no label in .*clean_label_kv\.txt"),
    ("noisy_train", 1, "images/0/0000.jpg", r"noisy_train_key_list\.txt:1: key images/0/0000\.jpg "
                                            r"has no label in .*noisy_label_kv\.txt"),
    ("clean_val", 2, "images/0/0020.jpg", r"clean_val_key_list\.txt:2: duplicate key images/0/0020\.jpg"),
    ("clean_kv", 5, "too many fields here", r"clean_label_kv\.txt:5: expected `key label`"),
])
def test_bad_clothing1m_files_are_named(tmp_path, clothing_raw, file_key, line, text, message):
    edit_line(os.path.join(clothing_raw, key_lists.LAYOUT[file_key]), line, text)
    with pytest.raises(ValueError, match=message):
        build_clothing(tmp_path, clothing_raw)
    assert no_lmdb_written(tmp_path)


def test_empty_set_is_refused_before_writing(tmp_path, clothing_raw):
    open(os.path.join(clothing_raw, key_lists.LAYOUT["clean_test"]), "w").close()
    with pytest.raises(ValueError, match=r"clean_test would be empty"):
        build_clothing(tmp_path, clothing_raw)
    assert no_lmdb_written(tmp_path)


def test_missing_data_root_and_files(tmp_path, clothing_raw):
    with pytest.raises(IOError, match=r"DATA_ROOT=.*nowhere does not exist: put the Clothing1M tree"):
        build_clothing(tmp_path, str(tmp_path / "nowhere"))
    os.unlink(os.path.join(clothing_raw, key_lists.LAYOUT["noisy_kv"]))
    with pytest.raises(IOError, match=r"No such file or directory: .*noisy_label_kv\.txt"):
        build_clothing(tmp_path, clothing_raw)


def test_bad_synthetic_options(tmp_path, cifar10):
    exp = str(tmp_path / "exp")
    with pytest.raises(ValueError, match=r"NOISE_LEVEL must be in \[0, 1\], got 1\.5"):
        datasets.build("digits", exp=exp, noise_level=1.5)
    with pytest.raises(ValueError, match=r"NUM_CLEAN=2000: it must be at least 2 and at most the "
                                         r"1297 training images"):
        datasets.build("digits", exp=exp, num_clean=2000)
    with pytest.raises(ValueError, match=r"NUM_CLEAN=301: .* at most the 300 training images"):
        datasets.build("cifar10", exp=exp, data_root=cifar10["raw"], num_clean=301)
    with pytest.raises(ValueError, match=r"cifar10 does not take RESIZE \(it takes: "
                                         r"JPEG_QUALITY, NOISE_LEVEL, NUM_CLEAN\)"):
        datasets.build("cifar10", exp=exp, data_root=cifar10["raw"], resize=32)
    assert not os.path.exists(paths.db_dir("digits", exp))


def test_cifar10_missing_and_corrupt_batches(tmp_path):
    # An unreachable address (nothing listens on port 9): the download fails fast, offline.
    with pytest.raises(IOError, match=r"(?s)CIFAR-10 is not in DATA_ROOT=.*empty and the download from "
                                      r"http://127\.0\.0\.1:9/.* failed .*Put the python version's "
                                      r"cifar-10-batches-py/"):
        cifar10_data.load_cifar10(str(tmp_path / "empty"), url="http://127.0.0.1:9/cifar-10.tar.gz")
    assert not os.path.exists(str(tmp_path / "empty"))
    raw = str(tmp_path / "raw")
    write_cifar10(raw, per_batch=4, num_test=4)
    batch = os.path.join(raw, cifar10_data.CIFAR10_BATCHES, "data_batch_2")
    with open(batch, "r+b") as f:
        f.truncate(100)
    with pytest.raises(ValueError, match=r"data_batch_2 is not a CIFAR-10 python batch"):
        cifar10_data.load_cifar10(raw)
    with open(batch, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 12]}, f)
    with pytest.raises(ValueError, match=r"data_batch_2: label 12 of sample 1 is not an integer in 0\.\.9"):
        cifar10_data.load_cifar10(raw)
