#!/usr/bin/env bash
# tests/gpu/seed_scale.sh -- the seed's figures on one GPU (an H200), in at most 8 minutes:
#     bash tests/gpu/seed_scale.sh [OUT_DIR]
# Run from the repo root on a machine with an NVIDIA GPU and a CUDA torch 2.x + timm in its Python
# ($FOLDLINE_TORCH_PYTHON, default python3). Where the machine has no MPI/HDF5/libconfig, put the .deb
# files of tests/gpu/fetch_debs.sh in .gpu-debs/ first (this script sources .gpu-debs/env.sh).
#
#  1 build     foldline, bench_model and nccl_step in build-gpu/ against that torch (CUDA, NCCL)
#  2 peak      the measured matrix-product peak: torch.matmul 8192^2 in bf16 and fp32 (TF32 off)
#  3 export    EVA02-L/448 (eva02_large_patch14_448.mim_m38m_ft_in22k_in1k) and EVA-g/336
#              (eva_giant_patch14_336.clip_ft_in1k), random weights, through launch/export_timm.py
#  4 flops     forward GFLOPs per image of both (torch.utils.flop_counter, meta device)
#  5 forward   images/s of each backbone's forward through foldline (bench_model, frozen), bf16 and fp32
#  6 data      a synthetic 448-px data file of 15,021 rows (500 classes, 5 folds) and 500 test
#              images: generated sketches through foldline prep, in the background from the start
#  7 fused     one fold-fused epoch of EVA02-L, 5 heads, the seed's augmentation, bf16, the feature
#              cache on the device: the cache's fill and the epoch's seconds
#  8 allreduce a 1-rank NCCL all-reduce of the 5 heads' gradients (nccl_step --heads)
#  9 mfu       EVA02-L's bf16 forward FLOP/s over the measured bf16 peak (goal >= 40%)
# 10 project   the seed's 3-model ensemble (configs/sketch_seed.cfg: 5 folds, its epochs) in GPU-hours
#              (goal < 1), from the figures above
# Each stage has its own timeout (and the whole run a budget, SEED_SCALE_BUDGET_S, default 470 s),
# prints its figure in one "seed_scale: NAME: ..." line, and the run ends with a summary table
# (also in OUT_DIR/summary.txt). Exit status 0 when every stage gave its figure.
#
# SEED_SCALE_DRY=1: the same flow on the CPU in two or three minutes, with tiny sizes (eva02_tiny_patch14_224
# at 28 and 42 px for the two backbones, 60 rows, small matrices), against build-torch2/ (tools/torch2.sh)
# and its virtual environment's Python; the NCCL stage is skipped. Its figures mean nothing; it checks
# that every stage runs and prints (ctest torch2_seed_scale_dry).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
out=${1:-${OUT:-${TMPDIR:-/tmp}/foldline-seed-scale}}
mkdir -p "$out"
: > "$out/summary.txt"
dry=${SEED_SCALE_DRY:-0}
budget=${SEED_SCALE_BUDGET_S:-470}
t_start=$(date +%s)
say() { echo "seed_scale: $*" | tee -a "$out/summary.txt"; }
left() { echo $((budget - ($(date +%s) - t_start))); }
declare -A fig
names=()
put() { # name value text: one figure
  fig[$1]=$2
  names+=("$1")
  say "$1: $3"
}
failed=0
# run_stage NAME TIMEOUT CMD...: the command with min(TIMEOUT, the budget left), its output in NAME.log
run_stage() {
  local name=$1 limit=$2 t rc
  shift 2
  local l
  l=$(left)
  ((l < limit)) && limit=$l
  if ((limit < 5)); then
    say "$name: skipped (the ${budget} s budget is spent)"
    failed=1
    return 1
  fi
  t=$(date +%s)
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  rc=$?
  fig[${name}_s]=$(($(date +%s) - t))
  if ((rc != 0)); then
    say "$name: FAILED (exit $rc$([[ $rc == 124 ]] && echo ", timed out after $limit s"); $out/$name.log)"
    tail -5 "$out/$name.log" | sed 's/^/    /'
    failed=1
    return 1
  fi
  return 0
}

