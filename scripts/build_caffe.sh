#!/usr/bin/env bash
# Build stock BVLC Caffe (pycaffe + Python layers) into a cache outside the checkout.
#
#   scripts/build_caffe.sh            install Debian deps, fetch, patch, build; print the prefix
#   scripts/build_caffe.sh --prefix   print the prefix of the cached build (exit 1 if not built)
#   scripts/build_caffe.sh --deps     install the Debian packages only
#
# A cached build is used as it is, before anything is installed or fetched: a machine without
# root or network (a GPU node) runs every make target once its build is in the cache.
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
#   BUNDLE=<dir>      a GPU node without root, network or Caffe's C++ libraries: take them from
#                     this bundle of make caffe-bundle (scripts/caffe_bundle.sh) instead of apt,
#                     unpacked into the cache (deps/<key>); needs PYTHON; USE_OPENCV off
#   USE_OPENCV=ON|OFF Caffe's OpenCV (convert_imageset, encoded Datums); default ON, OFF with BUNDLE
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

use_opencv() {
  case "${USE_OPENCV:-}" in
    1|ON|on|yes) echo ON ;;
    0|OFF|off|no) echo OFF ;;
    '') if [ -n "${BUNDLE:-}" ]; then echo OFF; else echo ON; fi ;;
    *) die "USE_OPENCV=$USE_OPENCV: expected ON or OFF" ;;
  esac
}

cmake_flags() {
  local flags=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=ON -DBUILD_python=ON -DBUILD_python_layer=ON -Dpython_version=3
    -DBUILD_docs=OFF -DBUILD_matlab=OFF
    -DUSE_LMDB=ON -DUSE_LEVELDB=OFF "-DUSE_OPENCV=$(use_opencv)" -DBLAS=Open
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
  use_opencv > /dev/null
  if [ -n "${BUNDLE:-}" ]; then
    [ -f "$BUNDLE/MANIFEST" ] || die "BUNDLE=$BUNDLE has no MANIFEST: make it with make caffe-bundle BUNDLE=$BUNDLE"
    [ -n "${PYTHON:-}" ] || die "BUNDLE=$BUNDLE needs PYTHON=<python3> (pycaffe and Boost.Python are built for it)"
  fi
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
    if [ -n "${BUNDLE:-}" ]; then echo "bundle: $(bundle_id)"; fi
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

# ---- bundle (a node without root, network or Caffe's C++ libraries) ----------------------

# The bundle's identity: its files' checksums (MANIFEST without its comment lines).
bundle_id() { grep -v '^#' "$BUNDLE/MANIFEST" | sha256sum | cut -c1-16; }

# Python X.Y of $PYTHON, e.g. 3.12.
python_xy() { "$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }

# Where the bundle's packages are unpacked for this Python: keyed by bundle and Python.
deps_dir() { echo "$cache_root/deps/$({ bundle_id; python_id; } | sha256sum | cut -c1-16)"; }

# The files a .deb installs, under $2 (dpkg-deb where there is one, else ar + tar).
extract_deb() {
  local deb=$1 dest=$2 member
  if command -v dpkg-deb >/dev/null 2>&1; then dpkg-deb -x "$deb" "$dest"; return; fi
  command -v ar >/dev/null 2>&1 || die "neither dpkg-deb nor ar (binutils) to unpack $deb"
  member=$(ar t "$deb" | grep '^data\.tar') || die "$deb has no data.tar member"
  case $member in
    *.xz) ar p "$deb" "$member" | tar -xJ -C "$dest" ;;
    *.zst) ar p "$deb" "$member" | zstd -dc | tar -x -C "$dest" ;;
    *.gz) ar p "$deb" "$member" | tar -xz -C "$dest" ;;
    *) ar p "$deb" "$member" | tar -x -C "$dest" ;;
  esac
}

# The shared libpython of $PYTHON (Caffe's tools embed it), or nothing.
python_library() {
  "$PYTHON" - <<'PY'
import os, sysconfig
v = sysconfig.get_config_var
ver = v("LDVERSION") or v("VERSION")
names = [n for n in (v("LDLIBRARY"), v("INSTSONAME"), "libpython%s.so" % ver,
                     "libpython%s.so.1.0" % ver) if n and ".so" in n]
dirs = [d for d in (v("LIBDIR"), os.path.join(v("LIBDIR") or "/", v("MULTIARCH") or ""),
                    v("LIBPL"), "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib") if d]
for d in dirs:
    for n in names:
        if os.path.isfile(os.path.join(d, n)):
            print(os.path.join(d, n))
            raise SystemExit
PY
}

