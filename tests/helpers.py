"""Helpers shared by the tests: the real Caffe tools, their logs, and a plain shell's env."""
import os
import re
import subprocess

import pytest

from noisy_label import paths

REPO = paths.REPO_ROOT
VENV_BIN = os.path.join(REPO, ".venv", "bin")
PYTHON = os.path.join(VENV_BIN, "python")


def caffe_tool(name="caffe"):
    """Path of a stock Caffe tool: the launcher beside the venv's Python (setup_venv.sh).
    convert_imageset skips the test where Caffe is built without OpenCV (make caffe BUNDLE=)."""
    if name == "convert_imageset":
        from noisy_label.experiments import caffe_run
        if caffe_run.build_option("USE_OPENCV") == "OFF":
            pytest.skip("this Caffe is built with USE_OPENCV=OFF (as make caffe BUNDLE=...): its "
                        "convert_imageset cannot read images")
    try:
        return paths.caffe_tool(name)
    except IOError as e:
        pytest.fail(str(e))


def caffe_env(env=None):
    """`env` (default: this process's) with Caffe's INFO lines on, whatever the caller set:
    the tests that read Caffe's log need them."""
    return dict(os.environ if env is None else env, GLOG_minloglevel="0")


def run_caffe(args, cwd=REPO, env=None, check=True):
    """Run the `caffe` command; return the CompletedProcess with its log in .stdout."""
    proc = subprocess.run([caffe_tool()] + list(args), cwd=cwd, env=caffe_env(env),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and proc.returncode != 0:
        raise AssertionError("caffe %s failed (%d):\n%s" % (" ".join(args), proc.returncode,
                                                           proc.stdout[-4000:]))
    return proc


def train_losses(log):
    """The `Iteration N ..., loss = X` values of a Caffe training log, in order."""
    return [float(x) for x in re.findall(r"Iteration \d+ .*?, loss = ([-0-9.e+na]+)", log)]


def plain_env(**extra):
    """The environment of a plain shell: no activated venv (its bin/ off PATH, no
    VIRTUAL_ENV, no PYTHONPATH), as a user types the README's commands."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and os.path.realpath(p) != os.path.realpath(VENV_BIN))
    env.update(extra)
    return env


def run_plain(command, cwd, timeout=600, **extra_env):
    """Run `command` (a list) in a plain shell's environment; the CompletedProcess, output
    in .stdout (stderr merged)."""
    return subprocess.run(command, cwd=cwd, env=plain_env(**extra_env), timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_python(code, cwd, env=None):
    """Run a Python snippet with the venv's Python in `cwd` (for relative prototxt sources,
    without changing this process's directory); its stdout, or AssertionError with its log."""
    proc = subprocess.run([PYTHON, "-c", code], cwd=cwd, env=caffe_env(env),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise AssertionError("python -c failed in %s:\n%s" % (cwd, proc.stderr[-4000:]))
    return proc.stdout
