"""`make relabel`: clean a noisy dataset with the trained joint model.

The paper's posterior p(y | ỹ, x) = Σ_z q(y, z | ỹ, x) says, for every noisy-labelled image,
how likely its label is right and what it should be. A generated TEST-phase net (the joint
net's two towers and the `NoisyLabelPosterior` layer under the loss layer's name, so the
trained C comes with the weights) runs over `mixed_train_images` with stock pycaffe, and
`$EXP/db/<name>/relabel/` receives:

    labels.csv                   key,noisy_label,corrected_label,p_label_correct,flagged
    mixed_train_label_corrected  a label LMDB in the mixed LMDBs' key order (+ its .txt list)
    mixed_train_corrected        the images with the corrected labels (like mixed_train)
    label_issues.csv             the flagged records, most likely wrong first
    summary.json, confusion.png  counts, flags per class, noisy -> corrected, and (where the
                                 truth is known: true_labels.txt) accuracies, precision, recall

corrected_label = argmax_y p(y | ỹ, x) for a noisy-labelled record, its clean label where it
has one; p_label_correct = p(y = ỹ | ỹ, x); flagged = p_label_correct < threshold.

The threshold (THRESHOLD=auto|<p>|precision:<p>): a number is used as given; `auto` (the
default) maximises the flags' F1 and `precision:<p>` takes the largest threshold whose flag
precision is at least p, both on the held-out pairs: the images with a clean and a noisy label
that no net and no C was trained on (cifar10, digits: the noise-type test pairs, whose labels
make lmdb writes aligned with ntype_test). Never on the truth of the mixed set nor the test
set. The summary gives the precision and recall the held-out pairs predict beside what the
truth then shows. Where a dataset has no such pairs (Clothing1M), auto falls back to 0.5 and
says so.
"""
import csv
import io
import json
import math
import os
from typing import Optional

import numpy as np
from google.protobuf import text_format

from noisy_label import datasets, paths
from noisy_label.core.noisy_loss import UNLABELLED
from noisy_label.core.thresholds import parse_threshold
from noisy_label.experiments import caffe_log, nets, stages
from noisy_label.io import atomic, imageset, lmdb_io

DEFAULT_THRESHOLD = "auto"
FALLBACK_THRESHOLD = 0.5


def flag_scores(p_correct: np.ndarray, wrong: np.ndarray, threshold: float) -> dict:
    """Precision, recall and F1 of flagging p_correct < threshold where `wrong` is the truth.

    Parameters
    ----------
    p_correct : numpy.ndarray, shape (n,)
        p(y = ỹ | ỹ, x) of labelled pairs.
    wrong : numpy.ndarray of bool, shape (n,)
        Whether each noisy label differs from the pair's clean label.
    threshold : float

    Returns
    -------
    dict
        {"flagged", "wrong", "precision", "recall", "f1"}: precision NaN when nothing is
        flagged, recall NaN when nothing is wrong (F1 then 1 if nothing is flagged, else 0).
    """
    flagged = np.asarray(p_correct) < threshold
    wrong = np.asarray(wrong, bool)
    hit = int((flagged & wrong).sum())
    precision = hit / flagged.sum() if flagged.any() else float("nan")
    recall = hit / wrong.sum() if wrong.any() else float("nan")
    if wrong.any():
        f1 = 2 * precision * recall / (precision + recall) if hit else 0.0
    else:                       # nothing to find: flagging nothing is right, anything else not
        f1 = 0.0 if flagged.any() else 1.0
    return {"flagged": int(flagged.sum()), "wrong": int(wrong.sum()),
            "precision": float(precision), "recall": float(recall), "f1": float(f1)}


def candidate_thresholds(p_correct: np.ndarray) -> np.ndarray:
    """Every distinct way of flagging p_correct (n,) by a threshold in [0, 1]: 0 (nothing),
    the midpoints between consecutive distinct values, and one above the largest (up to 1)."""
    values = np.unique(np.asarray(p_correct, np.float64))
    top = (values[-1] + 1.0) / 2 if values[-1] < 1.0 else 1.0
    return np.concatenate([[0.0], (values[:-1] + values[1:]) / 2, [top]])


