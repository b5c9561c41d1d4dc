#!/usr/bin/env bash
# Create or reuse the checkout's virtual environment and install the project into it.
#   scripts/setup_env.sh core   # train, test, the quickstart (pyproject.toml's core dependencies)
#   scripts/setup_env.sh dev    # everything the checks need (the `dev` group: all groups, pytest, ruff, mypy)
# Idempotent: a stamp in the environment records what was installed (the group and a hash of pyproject.toml
# and the Python version), so a second run with nothing changed installs nothing and takes about a second.
# Environment: VENV (default .venv), PYTHON (default python3), TORCH_SPEC (e.g. "torch==2.14.1 torchvision==0.29.1"),
# TORCH_INDEX (default PyTorch's CPU index where no NVIDIA GPU is present; "pypi" to skip it).
set -euo pipefail
cd "$(dirname "$0")/.."

GROUP=${1:-core}
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch torchvision}
CPU_INDEX=https://download.pytorch.org/whl/cpu

say() { echo "[setup] $*"; }
die() { echo "error: $*" >&2; exit 1; }

case "$GROUP" in core | dev) ;; *) die "scripts/setup_env.sh: unknown group '$GROUP'; use core or dev" ;; esac
command -v "$PYTHON" > /dev/null || die "$PYTHON not found; install Python 3.10 or newer (or set PYTHON=/path/to/python3)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "$("$PYTHON" --version 2>&1) is too old; the project needs Python 3.10 or newer (set PYTHON=/path/to/python3.10+)"

if [ ! -x "$VENV/bin/python" ]; then
  say "creating the virtual environment $VENV"
  "$PYTHON" -m venv "$VENV" || die "could not create $VENV; on Debian/Ubuntu: apt-get install python3-venv"
fi
PY="$VENV/bin/python"

# What this run would install; the dev group includes the core, so a dev stamp satisfies core too.
fingerprint() { cat pyproject.toml "$VENV/pyvenv.cfg" | "$PY" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'; }
STAMP_DEV="$VENV/.pix2pixhd-dev"
STAMP="$VENV/.pix2pixhd-$GROUP"
FINGERPRINT=$(fingerprint)
for stamp in "$STAMP" "$STAMP_DEV"; do
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$FINGERPRINT" ]; then
    say "$VENV is up to date ($GROUP); nothing to install"
    exit 0
  fi
done

PIP=("$PY" -m pip --disable-pip-version-check)
reachable() {  # reachable URL: answers within 10 s (a quick look first, so an unreachable index costs no pip retries)
  "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' "$1" > /dev/null 2>&1
}
if ! "$PY" -c 'import torch, torchvision' 2> /dev/null; then
  # shellcheck disable=SC2206  # TORCH_SPEC is a list of requirement specifiers
  TORCH_PACKAGES=($TORCH_SPEC)
  INDEX=${TORCH_INDEX:-$CPU_INDEX}
  if command -v nvidia-smi > /dev/null || [ "$(uname -s)" != Linux ] || [ "$INDEX" = pypi ]; then
    # An NVIDIA GPU wants PyPI's CUDA build; macOS and Windows wheels on PyPI are already the CPU build.
    say "installing ${TORCH_PACKAGES[*]} from PyPI"
    "${PIP[@]}" install --quiet "${TORCH_PACKAGES[@]}"
  elif reachable "$INDEX/"; then
    say "no NVIDIA GPU: installing the CPU build of ${TORCH_PACKAGES[*]} from $INDEX"
    "${PIP[@]}" install --quiet --index-url "$INDEX" "${TORCH_PACKAGES[@]}"
  else
    say "note: $INDEX (PyTorch's CPU builds) is not reachable; installing ${TORCH_PACKAGES[*]} from PyPI instead (on Linux the CUDA build, ~4.8 GB)"
    "${PIP[@]}" install --quiet "${TORCH_PACKAGES[@]}"
  fi
  # torch and torchvision from different builds import one by one but not together (torchvision's operators fail).
  "$PY" -c 'import torch, torchvision' 2> /dev/null \
    || die "the installed torch and torchvision do not work together ($("$PY" -m pip list 2> /dev/null | grep -E '^torch(vision)? ' | tr -s ' ' | paste -sd, -)); remove $VENV and run again, or install a matching pair by hand (README, Install)"
fi

if [ "$GROUP" = dev ]; then
  say "installing the project with every group and the development tools (pip install -e '.[dev]')"
  "${PIP[@]}" install --quiet -e '.[dev]'
else
  say "installing the project (pip install -e .)"
  "${PIP[@]}" install --quiet -e .
fi
echo "$FINGERPRINT" > "$STAMP"
say "$VENV is ready ($GROUP)"
