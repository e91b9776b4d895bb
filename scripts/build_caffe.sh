#!/usr/bin/env bash
# Build stock BVLC Caffe (pycaffe + Python layers) into a cache outside the checkout.
#
#   scripts/build_caffe.sh            install Debian deps, fetch, patch, build; print the prefix
#   scripts/build_caffe.sh --prefix   print the prefix of the cached build (exit 1 if not built)
#   scripts/build_caffe.sh --deps     install the Debian packages only
#
# Environment:
#   CAFFE_SRC=<dir>   build this BVLC checkout instead of the Debian source package
#   CUDA=1|0          force a CUDA / CPU_ONLY build (default: CUDA when nvcc and a GPU are present)
#   CUDA_ARCH_BIN="60 70 80 90"  GPU architectures of a CUDA build (default: the GPUs present);
#                     needed where no GPU is visible at build time, e.g. docker build
#   USE_CUDNN=0, USE_NCCL=0  a CUDA build without cuDNN / NCCL (both required otherwise; they,
#                     cuBLAS and cuRAND come from system CUDA or the nvidia-* wheels of PYTHON,
#                     see scripts/caffe_cuda.sh; CUDA_WHEELS=<site-packages> names the wheels)
#   PYTHON=<python3>  build pycaffe for this interpreter, against its own NumPy (no venv, no
#                     pip); default: Debian's /usr/bin/python3 with the pinned NumPy
#   CAFFE_CACHE=<dir> cache root (default ${XDG_CACHE_HOME:-~/.cache}/noisy-label-caffe)
#   JOBS=<n>          parallel compile jobs (default: nproc)
#
# The install is keyed by source version + patches + flags. It is built under a
# temporary name and renamed when complete, so an interrupted build is never used.
# This is the one build recipe: docker/Dockerfile{,.cpu} run it too.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/caffe_cuda.sh
source "$here/scripts/caffe_cuda.sh"
patch_dir="$here/patches/caffe"
# Patches for CUDA builds only (cuDNN >= 8), kept apart so that CPU builds keep their key.
cuda_patch_dir="$here/patches/caffe-cuda"
cache_root=${CAFFE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/noisy-label-caffe}
jobs=${JOBS:-$(nproc)}

# Debian source package: BVLC tree 99bd997 plus Debian's build patches (bullseye).
debian_package=caffe
debian_version=1.0.0+git20180821.99bd997-8
debian_suite=bullseye
# Last resort when neither CAFFE_SRC nor the Debian source is available.
git_url=https://github.com/BVLC/caffe.git
git_commit=9b89154

# Bump when the recipe below changes in a way that changes the installed files.
recipe_version=2

apt_packages=(
  build-essential cmake pkg-config
  libboost-dev libboost-filesystem-dev libboost-system-dev libboost-thread-dev libboost-python-dev
  libgflags-dev libgoogle-glog-dev libprotobuf-dev libprotoc-dev protobuf-compiler
  libhdf5-dev liblmdb-dev libsnappy-dev libopenblas-dev libopencv-dev
  python3-dev python3-venv
  libopenmpi-dev openmpi-bin
)

die() { echo "build_caffe: error: $*" >&2; exit 1; }
say() { echo "build_caffe: $*" >&2; }

# ---- configuration ----------------------------------------------------------

use_cuda() {
  case "${CUDA:-}" in
    1|ON|on|yes) return 0 ;;
    0|OFF|off|no) return 1 ;;
  esac
  command -v nvcc >/dev/null 2>&1 && command -v nvidia-smi >/dev/null 2>&1 \
    && nvidia-smi -L >/dev/null 2>&1
}

cmake_flags() {
  local flags=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=ON -DBUILD_python=ON -DBUILD_python_layer=ON -Dpython_version=3
    -DBUILD_docs=OFF -DBUILD_matlab=OFF
    -DUSE_LMDB=ON -DUSE_LEVELDB=OFF -DUSE_OPENCV=ON -DBLAS=Open
  )
  if use_cuda; then
    mapfile -t -O ${#flags[@]} flags < <(cuda_cmake_flags "$(cuda_view_dir)")
  else
    flags+=(-DCPU_ONLY=ON -DUSE_CUDNN=OFF)
  fi
  # CMake 4 refuses Caffe's cmake_minimum_required(2.8.7) without this.
  if [ "$(cmake --version 2>/dev/null | sed -n 's/^cmake version \([0-9]*\).*/\1/p')" -ge 4 ] 2>/dev/null; then
    flags+=(-DCMAKE_POLICY_VERSION_MINIMUM=3.5)
  fi
  printf '%s\n' "${flags[@]}"
}

# Die now, naming what is missing, rather than inside a later $(...) that would swallow it.
check_config() {
  if use_cuda; then
    cuda_locate > /dev/null
    cuda_arch_bin > /dev/null
  fi
  if [ -n "${PYTHON:-}" ]; then
    "$PYTHON" -c 'import numpy' 2>/dev/null \
      || die "PYTHON=$PYTHON cannot import numpy (pycaffe is compiled against that Python's NumPy)"
  fi
}