def choose_threshold(p_correct: np.ndarray, wrong: np.ndarray, rule: str = "f1",
                     precision: Optional[float] = None) -> dict:
    """The flag threshold chosen on labelled pairs that were not trained on.

    Parameters
    ----------
    p_correct : numpy.ndarray, shape (n,)
        p(y = ỹ | ỹ, x) of the held-out pairs.
    wrong : numpy.ndarray of bool, shape (n,)
        Their noisy label differs from their clean label.
    rule : {"f1", "precision"}
        f1: the threshold of the highest F1 (on a tie the one nearest 0.5); precision: the
        largest threshold whose precision is at least `precision` (the most recall at that
        precision); if none reaches it, the one of the highest precision.

    Returns
    -------
    dict
        {"threshold", "rule", "pairs", plus flag_scores at that threshold: what the held-out
        pairs predict for the flags}.
    """
    p_correct = np.asarray(p_correct, np.float64)
    wrong = np.asarray(wrong, bool)
    if p_correct.shape != wrong.shape or p_correct.size == 0:
        raise ValueError("choose_threshold: need as many pairs as labels, and at least one")
    candidates = candidate_thresholds(p_correct)
    rows = [flag_scores(p_correct, wrong, t) for t in candidates]
    if rule == "f1":
        f1 = np.nan_to_num(np.array([r["f1"] for r in rows]), nan=-1.0)
        best = np.flatnonzero(f1 == f1.max())
        pick = best[np.argmin(np.abs(candidates[best] - 0.5))]
    elif rule == "precision":
        prec = np.nan_to_num(np.array([r["precision"] for r in rows]), nan=-1.0)
        reached = np.flatnonzero(prec >= precision)
        pick = reached[-1] if reached.size else int(np.argmax(prec))
    else:
        raise ValueError("choose_threshold: unknown rule %r" % rule)
    return dict(rows[pick], threshold=float(candidates[pick]), rule=rule, pairs=int(p_correct.size))


def posterior_net(ds, files, images: str = paths.MIXED_IMAGES, labels=None):
    """nets.NetFamily's posterior net: the joint net's towers and NoisyLabelPosterior over the
    mixed set (or `images` and its aligned label LMDBs labels = {"clean": db, "noisy": db})."""
    return nets.NetFamily(ds, files).posterior_net(images, labels)


def corrected_labels(p_label: np.ndarray, noisy: np.ndarray, clean: np.ndarray,
                     threshold: float):
    """Corrected labels, p(y = ỹ | ỹ, x) and flags of the mixed records.

    Parameters
    ----------
    p_label : numpy.ndarray, shape (M, N)
        p(y | ỹ, x); all zero where there is no noisy label.
    noisy, clean : numpy.ndarray, shape (M,)
        The mixed set's noisy and clean labels, -1 where a record has none.
    threshold : float

    Returns
    -------
    corrected : numpy.ndarray, shape (M,), int64
        The clean label where there is one, else argmax p(y | ỹ, x), else -1.
    p_correct : numpy.ndarray, shape (M,), float64
        p(y = ỹ | ỹ, x), NaN where there is no noisy label.
    flagged : numpy.ndarray, shape (M,), bool
        p_correct < threshold (never where there is no noisy label).
    """
    has_noisy = noisy != UNLABELLED
    corrected = np.where(clean != UNLABELLED, clean,
                         np.where(has_noisy, p_label.argmax(axis=1), UNLABELLED))
    p_correct = np.full(len(noisy), np.nan)
    rows = np.flatnonzero(has_noisy)
    p_correct[rows] = p_label[rows, noisy[rows]]
    flagged = has_noisy & ~(p_correct >= threshold)     # NaN (no noisy label) is never flagged
    return corrected.astype(np.int64), p_correct, flagged


def scores(noisy: np.ndarray, corrected: np.ndarray, flagged: np.ndarray,
           truth: np.ndarray) -> dict:
    """Against the truth, over the noisy-labelled records: accuracy of the noisy and of the
    corrected labels, precision / recall / F1 of the flags (a flag says the label is wrong)."""
    rows = noisy != UNLABELLED
    wrong = (noisy != truth) & rows
    hit = (flagged & wrong).sum()
    precision = hit / flagged[rows].sum() if flagged[rows].any() else float("nan")
    recall = hit / wrong.sum() if wrong.any() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {"noisy_labelled": int(rows.sum()), "noisy_label_errors": int(wrong.sum()),
            "accuracy_noisy": float((noisy[rows] == truth[rows]).mean()),
            "accuracy_corrected": float((corrected[rows] == truth[rows]).mean()),
            "flag_precision": float(precision), "flag_recall": float(recall), "flag_f1": float(f1)}


