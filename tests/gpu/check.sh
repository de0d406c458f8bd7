#!/usr/bin/env bash
# tests/gpu/check.sh -- the prepared check for a machine with an NVIDIA GPU and
# a CUDA-enabled Python torch. Run from the repo root:
#     bash tests/gpu/check.sh [OUT_DIR]
# It builds foldline against that torch's libtorch (torch.utils.cmake_prefix_path),
# with NCCL from CUDA_HOME or from pip's nvidia-nccl package, checks that the
# binary sees the GPU, and measures prep on this machine's cores (15,000
# synthetic 600x600 sketches -> 224, against the Pillow + multiprocessing loop).
# Where the machine lacks MPI/HDF5/libconfig, put the .deb files fetched by
# shared/gpu/fetch-debs.sh in .gpu-debs/ first: this script sources its env.sh.
set -euo pipefail
out=${1:-${OUT:-/tmp/foldline-gpu-check}}
mkdir -p "$out"
log() { echo "gpu-check: $*" | tee -a "$out/summary.txt"; }
: > "$out/summary.txt"

if [[ -f .gpu-debs/env.sh ]]; then
  export FOLDLINE_DEPS_QUIET=1
  # shellcheck disable=SC1091
  . .gpu-debs/env.sh
fi
py=${FOLDLINE_TORCH_PYTHON:-python3}
torch_prefix=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')
log "torch $($py -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())')"
if [[ -z ${NCCL_ROOT:-} ]]; then
  NCCL_ROOT=$($py -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null || true)
  export NCCL_ROOT
fi

t0=$(date +%s)
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix${CMAKE_PREFIX_PATH:+;$CMAKE_PREFIX_PATH}" \
  > "$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; log "FAIL: cmake"; exit 1; }
cmake --build build-gpu -j "$(nproc)" > "$out/build.log" 2>&1 || { grep -E 'error|Error' -A3 "$out/build.log" | head -40; log "FAIL: build"; exit 1; }
log "built in $(( $(date +%s) - t0 )) s: $(grep 'foldline: libtorch' "$out/cmake.log" | sed 's/^-- //')"
./build-gpu/foldline --version | tee -a "$out/summary.txt"
./build-gpu/foldline --version | grep -q 'CUDA on, [1-9]' || { log "FAIL: the binary does not see a GPU"; exit 1; }

# prep throughput on every core of this machine
bench=/tmp/foldline-gpu-bench
if [[ ! -f $bench/src/test.csv ]]; then
  mkdir -p "$bench/src" && $py tests/bench/make_sketches.py "$bench/src" 15000 1000 600
fi
rm -f "$bench"/*.h5
./build-gpu/foldline prep "$bench/src" "$bench/foldline.h5" --size 224 | tee -a "$out/summary.txt"
$py tests/bench/prep_baseline.py "$bench/src" "$bench/baseline.h5" 224 "$(nproc)" | tee -a "$out/summary.txt"
log "PASS"
