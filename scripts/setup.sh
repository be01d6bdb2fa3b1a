#!/usr/bin/env bash
# One set-up path for everything (make demo, make test, CI): creates .venv and installs the stack.
#
# Idempotent: a stamp records the hash of what was installed; a second run with nothing changed
# returns in well under a second. Safe to interrupt: every step is re-runnable, and the slow one
# (building mmcv with its compiled ops, ~10 min on 2 cores) caches its wheel outside the repo,
# moved into place only once complete, so an interrupted build never leaves a half wheel behind.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3.11}"
VENV="${VENV:-$ROOT/.venv}"
CACHE="${HSFPN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hsfpn-toolkit}"
LOGDIR="$VENV/setup-logs"

TORCH_VERSION="2.13.0"
MMCV_VERSION="2.1.0"
PINS_FILE="$ROOT/requirements/pins.txt"
STAMP="$VENV/.hsfpn-setup-stamp"

say() { printf '[setup] %s\n' "$*" >&2; }
fail() { say "FAILED at step '$1'. Full log: $2"; tail -n 25 "$2" >&2 || true; exit 1; }
step() {  # step NAME CMD... : runs CMD with its output in a per-step log
  local name="$1"; shift
  local log="$LOGDIR/${name}.log"
  say "$name ..."
  if ! "$@" >"$log" 2>&1; then fail "$name" "$log"; fi
}

command -v "$PYTHON" >/dev/null 2>&1 || { say "FAILED: $PYTHON not found (Python 3.11 is required; set PYTHON=...)"; exit 1; }

# CUDA is used when a driver is visible; otherwise the CPU build of torch and of mmcv's ops.
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  DEVICE_TAG="cuda"; FORCE_CUDA=1
else
  DEVICE_TAG="cpu"; FORCE_CUDA=0
fi

want_hash="$( { cat "$PINS_FILE" "$ROOT/pyproject.toml" "$0"; echo "$DEVICE_TAG"; } | sha256sum | cut -c1-16)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want_hash" && -x "$VENV/bin/python" ]]; then
  exit 0  # already set up with exactly these pins
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
mkdir -p "$LOGDIR"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

step build-tools "${PIP[@]}" install wheel ninja "numpy==2.4.6" packaging
# Pinned: on a CPU machine the index serves this version as a local CPU wheel; a bare 'torch' would
# pull the newest CUDA build and several GB with it.
step torch "${PIP[@]}" install "torch==$TORCH_VERSION"

# mmcv 2.1.0 has no wheel for this torch: build it from the sdist once, cache the wheel by the ABI it
# was built against (python, torch, device), and install from the cache on every later run.
PY_TAG="$("$VENV/bin/python" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')"
TORCH_TAG="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.replace("+", "_"))')"
CUDA_TAG="$("$VENV/bin/python" -c 'import torch; print("cu" + torch.version.cuda.replace(".", "") if torch.version.cuda else "cpu")')"
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-$PY_TAG-torch$TORCH_TAG-$CUDA_TAG"
if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
  say "building mmcv $MMCV_VERSION with its ops (one time, about 10 minutes on 2 cores; log: $LOGDIR/mmcv-build.log)"
  mkdir -p "$CACHE/wheels"
  tmp="$(mktemp -d "$CACHE/wheels/.building.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  # mmcv's setup.py imports pkg_resources, which setuptools >= 80 no longer ships, while torch
  # requires a newer setuptools at run time: downgrade for the build only, then restore.
  step build-setuptools "${PIP[@]}" install "setuptools<70"
  step mmcv-build env MMCV_WITH_OPS=1 FORCE_CUDA="$FORCE_CUDA" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    "${PIP[@]}" wheel --no-build-isolation --no-deps --no-binary mmcv -w "$tmp" "mmcv==$MMCV_VERSION"
  rm -rf "$WHEEL_DIR"
  mv "$tmp" "$WHEEL_DIR"   # atomic on one filesystem: the cache holds a whole wheel or none
  trap - EXIT
else
  say "mmcv: reusing cached wheel $(ls "$WHEEL_DIR"/mmcv-*.whl)"
fi
# Also after an interrupted build, which may have left the old setuptools in place.
step runtime-setuptools "${PIP[@]}" install "setuptools>=77.0.3"
step mmcv-install "${PIP[@]}" install "$WHEEL_DIR"/mmcv-*.whl -r "$PINS_FILE"
step project "${PIP[@]}" install --no-deps --no-build-isolation -e "$ROOT"
step check "$VENV/bin/python" -c "import mmcv.ops, mmdet, mmengine, torch_dct, cv2, shapely, typer, pandas, numba; from mmcv.ops import nms"

echo "$want_hash" > "$STAMP"
say "done: $VENV"
