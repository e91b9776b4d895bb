#!/usr/bin/env bash
# make rehearse-node: the GPU node's Caffe build, here, in an environment made to look like the
# node (issue 24): no network, none of Caffe's C++ packages, a Python 3.12 with NumPy 2.x and
# the cu13 nvidia-* wheels, nvcc 13; the build may write only to its cache and its checkout.
#
#   scripts/rehearse_node.sh [BUNDLE]   rehearse with BUNDLE (default build/caffe-bundle; make
#                                       caffe-bundle first); passes when pycaffe imports,
#                                       caffe.has_nccl() is true and caffe.NCCL.new_uid() gives
#                                       128 bytes; minutes of CUDA compile (JOBS=2 on 2 cores)
#   scripts/rehearse_node.sh --check    whether this environment looks like the node: exit 0,
#                                       or 3 naming what gives it away (network, packages)
#
# How (as root: unshare and overlayfs): outside, with the network, a node-like Python is made
# once (REHEARSE_PYTHON=<python3.12> names one instead) and the checkout is copied (tracked and
# untracked-not-ignored files, as the device tool carries it). Then, in new network and mount
# namespaces: only lo; /usr overlaid read-only with whiteouts for every file of the Caffe
# dependency packages installed here (and patch(1), which the node may lack); /etc /opt /var
# /tmp /work /root and /home read-only but for REHEARSE_DIR. --check runs before the build there
# and it refuses to run if anything still shows. Inside: make caffe CUDA=1 CUDA_ARCH_BIN=90
# BUNDLE=... PYTHON=..., make venv offline (PIP_NO_INDEX, the bundle's wheels), then the checks.
#
#   REHEARSE_DIR=<dir>   its work dir: python/, checkout/, cache/, summary.txt
#                        (default ${XDG_CACHE_HOME:-~/.cache}/noisy-label-caffe/rehearse)
#   REHEARSE_ROOT=<dir>  (--check) look for the packages under this root instead of / (tests)
#   REHEARSE_KEEP_CACHE=1  keep the last rehearsal's cache (its build): rerun the checks only
#   REHEARSE_TESTS="..."   pytest arguments to run there too, after the checks (CPU mode of the
#                        CUDA build, e.g. REHEARSE_TESTS="tests/test_mpi_train.py -k two_ranks")
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rehearse_dir=${REHEARSE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/noisy-label-caffe/rehearse}
jobs=${JOBS:-$(nproc)}

die() { echo "rehearse_node: error: $*" >&2; exit 1; }
say() { echo "rehearse_node: $*" >&2; }

# Files that give away Caffe's dependencies (globs, under REHEARSE_ROOT).
probes=(
  /usr/include/boost/version.hpp /usr/include/glog/logging.h /usr/include/gflags/gflags.h
  /usr/include/google/protobuf/message.h /usr/include/hdf5/serial/hdf5.h /usr/include/lmdb.h
  /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h /usr/include/opencv4
  /usr/include/leveldb /usr/include/snappy.h
  '/usr/lib/x86_64-linux-gnu/libglog.so*' '/usr/lib/x86_64-linux-gnu/libgflags.so*'
  '/usr/lib/x86_64-linux-gnu/libprotobuf.so*' '/usr/lib/x86_64-linux-gnu/libboost_system.so*'
  '/usr/lib/x86_64-linux-gnu/libboost_python3*.so*' '/usr/lib/x86_64-linux-gnu/libhdf5_serial.so*'
  '/usr/lib/x86_64-linux-gnu/liblmdb.so*' '/usr/lib/x86_64-linux-gnu/libopenblas*.so*'
  '/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas*.so*'
  '/usr/lib/x86_64-linux-gnu/libopencv_core.so*' /usr/bin/protoc
)
# Installed packages to hide (dpkg-query patterns): Caffe's dependencies, any flavour.
hidden_patterns=(
  'libboost*' 'libgoogle-glog*' 'libgflags*' 'libprotobuf*' 'libprotoc*' 'protobuf-compiler'
  'libhdf5*' 'hdf5-helpers' 'liblmdb*' 'libopenblas*' 'libblas*' 'liblapack*' 'libopencv*'
  'libleveldb*' 'libsnappy*' 'libopenmpi*' 'openmpi-*' 'libcaffe*' 'caffe*' 'patch'
)

