#!/usr/bin/env bash
# Create .venv (if missing) and install vistr with its test tools. Safe to re-run.
# The packages are installed with uv where it can be had (installed into .venv itself from the
# package registry): on a 2-core machine it installs torch in ~20 s where pip takes ~60 s, most of
# a fresh setup. Without it (or with VISTR_SETUP_PIP=1) pip does the same job.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torch/torchvision pinned to the tested releases (any version in pyproject's range works).
PACKAGES=("torch==2.14.1" "torchvision==0.29.1")

install_with_uv() {
  [ -x .venv/bin/uv ] || .venv/bin/python -m pip install --quiet "uv>=0.4" || return 1
  # --compile-bytecode: what pip does by default; without it the first command of a fresh
  # setup spends seconds compiling torch's modules instead.
  .venv/bin/uv pip install --quiet --python .venv/bin/python --compile-bytecode "${PACKAGES[@]}" -e ".[dev]"
}

install_with_pip() {
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet "${PACKAGES[@]}"
  .venv/bin/python -m pip install --quiet -e ".[dev]"
}

if [ "${VISTR_SETUP_PIP:-0}" = 1 ]; then
  install_with_pip
elif ! install_with_uv; then
  echo "uv unavailable or failed: installing with pip instead" >&2
  install_with_pip
fi
echo "vistr installed in $(pwd)/.venv  (activate: source .venv/bin/activate)"