def run_net(net_file: str, weights: str, count: int, blobs, gpu: Optional[int] = None,
            desc: str = "relabel") -> dict:
    """{blob: (count, ...) array} of the first `count` records of a TEST-phase net whose Data
    layers read the mixed LMDBs in step, with pycaffe, batch by batch (the last batch wraps)."""
    import caffe
    from tqdm import tqdm
    if gpu is None:
        caffe.set_mode_cpu()
    else:
        caffe.set_mode_gpu()
        caffe.set_device(int(gpu))
    net = caffe.Net(net_file, caffe.TEST, weights=weights)
    batch = net.blobs["data"].num
    parts = {blob: [] for blob in blobs}
    for _ in tqdm(range(int(math.ceil(count / float(batch)))), desc=desc, unit="batch",
                  leave=False):
        net.forward()
        for blob, rows in parts.items():
            rows.append(net.blobs[blob].data.reshape(batch, -1).copy())
    return {blob: np.concatenate(rows)[:count] for blob, rows in parts.items()}


def run_posterior(net_file: str, weights: str, count: int, gpu: Optional[int] = None,
                  desc: str = "relabel"):
    """(p(y|ỹ,x) (M, N), noisy labels (M,), clean labels (M,)) of the mixed set's records."""
    labels, posterior = nets.NetFamily.LABELS, nets.NetFamily.POSTERIOR
    out = run_net(net_file, weights, count, (posterior, labels["noisy"], labels["clean"]), gpu, desc)
    noisy = np.rint(out[labels["noisy"]][:, 0]).astype(np.int64)
    clean = np.rint(out[labels["clean"]][:, 0]).astype(np.int64)
    return out[posterior], noisy, clean


def classifier_net(ds, files):
    """nets.NetFamily's classifier net: the clean net over the mixed set, with a Softmax."""
    return nets.NetFamily(ds, files).classifier_net()


def clean_model_probabilities(experiment, gpu: Optional[int] = None) -> np.ndarray:
    """p(y|x) (M, N) of the mixed set's records under the clean-only model (its `clean` stage),
    which never saw them: out-of-sample predicted probabilities, as cleanlab expects."""
    name, exp = experiment.name, experiment.exp
    out_dir = os.path.join(paths.db_dir(name, exp), paths.RELABEL)
    net_file = os.path.join(out_dir, "clean_probabilities.prototxt")
    atomic.write_text(net_file, text_format.MessageToString(
        classifier_net(datasets.get_dataset(name), nets.Files(name, exp))))
    count = lmdb_io.count(paths.lmdb_path(name, paths.MIXED_IMAGES, exp))
    prob = nets.NetFamily.PROB
    return run_net(net_file, experiment.final("clean"), count, (prob,), gpu, "clean p(y|x)")[prob]


def held_out_posterior(experiment, weights: str, gpu: Optional[int] = None):
    """(p(y = ỹ | ỹ, x) (h,), wrong (h,) bool) of the held-out pairs under the joint model
    `weights`, or None where the dataset's LMDBs have no held-out pair labels."""
    from noisy_label.datasets.synthetic import HELD_OUT_LABELS
    name, exp = experiment.name, experiment.exp
    if not all(os.path.isdir(paths.lmdb_path(name, db, exp)) for db in
               [paths.NTYPE_TEST] + list(HELD_OUT_LABELS.values())):
        return None
    out_dir = os.path.join(paths.db_dir(name, exp), paths.RELABEL)
    net_file = os.path.join(out_dir, "posterior_held_out.prototxt")
    atomic.write_text(net_file, text_format.MessageToString(posterior_net(
        datasets.get_dataset(name), nets.Files(name, exp), paths.NTYPE_TEST, HELD_OUT_LABELS)))
    count = lmdb_io.count(paths.lmdb_path(name, paths.NTYPE_TEST, exp))
    p_label, noisy, clean = run_posterior(net_file, weights, count, gpu, "held-out pairs")
    return p_label[np.arange(count), noisy], noisy != clean


