#!/bin/sh
# Refresh requirements/cpu.lock: resolve pyproject's ranges (extras: dev) in a clean venv on top of
# the CPU build of torch, then freeze every installed version. `make install` and CI install from it,
# so a fresh clone gets the versions the suite last passed with.
set -e
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
OUT=${1:-requirements/cpu.lock}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
TORCH_VERSION=$TORCH_VERSION sh scripts/install_torch.sh "$tmp/venv/bin/python"
"$tmp/venv/bin/python" -m pip install --quiet '.[dev]'
{
    echo "# itero's tested environment: every package 'make install' and CI install, pinned."
    echo "# Made by 'make lock' (scripts/lock.sh) on $(date -u +%Y-%m-%d) with $("$tmp/venv/bin/python" --version)."
    echo "# torch is the CPU build (installed first by scripts/install_torch.sh); the rest comes from PyPI."
    # itero itself is installed editable on top; the local '+cpu' label is the wheel's build, not a version
    "$tmp/venv/bin/python" -m pip freeze --exclude itero | sed -e 's/^torch==\([0-9.]*\)+cpu$/torch==\1/'
} > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "wrote $OUT ($(grep -vc '^#' "$OUT") packages)"
