#!/usr/bin/env bash
# deps.sh -- install what foldline needs on Debian 12 (or a recent Ubuntu) and
# build it into build/. Sourced by demo.sh and test.sh; safe to run again:
# apt-get runs only when a package is missing, and the build is incremental.
#
#   FOLDLINE_BUILD_DIR   build folder (default: build)
#   FOLDLINE_WITH_TESTS  1: also install the test oracles (numpy, h5py, Pillow, scikit-learn, OpenCV),
#                        SLURM (slurm-wlm, munge) for tests/slurm, clang, and python3-venv for the
#                        torch 2.x build (tools/torch2.sh), and build the fuzz and sanitizer tests
#                        (FOLDLINE_SANITIZE=ON)
#   CMAKE_PREFIX_PATH    another libtorch (CUDA, pip torch) instead of Debian's
set -euo pipefail

FOLDLINE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FOLDLINE_BUILD_DIR=${FOLDLINE_BUILD_DIR:-$FOLDLINE_ROOT/build}

packages=(
  build-essential cmake pkg-config
  libtorch-dev            # libtorch 1.13 (CPU); a CUDA libtorch comes in through CMAKE_PREFIX_PATH
  libopenblas0-pthread    # without it libtorch falls back to the reference BLAS (about 30x slower)
  libopenmpi-dev openmpi-bin
  libhdf5-dev libconfig-dev libjpeg-dev libpng-dev zlib1g-dev
  dataset-fashion-mnist   # the demo's data
)
cmake_args=()
if [[ ${FOLDLINE_WITH_TESTS:-0} == 1 ]]; then
  packages+=(python3 python3-numpy python3-h5py python3-pil python3-sklearn
             python3-torch python3-torchvision   # the ResNets' oracle and TorchScript modules (tests/torch/)
             python3-opencv                      # OpenCV: the augmentation ops' oracle (tests/augment/)
             slurm-wlm munge                     # a one-node SLURM that tests/slurm starts itself
             iproute2 util-linux                 # the test hosts: network namespaces (ip netns), unshare, nsenter
             chromium                            # renders report.html headless (tests/vote/test_report_html.py)
             clang libclang-rt-14-dev            # libFuzzer and the sanitizers (tests/sanitize/)
             clang-format-14                     # the format check (tools/check_format.sh)
             python3-venv python3-pip            # the TensorBoard reader's virtual environment (below)
             ca-certificates)                    # and tools/torch2.sh's (PyPI's torch 2.x) over HTTPS
  cmake_args+=(-DFOLDLINE_SANITIZE=ON)
fi

missing=()
for p in "${packages[@]}"; do
  [[ $p == \#* ]] && continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  sudo=""
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { echo "foldline: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  echo "foldline: installing ${missing[*]}" >&2
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# libtorch uses whatever libblas.so.3 points to; make sure that is OpenBLAS.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
if [[ -n $blas && $blas != *openblas* ]]; then
  echo "foldline: warning: libblas.so.3 is $blas, not OpenBLAS; matrix products will be slow" >&2
  echo "  HINT: update-alternatives --config libblas.so.3-x86_64-linux-gnu" >&2
fi

# tests/train/test_tfevents.py reads the events files with the PyPI tensorboard, kept in a
# virtual environment outside the repository (made once; a failure here only skips that test).
if [[ ${FOLDLINE_WITH_TESTS:-0} == 1 ]]; then
  tb_venv="${XDG_CACHE_HOME:-$HOME/.cache}/foldline/venv-tb"
  if ! "$tb_venv/bin/python" -c 'import tensorboard' 2>/dev/null; then
    python3 -m venv "$tb_venv" && "$tb_venv/bin/python" -m pip install -q "tensorboard==2.21.0" ||
      echo "foldline: warning: could not install tensorboard in $tb_venv (PyPI unreachable?): train_tfevents will be skipped" >&2
  fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$FOLDLINE_ROOT" -B "$FOLDLINE_BUILD_DIR" -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE:-Release} "${cmake_args[@]}" >/dev/null
cmake --build "$FOLDLINE_BUILD_DIR" -j "$jobs" >/dev/null
export FOLDLINE="$FOLDLINE_BUILD_DIR/foldline"

# Open MPI refuses root unless told; tests and the demo may run as root.
if [[ $(id -u) == 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