def resolve_threshold(spec, held_out) -> dict:
    """{"threshold", "rule", and where chosen on held-out pairs what they predict} from a
    parse_threshold spec and held_out_posterior's result (None: no held-out pairs)."""
    kind, value = spec
    if kind == "fixed":
        out = {"threshold": value, "rule": "given"}
        if held_out is not None:
            out["held_out"] = dict(flag_scores(held_out[0], held_out[1], value),
                                   pairs=int(held_out[0].size))
        return out
    if held_out is None:
        return {"threshold": FALLBACK_THRESHOLD, "rule": "fallback",
                "note": "no held-out pairs in this dataset's LMDBs: THRESHOLD=%s falls back to "
                        "%.2f" % ("auto" if kind == "auto" else "precision:%g" % value,
                                  FALLBACK_THRESHOLD)}
    chosen = choose_threshold(held_out[0], held_out[1], "f1" if kind == "auto" else "precision",
                              value)
    return {"threshold": chosen["threshold"],
            "rule": "F1" if kind == "auto" else "precision >= %g" % value,
            "held_out": {k: chosen[k] for k in ("pairs", "wrong", "flagged", "precision",
                                                 "recall", "f1")}}


def relabel(experiment, threshold=DEFAULT_THRESHOLD, gpu: Optional[int] = None) -> dict:
    """Run the final joint model of `experiment` (a pipeline.Experiment) over the mixed set and
    write the outputs of the module docstring; return the summary. threshold: a number, or
    THRESHOLD's text (auto, <p>, precision:<p>)."""
    from noisy_label.experiments.caffe_run import StageError
    spec = parse_threshold(threshold)
    name, exp = experiment.name, experiment.exp
    db_dir = paths.db_dir(name, exp)
    images = paths.lmdb_path(name, paths.MIXED_IMAGES, exp)
    if not os.path.isdir(images):
        raise StageError("[%s] relabel: no LMDB %s; run make lmdb DATASET=%s first"
                         % (name, images, name))
    joint = [s for s in stages.training(name) if s.role == "ours"][-1]
    weights = experiment.final(joint.name)
    if not os.path.exists(weights):
        raise StageError("[%s] relabel needs the trained model %s; run make train DATASET=%s "
                         "first" % (name, weights, name))
    ds = datasets.get_dataset(name)
    out_dir = os.path.join(db_dir, paths.RELABEL)
    os.makedirs(out_dir, exist_ok=True)
    net_file = os.path.join(out_dir, "posterior.prototxt")
    atomic.write_text(net_file, text_format.MessageToString(
        posterior_net(ds, nets.Files(name, exp))))
    count = lmdb_io.count(images)
    choice = resolve_threshold(spec, held_out_posterior(experiment, weights, gpu))
    threshold = choice["threshold"]
    p_label, noisy, clean = run_posterior(net_file, weights, count, gpu)
    corrected, p_correct, flagged = corrected_labels(p_label, noisy, clean, threshold)
    keys = [key for key, _ in lmdb_io.read_datums(paths.lmdb_path(name, paths.MIXED_LABELS["noisy"],
                                                                   exp))]
    summary = write_outputs(out_dir, name, images, keys, noisy, corrected, p_correct, flagged)
    truth_file = os.path.join(db_dir, paths.TRUE_LABELS + ".txt")
    summary.update(choice, weights=weights, records=count, out_dir=out_dir)
    if os.path.exists(truth_file):
        truth = imageset.read_label_list(truth_file)
        if len(truth) != count:
            raise StageError("[%s] relabel: %s has %d labels for %d records"
                             % (name, truth_file, len(truth), count))
        summary["against_truth"] = scores(noisy, corrected, flagged, truth)
    atomic.write_text(os.path.join(out_dir, "summary.json"),
                      json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def write_outputs(out_dir, name, images, keys, noisy, corrected, p_correct, flagged) -> dict:
    """labels.csv, label_issues.csv, the two LMDBs and confusion.png; the summary's counts."""
    num_classes = int(max(noisy.max(), corrected.max())) + 1
    rows = [(key, int(n), int(c), "" if math.isnan(p) else "%.6f" % p, int(f))
            for key, n, c, p, f in zip(keys, noisy, corrected, p_correct, flagged)]
    atomic.write_text(os.path.join(out_dir, "labels.csv"), _csv(
        ["key", "noisy_label", "corrected_label", "p_label_correct", "flagged"], rows))
    issues = sorted((r for r in rows if r[4]), key=lambda r: float(r[3]))
    atomic.write_text(os.path.join(out_dir, "label_issues.csv"), _csv(
        ["key", "noisy_label", "corrected_label", "p_label_correct"], [r[:4] for r in issues]))
    lmdb_io.write_label_lmdb(os.path.join(out_dir, paths.CORRECTED_LABELS), corrected)
    # Its list beside it, as every LMDB of make lmdb (what relabel_ft_clean was trained from).
    imageset.write_image_list(os.path.join(out_dir, paths.CORRECTED_LABELS + ".txt"),
                              zip(keys, corrected))
    # The images with the corrected labels, streamed record by record (Clothing1M: 1M images).
    with lmdb_io.LmdbWriter(os.path.join(out_dir, paths.CORRECTED_TRAIN)) as out:
        for (key, datum), label in zip(lmdb_io.read_datums(images), corrected):
            datum.label = int(label)
            out.put(key, datum)
    rows_noisy = noisy != UNLABELLED
    table = np.zeros((num_classes, num_classes), np.int64)          # [noisy, corrected]
    np.add.at(table, (noisy[rows_noisy], corrected[rows_noisy]), 1)
    per_class = {int(c): float(flagged[noisy == c].mean()) for c in np.unique(noisy[rows_noisy])}
    _plot_table(table, os.path.join(out_dir, "confusion.png"), name)
    return {"noisy_labelled": int(rows_noisy.sum()), "clean_labelled": int((~rows_noisy).sum()),
            "flagged": int(flagged.sum()), "flagged_share_per_noisy_class": per_class,
            "noisy_to_corrected": table.tolist(),
            "changed": int((corrected[rows_noisy] != noisy[rows_noisy]).sum())}


def _csv(header, rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _plot_table(table, path, name):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(np.log1p(table), cmap="Blues")
    for (i, j), n in np.ndenumerate(table):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize="x-small")
    ax.set_xlabel("corrected label")
    ax.set_ylabel("noisy label")
    ax.set_title("%s: noisy -> corrected (noisy-labelled records)" % name)
    caffe_log.save_png(fig, path)


def format_summary(summary: dict) -> str:
    """The printed summary."""
    rule = summary.get("rule", "given")
    how = {"given": "as given", "fallback": "fallback"}.get(rule, "chosen on the held-out "
                                                                  "pairs by " + rule)
    lines = ["relabelled %d records (%d with a noisy label, %d with a clean one); threshold %.4f "
             "(%s)" % (summary["records"], summary["noisy_labelled"], summary["clean_labelled"],
                       summary["threshold"], how)]
    if summary.get("note"):
        lines.append("  " + summary["note"])
    held = summary.get("held_out")
    if held:
        lines.append("  held-out pairs (%d, %d with a wrong noisy label; not trained on) predict: "
                     "flags precision %.4f, recall %.4f, F1 %.4f"
                     % (held["pairs"], held["wrong"], held["precision"], held["recall"],
                        held["f1"]))
    lines += [
              "  labels changed: %d; flagged as wrong: %d" % (summary["changed"],
                                                             summary["flagged"]),
              "  flagged share per noisy class: " + " ".join(
                  "%s:%.2f" % kv for kv in sorted(summary["flagged_share_per_noisy_class"].items()))]
    truth = summary.get("against_truth")
    if truth:
        lines.append("  against the truth (%d noisy-labelled records, %d wrong; for scoring "
                     "only): accuracy of the noisy labels %.4f, of the corrected labels %.4f; "
                     "flags: precision %.4f, recall %.4f, F1 %.4f" % (
                         truth["noisy_labelled"], truth["noisy_label_errors"],
                         truth["accuracy_noisy"], truth["accuracy_corrected"],
                         truth["flag_precision"], truth["flag_recall"], truth["flag_f1"]))
    return "\n".join(lines)
