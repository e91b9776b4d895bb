#!/usr/bin/env bash
# The one command for a lent GPU node (issue 24): build Caffe from the bundle for its GPU, then
# the GPU tests, the layer and MPI tests and make bench-gpu, every step time-boxed, every log and
# a one-page summary in OUTDIR. Exits non-zero at the first failure, naming the step.
#
#   bash scripts/device_check.sh OUTDIR
#
# The device call: `bash scripts/device_check.sh "$OUT"`, carrying build/caffe-bundle (make
# caffe-bundle here first; bundle + checkout stay under the 64 MiB a call carries). OUTDIR gets
# at most 8 files (what the device tool brings back): env.txt build.log venv.log smoke.log
# test_gpu.log tests.log bench.log summary.txt.
#
# Environment:
#   BUNDLE=<dir>       the bundle (default build/caffe-bundle)
#   PYTHON=<python3>   the node's Python (default /opt/torch/.venv/bin/python3, else python3)
#   BUDGET=<s>         seconds for all steps (default 500: well inside 9 minutes); each step gets
#                      its own box, cut to what is left
#   KEEP_GOING=1       run the later steps after a failed test or bench step too (the exit
#                      status still names the first failure; a failed build or venv stops)
#   STEPS="..."        the steps to run, of: env build venv smoke test_gpu tests bench (default
#                      all; a second call can rerun some, e.g. STEPS="env test_gpu")
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: device_check.sh OUTDIR}
mkdir -p "$out" && out=$(cd "$out" && pwd)
cd "$here"

BUNDLE=$(cd "${BUNDLE:-$here/build/caffe-bundle}" 2>/dev/null && pwd) || BUNDLE=${BUNDLE:-$here/build/caffe-bundle}
if [ -z "${PYTHON:-}" ]; then
  PYTHON=/opt/torch/.venv/bin/python3
  [ -x "$PYTHON" ] || PYTHON=$(command -v python3)
fi
budget=${BUDGET:-500}
export BUNDLE PYTHON CUDA=1 JOBS=${JOBS:-$(nproc)} PYTHONUNBUFFERED=1
export PIP_NO_INDEX=1 PIP_FIND_LINKS="$BUNDLE/wheels" PIP_NO_CACHE_DIR=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NVIDIA_TF32_OVERRIDE=0

start_all=$SECONDS
first_failure=
results=()   # "step<TAB>PASS|FAIL (why)<TAB>seconds"

left() { echo $((budget - (SECONDS - start_all))); }

# step <name> <box seconds> <log file> <command...>: run it time-boxed, its output in the log.
step() {
  local name=$1 box=$2 log=$3 rc t0 status
  shift 3
  case " ${STEPS:-env build venv smoke test_gpu tests bench} " in
    *" $name "*) ;;
    *) results+=("$name"$'\t'"SKIP (not in STEPS)"$'\t'0); return 0 ;;
  esac
  local remaining; remaining=$(left)
  if [ "$remaining" -lt 15 ]; then
    results+=("$name"$'\t'"FAIL (no time left of BUDGET=$budget s)"$'\t'0)
    first_failure=${first_failure:-$name}
    return 1
  fi
  [ "$box" -le "$remaining" ] || box=$remaining
  echo "== $name (at most ${box} s): $*" | tee -a "$out/$log"
  t0=$SECONDS
  # (the steps are this script's functions: exported, run by a child bash under timeout)
  timeout --kill-after=10 "$box" bash -c '"$@"' step "$@" >> "$out/$log" 2>&1
  rc=$?
  case $rc in
    0) status=PASS ;;
    124|137) status="FAIL (timed out after $box s)" ;;
    *) status="FAIL (exit $rc)" ;;
  esac
  results+=("$name"$'\t'"$status"$'\t'$((SECONDS - t0)))
  echo "== $name: $status in $((SECONDS - t0)) s" | tee -a "$out/$log"
  if [ "$rc" -ne 0 ]; then first_failure=${first_failure:-$name}; return 1; fi
}

# make where the node has it; the same scripts without it.
mk() {
  if command -v make > /dev/null 2>&1; then make -s "$@"; return; fi
  case $1 in
    caffe) bash scripts/build_caffe.sh > /dev/null ;;
    venv) bash scripts/build_caffe.sh > /dev/null \
            && bash scripts/setup_venv.sh "$(bash scripts/build_caffe.sh --prefix)" ;;
    bench-gpu) (source .venv/bin/activate && python bench/bench_noisy_loss.py --net clothing1M --gpu \
                && python bench/bench_robust_losses.py --gpu && python bench/bench_gpu.py) ;;
    *) echo "no make here for make $1" >&2; return 1 ;;
  esac
}

environment() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(uname -srm)  cores: $(nproc)"
  echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,compute_mode \
                --format=csv,noheader 2>&1 | tr '\n' ' ')"
  echo "nvcc: $( (nvcc --version || /usr/local/cuda/bin/nvcc --version) 2>/dev/null | tail -n1)"
  echo "cmake: $(cmake --version 2>/dev/null | head -n1)  make: $(command -v make || echo none)  ninja: $(command -v ninja || echo none)"
  echo "g++: $(g++ --version 2>/dev/null | head -n1)  patch: $(command -v patch || echo none)  git: $(command -v git || echo none)"
  echo "PYTHON=$PYTHON"
  "$PYTHON" - <<'PY'