# Unpack the bundle's .debs, Boost.Python for $PYTHON and (where $PYTHON has none) Python's
# headers into the cache, once; print the dir. Nothing is written outside the cache.
unpack_bundle() {
  local deps tmp deb link target xy tag lib pyinc
  deps=$(deps_dir)
  if [ -f "$deps/.complete" ]; then echo "$deps"; return 0; fi
  say "checking the bundle $BUNDLE against its MANIFEST"
  bash "$here/scripts/caffe_bundle.sh" --verify "$BUNDLE" >&2 \
    || die "BUNDLE=$BUNDLE is incomplete or damaged (see above): make it again with make caffe-bundle"
  mkdir -p "$(dirname "$deps")"
  tmp=$(mktemp -d "$deps.XXXXXX")
  say "unpacking $(find "$BUNDLE/debs" -name '*.deb' | wc -l) packages into $deps"
  for deb in "$BUNDLE"/debs/*.deb; do extract_deb "$deb" "$tmp"; done
  # Absolute links (/usr/lib/... -> /etc/alternatives/...) point into the unpacked tree instead.
  while IFS= read -r -d '' link; do
    target=$(readlink "$link")
    case $target in
      /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$tmp$target")" "$link" ;;
    esac
  done < <(find "$tmp" -type l -print0)
  # Debian's protoc has no rpath: a launcher gives it the bundle's libprotobuf.
  mkdir -p "$tmp/bin"
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
    "$deps/usr/lib/x86_64-linux-gnu" "$deps/usr/bin/protoc" > "$tmp/bin/protoc"
  chmod +x "$tmp/bin/protoc"
  xy=$(python_xy); tag=${xy/./}
  lib="$tmp/usr/lib/x86_64-linux-gnu/libboost_python$tag.so.1.74.0"
  pyinc=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  if [ ! -e "$pyinc/Python.h" ]; then
    [ -f "$BUNDLE/python/include-$xy.tar.xz" ] \
      || die "PYTHON=$PYTHON has no C headers ($pyinc/Python.h) and the bundle has none for Python $xy"
    say "Python $xy's C headers from the bundle ($pyinc has none)"
    mkdir -p "$tmp/python"
    tar -xJf "$BUNDLE/python/include-$xy.tar.xz" -C "$tmp/python"
    pyinc="$tmp/python/include/python$xy"
  fi
  if [ -f "$BUNDLE/boost-python/cp$tag/$(basename "$lib")" ]; then
    say "Boost.Python for Python $xy: prebuilt, from the bundle"
    cp "$BUNDLE/boost-python/cp$tag/$(basename "$lib")" "$lib"
  else
    say "Boost.Python for Python $xy: compiling it from the bundle's source"
    build_boost_python "$BUNDLE/src/boost-python-1.74.0.tar.xz" "$tmp/usr/include" "$pyinc" "$lib"
  fi
  ln -sfn "$(basename "$lib")" "${lib%.1.74.0}"
  echo "${pyinc/#$tmp/$deps}" > "$tmp/PYTHON_INCLUDE"   # the headers the build uses
  # Caffe's tools embed Python and link libpython: the bundle's where PYTHON has none (its
  # symbols are the interpreter's own when pycaffe is imported, as with Debian's static python3).
  if [ -z "$(python_library)" ]; then
    [ -f "$BUNDLE/python/libpython-$xy.tar.xz" ] \
      || die "PYTHON=$PYTHON has no shared libpython and the bundle has none for Python $xy"
    say "PYTHON has no shared libpython: Caffe's tools link the bundle's ($BUNDLE/python/libpython-$xy.tar.xz)"
    tar -xJf "$BUNDLE/python/libpython-$xy.tar.xz" -C "$tmp/usr/lib/x86_64-linux-gnu"
    ln -sfn "libpython$xy.so.1.0" "$tmp/usr/lib/x86_64-linux-gnu/libpython$xy.so"
    echo "$deps/usr/lib/x86_64-linux-gnu/libpython$xy.so" > "$tmp/PYTHON_LIBRARY"
  fi
  touch "$tmp/.complete"
  rm -rf "$deps"
  mv "$tmp" "$deps"
  echo "$deps"
}

# build_boost_python <source tar.xz> <boost include dir> <python include dir> <output .so>:
# Boost.Python's library (not its NumPy part, which Caffe does not use), as Debian builds it.
build_boost_python() {
  local tarball=$1 boost_inc=$2 pyinc=$3 out=$4 work src
  work=$(mktemp -d "$(dirname "$out")/.boost-python.XXXXXX")
  tar -xJf "$tarball" -C "$work"
  src=$(find "$work" -type d -path '*/libs/python/src' | head -n1)
  [ -n "$src" ] || die "$tarball holds no libs/python/src"
  mkdir -p "$work/obj"
  (cd "$src" && find . -name '*.cpp' ! -path './numpy/*' | sed 's#^\./##' \
    | xargs -P "$jobs" -I{} sh -c 'g++ -O2 -w -fPIC -DNDEBUG -DBOOST_PYTHON_SOURCE \
        -DBOOST_PYTHON_DYN_LINK -DBOOST_ALL_NO_LIB -I"$1" -I"$2" -c "$0" \
        -o "$3/$(echo "$0" | tr / _).o"' {} "$boost_inc" "$pyinc" "$work/obj") \
    || die "compiling Boost.Python from $tarball failed"
  g++ -shared -Wl,-soname,"$(basename "$out")" "$work"/obj/*.o -o "$out" \
    || die "linking Boost.Python failed"
  rm -rf "$work"
}

# CMake's hints for the unpacked bundle: every library by path, nothing from /usr.
bundle_cmake_flags() {
  local deps=$1 usr lib pylib tag
  usr="$deps/usr"; lib="$usr/lib/x86_64-linux-gnu"
  tag=$(python_xy); tag=${tag/./}
  pylib=$(python_library)
  if [ -z "$pylib" ] && [ -f "$deps/PYTHON_LIBRARY" ]; then pylib=$(cat "$deps/PYTHON_LIBRARY"); fi
  [ -n "$pylib" ] || die "PYTHON=$PYTHON has no shared libpython (looked in its LIBDIR and /usr/lib):
  Caffe's tools embed Python for the Python layers and link it (e.g. Debian/Ubuntu's libpython3.X)"
  printf '%s\n' \
    "-DCMAKE_IGNORE_PREFIX_PATH=/usr;/usr/local" "-DCMAKE_PREFIX_PATH=$usr" \
    "-DCMAKE_INCLUDE_PATH=$usr/include" "-DCMAKE_LIBRARY_PATH=$lib" \
    "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags" \
    "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,--disable-new-dtags" \
    "-DCMAKE_MODULE_LINKER_FLAGS=-Wl,--disable-new-dtags" \
    -DBoost_NO_BOOST_CMAKE=ON -DBoost_NO_SYSTEM_PATHS=ON \
    "-DBOOST_INCLUDEDIR=$usr/include" "-DBOOST_LIBRARYDIR=$lib" \
    "-DBoost_PYTHON3_LIBRARY_RELEASE=$lib/libboost_python$tag.so" \
    "-DGFLAGS_INCLUDE_DIR=$usr/include" "-DGFLAGS_LIBRARY=$lib/libgflags.so" \
    "-DGLOG_INCLUDE_DIR=$usr/include" "-DGLOG_LIBRARY=$lib/libglog.so" \
    "-DProtobuf_INCLUDE_DIR=$usr/include" "-DProtobuf_LIBRARY=$lib/libprotobuf.so" \
    "-DProtobuf_PROTOC_LIBRARY=$lib/libprotoc.so" "-DProtobuf_PROTOC_EXECUTABLE=$deps/bin/protoc" \
    -DHDF5_NO_FIND_PACKAGE_CONFIG_FILE=ON "-DHDF5_C_COMPILER_EXECUTABLE=$deps/no-h5cc" \
    "-DHDF5_C_INCLUDE_DIR=$usr/include/hdf5/serial" "-DHDF5_C_HL_INCLUDE_DIR=$usr/include/hdf5/serial" \
    "-DHDF5_hdf5_LIBRARY_RELEASE=$lib/hdf5/serial/libhdf5.so" \
    "-DHDF5_hdf5_hl_LIBRARY_RELEASE=$lib/hdf5/serial/libhdf5_hl.so" \
    "-DLMDB_INCLUDE_DIR=$usr/include" "-DLMDB_LIBRARIES=$lib/liblmdb.so" \
    "-DOpenBLAS_INCLUDE_DIR=$usr/include/x86_64-linux-gnu/openblas-pthread" \
    "-DOpenBLAS_LIB=$lib/openblas-pthread/libopenblas.so" \
    "-DPYTHON_LIBRARY=$pylib"
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

# Fetch and unpack Debian's caffe source into $1.
fetch_debian_source() {
  local dest=$1 work="$cache_root/debian-source"
  download_debian_source "$debian_package" "$debian_version" "$debian_suite" "$work" || return 1
  unpack_debian_source "$work/download" "$dest"
}

# Debian's source package=version from suite into work/download (kept there for the next
# time), with apt's tools and a private source list (the system's apt sources are left
# alone). Exit status 2: no Debian mirror in apt's configuration; 3: apt-get update failed;
# 1: the download failed.
download_debian_source() {
  local package=$1 version=$2 suite=$3 work=$4 mirror
  ls "$work/download/${package}_${version%%-*}"*.orig.tar.* >/dev/null 2>&1 && return 0
  mirror=$(debian_mirror) || true
  [ -n "$mirror" ] || return 2
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/download"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" \
    > "$work/sources.list"
  local apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
                  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
                  -o APT::Sandbox::User=root)
  say "fetching Debian source $package=$version from $mirror ($suite)"
  apt-get "${apt_opts[@]}" -qq update >&2 || return 3
  (cd "$work/download" && apt-get "${apt_opts[@]}" -qq source --download-only \
    "$package=$version" >&2) || return 1
}

# The source package's tarballs in download_dir unpacked into dest, Debian's build patches
# applied in series order (caffe_bundle.sh makes the bundle's source the same way).
unpack_debian_source() {
  local download=$1 dest=$2 p
  tar -xf "$download/${debian_package}_"*.orig.tar.* -C "$dest"
  tar -xf "$download/${debian_package}_${debian_version}.debian.tar."* -C "$dest"
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
  if [ -n "${BUNDLE:-}" ]; then
    # The same Debian source, its build patches already applied by make caffe-bundle.
    local tarball="$BUNDLE/src/caffe-$debian_version.tar.xz"
    [ -f "$tarball" ] || die "BUNDLE=$BUNDLE has no $(basename "$tarball")"
    say "source from the bundle: $(basename "$tarball")"
    tar -xJf "$tarball" -C "$dest" --strip-components=1
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

# patch_tool <dir> <patch file> [-R] [--dry-run]: patch(1), else git apply (a node may lack patch).
patch_tool() {
  local dir=$1 file=$2 reverse= check=
  shift 2
  for a in "$@"; do case $a in -R) reverse=-R ;; --dry-run) check=1 ;; esac; done
  if command -v patch >/dev/null 2>&1; then
    patch -d "$dir" -p1 -s -f $reverse ${check:+--dry-run} < "$file" > /dev/null 2>&1
  elif command -v git >/dev/null 2>&1; then
    (cd "$dir" && git apply -p1 $reverse ${check:+--check} "$file") > /dev/null 2>&1
  else
    die "neither patch nor git to apply $(basename "$file")"
  fi
}

# Our patches: each applied once; one already present (e.g. in a newer checkout) is skipped.
apply_patches() {
  local src=$1 p patches
  mapfile -t patches < <(patch_files)
  for p in "${patches[@]}"; do
    if patch_tool "$src" "$p" --dry-run; then
      patch_tool "$src" "$p" || die "patch $(basename "$p") failed"
      say "applied $(basename "$p")"
    elif patch_tool "$src" "$p" -R --dry-run; then
      say "already in the source: $(basename "$p")"
    else
      die "patch $(basename "$p") does not apply to this Caffe source"
    fi
  done
}

# ---- build ---------------------------------------------------------------------

# A failed step's whole log, kept where it can be read after the build dir is removed.
keep_log() { mkdir -p "$cache_root/logs"; cp "$1" "$cache_root/logs/$(basename "$1")"; say "full log: $cache_root/logs/$(basename "$1")"; }

# pycaffe's generated caffe_pb2.py (protoc of the build) must load under the Python protobuf of
# the interpreter it is for; checked where that interpreter has protobuf.
check_protobuf_pairing() {
  local python=$1 pydir=$2 version
  version=$("$python" -c 'import google.protobuf as p; print(p.__version__)' 2>/dev/null) || {
    say "protobuf pairing not checked: $python has no google.protobuf"; return 0; }
  PYTHONPATH="$pydir/caffe/proto" "$python" -c 'import caffe_pb2; caffe_pb2.NetParameter(name="x").SerializeToString()' >&2 \
    || die "pycaffe's caffe_pb2.py (protoc $(protoc_version)) does not load under $python's protobuf $version"
  say "protobuf pairing: caffe_pb2.py of protoc $(protoc_version) loads under Python protobuf $version"
}

protoc_version() {
  local exe
  exe=$(sed -n 's/^[Pp][Rr][Oo][Tt][Oo][Bb][Uu][Ff]_PROTOC_EXECUTABLE:[A-Z]*=//p' \
          "$tmp/build/CMakeCache.txt" 2>/dev/null | head -n1)
  [ -n "$exe" ] || exe=protoc
  "$exe" --version 2>/dev/null | awk '{print $2}'
}

build() {
  local prefix=$1 tmp src flags
  mkdir -p "$cache_root"
  tmp=$(mktemp -d "$cache_root/.build.XXXXXX")
  # An interrupted or failed build leaves nothing behind that looks finished (a time-boxed
  # one too: TERM ends the script, which runs the EXIT trap).
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 143' TERM INT
  src="$tmp/src"; mkdir -p "$src"
  get_source "$src"
  apply_patches "$src"
  if use_cuda; then
    say "CUDA view: $(make_cuda_view)"
  fi
  mapfile -t flags < <(cmake_flags)
  local deps=
  if [ -n "${BUNDLE:-}" ]; then
    deps=$(unpack_bundle)
    local hints; mapfile -t hints < <(bundle_cmake_flags "$deps")
    [ ${#hints[@]} -gt 0 ] || die "no CMake hints for the bundle"
    flags+=("${hints[@]}")
  fi
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
  if [ -n "$deps" ]; then pyinc=$(cat "$deps/PYTHON_INCLUDE"); fi
  [ -e "$pyinc/Python.h" ] || die "no Python.h in $pyinc: the headers of $python are needed (python3-dev)"
  mkdir -p "$tmp/pyinclude"
  find "$pyinc" -mindepth 1 -maxdepth 1 ! -name numpy -exec ln -s {} "$tmp/pyinclude/" \;
  flags+=(-DPYTHON_INCLUDE_DIR="$tmp/pyinclude")
  say "configuring: ${flags[*]}"
  # Configured for the final prefix (Caffe bakes it into the rpath), staged with DESTDIR.
  # make where there is one, else ninja (a node may have only CMake and ninja).
  local generator=()
  if ! command -v make >/dev/null 2>&1 && command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
  cmake -S "$src" -B "$tmp/build" "${generator[@]}" -DCMAKE_INSTALL_PREFIX="$prefix" "${flags[@]}" \
    > "$tmp/configure.log" 2>&1 || { keep_log "$tmp/configure.log"; tail -n 40 "$tmp/configure.log" >&2; die "cmake configure failed"; }
  say "compiling with $jobs jobs (a few minutes)"
  local start=$SECONDS
  cmake --build "$tmp/build" -j "$jobs" > "$tmp/build.log" 2>&1 || { keep_log "$tmp/build.log"; grep -m 20 -E 'error|Error' "$tmp/build.log" >&2; tail -n 20 "$tmp/build.log" >&2; die "compile failed (nothing was cached)"; }
  DESTDIR="$tmp/stage" cmake --install "$tmp/build" > "$tmp/install.log" 2>&1 \
    || { tail -n 20 "$tmp/install.log" >&2; die "install failed"; }
  say "built in $((SECONDS - start)) s"
  local staged="$tmp/stage$prefix" initpy
  initpy=$(find "$staged" -path '*/caffe/__init__.py' | head -n1)
  [ -n "$initpy" ] || die "the install has no python/caffe package"
  # Where pycaffe lives, relative to the prefix (stock: python/; Debian's patch: lib/python3/dist-packages).
  dirname "$(dirname "${initpy#"$staged/"}")" > "$staged/PYTHONDIR"
  check_protobuf_pairing "$python" "$staged/$(cat "$staged/PYTHONDIR")"
  { echo "source: $(source_id)"; python_id; cmake_flags
    if [ -n "${BUNDLE:-}" ]; then echo "bundle: $(bundle_id) ($BUNDLE)"; fi; } > "$staged/BUILDINFO"
  echo "$python" > "$staged/PYTHON"
  rm -rf "$prefix"
  mv "$staged" "$prefix"
  rm -rf "$tmp"
  trap - EXIT TERM INT
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
  # The cache first: a node without root or network uses a finished build as it is.
  local prefix; prefix=$(prefix_dir)
  if [ -x "$prefix/bin/caffe" ]; then
    say "cached: $prefix"
  else
    if [ -z "${BUNDLE:-}" ]; then install_deps; fi
    build "$prefix"
    say "installed: $prefix"
  fi
  echo "$prefix"
}

if [ -n "${BUNDLE:-}" ]; then
  BUNDLE=$(cd "$BUNDLE" 2>/dev/null && pwd) || die "BUNDLE=$BUNDLE is not a directory"
fi
# Sourced (scripts/caffe_bundle.sh reuses the Debian helpers): define, do not run.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