# One line per thing that shows this is not the node; nothing when it looks like it.
node_like_problems() {
  local root=${REHEARSE_ROOT:-} ifaces p
  ifaces=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); if ($1 != "lo") print $1 }' /proc/net/dev | tr '\n' ' ')
  [ -z "${ifaces// /}" ] || echo "network: interfaces besides lo: ${ifaces% }"
  for p in "${probes[@]}"; do
    # shellcheck disable=SC2086
    if compgen -G "$root"$p > /dev/null; then echo "visible: $p"; fi
  done
}

check() {
  local problems
  problems=$(node_like_problems)
  if [ -n "$problems" ]; then
    echo "rehearse_node: this does not look like the node; refusing:" >&2
    echo "$problems" | sed 's/^/  /' >&2
    return 3
  fi
  say "looks like the node: no network, none of Caffe's packages visible"
}

# ---- outside: prepare ----------------------------------------------------------------------

node_python() {
  if [ -n "${REHEARSE_PYTHON:-}" ]; then echo "$REHEARSE_PYTHON"; return 0; fi
  local venv="$rehearse_dir/python" base
  if [ ! -x "$venv/bin/python3" ] || [ ! -f "$venv/.complete" ]; then
    base=$(ls -d "$HOME"/.pyenv/versions/3.12.*/bin/python3 2>/dev/null | sort -V -r | head -n1)
    [ -n "$base" ] || die "no Python 3.12 (pyenv's) for the node-like Python: set REHEARSE_PYTHON"
    say "making a node-like Python in $venv from $base (what the node's has, from PyPI)"
    rm -rf "$venv"
    "$base" -m venv "$venv"
    "$venv/bin/python3" -m pip install -q numpy protobuf scikit-image six opencv-python-headless \
      PyYAML mpi4py tqdm matplotlib scikit-learn pytest scipy h5py \
      nvidia-cublas nvidia-cudnn-cu13 nvidia-nccl-cu13 nvidia-curand nvidia-cuda-runtime >&2
    touch "$venv/.complete"
  fi
  echo "$venv/bin/python3"
}

copy_checkout() {
  local dest="$rehearse_dir/checkout"
  rm -rf "$dest"; mkdir -p "$dest"
  (cd "$here" && git ls-files -z -co --exclude-standard | tar -c --null -T - -f -) | tar -x -C "$dest"
  echo "$dest"
}

outside() {
  local bundle=$1 python checkout
  [ "$(id -u)" -eq 0 ] || die "needs root (unshare -n -m, overlayfs over /usr)"
  command -v unshare > /dev/null || die "needs unshare (util-linux)"
  [ -f "$bundle/MANIFEST" ] || die "no bundle in $bundle: make caffe-bundle first"
  bash "$here/scripts/caffe_bundle.sh" --verify "$bundle"
  command -v nvcc > /dev/null || [ -x /usr/local/cuda/bin/nvcc ] || die "needs nvcc (CUDA 13)"
  mkdir -p "$rehearse_dir"
  rehearse_dir=$(cd "$rehearse_dir" && pwd)
  python=$(node_python)
  "$python" -c 'import numpy, nvidia; assert numpy.__version__ >= "2"' \
    || die "$python needs NumPy 2.x and the nvidia-* wheels"
  checkout=$(copy_checkout)
  # A fresh cache each time (the deps unpacked, Caffe built), unless REHEARSE_KEEP_CACHE=1.
  if [ -z "${REHEARSE_KEEP_CACHE:-}" ]; then rm -rf "$rehearse_dir/cache"; fi
  rm -rf "$rehearse_dir/tmp"
  mkdir -p "$rehearse_dir/cache" "$rehearse_dir/tmp"
  say "into a namespace without network or Caffe's packages (log: $rehearse_dir/rehearse.log)"
  REHEARSE_DIR=$rehearse_dir REHEARSE_BUNDLE=$bundle REHEARSE_CHECKOUT=$checkout \
    REHEARSE_NODE_PYTHON=$python \
    unshare -n -m --propagation private bash "$here/scripts/rehearse_node.sh" --inside \
    2>&1 | tee "$rehearse_dir/rehearse.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || die "the rehearsal failed (exit $rc); log: $rehearse_dir/rehearse.log"
  cat "$rehearse_dir/summary.txt"
}

