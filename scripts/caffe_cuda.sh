# The CUDA side of a Caffe build, sourced by scripts/build_caffe.sh (no root, no network).
#
# A CUDA build needs nvcc with its runtime, and cuBLAS, cuRAND, cuDNN and NCCL. They are taken
# from what the machine has: the toolkit of nvcc (CUDA_HOME, PATH, /usr/local/cuda), the
# system's include and lib dirs, or the nvidia-* wheels in the site-packages of $PYTHON (how
# PyTorch ships CUDA; CUDA_WHEELS=<dir holding nvidia/> names them). Caffe's FindCUDA wants
# them under one root, so the build is configured against a view: a folder of symlinks
# (bin/, nvvm/, include/, lib64/) in the cache, keyed by what it points to. It is also the
# binaries' rpath, so cuBLAS & co. are found at run time without LD_LIBRARY_PATH.
#
#   USE_CUDNN=0, USE_NCCL=0       build without them (both are required otherwise)
#   CUDA_ARCH_BIN="90"            GPU architectures; default: those nvidia-smi reports

# part: header pattern, library pattern (the toolkit itself brings cudart)
cuda_parts=(
  "cuBLAS:cublas*.h:libcublas*.so*"
  "cuRAND:curand*.h:libcurand*.so*"
  "cuDNN:cudnn*.h:libcudnn*.so*"
  "NCCL:nccl*.h:libnccl*.so*"
)

cuda_nvcc() {
  local n
  for n in "${CUDA_HOME:+$CUDA_HOME/bin/nvcc}" "$(command -v nvcc 2>/dev/null || true)" \
           /usr/local/cuda/bin/nvcc; do
    if [ -n "$n" ] && [ -x "$n" ]; then echo "$n"; return 0; fi
  done
  return 1
}

# The toolkit root, as nvcc itself reports it (nvcc on PATH may be a wrapper script).
cuda_toolkit() {
  local nvcc top
  nvcc=$(cuda_nvcc) || return 1
  top=$("$nvcc" --dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n1)
  [ -n "$top" ] || top=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
  readlink -f "$top"
}

