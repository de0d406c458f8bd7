#!/usr/bin/env bash
# tests/gpu/bridge_check.sh -- the libtorch bridge on a machine with an NVIDIA
# GPU and a CUDA-enabled Python torch (libtorch 2.x). Run from the repo root:
#     bash tests/gpu/bridge_check.sh [OUT_DIR]
# Builds trainer/torch/ alone against that torch (tests/gpu/bridge/, no MPI
# or HDF5 needed) with warnings as errors, runs test_model on the CPU and on
# cuda, compares parameter counts with torchvision when it is there, and
# measures training throughput on the GPU and on 2 CPU cores.
set -uo pipefail
out=${1:-${OUT:-/tmp/foldline-bridge-check}}
mkdir -p "$out"
log() { echo "bridge-check: $*" | tee -a "$out/summary.txt"; }
: > "$out/summary.txt"
py=${FOLDLINE_TORCH_PYTHON:-python3}
prefix=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)') || { log "FAIL: no Python torch"; exit 1; }
log "torch $($py -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())')"

t0=$(date +%s)
cmake -S tests/gpu/bridge -B build-bridge -DCMAKE_PREFIX_PATH="$prefix" > "$out/cmake.log" 2>&1 ||
  { tail -30 "$out/cmake.log"; log "FAIL: cmake"; exit 1; }
cmake --build build-bridge -j "$(nproc)" > "$out/build.log" 2>&1 ||
  { grep -E 'error|warning' -A5 "$out/build.log" | head -60 | tee -a "$out/summary.txt"; log "FAIL: build"; exit 1; }
log "built in $(( $(date +%s) - t0 )) s"

status=0
run() { # name, command...
  local name=$1; shift
  local t=$(date +%s)
  if "$@" > "$out/$name.log" 2>&1; then log "ok   $name ($(( $(date +%s) - t )) s)"; else log "FAIL $name"; tail -20 "$out/$name.log" | tee -a "$out/summary.txt"; status=1; fi
}
pin2=""; command -v taskset >/dev/null && pin2="taskset -c 0,1"   # the 2 cores of a laptop or CI
run test_model_cpu timeout 300 env FOLDLINE_TEST_DEVICE=cpu $pin2 ./build-bridge/test_model
run test_model_cuda timeout 300 env FOLDLINE_TEST_DEVICE=cuda ./build-bridge/test_model
if $py -c 'import torchvision' 2>/dev/null; then
  run torchvision $py tests/torch/test_torchvision.py ./build-bridge/model_params
fi
for args in "smallcnn 1 28 28 128 30 2 cpu" "resnet18 3 64 64 64 5 2 cpu" \
            "smallcnn 1 28 28 128 50 4 cuda" "resnet18 3 64 64 64 50 4 cuda" "resnet50 3 224 224 64 20 4 cuda"; do
  case $args in *" cpu") pin=$pin2 ;; *) pin="" ;; esac
  timeout 120 $pin ./build-bridge/bench_model $args 2>&1 | tee -a "$out/summary.txt"
done
[[ $status == 0 ]] && log "PASS" || log "FAIL"
exit $status