import importlib, os, sys, sysconfig
print("python %s at %s (base %s)" % (sys.version.split()[0], sys.executable, sys.base_prefix))
inc = sysconfig.get_paths()["include"]
print("Python.h: %s" % (os.path.exists(os.path.join(inc, "Python.h")) and inc or "none (the bundle's)"))
v = sysconfig.get_config_var
print("libpython: Py_ENABLE_SHARED=%s LDLIBRARY=%s LIBDIR=%s" % (v("Py_ENABLE_SHARED"), v("LDLIBRARY"), v("LIBDIR")))
for name in ("numpy", "google.protobuf", "mpi4py", "lmdb", "cv2", "skimage", "sklearn", "yaml", "pytest", "xdist", "nvidia.nccl", "nvidia.cudnn"):
    try:
        m = importlib.import_module(name)
        print("  %-16s %s" % (name, getattr(m, "__version__", "(no version)")))
    except Exception as e:
        print("  %-16s missing (%s)" % (name, type(e).__name__))
try:
    from mpi4py import MPI
    print("mpi4py.MPI loads: %s" % MPI.Get_library_version().splitlines()[0])
except Exception as e:
    print("mpi4py.MPI does not load: %s" % e)
PY
  echo "mpirun on PATH: $(command -v mpirun || echo none)"
  echo "bundle: $BUNDLE ($(du -sh "$BUNDLE" 2>/dev/null | cut -f1))"
  # What the env step reports, it does not judge: a missing bundle fails the build step.
  head -n 5 "$BUNDLE/MANIFEST" 2>/dev/null || echo "  no MANIFEST there (make caffe-bundle makes the bundle)"
}

build() {
  mk caffe || { cp_logs; return 1; }
}
cp_logs() {   # build_caffe.sh keeps a failed step's whole log in the cache
  local d=${CAFFE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/noisy-label-caffe}/logs f
  for f in "$d"/*.log; do [ -f "$f" ] && { echo "---- $f"; tail -c 4000000 "$f"; }; done
  return 0
}

smoke() {
  .venv/bin/python - <<'PY'
import caffe
uid = bytes(caffe.NCCL.new_uid())
print("pycaffe: %s" % caffe.__file__)
print("has_nccl: %s" % caffe.has_nccl())
print("new_uid bytes: %d" % len(uid))
assert caffe.has_nccl() and len(uid) == 128
PY
  [ $? -eq 0 ] || return 1
  local dq
  dq=$(GLOG_minloglevel=0 .venv/bin/caffe device_query -gpu 0 2>&1)
  if [ $? -ne 0 ] || ! grep -q "Device id" <<< "$dq"; then
    tail -n 30 <<< "$dq"; echo "caffe device_query -gpu 0 failed"; return 1
  fi
  grep -E "Device id|Major revision|Minor revision|Name|Total global memory" <<< "$dq"
  echo "mpirun: $(PATH="$here/.venv/bin:$PATH" command -v mpirun || echo "none: the MPI tests skip their mpirun jobs; NCCL runs on one rank")"
}

pytest_run() {
  local xdist=()
  # Each test in a worker process: a Caffe CHECK abort then fails that test, not the run.
  if .venv/bin/python -c 'import xdist' 2>/dev/null; then xdist=(-n 1); fi
  (source .venv/bin/activate && python -m pytest -ra -v -p no:cacheprovider "${xdist[@]}" "$@")
}

summary() {
  local line
  {
    echo "device check, $(date -u +%Y-%m-%dT%H:%MZ): $([ -z "$first_failure" ] && echo PASS || echo "FAIL at step: $first_failure") ($((SECONDS - start_all)) s of BUDGET=$budget s)"
    echo
    printf '%-10s %-36s %s\n' step result seconds
    for line in "${results[@]}"; do IFS=$'\t' read -r a b c <<< "$line"; printf '%-10s %-36s %s\n' "$a" "$b" "$c"; done
    echo
    grep -aE '^(date|gpu|nvcc|cmake|g\+\+|python|Python.h|libpython|mpi4py.MPI|mpirun on PATH)[: ]|^  (numpy|google.protobuf|mpi4py|xdist) ' \
      "$out/env.txt" 2>/dev/null
    grep -aE 'built in|cached: |Boost.Python for|protobuf pairing|headers from the bundle|shared libpython|error' \
      "$out/build.log" 2>/dev/null | head -n 12
    grep -aE 'device_query -gpu 0 failed|Check failed' "$out/smoke.log" 2>/dev/null | head -n 3
    grep -aE '^(has_nccl|new_uid bytes|mpirun):|Name|Major revision|Minor revision' "$out/smoke.log" 2>/dev/null
    for f in test_gpu tests; do
      [ -f "$out/$f.log" ] || continue
      echo "$f: $(grep -aE '^=+ .*(passed|failed|error|skipped).* in [0-9.]+s' "$out/$f.log" | tail -n1)"
      grep -aE '^(FAILED|ERROR|SKIPPED) ' "$out/$f.log" | head -n 12
    done
    if [ -f "$out/bench.log" ]; then echo; echo "bench (last lines):"; grep -av '^==' "$out/bench.log" | tail -n 25; fi
  } > "$out/summary.txt"
}

export here out
export -f mk environment build cp_logs smoke pytest_run
trap 'summary' EXIT
step env 45 env.txt environment
step build 240 build.log build || exit 1
step venv 60 venv.log mk venv || exit 1
step smoke 30 smoke.log smoke || exit 1
step test_gpu 150 test_gpu.log pytest_run tests/test_gpu.py || [ -n "${KEEP_GOING:-}" ] || exit 1
step tests 90 tests.log pytest_run tests/test_layers.py tests/test_mpi_train.py || [ -n "${KEEP_GOING:-}" ] || exit 1
step bench 90 bench.log mk bench-gpu || [ -n "${KEEP_GOING:-}" ] || exit 1
[ -z "$first_failure" ] || exit 1
