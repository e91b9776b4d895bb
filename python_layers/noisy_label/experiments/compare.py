"""`make compare`: the noise-robust methods side by side, on one dataset's LMDBs, seeds, tower
and schedule; `compare.md`, `compare.png` and `compare.json` in $EXP/logs/<dataset>/.

A method is the training stage playing its role in the stage table (stages.py): clean only,
noisy as truth, bootstrapping soft and hard, forward correction (estimated Q; the true Q as an
oracle where the noise is synthetic), backward correction, ours, and relabel-then-train. Its
score at a seed is the final test accuracy of that stage's training log, on the dataset's
val_lmdb (digits, CIFAR-10: the test set; Clothing1M: clean_val).
"""
import json
import os
from typing import List, Optional

import numpy as np

from noisy_label import datasets, paths
from noisy_label.core import intervals
from noisy_label.experiments import caffe_log, pipeline, report, stages
from noisy_label.io import atomic

ROLES = ("clean", "noisy_as_truth", "bootstrap_soft", "bootstrap_hard", "forward",
         "forward_oracle", "backward", "ours", "relabelled")


def methods(name: str) -> List["stages.Stage"]:
    """The training stages compared on dataset `name`, in ROLES order (a role played by two
    stages, as ours on Clothing1M, by its last)."""
    by_role = {s.role: s for s in stages.training(name) if s.role in ROLES}
    return [by_role[role] for role in ROLES if role in by_role]


def run(name: str, exp: Optional[str], seeds, gpu=None, settings=None, keep_snapshots=None,
        data_root: Optional[str] = None):
    """Train every method at every seed: make train's stages, then make compare's. Finished
    stages are skipped, stopped ones resumed; a seed without LMDBs gets make lmdb's defaults
    (from data_root, default <exp>/datasets/<name>)."""
    for seed in seeds:
        root = paths.seed_root(exp, seed)
        print("== %s, seed %d (%s)" % (name, seed, root), flush=True)
        if not os.path.exists(os.path.join(paths.db_dir(name, root), paths.MANIFEST)):
            print("no LMDBs for seed %d yet: make lmdb DATASET=%s SEED=%d" % (seed, name, seed))
            datasets.build(name, exp=root, seed=seed,
                           data_root=data_root or datasets.get_dataset(name).raw_root(exp))
        pipeline.Experiment(name, exp, gpu=gpu, seed=seed, settings=settings,
                            keep_snapshots=keep_snapshots).run(compare=True)


def results(name: str, exp: Optional[str], seeds) -> dict:
    """What compare.json holds, from the training logs of each seed's root: {"dataset",
    "tested_on", "chance", "seeds", "methods": {label: {"stage", "role", "seeds": {seed:
    accuracy}, "mean", "std", "lowest_train_loss": {seed: lowest finite loss},
    "diverged_seeds": [seeds with a NaN loss]}}} (add_intervals adds the per-image figures).
    ValueError naming the first method and seed without a final test accuracy."""
    out = {}
    for stage in methods(name):
        accuracy, lowest, diverged = {}, {}, []
        for seed in seeds:
            log = os.path.join(paths.log_dir(name, paths.seed_root(exp, seed)), stage.name + ".log")
            text = open(log).read() if os.path.exists(log) else ""
            final = caffe_log.final_test(text)
            if final is None:
                raise ValueError("no final test accuracy for %s (stage %s) at seed %d in %s: run "
                                 "make compare DATASET=%s SEEDS=\"%s\" first"
                                 % (stage.label, stage.name, seed, log, name,
                                    " ".join(map(str, seeds))))
            accuracy[str(seed)] = final
            losses = np.array([row["loss"] for row in caffe_log.parse(text)["train"]])
            finite = losses[np.isfinite(losses)]
            lowest[str(seed)] = float(finite.min()) if finite.size else None
            if np.isnan(losses).any():
                diverged.append(seed)
        values = np.array(list(accuracy.values()))
        out[stage.label] = {"stage": stage.name, "role": stage.role, "seeds": accuracy,
                            "mean": float(values.mean()), "std": float(values.std()),
                            "lowest_train_loss": lowest, "diverged_seeds": diverged}
    return {"dataset": name, "tested_on": datasets.get_dataset(name).val_lmdb,
            "chance": 1.0 / datasets.get_dataset(name).num_classes,
            "seeds": [int(s) for s in seeds], "methods": out}


