#!/usr/bin/env bash
# torch2.sh -- developer script: foldline built against PyPI's torch 2.x (a CUDA build) in
# build-torch2/, the second build that CI tests (tools/test.sh). Not a user launcher: demo.sh and
# test.sh keep building against Debian's libtorch 1.13 in build/.
#
#   bash tools/torch2.sh        make the virtual environment if missing, configure and build
#   bash tools/torch2.sh --venv only the virtual environment; prints its python (for export_timm.py)
#
# 1. A virtual environment outside the repository (FOLDLINE_TORCH2_VENV, default
#    ${XDG_CACHE_HOME:-$HOME/.cache}/foldline/venv-torch2) with the pinned torch, timm and the CUDA
#    compiler of torch's own CUDA (cuda-toolkit[nvcc], PyPI): several GB, made once, in a temporary
#    folder renamed into place, and made again when the pins below change.
# 2. cuda/ in it: a CUDA toolkit layout over the nvidia-* wheels (bin, include, lib64 links), so that
#    the build compiles and links the CUDA runtime torch loads, on machines with no CUDA installed.
# 3. cmake with torch.utils.cmake_prefix_path, FOLDLINE_NCCL=ON (the NCCL of the nvidia-nccl wheel,
#    the one libtorch_cuda.so loads), and the build of every target.
#
#   FOLDLINE_TORCH2_VENV       the virtual environment (above)
#   FOLDLINE_TORCH2_BUILD_DIR  build folder (default: build-torch2)
#   FOLDLINE_BUILD_DIR         the libtorch 1.13 build the comparing tests run against (default: build)
#   FOLDLINE_TORCH2_PYTHON     the Python that makes the environment (default: python3; Debian's
#                              needs python3-venv)
#
# Exit status 0: built; 77: skipped, because PyPI cannot be reached and there is no environment yet
# (one line says so); anything else: a failure.
set -euo pipefail

TORCH_PIN=2.15.0        # PyPI's torch (CUDA 13 build, nvidia-nccl-cu13 2.30)
TORCHVISION_PIN=0.29.2  # timm's dependency, the one matching torch 2.15
TIMM_PIN=1.0.31
CUDA_PIN=13.2.2         # cuda-toolkit[nvcc]: the CUDA torch 2.15 was built with (its cuda-toolkit pin)
PINS="torch==$TORCH_PIN torchvision==$TORCHVISION_PIN timm==$TIMM_PIN cuda-toolkit[nvcc]==$CUDA_PIN"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${FOLDLINE_TORCH2_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/foldline/venv-torch2}
build=${FOLDLINE_TORCH2_BUILD_DIR:-$root/build-torch2}
ref=${FOLDLINE_BUILD_DIR:-$root/build}
say() { echo "foldline torch2: $*" >&2; }

# ---- 1. the virtual environment -------------------------------------------------------------
if [[ ! -f $venv/.foldline-pins || $(cat "$venv/.foldline-pins") != "$PINS" ]]; then
  base=${FOLDLINE_TORCH2_PYTHON:-python3}
  mkdir -p "$(dirname "$venv")"
  tmp="$venv.tmp.$$"
  rm -rf "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  t0=$(date +%s)
  "$base" -m venv "$tmp" || { say "$base -m venv failed HINT: apt-get install python3-venv"; exit 1; }
  if ! out=$(timeout 120 "$tmp/bin/python" -m pip index versions torch 2>&1); then
    say "skipped: PyPI cannot be reached (pip index versions torch: $(echo "$out" | grep -v WARNING | tail -1)) HINT: run tools/torch2.sh where PyPI (or a pip mirror in pip.conf) is reachable, or set FOLDLINE_TORCH2_VENV to an environment with $PINS"
    exit 77
  fi
  say "making $venv with $PINS (several GB, minutes)"
  # shellcheck disable=SC2086
  "$tmp/bin/python" -m pip install -q --disable-pip-version-check $PINS
  # A CUDA toolkit layout over the wheels, relative links so that the rename keeps them.
  site=$("$tmp/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  rel=${site#"$tmp"/}
  cu="$site/nvidia/cu13"
  [[ -x $cu/bin/nvcc ]] || { say "no nvcc in $cu/bin after pip install cuda-toolkit[nvcc]"; exit 1; }
  mkdir -p "$tmp/cuda/lib64"
  for d in bin include nvvm; do ln -s "../$rel/nvidia/cu13/$d" "$tmp/cuda/$d"; done
  for f in "$cu"/lib/*.so.* "$cu"/lib/*.a; do
    b=$(basename "$f")
    ln -sf "../../$rel/nvidia/cu13/lib/$b" "$tmp/cuda/lib64/$b"
    [[ $b == *.so.* ]] && ln -sf "$b" "$tmp/cuda/lib64/${b%%.so.*}.so"
  done
  echo "$PINS" > "$tmp/.foldline-pins"
  rm -rf "$venv.old"
  [[ -e $venv ]] && mv "$venv" "$venv.old"
  mv "$tmp" "$venv"
  rm -rf "$venv.old"
  trap - EXIT
  say "made $venv in $(( $(date +%s) - t0 )) s"
fi
py=$venv/bin/python
if [[ ${1:-} == --venv ]]; then
  echo "$py"
  exit 0
fi

# ---- 2. configure and build -----------------------------------------------------------------
prefix=$("$py" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
cuda=$venv/cuda
t0=$(date +%s)
mkdir -p "$build"
# CUDA_HOME and /usr/local/cuda stay out of it: the compiler, headers and runtime are torch's own.
env -u CUDA_HOME -u CUDA_PATH -u NCCL_ROOT -u NCCL_HOME CUDAToolkit_ROOT="$cuda" \
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE:-Release} \
  -DCMAKE_PREFIX_PATH="$prefix" -DCUDA_TOOLKIT_ROOT_DIR="$cuda" -DCMAKE_CUDA_COMPILER="$cuda/bin/nvcc" \
  -DFOLDLINE_NCCL=ON -DFOLDLINE_TORCH_PYTHON="$py" -DFOLDLINE_REFERENCE_BUILD="$ref" \
  > "$build/torch2-cmake.log" 2>&1 || { tail -30 "$build/torch2-cmake.log" >&2; say "cmake failed (log: $build/torch2-cmake.log)"; exit 1; }
grep -q 'foldline: libtorch 2\..*(CUDA ON), NCCL backend ON' "$build/torch2-cmake.log" ||
  { grep 'foldline:' "$build/torch2-cmake.log" >&2; say "expected libtorch 2.x with CUDA and the NCCL backend"; exit 1; }
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" > "$build/torch2-build.log" 2>&1 ||
  { grep -E 'error|Error' -A5 "$build/torch2-build.log" | head -60 >&2; say "build failed (log: $build/torch2-build.log)"; exit 1; }
say "built $build in $(( $(date +%s) - t0 )) s: $(grep 'foldline: libtorch' "$build/torch2-cmake.log" | sed 's/^-- foldline: //')"
