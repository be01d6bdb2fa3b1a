#!/usr/bin/env bash
# One set-up path for everything (make demo, make test, CI): creates .venv and installs the stack.
#
# Idempotent: a stamp records the hash of what was installed; a second run with nothing changed
# returns in well under a second. Safe to interrupt: every step is re-runnable, and the slow one
# (building mmcv with its compiled ops, ~10 min on 2 cores) caches its wheel outside the repo,
# moved into place only once complete, so an interrupted build never leaves a half wheel behind.
#
# On a CUDA machine (an NVIDIA driver answers `nvidia-smi -L`; HSFPN_DEVICE=cuda|cpu overrides the detection)
# mmcv's ops are compiled for CUDA as well, which needs no GPU but the CUDA toolkit: nvcc from CUDA_HOME, from
# PATH or in /usr/local/cuda, of torch's CUDA major version. Without one, setup stops at once with one line.
# `bash scripts/setup.sh --check-cuda` runs only that detection and check.
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
# Where a CUDA toolkit is looked for when neither CUDA_HOME nor nvcc on PATH names one.
CUDA_DEFAULT_HOME="${HSFPN_CUDA_DEFAULT_HOME:-/usr/local/cuda}"
# Headers that torch's CUDA headers include; a minimal toolkit (nvcc and the runtime) lacks them.
CUDA_LIBRARY_HEADERS=(cublas_v2.h cusparse.h cusolverDn.h curand.h)

CHECK_CUDA_ONLY=0
case "${1:-}" in
  "") ;;
  --check-cuda) CHECK_CUDA_ONLY=1 ;;
  *) echo "usage: bash scripts/setup.sh [--check-cuda]" >&2; exit 2 ;;
esac

say() { printf '[setup] %s\n' "$*" >&2; }
fail() { say "FAILED at step '$1'. Full log: $2"; tail -n 25 "$2" >&2 || true; exit 1; }
stop() { say "FAILED: $*"; exit 1; }  # one line, before or between steps
step() {  # step NAME CMD... : runs CMD with its output in a per-step log
  local name="$1"; shift
  local log="$LOGDIR/${name}.log"
  say "$name ..."
  if ! "$@" >"$log" 2>&1; then fail "$name" "$log"; fi
}

# CUDA is used when a driver is visible; otherwise the CPU build of torch and of mmcv's ops.
case "${HSFPN_DEVICE:-}" in
  "")
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      DEVICE_TAG="cuda"; FORCE_CUDA=1
    else
      DEVICE_TAG="cpu"; FORCE_CUDA=0
    fi ;;
  cpu) DEVICE_TAG="cpu"; FORCE_CUDA=0 ;;
  cuda) DEVICE_TAG="cuda"; FORCE_CUDA=1 ;;
  *) stop "HSFPN_DEVICE must be cpu or cuda (or unset to detect), got '$HSFPN_DEVICE'" ;;
esac

# The toolkit's root: CUDA_HOME as given, else the one of nvcc on PATH (asked from nvcc itself, since
# /usr/local/bin/nvcc may be a wrapper script), else CUDA_DEFAULT_HOME. Prints nothing when there is none.
find_cuda_home() {
  if [[ -n "${CUDA_HOME:-}" ]]; then
    [[ -x "$CUDA_HOME/bin/nvcc" ]] && echo "$CUDA_HOME"
    return 0
  fi
  local nvcc here
  if nvcc="$(command -v nvcc 2>/dev/null)"; then
    here="$("$nvcc" -dryrun -E -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ _HERE_=//p' | head -n 1)"
    [[ -n "$here" ]] || here="$(dirname "$(readlink -f "$nvcc")")"
    [[ -x "$here/nvcc" ]] && { (cd "$here/.." && pwd); return 0; }
  fi
  [[ -x "$CUDA_DEFAULT_HOME/bin/nvcc" ]] && (cd "$CUDA_DEFAULT_HOME" && pwd -P)
  return 0
}