def add_intervals(compared: dict, correct: dict, noise_type: Optional[dict] = None) -> dict:
    """The per-image outcomes `correct` ({stage: [correct (n,) bool per seed]}, seeds in
    compared["seeds"] order) into `compared`: each method's "accuracy" (mean over seeds of the
    per-image accuracy, 95% interval: intervals.bootstrap_mean), "vs_best" and
    "vs_noisy_as_truth" (intervals.paired_difference, this method minus that one), and
    "mcnemar_vs_noisy_as_truth" ({seed: exact p}); compared["best"] and
    compared["noise_type"] (report.noise_type_summary). Returns `compared`."""
    rows = compared["methods"]
    for row in rows.values():
        row["accuracy"] = intervals.bootstrap_mean(correct[row["stage"]])
        # Caffe's Accuracy layer counts NaN logits as right (a diverged net logs 1.0): the
        # per-image argmax is what the table shows.
        row["per_image_seeds"] = {str(seed): float(c.mean())
                                  for seed, c in zip(compared["seeds"], correct[row["stage"]])}
    best = max(rows, key=lambda label: rows[label]["accuracy"]["mean"])
    baseline = [label for label, row in rows.items() if row["role"] == "noisy_as_truth"]
    for label, row in rows.items():
        mine = correct[row["stage"]]
        row["vs_best"] = (None if label == best else
                          intervals.paired_difference(mine, correct[rows[best]["stage"]]))
        if baseline and label != baseline[0]:
            theirs = correct[rows[baseline[0]]["stage"]]
            row["vs_noisy_as_truth"] = intervals.paired_difference(mine, theirs)
            row["mcnemar_vs_noisy_as_truth"] = {
                str(seed): intervals.mcnemar(a, b)["p"]
                for seed, a, b in zip(compared["seeds"], mine, theirs)}
        else:
            row["vs_noisy_as_truth"] = row["mcnemar_vs_noisy_as_truth"] = None
    compared["best"] = best
    compared["noise_type"] = noise_type
    return compared


def _ranked_prose(rows: dict, best: str) -> List[str]:
    """What the table shows, claiming only differences whose interval excludes 0."""
    tied = [label for label, row in rows.items() if label != best
            and not row["vs_best"]["significant"]]
    lines = ["", "Best mean: %s (%s). Within the noise of it (the 95%% interval of the paired "
             "difference includes 0): %s. Every other method is below it by more than the noise."
             % (best, report.interval_text(rows[best]["accuracy"]),
                ", ".join(tied) if tied else "none")]
    ours = [label for label, row in rows.items() if row["role"] == "ours"]
    if ours:
        label = ours[0]
        ranked = sorted(rows, key=lambda m: -rows[m]["accuracy"]["mean"])
        text = "Ours ranks %d of %d by mean (%s)" % (ranked.index(label) + 1, len(ranked),
                                                   report.interval_text(rows[label]["accuracy"]))
        vs = rows[label]["vs_noisy_as_truth"]
        if vs is not None:
            text += "; against noisy as truth %s: %s" % (
                report.difference_text(vs), "ahead by more than the noise" if vs["significant"]
                and vs["mean"] > 0 else "behind by more than the noise" if vs["significant"]
                else "within the noise")
        lines += ["", text + "."]
    return lines