if [[ $dry == 1 ]]; then
  py=${FOLDLINE_TORCH_PYTHON:-$(bash tools/torch2.sh --venv 2> /dev/null)}
  build=${SEED_SCALE_BUILD:-build-torch2}
  device=cpu threads=2
  model_l=eva02_tiny_patch14_224 side_l=28 model_g=eva02_tiny_patch14_224 side_g=42
  rows=60 n_test=10 classes=3 batch=8 fwd_batch=4 fwd_steps=2 peak_n=512 src_side=64
else
  if [[ -f .gpu-debs/env.sh ]]; then
    export FOLDLINE_DEPS_QUIET=1
    # shellcheck disable=SC1091
    . .gpu-debs/env.sh
  fi
  py=${FOLDLINE_TORCH_PYTHON:-python3}
  build=${SEED_SCALE_BUILD:-build-gpu}
  device=cuda:0 threads=$(nproc)
  model_l=eva02_large_patch14_448.mim_m38m_ft_in22k_in1k side_l=448
  model_g=eva_giant_patch14_336.clip_ft_in1k side_g=336
  rows=15021 n_test=500 classes=500 batch=64 fwd_batch=128 fwd_steps=6 peak_n=8192 src_side=256
fi
say "$(date -u +%FT%TZ) $([[ $dry == 1 ]] && echo "DRY RUN on the CPU (tiny sizes; the figures mean nothing)" ||
  echo "on $($py -c 'import torch; print(torch.cuda.get_device_name(0))' 2> /dev/null || echo 'no GPU?')")"

# ---- 1 build --------------------------------------------------------------------------------------
if [[ $dry == 1 ]]; then
  [[ -x $build/foldline && -x $build/bench_model ]] || { say "build: FAILED: no $build/foldline (run tools/torch2.sh)"; exit 1; }
  put build 0 "$build (built by tools/torch2.sh)"
else
  prefix=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)') || { say "build: FAILED: no Python torch"; exit 1; }
  if [[ -z ${NCCL_ROOT:-} ]]; then
    NCCL_ROOT=$($py -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2> /dev/null || true)
    export NCCL_ROOT
  fi
  run_stage build 240 bash -c "cmake -S . -B '$build' -DCMAKE_BUILD_TYPE=Release -DFOLDLINE_NCCL=ON \
      -DCMAKE_PREFIX_PATH='$prefix${CMAKE_PREFIX_PATH:+;$CMAKE_PREFIX_PATH}' &&
    cmake --build '$build' -j $(nproc) --target foldline bench_model nccl_step" || exit 1
  put build "${fig[build_s]}" "$build in ${fig[build_s]} s"
fi
fl=$build/foldline
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# The data file, in the background (CPU: sketches, then prep on every core) while the GPU measures.
rm -f "$out/data.done"
(t=$(date +%s)
  run_stage data 240 bash -c "rm -rf '$out/src' '$out/data.h5' &&
    '$py' tests/bench/make_sketches.py '$out/src' $rows $n_test $src_side $classes &&
    '$fl' prep '$out/src' '$out/data.h5' --size $side_l --folds 5 --seed 42 --quiet" &&
  echo $(($(date +%s) - t)) > "$out/data.done") &
data_pid=$!

# ---- 2 peak ---------------------------------------------------------------------------------------
if run_stage peak 60 "$py" tests/gpu/seed_scale.py peak "$device" "$peak_n"; then
  read -r pk_bf16 pk_fp32 < <(tail -1 "$out/peak.log")
  fig[peak_fp32]=$pk_fp32
  put peak_bf16 "$pk_bf16" "torch.matmul ${peak_n}^2: bf16 $pk_bf16 TFLOP/s, fp32 $pk_fp32 TFLOP/s"
fi

# ---- 3 export (EVA-g in the background while EVA02-L is measured) --------------------------------
mkdir -p "$out/models"
args_l=(--no-pretrained --check-batches 1)
args_g=("${args_l[@]}")
[[ $dry == 1 ]] && args_l+=(--img-size "$side_l") && args_g+=(--img-size "$side_g")
rm -f "$out/export_g.done"
(run_stage export_g 300 "$py" launch/export_timm.py "$model_g" "$out/models/g.pt" "${args_g[@]}" &&
  echo ok > "$out/export_g.done") &
