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
if [ ! -x "$venv/bin/python" ]; then
  echo "setup_venv: creating $venv" >&2
  /usr/bin/python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip >&2
"$venv/bin/python" -m pip install -q -r "$here/requirements.txt" >&2
"$venv/bin/python" -m pip install -q --no-deps -e "$here" >&2

site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
pydir="$prefix/$(cat "$prefix/PYTHONDIR")"
echo "$pydir" > "$site/caffe.pth"

# The stock tools, with the venv visible to Python layers.
launcher() {
  cat <<EOF
#!/bin/sh
# Stock Caffe's $1 from $prefix, with .venv, python_layers/ and pycaffe on the
# embedded Python's path (written by scripts/setup_venv.sh).
PYTHONPATH="$site:$here/python_layers:$pydir\${PYTHONPATH:+:\$PYTHONPATH}"
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
