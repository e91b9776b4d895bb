"""Running the stock `caffe` tool for a stage: its log, a progress bar, Ctrl-C and kills, a
diverging loss, and which GPU to use.

    log = caffe_run.run(["train", "-solver", solver], log_path, "digits", "clean", total=1000)

Caffe's output goes to `<log_path>.tmp` and is renamed to `log_path` when the tool ends (a
run that ended early too: its log is what says why); a run killed so that the rename never
happened leaves the `.tmp`, which the next run keeps as `<stage>.killed.log`.
"""
import math
import os
import re
import shutil
import signal
import subprocess
from typing import Callable, List, Optional, Union

from tqdm import tqdm

from noisy_label import cli, paths
from noisy_label.experiments import caffe_log

_SNAPSHOTTING = re.compile(r"Snapshotting solver state to binary proto file (\S+)")


class StageError(cli.Failure):
    """A stage that cannot run or failed (the message names it, and its log)."""


class StageInterrupted(StageError, cli.Interrupted):
    """Ctrl-C or SIGTERM during a stage (after Caffe has written its snapshot)."""


def run(args: List[str], log_path: str, name: str, stage: str, total: Optional[int] = None,
        initial: int = 0, append: bool = False, on_snapshot: Optional[Callable[[], None]] = None,
        failed_log: Optional[Callable[[], Optional[str]]] = None,
        cwd: str = paths.REPO_ROOT) -> str:
    """Run `caffe ARGS` from `cwd`, logging to `log_path` (appended to when `append`), with a
    progress bar of `total` iterations; return the log text.

    name, stage: the dataset and stage, as messages name them. on_snapshot: called once Caffe has
    written each snapshot. failed_log: called when the run fails; the path its log goes to
    instead of `log_path` (None: log_path). Caffe runs in `cwd`, where the snapshot paths it
    logs are relative to.
    Ctrl-C / SIGTERM: Caffe snapshots and stops (its -sigint_effect), then StageInterrupted. A
    NaN or infinite loss kills it at once (no snapshot of a diverged net): StageError. A
    non-zero exit: StageError with the log's tail.
    """
    label = "[%s] %s" % (name, stage)
    try:
        tool = paths.caffe_tool()
    except IOError as e:
        raise StageError(str(e))
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    killed = keep_killed_log(log_path)
    if killed:
        print("%s: the log of a run that was killed is kept as %s" % (label, os.path.relpath(killed)))
    lines = []
    bar = tqdm(total=total, initial=initial, desc="%s %s" % (name, stage), unit="it",
               leave=True, disable=None)
    previous = open(log_path).read() if append and os.path.exists(log_path) else ""
    state = {"snapshot_line": False, "snapshot": None, "diverged": None}

    def take(line):
        log.write(line)
        lines.append(line)
        loss = _progress(bar, line)
        if loss is not None and not math.isfinite(loss) and not state["diverged"]:
            state["diverged"] = (caffe_log._ITER_LOSS.search(line).group(1), loss)
            proc.kill()   # now: the next snapshot would hold the diverged weights
        if state["snapshot_line"] and on_snapshot:
            on_snapshot()
        snapshot = _SNAPSHOTTING.search(line)
        # Acted on at the next line: Caffe logs the name before it writes the file.
        state["snapshot_line"] = bool(snapshot)
        if snapshot:
            state["snapshot"] = snapshot.group(1)

    interrupted = False
    terminate = signal.signal(signal.SIGTERM, cli.terminate_as_interrupt)
    try:
        with open(log_path + ".tmp", "w") as log:
            log.write(previous + "# caffe %s\n" % " ".join(args))
            # The progress bar and the logs need Caffe's INFO lines, whatever the caller set.
            env = dict(os.environ, GLOG_minloglevel="0")
            proc = subprocess.Popen([tool] + args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            try:
                for line in proc.stdout:
                    take(line)
            except KeyboardInterrupt:
                interrupted = True
                # Caffe stops at the end of its iteration and snapshots (the terminal's
                # Ctrl-C reached it too; a SIGTERM or kill of this process did not).
                proc.send_signal(signal.SIGINT)
                try:
                    for line in proc.stdout:
                        take(line)
                except KeyboardInterrupt:
                    proc.kill()    # a second Ctrl-C: stop now
            proc.wait()
            take("")
        bar.close()
        if (interrupted or proc.returncode != 0 or state["diverged"]) and failed_log:
            log_path = failed_log() or log_path
        os.replace(log.name, log_path)
    finally:
        signal.signal(signal.SIGTERM, terminate)
    if state["diverged"]:
        iteration, loss = state["diverged"]
        raise StageError("[%s] stage %s diverged at iteration %s: loss %s; lower base_lr "
                         "(SET=%s.base_lr=...) (log: %s)" % (name, stage, iteration, loss, stage,
                                                             log_path))
    if interrupted:
        snapshot = state["snapshot"] and os.path.join(cwd, state["snapshot"])
        where = ("Caffe saved %s; run the same command again to resume from it"
                 % os.path.relpath(snapshot) if snapshot and os.path.exists(snapshot)
                 else "no new snapshot: a re-run resumes from the newest one, if any")
        raise StageInterrupted("%s interrupted (%s; log: %s)" % (label, where, log_path))
    if proc.returncode != 0:
        raise StageError("%s failed (caffe exit %d); log: %s\n%s"
                         % (label, proc.returncode, log_path, "".join(lines[-25:])))
    return "".join(lines)


def keep_killed_log(log_path: str) -> Optional[str]:
    """Rename the log a killed run left (<stage>.log.tmp) to <stage>.killed[.N].log, so the
    next run does not write over it; the name it got, or None."""
    if not os.path.exists(log_path + ".tmp"):
        return None
    base = log_path[:-len(".log")] + ".killed"
    target, n = base + ".log", 1
    while os.path.exists(target):
        n += 1
        target = "%s.%d.log" % (base, n)
    os.replace(log_path + ".tmp", target)
    return target


def _progress(bar, line) -> Optional[float]:
    """Advance a tqdm bar from Caffe's `Iteration N` lines; show loss / test accuracy. The
    loss of an `Iteration N, loss = X` line, else None."""
    m = caffe_log._ITER_LOSS.search(line)
    if m:
        bar.update(int(m.group(1)) - bar.n)
        bar.set_postfix(loss=float(m.group(2)), refresh=False)
        return float(m.group(2))
    if "Test net output" in line and "accuracy =" in line:
        bar.set_postfix_str("test accuracy %s" % line.rsplit("=", 1)[1].strip())
    return None


def gpu_choice(text: str) -> Optional[Union[int, str]]:
    """The GPU of --gpu TEXT: "auto" 0 when a GPU is present (else None), "none" None, an id."""
    return {"auto": 0 if gpu_available() else None, "none": None}.get(text, text)


def gpu_available() -> bool:
    """True when nvidia-smi lists a GPU and the Caffe build is not CPU_ONLY."""
    if shutil.which("nvidia-smi") is None:
        return False
    if subprocess.run(["nvidia-smi", "-L"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        return False
    return build_option("CPU_ONLY") == "OFF"


def build_option(name: str) -> Optional[str]:
    """The value ("ON", "OFF", ...) the pycaffe in use was configured with for CMake option
    `name` (its install's BUILDINFO, written by scripts/build_caffe.sh), or None if unknown."""
    import caffe
    directory = os.path.dirname(os.path.realpath(caffe.__file__))
    while directory != os.path.dirname(directory):
        info = os.path.join(directory, "BUILDINFO")
        if os.path.exists(info):
            m = re.search(r"^-D%s=(\S+)$" % re.escape(name), open(info).read(), re.M)
            return m.group(1) if m else None
        directory = os.path.dirname(directory)
    return None