# The nvidia/<package> dirs of the CUDA wheels, one a line.
cuda_wheel_dirs() {
  local sites=${CUDA_WHEELS:-} site d
  if [ -z "$sites" ]; then
    sites=$("${PYTHON:-python3}" -c 'import nvidia, os
print(" ".join(os.path.dirname(p) for p in nvidia.__path__))' 2>/dev/null) || true
  fi
  for site in $sites; do
    for d in "$site"/nvidia/*/; do [ -d "$d" ] && echo "${d%/}"; done
  done
}

cuda_use() {  # cuda_use cuDNN|NCCL: whether the build asks for it
  local v
  case $1 in cuDNN) v=${USE_CUDNN:-1} ;; NCCL) v=${USE_NCCL:-1} ;; *) v=1 ;; esac
  case $v in 0|OFF|off|no) return 1 ;; esac
}

# The dirs to search, in order: kind is include or lib.
cuda_search_dirs() {
  local kind=$1 toolkit d
  toolkit=$(cuda_toolkit) || true
  if [ "$kind" = include ]; then
    [ -n "$toolkit" ] && echo "$toolkit/include"
    echo /usr/include /usr/include/x86_64-linux-gnu /usr/local/include
    cuda_wheel_dirs | sed 's#$#/include#'
  else
    [ -n "$toolkit" ] && echo "$toolkit/lib64" "$toolkit/lib" "$toolkit/targets/x86_64-linux/lib"
    echo /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/lib
    cuda_wheel_dirs | sed 's#$#/lib#'
  fi
}

cuda_find() {  # cuda_find include|lib <glob>: the first dir with a match
  local d
  for d in $(cuda_search_dirs "$1"); do
    if compgen -G "$d/$2" >/dev/null; then echo "$d"; return 0; fi
  done
  return 1
}

# "part<TAB>header dir<TAB>lib dir<TAB>header glob<TAB>lib glob" for each part the build uses;
# dies naming every part it cannot find and where it looked.
cuda_locate() {
  local missing=() spec part hglob lglob inc lib
  cuda_toolkit >/dev/null || die "CUDA=1 but no nvcc: looked at \$CUDA_HOME/bin, PATH and /usr/local/cuda/bin"
  for spec in "${cuda_parts[@]}"; do
    IFS=: read -r part hglob lglob <<< "$spec"
    cuda_use "$part" || continue
    inc=$(cuda_find include "$hglob") && lib=$(cuda_find lib "$lglob") \
      || { missing+=("$part ($hglob, $lglob)"); continue; }
    printf '%s\t%s\t%s\t%s\t%s\n' "$part" "$inc" "$lib" "$hglob" "$lglob"
  done
  if [ ${#missing[@]} -gt 0 ]; then
    die "CUDA=1: not found: ${missing[*]}
  looked in: $(cuda_search_dirs include | tr '\n' ' ')
         and $(cuda_search_dirs lib | tr '\n' ' ')
  Install them (e.g. the nvidia-cudnn-cu13 / nvidia-nccl-cu13 wheels of PYTHON=$(command -v "${PYTHON:-python3}")),
  point CUDA_WHEELS at the site-packages holding nvidia/, or build without: USE_CUDNN=0 / USE_NCCL=0"
  fi
}

# The view's path: keyed by the toolkit and the dirs it links.
cuda_view_dir() {
  echo "$cache_root/cuda-view/$({ cuda_toolkit; cuda_locate; } | sha256sum | cut -c1-16)"
}

# Make the view (once; built under a temporary name and renamed) and print its path.
make_cuda_view() {
  local view toolkit tmp part inc lib hglob lglob f base
  view=$(cuda_view_dir)
  if [ -d "$view" ]; then echo "$view"; return 0; fi
  toolkit=$(cuda_toolkit)
  mkdir -p "$(dirname "$view")"
  tmp=$(mktemp -d "$view.XXXXXX")
  mkdir -p "$tmp/include" "$tmp/lib64"
  ln -s "$toolkit/bin" "$tmp/bin"
  [ -d "$toolkit/nvvm" ] && ln -s "$toolkit/nvvm" "$tmp/nvvm"
  # The toolkit's own headers and libraries first, then each part's (the first of a name wins).
  for f in "$toolkit"/include/* "$toolkit"/lib64/* "$toolkit"/targets/x86_64-linux/lib/*; do
    [ -e "$f" ] || continue
    case $f in */include/*) base="$tmp/include" ;; *) base="$tmp/lib64" ;; esac
    [ -e "$base/$(basename "$f")" ] || ln -s "$f" "$base/"
  done
  while IFS=$'\t' read -r part inc lib hglob lglob; do
    for f in "$inc"/$hglob; do [ -e "$tmp/include/$(basename "$f")" ] || ln -s "$f" "$tmp/include/"; done
    for f in "$lib"/$lglob; do [ -e "$tmp/lib64/$(basename "$f")" ] || ln -s "$f" "$tmp/lib64/"; done
  done < <(cuda_locate)
  # Wheels ship only versioned sonames (libcublas.so.13); the linker wants libcublas.so.
  for f in "$tmp"/lib64/lib*.so.*; do
    base=${f%%.so.*}.so
    [ -e "$base" ] || ln -s "$(basename "$f")" "$base"
  done
  mv "$tmp" "$view" 2>/dev/null || rm -rf "$tmp"   # another build made it meanwhile
  echo "$view"
}

# GPU architectures: CUDA_ARCH_BIN, else every GPU nvidia-smi lists ("9.0" -> 90).
cuda_arch_bin() {
  if [ -n "${CUDA_ARCH_BIN:-}" ]; then echo "$CUDA_ARCH_BIN"; return 0; fi
  local caps
  caps=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | tr -d '.' \
         | sort -un | tr '\n' ' ')
  [ -n "${caps// /}" ] || die "CUDA=1: no GPU visible to nvidia-smi, so give the architectures to
  compile for, e.g. CUDA_ARCH_BIN=\"90\" (H100) or \"80 86 89 90\""
  echo "${caps% }"
}

cuda_cmake_flags() {  # one flag a line
  local view=$1 arch
  arch=$(cuda_arch_bin)
  printf '%s\n' -DCPU_ONLY=OFF "-DCUDA_TOOLKIT_ROOT_DIR=$view"
  # Caffe's own list (compute 2.0 ...) is what nvcc 12+ rejects: always name the archs.
  printf '%s\n' -DCUDA_ARCH_NAME=Manual "-DCUDA_ARCH_BIN=$arch" "-DCUDA_ARCH_PTX=${arch##* }"
  if cuda_use cuDNN; then echo -DUSE_CUDNN=ON; else echo -DUSE_CUDNN=OFF; fi
  if cuda_use NCCL; then
    printf '%s\n' -DUSE_NCCL=ON "-DNCCL_INCLUDE_DIR=$view/include" \
      "-DNCCL_LIBRARIES=$view/lib64/libnccl.so"
  else
    echo -DUSE_NCCL=OFF
  fi
}
