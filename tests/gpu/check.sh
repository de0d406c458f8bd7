#!/usr/bin/env bash
# tests/gpu/check.sh -- the prepared check for a machine with an NVIDIA GPU and a
# CUDA-enabled Python torch (libtorch 2.x). Run from the repo root:
#     bash tests/gpu/check.sh [OUT_DIR]
# 1. builds foldline and its tests against that torch's libtorch
#    (torch.utils.cmake_prefix_path), with NCCL from CUDA_HOME or pip's nvidia-nccl
# 2. checks the binary sees the GPU; runs the bridge's unit tests on the CPU and on
#    cuda, and the torchvision oracle when torchvision is there
#    and the augmentation ops on cuda against OpenCV when that python has cv2
# 3. model throughput on the GPU (smallcnn, resnet18, resnet50)
# 4. a short fold run on the GPU: synthetic sketches -> prep -> train (resnet18,
#    2 folds, 2 epochs, flips, rotation, elastic and grid distortion) -> vote
# 5. fold-fused training of a frozen ResNet-18 (tests/bench/fused_bench.sh) on the GPU
# 6. prep throughput on every core (15,000 600x600 JPEGs -> 224) against Pillow
# Where the machine lacks MPI/HDF5/libconfig, put Debian's .deb files and a script that
# unpacks them in .gpu-debs/ first (docs/gpus.md): this script sources .gpu-debs/env.sh.
set -uo pipefail
out=${1:-${OUT:-/tmp/foldline-gpu-check}}
mkdir -p "$out"
log() { echo "gpu-check: $*" | tee -a "$out/summary.txt"; }
: > "$out/summary.txt"
status=0
step() { # name, command...: run, log ok/FAIL with the time and the tail of a failure
  local name=$1 t; shift
  t=$(date +%s)
  if "$@" > "$out/$name.log" 2>&1; then log "ok   $name ($(( $(date +%s) - t )) s)"
  else log "FAIL $name"; tail -25 "$out/$name.log" | tee -a "$out/summary.txt"; status=1; fi
}

if [[ -f .gpu-debs/env.sh ]]; then
  export FOLDLINE_DEPS_QUIET=1
  # shellcheck disable=SC1091
  . .gpu-debs/env.sh
fi
py=${FOLDLINE_TORCH_PYTHON:-python3}
torch_prefix=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)') || { log "FAIL: no Python torch"; exit 1; }
log "torch $($py -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())')"
if [[ -z ${NCCL_ROOT:-} ]]; then
  NCCL_ROOT=$($py -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null || true)
  export NCCL_ROOT
fi

t0=$(date +%s)
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix${CMAKE_PREFIX_PATH:+;$CMAKE_PREFIX_PATH}" \
  > "$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; log "FAIL: cmake"; exit 1; }
cmake --build build-gpu -j "$(nproc)" > "$out/build.log" 2>&1 ||
  { grep -E 'error|warning' -A5 "$out/build.log" | head -60 | tee -a "$out/summary.txt"; log "FAIL: build"; exit 1; }
log "built in $(( $(date +%s) - t0 )) s: $(grep 'foldline: libtorch' "$out/cmake.log" | sed 's/^-- //')"
fl=./build-gpu/foldline
$fl --version | tee -a "$out/summary.txt"
$fl --version | grep -q 'CUDA built, [1-9]' || { log "FAIL: the binary does not see a GPU"; exit 1; }

pin2=""; command -v taskset >/dev/null && pin2="taskset -c 0,1"
step test_model_cpu timeout 300 env FOLDLINE_TEST_DEVICE=cpu $pin2 ./build-gpu/test_model
step test_model_cuda timeout 300 env FOLDLINE_TEST_DEVICE=cuda ./build-gpu/test_model
step nccl_step timeout 120 ./build-gpu/nccl_step
if $py -c 'import torchvision' 2>/dev/null; then
  step torchvision timeout 300 $py tests/torch/test_torchvision.py ./build-gpu/model_params
fi
if $py -c 'import cv2, numpy' 2>/dev/null; then
  step augment_cuda timeout 300 env FOLDLINE_TEST_DEVICE=cuda AUGMENT_DUMP=./build-gpu/augment_dump \
    $py tests/augment/test_augment.py
else
  log "skip augment_cuda: $py has no cv2 (python3-opencv or opencv-python-headless)"
fi
for args in "smallcnn 1 28 28 128 50 4 cuda" "resnet18 3 64 64 64 50 4 cuda" "resnet50 3 224 224 64 20 4 cuda"; do
  timeout 120 ./build-gpu/bench_model $args 2>&1 | tee -a "$out/summary.txt"
done

# A short fold run on the GPU.
work=/tmp/foldline-gpu-run
rm -rf "$work" && mkdir -p "$work/src"
$py tests/bench/make_sketches.py "$work/src" 2000 200 128 10 > /dev/null
$fl prep "$work/src" "$work/data.h5" --size 64 --quiet
cat > "$work/run.cfg" <<CFG
run = { name = "gpu"; out_dir = "$work/runs"; seed = 1; threads = 4; };
data = { file = "$work/data.h5"; mean = [0.5]; std = [0.5]; };
folds = { use = [0, 1]; };
models = ( { name = "resnet18"; backbone = "resnet18"; epochs = 2; batch = 64;
             optimizer = { type = "adamw"; lr = 1e-3; weight_decay = 0.01; }; tta = [ "hflip" ];
             augment = ( { from_epoch = 0; ops = ( { op = "hflip"; }, { op = "rotate"; degrees = 15.0; },
                 { op = "elastic"; alpha = 30.0; sigma = 4.0; },
                 { op = "grid_distortion"; num_steps = 4; distort_limit = 0.2; } ); } ); } );
CFG
step fold_run timeout 300 $fl train "$work/run.cfg"
grep -E '^\[|soft-soft' "$out/fold_run.log" | tee -a "$out/summary.txt"

# Fold-fused training of a frozen ResNet-18 on the GPU: 5 folds fused against one fold and 5 own jobs.
step fused_bench timeout 600 env FOLDLINE=./build-gpu/foldline PYTHON=$py THREADS=4 \
  BENCH_DIR=/tmp/foldline-gpu-fused bash tests/bench/fused_bench.sh 5 8000
grep '^bench:' "$out/fused_bench.log" | tee -a "$out/summary.txt"

# prep throughput on every core of this machine
bench=/tmp/foldline-gpu-bench
if [[ ! -f $bench/src/test.csv ]]; then
  mkdir -p "$bench/src" && $py tests/bench/make_sketches.py "$bench/src" 15000 1000 600
fi
rm -f "$bench"/*.h5
$fl prep "$bench/src" "$bench/foldline.h5" --size 224 | tee -a "$out/summary.txt"
$py tests/bench/prep_baseline.py "$bench/src" "$bench/baseline.h5" 224 "$(nproc)" | tee -a "$out/summary.txt"
[[ $status == 0 ]] && log "PASS" || log "FAIL"
exit $status