# Compute capabilities of current data-centre GPUs (A100 8.0, H100/H200 9.0, B200 10.0, the last from CUDA 12.8).
default_arch_list() {
  local major="${1%%.*}" minor="${1#*.}"
  if (( major > 12 || (major == 12 && minor >= 8) )); then echo "8.0;9.0;10.0"; else echo "8.0;9.0"; fi
}

ARCH_TAG=""
if [[ "$DEVICE_TAG" == "cuda" ]]; then
  GIVEN_CUDA_HOME="${CUDA_HOME:-}"
  CUDA_HOME="$(find_cuda_home)"
  if [[ -z "$CUDA_HOME" ]]; then
    where="no nvcc on PATH, none in $CUDA_DEFAULT_HOME"
    [[ -z "$GIVEN_CUDA_HOME" ]] || where="CUDA_HOME=$GIVEN_CUDA_HOME has no bin/nvcc"
    stop "a CUDA GPU is visible but no CUDA toolkit ($where): mmcv's CUDA ops are compiled here, so install the toolkit of torch's CUDA version and set CUDA_HOME, or set HSFPN_DEVICE=cpu for the CPU ops"
  fi
  NVCC_RELEASE="$("$CUDA_HOME/bin/nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1)"
  [[ -n "$NVCC_RELEASE" ]] || stop "$CUDA_HOME/bin/nvcc --version names no release"
  export CUDA_HOME
  export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$(default_arch_list "$NVCC_RELEASE")}"
  ARCH_TAG="-sm$(echo "$TORCH_CUDA_ARCH_LIST" | tr -d '.+ ' | tr ';' '-')"
  say "CUDA build: nvcc $NVCC_RELEASE in $CUDA_HOME, TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
elif (( CHECK_CUDA_ONLY )); then
  say "CPU build: no NVIDIA driver answers 'nvidia-smi -L'"
fi
(( CHECK_CUDA_ONLY )) && exit 0

command -v "$PYTHON" >/dev/null 2>&1 || { say "FAILED: $PYTHON not found (Python 3.11 is required; set PYTHON=...)"; exit 1; }

want_hash="$( { cat "$PINS_FILE" "$ROOT/pyproject.toml" "$0"; echo "$DEVICE_TAG$ARCH_TAG"; } | sha256sum | cut -c1-16)"
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

BUILD_ENV=(MMCV_WITH_OPS=1 FORCE_CUDA="$FORCE_CUDA" MAX_JOBS="${MAX_JOBS:-$(nproc)}")
if [[ "$DEVICE_TAG" == "cuda" ]]; then
  TORCH_CUDA="$("$VENV/bin/python" -c 'import torch; print(torch.version.cuda or "")')"
  [[ -n "$TORCH_CUDA" ]] || stop "the installed torch $TORCH_VERSION is a CPU build, and mmcv's CUDA ops need its CUDA build: the package index served the CPU one (install torch==$TORCH_VERSION with CUDA into $VENV, then run setup again)"
  [[ "${TORCH_CUDA%%.*}" == "${NVCC_RELEASE%%.*}" ]] || stop "torch was built with CUDA $TORCH_CUDA but nvcc in $CUDA_HOME is $NVCC_RELEASE: set CUDA_HOME to a CUDA ${TORCH_CUDA%%.*}.x toolkit"
  # torch's CUDA wheels bring the cuBLAS/cuSPARSE/cuSOLVER/cuRAND headers in their nvidia-* packages
  # (nvidia/cu13/include, or one folder per library for CUDA 12): point the compiler there when the
  # toolkit itself lacks them (a minimal toolkit: 'fatal error: cusparse.h: No such file or directory').
  INCLUDES=("$CUDA_HOME/include")
  while IFS= read -r dir; do INCLUDES+=("$dir"); done < <("$VENV/bin/python" - <<'PY'
import glob, os, sysconfig
for root in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
    for inc in sorted(glob.glob(os.path.join(root, "nvidia", "*", "include"))):
        print(inc)
PY
  )
  CPATH_ADD=""
  for header in "${CUDA_LIBRARY_HEADERS[@]}"; do
    found=""
    for dir in "${INCLUDES[@]}"; do [[ -f "$dir/$header" ]] && { found="$dir"; break; }; done
    [[ -n "$found" ]] || stop "$header is neither in $CUDA_HOME/include nor in torch's nvidia-* packages: install the CUDA toolkit's math libraries (cuBLAS, cuSPARSE, cuSOLVER, cuRAND) with their headers"
    [[ "$found" == "$CUDA_HOME/include" || ":$CPATH_ADD:" == *":$found:"* ]] || CPATH_ADD="${CPATH_ADD:+$CPATH_ADD:}$found"
  done
  if [[ -n "$CPATH_ADD" ]]; then
    say "CUDA: the toolkit lacks the math libraries' headers; using those of torch's packages: $CPATH_ADD"
    BUILD_ENV+=(CPATH="$CPATH_ADD${CPATH:+:$CPATH}")
  fi