def markdown(compared: dict) -> str:
    """compare.md: one row per method, its accuracy with a 95% interval, the paired
    differences against the best and against noisy as truth (* where the interval excludes 0),
    and each seed; the best mean in bold (with add_intervals' fields; else mean ± std)."""
    name, seeds, rows = compared["dataset"], compared["seeds"], compared["methods"]
    with_intervals = all("accuracy" in row for row in rows.values())
    best = compared.get("best") or max(rows, key=lambda label: rows[label]["mean"])
    lines = ["# %s: noise-robust methods compared" % name, "",
             "Final test accuracy on `%s` of each method's training stage over seeds %s: the mean "
             "over seeds of the accuracy on every test image, with a 95%% interval from a "
             "bootstrap over seeds and test images; Δ: the paired difference (this method minus "
             "the best, or minus noisy as truth) on the same images and seeds with its 95%% "
             "interval, * where it excludes 0. Same LMDBs, tower, schedule and seeds for every "
             "method; each fine-tunes the clean-only net on the mixed set, seeing the clean "
             "labels where kept and the noisy ones elsewhere (docs/model.md#other-noise-robust-"
             "losses). Bold: the best mean." % (compared["tested_on"], ", ".join(map(str, seeds))),
             "", "| method | stage | accuracy [95%%] | Δ vs best [95%%] | Δ vs noisy as truth "
             "[95%%] | %s |" % " | ".join("seed %d" % s for s in seeds),
             "| --- | --- | --- | --- | --- | %s |" % " | ".join("---" for _ in seeds)]
    for label, row in rows.items():
        if with_intervals:
            score = report.interval_text(row["accuracy"], 4)
            vs_best = "–" if row["vs_best"] is None else report.difference_text(row["vs_best"])
            vs_noisy = ("–" if row["vs_noisy_as_truth"] is None
                        else report.difference_text(row["vs_noisy_as_truth"]))
        else:
            score, vs_best, vs_noisy = "%.4f ± %.4f (std)" % (row["mean"], row["std"]), "–", "–"
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            label, row["stage"], "**%s**" % score if label == best else score, vs_best, vs_noisy,
            " | ".join("%.4f" % row.get("per_image_seeds", row["seeds"])[str(s)] for s in seeds)))
    if with_intervals:
        lines += _ranked_prose(rows, best)
    if compared.get("noise_type"):
        lines += report.noise_type_markdown(compared["noise_type"])
    for label, row in rows.items():
        warning = _warning(row, compared["chance"])
        if warning:
            lines += ["", "%s: %s" % (label, warning)]
    lines += ["", "![test accuracy](compare.png)", ""]
    return "\n".join(lines)


def _warning(row: dict, chance: float) -> str:
    """What a reader should know about a method's row: it ended near chance, diverged (a NaN
    loss), its training loss went negative (a loss unbounded below: backward correction); ""
    if none."""
    text = []
    mean = row["accuracy"]["mean"] if "accuracy" in row else row["mean"]
    if mean < chance + 0.05:
        text.append("ends near chance (%.2f)." % chance)
    if row.get("diverged_seeds"):
        text.append("It diverged (NaN training loss) at seed %s." % ", ".join(
            str(s) for s in row["diverged_seeds"]))
    negative = ["%.2f at seed %s" % (loss, seed) for seed, loss in row["lowest_train_loss"].items()
                if loss is not None and loss < 0]
    if negative:
        text.append("Its training loss went negative (lowest %s): the loss is unbounded below, "
                    "so training can drive it down without fitting the labels."
                    % ", ".join(negative))
    return " ".join(text)


def write(name: str, exp: Optional[str], seeds, out_dir: Optional[str] = None,
          gpu=None) -> str:
    """Write compare.json, compare.md and compare.png (into $EXP/logs/<name>/ by default);
    return the Markdown."""
    compared = results(name, exp, seeds)
    exps = [paths.seed_root(exp, s) for s in seeds]
    runs = report.experiments(name, exps, seeds)
    add_intervals(compared, report.outcomes(runs, [row["stage"] for row in
                                                   compared["methods"].values()], gpu),
                  report.noise_type_summary(name, runs, gpu))
    out_dir = out_dir or paths.log_dir(name, exp)
    os.makedirs(out_dir, exist_ok=True)
    summary = {row["stage"]: np.array([row["seeds"][str(s)] for s in seeds])
               for row in compared["methods"].values()}
    report.plot(name, summary, exps, seeds, os.path.join(out_dir, "compare.png"),
                {row["stage"]: row["accuracy"] for row in compared["methods"].values()})
    # Methods in ROLES order, as the table.
    atomic.write_text(os.path.join(out_dir, "compare.json"),
                      json.dumps(compared, indent=1, ensure_ascii=False) + "\n")
    text = markdown(compared)
    atomic.write_text(os.path.join(out_dir, "compare.md"), text)
    return text