export_g_pid=$!
if run_stage export_l 180 "$py" launch/export_timm.py "$model_l" "$out/models/l.pt" "${args_l[@]}"; then
  put export_l "${fig[export_l_s]}" "$model_l exported in ${fig[export_l_s]} s ($(du -h "$out/models/l.pt" | cut -f1))"
fi

# ---- 4 flops ----------------------------------------------------------------------------------------
if run_stage flops 90 bash -c "'$py' tests/gpu/seed_scale.py flops '${model_l%%.*}' $side_l &&
    '$py' tests/gpu/seed_scale.py flops '${model_g%%.*}' $side_g"; then
  read -r gf_l gf_g < <(tr '\n' ' ' < "$out/flops.log")
  fig[gflops_g]=$gf_g
  put gflops_l "$gf_l" "forward GFLOPs per image: EVA02-L $gf_l, EVA-g $gf_g"
fi

# ---- 5 forward ------------------------------------------------------------------------------------
forward() { # tag model.pt side precision
  local line ips
  if run_stage "fwd_$1" 120 "$build/bench_model" "torchscript:$2" 3 "$3" "$3" "$fwd_batch" "$fwd_steps" "$threads" \
    "$device" "$4" 0 1; then
    line=$(tail -1 "$out/fwd_$1.log")
    ips=$(sed -n 's/.*predict \([0-9.]*\) images\/s.*/\1/p' <<< "$line")
    put "fwd_$1" "$ips" "$ips images/s forward ($4, batch $fwd_batch, $device)"
  fi
}
[[ -f $out/models/l.pt ]] && { forward l_bf16 "$out/models/l.pt" "$side_l" bf16; forward l_fp32 "$out/models/l.pt" "$side_l" fp32; }

# ---- 6 data (made in the background since the build) ------------------------------------------------
wait "$data_pid"
if [[ -f $out/data.done ]]; then
  put data "$(cat "$out/data.done")" "$rows rows at $side_l px (+$n_test test) made and prepped in $(cat "$out/data.done") s"
else
  say "data: FAILED ($out/data.log)"
  tail -5 "$out/data.log" 2> /dev/null | sed 's/^/    /'
  failed=1
fi

# ---- 7 fused ----------------------------------------------------------------------------------------
if [[ -f $out/data.h5 && -f $out/models/l.pt ]]; then
  cat > "$out/fused.cfg" << CFG
run = { name = "scale"; out_dir = "$out/runs"; seed = 42; threads = $threads; precision = "bf16"; progress_s = 0.0; };
data = { file = "$out/data.h5"; mean = [0.485, 0.456, 0.406]; std = [0.229, 0.224, 0.225]; cache = "none";
         feature_cache = "device"; };
folds = { use = [0, 1, 2, 3, 4]; };
models = ( { name = "eva02_l_linear"; backbone = "torchscript:$out/models/l.pt"; freeze_backbone = true;
             head = { type = "linear"; }; epochs = 1; batch = $batch; optimizer = { type = "adam"; lr = 1e-3; };
             tta = [ ];
             augment = ( { from_epoch = 0; ops = ( { op = "hflip"; p = 0.5; }, { op = "vflip"; p = 0.5; },
                                                     { op = "rotate"; degrees = 15.0; p = 0.5; } ); } ); } );
CFG
  rm -rf "$out/runs"
  if run_stage fused 240 "$fl" train "$out/fused.cfg"; then
    fill=$(sed -n 's/.*feature cache: .* computed in \([0-9.]*\) s.*/\1/p' "$out/fused.log" | head -1)
    epoch=$(awk -F, 'NR == 2 { print $7 }' "$out/runs/scale/eva02_l_linear/fold0/metrics.csv" 2> /dev/null)
    grep -E 'device-resident|feature cache' "$out/fused.log" | sed 's/^/    /'
    fig[fill_l]=${fill:-0}
    put epoch_l "${epoch:-0}" "one fold-fused epoch, 5 heads, augmented: ${epoch:-?} s for $rows rows; cache fill ${fill:-?} s (train command ${fig[fused_s]} s)"
  fi