# ---- inside: hide, check, build ------------------------------------------------------------

hide_packages() {
  local wh=$1 pkgs
  mkdir -p "$wh"
  mount -t tmpfs tmpfs "$wh"
  mapfile -t pkgs < <(dpkg-query -W -f='${Package} ${Status}\n' "${hidden_patterns[@]}" 2>/dev/null \
                      | awk '$NF == "installed" {print $1}')
  say "hiding the files of ${#pkgs[@]} installed packages: ${pkgs[*]}"
  # A whiteout (char device 0/0) in an upper layer hides the file below it.
  dpkg -L "${pkgs[@]}" 2>/dev/null | python3 -c '
import os, sys
wh = sys.argv[1]
def usr(path):  # merged /usr: /lib/x is /usr/lib/x
    for old in ("/lib/", "/bin/", "/sbin/"):
        if path.startswith(old):
            return "/usr" + path
    return path
listed = [usr(p) for p in sys.stdin.read().split("\n") if p]
files = {p for p in listed if p.startswith("/usr/") and os.path.lexists(p)
         and (os.path.islink(p) or not os.path.isdir(p))}
# update-alternatives links (libblas.so.3 -> /etc/alternatives/...) to a hidden or gone file
for d in ("/usr/lib/x86_64-linux-gnu", "/usr/include", "/usr/include/x86_64-linux-gnu", "/usr/bin"):
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.islink(p) and os.readlink(p).startswith("/etc/alternatives/"):
            real = usr(os.path.realpath(p))
            if real in files or not os.path.exists(real):
                files.add(p)
# a listed dir all of whose files are hidden goes as a whole (no empty tree left behind)
hide = set(files)
for d in sorted({p for p in listed if p.startswith("/usr/") and os.path.isdir(p)
                 and not os.path.islink(p)}, key=len):
    if any(d.startswith(h + "/") for h in hide if h not in files):
        continue
    inside = [os.path.join(r, n) for r, ds, fs in os.walk(d) for n in fs + [x for x in ds
              if os.path.islink(os.path.join(r, x))]]
    if inside and all(p in files for p in inside) and d.count("/") > 2:
        hide = {h for h in hide if not h.startswith(d + "/")} | {d}
n = 0
for path in sorted(hide):
    target = os.path.join(wh, path[len("/usr/"):])
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if not os.path.lexists(target):
        os.mknod(target, 0o600 | 0o020000, os.makedev(0, 0))
        n += 1
print("rehearse_node: %d files and dirs whited out" % n, file=sys.stderr)
' "$wh"
  mount -t overlay overlay -o "ro,lowerdir=$wh:/usr" /usr
}

read_only_but() {  # read_only_but <writable dir>: the rest of the usual writable places ro
  local keep=$1 d
  for d in /etc /opt /var /tmp /work /root /home; do
    [ -d "$d" ] || continue
    mount --bind "$d" "$d" && mount -o remount,bind,ro "$d"
  done
  # (a bind mount inherits the read-only flag of the mount it is taken from)
  mount --bind "$keep" "$keep" && mount -o remount,bind,rw "$keep"
}

