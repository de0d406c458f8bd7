#!/usr/bin/env bash
# train_bench.sh [N_IMAGES] [EPOCHS] [SIZE] -- foldline train against the plain
# PyTorch loop (tests/bench/train_baseline.py) on the same model and data, in
# one run: ResNet-18, SIZExSIZE RGB, batch 64, AdamW, no augmentation, the
# same thread count. Both train on the same rows for the same epochs; foldline
# trains one fold (4/5 of the rows) and the images/s of its last epoch are
# compared with the baseline's last epoch (the first one warms up). Prints both
# figures, their ratio and both peak RSS. Not part of ctest. Needs Debian's
# python3-torch and python3-torchvision.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
foldline=${FOLDLINE:-$root/build/foldline}
py=/usr/bin/python3
n=${1:-2000} epochs=${2:-2} size=${3:-64}
threads=$(nproc)
work=${BENCH_DIR:-/tmp/foldline-train-bench}
src=$work/src-$n-$size
mkdir -p "$work"
if [[ ! -f $src/test.csv ]]; then
  rm -rf "$src" && mkdir -p "$src"
  $py "$root/tests/bench/make_sketches.py" "$src" "$n" 64 "$size" 10
fi
[[ -f $work/data-$n-$size.h5 ]] || "$foldline" prep "$src" "$work/data-$n-$size.h5" --size "$size" --quiet
cat > "$work/bench.cfg" <<CFG
run = { name = "bench"; out_dir = "$work/runs"; seed = 1; threads = $threads; };
data = { file = "$work/data-$n-$size.h5"; mean = [0.5]; std = [0.5]; };
folds = { use = [0]; };
models = ( { name = "resnet18"; backbone = "resnet18"; epochs = $epochs; batch = 64;
             optimizer = { type = "adamw"; lr = 1e-3; weight_decay = 0.01; }; } );
CFG
rm -rf "$work/runs"
/usr/bin/time -f "foldline: peak RSS %M KiB" "$foldline" train "$work/bench.cfg" 2>&1 | grep -E 'epoch|RSS' | tee "$work/foldline.log"
/usr/bin/time -f "baseline: peak RSS %M KiB" $py "$root/tests/bench/train_baseline.py" "$src" "$size" "$epochs" "$threads" 2>&1 | tee "$work/baseline.log"
fl=$(tail -n 1 "$work/runs/bench/resnet18/fold0/metrics.csv" | awk -F, '{print $8}')
bl=$(sed -n 's/^baseline: \([0-9.]*\) images\/s (last epoch).*/\1/p' "$work/baseline.log")
echo "bench: ResNet-18 ${size}x$size, batch 64, $threads threads: foldline $fl images/s, PyTorch loop $bl images/s, ratio $(awk -v a="$fl" -v b="$bl" 'BEGIN { printf "%.2f", a / b }')"
