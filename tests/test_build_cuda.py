"""The CUDA side of the Caffe recipe without a GPU: what scripts/caffe_cuda.sh finds and how it
says what is missing, the view it configures Caffe against, and the CUDA patches applying to
the Debian source with their one-line reasons.

The CUDA compile itself (nvcc 13.0, the nvidia-* cu13 wheels, sm_90) is too long for a test
here; README's GPU section gives its command and what it produced on this kind of machine.
"""
import glob
import os
import shutil
import subprocess
import tarfile

import pytest
from helpers import REPO

pytestmark = pytest.mark.build

SCRIPT = os.path.join(REPO, "scripts", "build_caffe.sh")
NVCC = shutil.which("nvcc") or (os.path.exists("/usr/local/cuda/bin/nvcc") and
                                "/usr/local/cuda/bin/nvcc")
needs_nvcc = pytest.mark.skipif(not NVCC, reason="no nvcc on this machine")


def wheel_tree(root, parts=("cu13", "cudnn", "nccl")):
    """A site-packages dir laid out as the nvidia-* cu13 wheels lay theirs out (empty files)."""
    files = {"cu13": (["cublas_v2.h", "cublas_api.h", "curand.h"],
                      ["libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10"]),
             "cudnn": (["cudnn.h", "cudnn_version.h"], ["libcudnn.so.9", "libcudnn_ops.so.9"]),
             "nccl": (["nccl.h"], ["libnccl.so.2"])}
    for part in parts:
        headers, libs = files[part]
        for sub, names in (("include", headers), ("lib", libs)):
            os.makedirs(os.path.join(root, "nvidia", part, sub), exist_ok=True)
            for name in names:
                open(os.path.join(root, "nvidia", part, sub, name), "w").close()
    return root


def cuda_shell(command, tmp_path, **env):
    """Run `command` in bash with scripts/caffe_cuda.sh sourced; (returncode, stdout+stderr)."""
    script = ('set -euo pipefail; die() { echo "error: $*" >&2; exit 1; }; '
              'cache_root=%s; source %s/scripts/caffe_cuda.sh; %s'
              % (tmp_path / "cache", REPO, command))
    proc = subprocess.run(["bash", "-c", script], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=dict(os.environ, **env))
    return proc.returncode, proc.stdout


def test_cuda_build_names_what_is_missing_and_caches_nothing(tmp_path):
    cache = tmp_path / "cache"
    proc = subprocess.run(["bash", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=dict(os.environ, CUDA="1", CAFFE_CACHE=str(cache),
                                              CUDA_WHEELS=str(tmp_path / "no_wheels")))
    assert proc.returncode != 0
    if NVCC:
        # System CUDA here has nvcc and cudart only.
        assert "CUDA=1: not found: cuBLAS (cublas*.h, libcublas*.so*)" in proc.stdout, proc.stdout
        assert "cuDNN (cudnn*.h, libcudnn*.so*) NCCL (nccl*.h, libnccl*.so*)" in proc.stdout
        assert "build without: USE_CUDNN=0 / USE_NCCL=0" in proc.stdout
    else:
        assert "CUDA=1 but no nvcc" in proc.stdout, proc.stdout
    assert not cache.exists() or not [p for p in cache.iterdir() if p.name != "debian-source"]


@needs_nvcc
def test_the_view_links_the_wheels_under_one_root(tmp_path):
    site = wheel_tree(str(tmp_path / "site"))
    rc, out = cuda_shell("make_cuda_view; make_cuda_view", tmp_path, CUDA_WHEELS=site)
    assert rc == 0, out
    first, again = out.split()
    assert first == again                                   # keyed: made once, then reused
    view = first
    assert os.path.realpath(os.path.join(view, "include", "cudnn.h")) == \
        os.path.join(site, "nvidia", "cudnn", "include", "cudnn.h")
    assert os.path.exists(os.path.join(view, "include", "cuda_runtime.h"))   # the toolkit's
    assert os.readlink(os.path.join(view, "lib64", "libcublas.so")) == "libcublas.so.13"
    assert os.readlink(os.path.join(view, "lib64", "libnccl.so")) == "libnccl.so.2"
    assert os.access(os.path.join(view, "bin", "nvcc"), os.X_OK)
    rc, out = cuda_shell('cuda_cmake_flags "$(cuda_view_dir)"', tmp_path, CUDA_WHEELS=site,
                         CUDA_ARCH_BIN="80 90")
    flags = out.splitlines()
    assert rc == 0 and "-DCPU_ONLY=OFF" in flags and "-DCUDA_TOOLKIT_ROOT_DIR=%s" % view in flags
    assert ["-DCUDA_ARCH_NAME=Manual", "-DCUDA_ARCH_BIN=80 90", "-DCUDA_ARCH_PTX=90"] == \
        flags[2:5]
    assert "-DUSE_CUDNN=ON" in flags and "-DUSE_NCCL=ON" in flags
    assert "-DNCCL_LIBRARIES=%s/lib64/libnccl.so" % view in flags


@needs_nvcc
def test_without_a_gpu_the_architectures_must_be_given(tmp_path):
    site = wheel_tree(str(tmp_path / "site"), parts=("cu13",))
    env = dict(CUDA_WHEELS=site, USE_CUDNN="0", USE_NCCL="0",
               PATH="/usr/bin:/bin:" + os.path.dirname(NVCC))  # no nvidia-smi
    rc, out = cuda_shell("cuda_cmake_flags /view", tmp_path, **env)
    assert rc != 0 and "no GPU visible to nvidia-smi, so give the architectures" in out, out
    rc, out = cuda_shell("cuda_cmake_flags /view", tmp_path, CUDA_ARCH_BIN="90", **env)
    assert rc == 0 and "-DUSE_CUDNN=OFF" in out and "-DUSE_NCCL=OFF" in out, out


def test_every_patch_applies_to_the_debian_source_and_says_why(tmp_path):
    tarballs = sorted(glob.glob(os.path.expanduser(
        "~/.cache/noisy-label-caffe/debian-source/download/caffe_*.orig.tar.*")))
    if not tarballs:
        pytest.skip("the Debian caffe source is not cached here (make caffe fetches it)")
    with tarfile.open(tarballs[0]) as tar:
        tar.extractall(str(tmp_path))
    debian = glob.glob(os.path.join(os.path.dirname(tarballs[0]), "caffe_*.debian.tar.*"))
    with tarfile.open(debian[0]) as tar:
        tar.extractall(str(tmp_path))
    # Debian's build patches first, in series order, as scripts/build_caffe.sh applies them.
    for line in open(str(tmp_path / "debian" / "patches" / "series")):
        if line.strip() and not line.startswith("#"):
            subprocess.run(["patch", "-p1", "-s", "-d", str(tmp_path)], check=True,
                           stdin=open(str(tmp_path / "debian" / "patches" / line.strip())))
    patches = sorted(glob.glob(os.path.join(REPO, "patches", "caffe", "*.patch"))) + \
        sorted(glob.glob(os.path.join(REPO, "patches", "caffe-cuda", "*.patch")))
    assert len(patches) >= 5
    for patch in patches:
        first = open(patch).readline()
        assert first.startswith("Reason: ") and len(first) > 30, patch
        proc = subprocess.run(["patch", "-p1", "-s", "-d", str(tmp_path)], stdin=open(patch),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.returncode == 0, (patch, proc.stdout)