inside() {
  local dir=$REHEARSE_DIR bundle=$REHEARSE_BUNDLE checkout=$REHEARSE_CHECKOUT
  local python=$REHEARSE_NODE_PYTHON start status=0
  hide_packages "$dir/whiteouts"
  read_only_but "$dir"
  check || exit 3
  # The namespace's only interface is lo, down at first; NCCL's bootstrap, which new_uid() fills
  # in, needs one (it leaves lo out unless named). The node has its own interfaces.
  ip link set lo up 2>/dev/null || true
  export NCCL_SOCKET_IFNAME=lo
  export CAFFE_CACHE="$dir/cache" TMPDIR="$dir/tmp" PIP_NO_INDEX=1 PIP_FIND_LINKS="$bundle/wheels"
  export PIP_NO_CACHE_DIR=1 JOBS=$jobs
  cd "$checkout"
  say "make caffe CUDA=1 CUDA_ARCH_BIN=90 BUNDLE=$bundle PYTHON=$python (JOBS=$jobs)"
  start=$SECONDS
  make caffe CUDA=1 CUDA_ARCH_BIN=90 BUNDLE="$bundle" PYTHON="$python" || status=$?
  local build_s=$((SECONDS - start))
  if [ "$status" -eq 0 ]; then
    make venv CUDA=1 CUDA_ARCH_BIN=90 BUNDLE="$bundle" PYTHON="$python" || status=$?
  fi
  local result="(not reached)"
  if [ "$status" -eq 0 ]; then
    result=$(.venv/bin/python - <<'PY' 2>&1
import caffe
from mpi4py import MPI
import lmdb
uid = bytes(caffe.NCCL.new_uid())
print("pycaffe %s from %s" % (getattr(caffe, "__version__", "?"), caffe.__file__))
print("caffe.has_nccl() = %s" % caffe.has_nccl())
print("len(caffe.NCCL.new_uid()) = %d" % len(uid))
print("mpi4py.MPI: %s" % MPI.Get_library_version().splitlines()[0])
print("lmdb %s" % lmdb.__version__)
assert caffe.has_nccl() and len(uid) == 128
PY
) || status=$?
    .venv/bin/caffe --version >> /dev/null 2>&1 || { status=1; result+=$'\n.venv/bin/caffe --version failed'; }
  fi
  local tests="(none asked for: REHEARSE_TESTS)"
  if [ "$status" -eq 0 ] && [ -n "${REHEARSE_TESTS:-}" ]; then
    local targs
    eval "targs=($REHEARSE_TESTS)"   # shell words: -k "a or b" stays one argument
    tests=$(PATH="$checkout/.venv/bin:$PATH" CUDA=1 CUDA_ARCH_BIN=90 BUNDLE="$bundle" PYTHON="$python" \
              .venv/bin/python -m pytest -q -p no:cacheprovider "${targs[@]}" 2>&1 \
              | tee "$dir/tests.log" | tail -n 3) || status=$?
  fi
  local prefix
  prefix=$(CUDA=1 CUDA_ARCH_BIN=90 BUNDLE="$bundle" PYTHON="$python" bash scripts/build_caffe.sh --prefix 2>/dev/null || true)
  {
    echo "rehearsal of the node build ($(date -u +%Y-%m-%dT%H:%MZ)): $([ "$status" -eq 0 ] && echo PASS || echo "FAIL ($status)")"
    echo "make caffe CUDA=1 CUDA_ARCH_BIN=90 BUNDLE=... PYTHON=$python: ${build_s} s with JOBS=$jobs on $(nproc) cores"
    echo "$result"
    echo "tests ${REHEARSE_TESTS:-}: $tests"
    if [ -n "$prefix" ]; then
      echo "prefix: $prefix ($(du -sh "$prefix" | cut -f1)); libcaffe.so $(du -h "$prefix"/lib/libcaffe.so.* | head -n1 | cut -f1), _caffe.so $(du -h "$(find "$prefix" -name _caffe.so | head -n1)" | cut -f1)"
      echo "deps: $(du -sh "$dir/cache/deps" | cut -f1) unpacked; libraries not found by ldd: $(ldd "$prefix"/lib/libcaffe.so "$prefix"/bin/caffe "$(find "$prefix" -name _caffe.so | head -n1)" | grep -c 'not found')"
    fi
  } > "$dir/summary.txt"
  exit "$status"
}

case "${1:-}" in
  --check) check ;;
  --inside) inside ;;
  -*) die "unknown argument: $1 (see the header of $0)" ;;
  *) outside "$(cd "${1:-$here/build/caffe-bundle}" 2>/dev/null && pwd || echo "${1:-$here/build/caffe-bundle}")" ;;
esac