fi

# mmcv 2.1.0 has no wheel for this torch: build it from the sdist once, cache the wheel by the ABI it
# was built against (python, torch, device and, for CUDA, the compute capabilities), and install from the
# cache on every later run.
PY_TAG="$("$VENV/bin/python" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')"
TORCH_TAG="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.replace("+", "_"))')"
CUDA_TAG="$("$VENV/bin/python" -c 'import torch; print("cu" + torch.version.cuda.replace(".", "") if torch.version.cuda else "cpu")')"
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-$PY_TAG-torch$TORCH_TAG-$CUDA_TAG$ARCH_TAG"
if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
  say "building mmcv $MMCV_VERSION with its ops (one time, about 10 minutes on 2 cores; log: $LOGDIR/mmcv-build.log)"
  mkdir -p "$CACHE/wheels"
  tmp="$(mktemp -d "$CACHE/wheels/.building.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  # mmcv's setup.py imports pkg_resources, which setuptools >= 80 no longer ships, while torch
  # requires a newer setuptools at run time: downgrade for the build only, then restore.
  step build-setuptools "${PIP[@]}" install "setuptools<70"
  step mmcv-build env "${BUILD_ENV[@]}" \
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
# Where torchvision's compiled ops cannot load beside this torch (the index's CUDA torchvision beside the CPU
# torch), its import fails outright, and MMEngine's runner imports it: scripts/torchvision_guard.py, imported at
# start-up through a .pth line, makes that import work. Installed only where the import fails.
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
rm -f "$SITE/hsfpn_torchvision_guard.pth" "$SITE/hsfpn_torchvision_guard.py"
if ! "$VENV/bin/python" -c "import torchvision" >/dev/null 2>&1; then
  cp "$ROOT/scripts/torchvision_guard.py" "$SITE/hsfpn_torchvision_guard.py"
  echo "import hsfpn_torchvision_guard" > "$SITE/hsfpn_torchvision_guard.pth"
  say "torchvision's compiled ops do not load beside this torch: installed its import guard (scripts/torchvision_guard.py)"
fi
# The extras too, torchvision as MMEngine's runner imports it, and torch still the pinned build (no requirement
# above may have replaced it).
step check "$VENV/bin/python" -c "import mmcv.ops, mmdet, mmengine, torch_dct, cv2, shapely, typer, pandas, numba; from mmcv.ops import nms
import torch, torchvision, onnx, onnxruntime, onnxscript
from mmengine.utils.dl_utils import collect_env
assert collect_env()['TorchVision'] == torchvision.__version__
assert torch.__version__.split('+')[0] == '$TORCH_VERSION', torch.__version__"

echo "$want_hash" > "$STAMP"
say "done: $VENV"
