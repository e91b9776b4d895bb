"""Parse Caffe training logs (glog format, ours or the original release's) into rows and plots.

    rows = parse(open("exp/logs/cifar10/clean.log").read())
    rows["train"]  # [{"iteration", "seconds", "lr", "loss", <each train output>}, ...]
    rows["test"]   # [{"iteration", "seconds", <each test output, e.g. accuracy>}, ...]
"""
import csv
import datetime
import io
import re
from typing import Optional

from noisy_label.io import atomic

_GLOG = re.compile(r"^[IWEF](\d{4}) (\d\d):(\d\d):(\d\d)\.(\d+)")
# A diverged net logs "-nan" / "-inf" (glibc's printf): the sign belongs to the value.
_ITER_LOSS = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = ([-+]?nan|[-+]?inf|[-+.\deE]+)")
_ITER_LR = re.compile(r"Iteration (\d+), lr = ([-+.\deE]+)")
_TESTING = re.compile(r"Iteration (\d+), Testing net \(#0\)")
_OUTPUT = re.compile(r"(Train|Test) net output #\d+: (\S+) = ([-+]?nan|[-+]?inf|[-+.\deE]+)")


def _seconds(match, start):
    """Seconds since `start` from a glog prefix (MMDD HH:MM:SS.us); the year is irrelevant."""
    month, day = int(match.group(1)[:2]), int(match.group(1)[2:])
    t = datetime.datetime(2000, month, day, int(match.group(2)), int(match.group(3)),
                          int(match.group(4)), int(match.group(5)[:6].ljust(6, "0")))
    if start[0] is None:
        start[0] = t
    return (t - start[0]).total_seconds()


def parse(text: str) -> dict:
    """{"train": [...], "test": [...]} rows of a Caffe log; see the module docstring."""
    train, test = [], []
    start, seconds = [None], 0.0
    current_train = current_test = None
    for line in text.splitlines():
        stamp = _GLOG.match(line)
        if stamp:
            seconds = _seconds(stamp, start)
        m = _TESTING.search(line)
        if m:
            current_test = {"iteration": int(m.group(1)), "seconds": seconds}
            test.append(current_test)
            continue
        m = _ITER_LOSS.search(line)
        if m:
            current_train = {"iteration": int(m.group(1)), "seconds": seconds,
                             "loss": float(m.group(2))}
            train.append(current_train)
            continue
        m = _ITER_LR.search(line)
        if m and current_train is not None and current_train["iteration"] == int(m.group(1)):
            current_train["lr"] = float(m.group(2))
            continue
        m = _OUTPUT.search(line)
        if m:
            row = current_train if m.group(1) == "Train" else current_test
            if row is not None:
                row[m.group(2)] = float(m.group(3))
    return {"train": train, "test": test}


def to_csv(rows) -> str:
    """CSV text of a list of row dicts (columns in first-seen order)."""
    columns = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def final_test(text: str, key="accuracy") -> Optional[float]:
    """The last test value `key` of a training log, or of a `caffe test` log; None if absent."""
    rows = parse(text)["test"]
    values = [r[key] for r in rows if key in r]
    if values:
        return values[-1]
    # `caffe test` prints "caffe.cpp:...] accuracy = 0.7"
    m = re.findall(r"\] %s = ([-+.\deE]+)" % re.escape(key), text)
    return float(m[-1]) if m else None


def plot_curves(curves, path: str, key="accuracy", title: Optional[str] = None, ax=None):
    """Plot test `key` against iteration for {label: log text} into `ax`, or a new PNG at `path`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, text in curves.items():
        rows = [r for r in parse(text)["test"] if key in r]
        if rows:
            ax.plot([r["iteration"] for r in rows], [r[key] for r in rows], marker=".", label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("test " + key)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if fig is not None:
        save_png(fig, path)


def save_png(fig, path: str) -> None:
    """Save a matplotlib figure as PNG via a temporary name, and close it."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    try:
        with atomic.atomic_path(path) as tmp:   # Ctrl-C included: no half PNG left behind
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