source_id() {
  if [ -n "${CAFFE_SRC:-}" ]; then
    [ -d "$CAFFE_SRC" ] || die "CAFFE_SRC=$CAFFE_SRC is not a directory"
    [ -f "$CAFFE_SRC/CMakeLists.txt" ] && [ -d "$CAFFE_SRC/src/caffe" ] \
      || die "CAFFE_SRC=$CAFFE_SRC does not look like a BVLC Caffe checkout (no CMakeLists.txt, src/caffe)"
    # The content of the tree, so that an edited checkout rebuilds.
    echo "src:$(cd "$CAFFE_SRC" && find CMakeLists.txt cmake include src tools python -type f \
      ! -name '*.pyc' ! -name '_caffe.so' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
  else
    echo "debian:$debian_package=$debian_version"
  fi
}

# Our patches, in the order they are applied.
patch_files() {
  printf '%s\n' "$patch_dir"/*.patch
  if use_cuda; then printf '%s\n' "$cuda_patch_dir"/*.patch; fi
}

# pycaffe is compiled against the venv's NumPy (numpy 2 headers give a module that
# also runs under numpy 1.x; numpy 1 headers would not run under numpy 2).
numpy_pin() { grep -E '^numpy==' "$here/requirements.txt" || die "requirements.txt pins no numpy"; }

# What pycaffe is compiled for: the pinned NumPy in Debian's python3, or PYTHON's own.
python_id() {
  if [ -n "${PYTHON:-}" ]; then
    echo "python: $(command -v "$PYTHON") $("$PYTHON" -c 'import sys, numpy
print(sys.version.split()[0], numpy.__version__)')"
  else
    numpy_pin
  fi
}

cache_key() {
  {
    echo "recipe $recipe_version"
    python_id
    source_id
    cmake_flags
    patch_files | xargs -d '\n' cat
  } | sha256sum | cut -c1-16
}

prefix_dir() { echo "$cache_root/$(cache_key)"; }

# ---- Debian packages ----------------------------------------------------------

install_deps() {
  local missing=() p
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null \
      || die "these Debian packages are missing and installing them needs root: ${missing[*]}
  run as root, or install them first: sudo apt-get install ${missing[*]}"
    sudo=(sudo -n)
  fi
  "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || die "apt-get install failed for: ${missing[*]}"
}

# ---- source ---------------------------------------------------------------------

# The Debian mirror this machine already uses, read from apt's own configuration.
debian_mirror() {
  local f
  {
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -e "$f" ] || continue
      # deb822: the URIs of stanzas whose Types include deb.
      awk 'BEGIN{RS=""; FS="\n"} /Types:[^\n]*deb/ {for(i=1;i<=NF;i++) if ($i ~ /^URIs:/) {sub(/^URIs:[ \t]*/, "", $i); print $i}}' "$f"
    done
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '$1=="deb" {for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}'
  } | tr ' ' '\n' | grep -E '/debian/?$' | grep -v security | head -n1
}

# Fetch and unpack Debian's caffe source into $1, with apt's tools and a private source list.
fetch_debian_source() {
  local dest=$1 mirror work
  mirror=$(debian_mirror) || true
  [ -n "$mirror" ] || return 1
  work="$cache_root/debian-source"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/download"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $debian_suite main" \
    > "$work/sources.list"
  local apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
                  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
                  -o APT::Sandbox::User=root)
  if ! ls "$work/download/${debian_package}_"*.orig.tar.* >/dev/null 2>&1; then
    say "fetching Debian source $debian_package=$debian_version from $mirror ($debian_suite)"
    apt-get "${apt_opts[@]}" -qq update >&2 || return 1
    (cd "$work/download" && apt-get "${apt_opts[@]}" -qq source --download-only \
      "$debian_package=$debian_version" >&2) || return 1
  fi
  tar -xf "$work/download/${debian_package}_"*.orig.tar.* -C "$dest"
  tar -xf "$work/download/${debian_package}_${debian_version}.debian.tar."* -C "$dest"
  # Debian's build patches, in series order.
  local p
  while read -r p; do
    case "$p" in ''|'#'*) continue ;; esac
    patch -d "$dest" -p1 -s < "$dest/debian/patches/$p" || die "Debian patch $p did not apply"
  done < "$dest/debian/patches/series"
}

fetch_git_source() {
  local dest=$1
  command -v git >/dev/null 2>&1 || return 1
  say "cloning $git_url at $git_commit"
  git clone -q "$git_url" "$dest" 2>/dev/null && git -C "$dest" checkout -q "$git_commit"
}

get_source() {
  local dest=$1
  if [ -n "${CAFFE_SRC:-}" ]; then
    say "using CAFFE_SRC=$CAFFE_SRC"
    cp -a "$CAFFE_SRC/." "$dest/"
    return 0
  fi
  fetch_debian_source "$dest" && return 0
  rm -rf "$dest" && mkdir -p "$dest"
  fetch_git_source "$dest" && return 0
  die "no Caffe source available.
  Tried: Debian source package $debian_package=$debian_version ($debian_suite) from the configured apt mirror,
         and a git clone of $git_url.
  Provide a BVLC Caffe checkout: make caffe CAFFE_SRC=/path/to/caffe"
}