fi

# ---- EVA-g's forward, once its export is there -------------------------------------------------------
wait "$export_g_pid"
if [[ -f $out/export_g.done ]]; then
  put export_g 0 "$model_g exported ($(du -h "$out/models/g.pt" | cut -f1))"
  forward g_bf16 "$out/models/g.pt" "$side_g" bf16
  forward g_fp32 "$out/models/g.pt" "$side_g" fp32
else
  say "export_g: FAILED ($out/export_g.log)"
  tail -5 "$out/export_g.log" 2> /dev/null | sed 's/^/    /'
  failed=1
fi

# ---- 8 allreduce ------------------------------------------------------------------------------------
if [[ $dry == 1 ]]; then
  say "allreduce: skipped (dry run: NCCL needs a GPU)"
elif [[ -f $out/models/l.pt ]] && run_stage allreduce 90 mpirun -np 1 "$build/nccl_step" --heads 5 "torchscript:$out/models/l.pt" "$side_l" "$classes"; then
  ms=$(sed -n 's/.*all-reduce \([0-9.]*\) ms.*/\1/p' "$out/allreduce.log")
  put allreduce "${ms:-0}" "$(grep '^heads:' "$out/allreduce.log" | sed 's/^heads: //')"
fi

# ---- 9 mfu, 10 project ------------------------------------------------------------------------------
if [[ -n ${fig[fwd_l_bf16]:-} && -n ${fig[gflops_l]:-} ]] && awk -v p="${fig[peak_bf16]:-0}" 'BEGIN { exit !(p > 0) }'; then
  mfu=$(awk -v f="${fig[fwd_l_bf16]}" -v g="${fig[gflops_l]}" -v p="${fig[peak_bf16]}" 'BEGIN { printf "%.1f", 100 * f * g / 1000 / p }')
  extra=""
  [[ -n ${fig[fwd_g_bf16]:-} && -n ${fig[gflops_g]:-} ]] &&
    extra=$(awk -v f="${fig[fwd_g_bf16]}" -v g="${fig[gflops_g]}" -v p="${fig[peak_bf16]}" 'BEGIN { printf "; EVA-g %.1f%%", 100 * f * g / 1000 / p }')
  put mfu_l "$mfu" "EVA02-L bf16 forward at $mfu% of the measured bf16 matmul peak$extra (goal >= 40%)"
else
  say "mfu: not computed (a figure above is missing)"
  failed=1
fi
if [[ -n ${fig[fwd_l_bf16]:-} && -n ${fig[fwd_g_bf16]:-} && -n ${fig[epoch_l]:-} ]]; then
  if "$py" tests/gpu/seed_scale.py project rows=15021 test=10014 rows_measured="$rows" fwd_l="${fig[fwd_l_bf16]}" \
    fwd_g="${fig[fwd_g_bf16]}" epoch_l="${fig[epoch_l]}" fill_l="${fig[fill_l]}" > "$out/project.log" 2>&1; then
    sed 's/^/    /' "$out/project.log"
    total=$(awk '$1 == "total" { print $2 }' "$out/project.log")
    put project "$total" "the seed's ensemble (3 models x 5 folds fused, 30/30/20 epochs, 10,014 test images): $total GPU-hours (goal < 1)"
  fi
else
  say "project: not computed (a figure above is missing)"
  failed=1
fi

# ---- summary --------------------------------------------------------------------------------------
{
  echo "seed_scale summary ($([[ $dry == 1 ]] && echo "DRY RUN, CPU" || echo "$device")), $(($(date +%s) - t_start)) s in all:"
  printf '  %-12s %s\n' figure value
  for n in "${names[@]}"; do printf '  %-12s %s\n' "$n" "${fig[$n]}"; done
  echo "  result       $([[ $failed == 0 ]] && echo "every stage gave its figure" || echo "some stage FAILED (above)")"
} | tee -a "$out/summary.txt"
exit $failed
