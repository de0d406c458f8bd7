#!/usr/bin/env bash
# precision_bench.sh [SIDE] [BATCH] [STEPS] -- ResNet-18 training and prediction throughput through
# the bridge (tests/bench/bench_model.c) in fp32 and bf16, contiguous and channels_last: what mixed
# precision buys on this CPU (or on cuda:0 with DEVICE=cuda:0, where fp16 runs too). Not part of ctest.
#
# Prints the CPU's name, whether it has AVX-512 BF16 (on Zen 4 and Sapphire Rapids bf16 autocast runs
# on native bf16 dot products; without them libtorch emulates bf16 and it is slower than fp32), then one
# line per (precision, memory format) and the bf16 / fp32 ratios of the training throughput. Run it on
# a quiet machine; THREADS, DEVICE and BENCH_MODEL override the defaults.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench=${BENCH_MODEL:-$root/build/bench_model}
side=${1:-64}
batch=${2:-32}
steps=${3:-10}
threads=${THREADS:-2}
device=${DEVICE:-cpu}
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), avx512_bf16 on $(grep -c avx512_bf16 /proc/cpuinfo || true) of $(nproc) cpus"
precisions="fp32 bf16"
[[ $device == cuda* ]] && precisions="fp32 bf16 fp16"
declare -A train
for p in $precisions; do
  for mf in 1 2; do
    line=$("$bench" resnet18 3 "$side" "$side" "$batch" "$steps" "$threads" "$device" "$p" "$mf")
    name=$([[ $mf == 1 ]] && echo contiguous || echo channels_last)
    echo "$p $name: $line"
    train[$p-$mf]=$(sed -n 's/.*fastest \([0-9.]*\)).*/\1/p' <<<"$line")
  done
done
for mf in 1 2; do
  awk -v a="${train[bf16-$mf]}" -v b="${train[fp32-$mf]}" -v m="$mf" \
    'BEGIN { printf "bf16 / fp32 training (fastest step), %s: %.2fx\n", m == 1 ? "contiguous" : "channels_last", a / b }'
done
awk -v a="${train[bf16-2]}" -v b="${train[fp32-1]}" \
  'BEGIN { printf "bf16 + channels_last / fp32 contiguous: %.2fx\n", a / b }'