# Our patches: each applied once; one already present (e.g. in a newer checkout) is skipped.
apply_patches() {
  local src=$1 p patches
  mapfile -t patches < <(patch_files)
  for p in "${patches[@]}"; do
    if patch -d "$src" -p1 -s -f --dry-run < "$p" >/dev/null 2>&1; then
      patch -d "$src" -p1 -s < "$p"
      say "applied $(basename "$p")"
    elif patch -d "$src" -p1 -s -f -R --dry-run < "$p" >/dev/null 2>&1; then
      say "already in the source: $(basename "$p")"
    else
      die "patch $(basename "$p") does not apply to this Caffe source"
    fi
  done
}

# ---- build ---------------------------------------------------------------------

build() {
  local prefix=$1 tmp src flags
  mkdir -p "$cache_root"
  tmp=$(mktemp -d "$cache_root/.build.XXXXXX")
  # An interrupted or failed build leaves nothing behind that looks finished.
  trap 'rm -rf "$tmp"' EXIT
  src="$tmp/src"; mkdir -p "$src"
  get_source "$src"
  apply_patches "$src"
  if use_cuda; then
    say "CUDA view: $(make_cuda_view)"
  fi
  mapfile -t flags < <(cmake_flags)
  local python=${PYTHON:-}
  if [ -z "$python" ]; then
    # Debian's python3 (the libpython the caffe binary embeds) with the pinned NumPy.
    say "preparing a build Python with $(numpy_pin)"
    /usr/bin/python3 -m venv "$tmp/python" && "$tmp/python/bin/python" -m pip install -q "$(numpy_pin)" >&2 \
      || die "could not install $(numpy_pin) for the build"
    python="$tmp/python/bin/python"
  fi
  flags+=(-DPYTHON_EXECUTABLE="$python")
  # Debian's python3-numpy, when installed, puts NumPy 1.x headers in the Python include dir,
  # which comes before NumPy's own on the compile line: use a copy of that dir without them.
  local pyinc
  pyinc=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  [ -e "$pyinc/Python.h" ] || die "no Python.h in $pyinc: the headers of $python are needed (python3-dev)"
  mkdir -p "$tmp/pyinclude"
  find "$pyinc" -mindepth 1 -maxdepth 1 ! -name numpy -exec ln -s {} "$tmp/pyinclude/" \;
  flags+=(-DPYTHON_INCLUDE_DIR="$tmp/pyinclude")
  say "configuring: ${flags[*]}"
  # Configured for the final prefix (Caffe bakes it into the rpath), staged with DESTDIR.
  cmake -S "$src" -B "$tmp/build" -DCMAKE_INSTALL_PREFIX="$prefix" "${flags[@]}" \
    > "$tmp/configure.log" 2>&1 || { tail -n 40 "$tmp/configure.log" >&2; die "cmake configure failed"; }
  say "compiling with $jobs jobs (a few minutes)"
  local start=$SECONDS
  make -C "$tmp/build" -j"$jobs" all > "$tmp/build.log" 2>&1 || { grep -m 20 -E 'error|Error' "$tmp/build.log" >&2; tail -n 20 "$tmp/build.log" >&2; die "compile failed (nothing was cached)"; }
  make -C "$tmp/build" install DESTDIR="$tmp/stage" > "$tmp/install.log" 2>&1 \
    || { tail -n 20 "$tmp/install.log" >&2; die "install failed"; }
  say "built in $((SECONDS - start)) s"
  local staged="$tmp/stage$prefix" initpy
  initpy=$(find "$staged" -path '*/caffe/__init__.py' | head -n1)
  [ -n "$initpy" ] || die "the install has no python/caffe package"
  # Where pycaffe lives, relative to the prefix (stock: python/; Debian's patch: lib/python3/dist-packages).
  dirname "$(dirname "${initpy#"$staged/"}")" > "$staged/PYTHONDIR"
  { echo "source: $(source_id)"; python_id; cmake_flags; } > "$staged/BUILDINFO"
  echo "$python" > "$staged/PYTHON"
  rm -rf "$prefix"
  mv "$staged" "$prefix"
  rm -rf "$tmp"
  trap - EXIT
}

main() {
  case "${1:-}" in
    --prefix)
      local prefix; prefix=$(prefix_dir)
      [ -x "$prefix/bin/caffe" ] || exit 1
      echo "$prefix"; return 0 ;;
    --deps) install_deps; return 0 ;;
    '') ;;
    *) die "unknown argument: $1 (see the header of $0)" ;;
  esac
  check_config
  install_deps
  local prefix; prefix=$(prefix_dir)
  if [ -x "$prefix/bin/caffe" ]; then
    say "cached: $prefix"
  else
    build "$prefix"
    say "installed: $prefix"
  fi
  echo "$prefix"
}

main "$@"
