#!/usr/bin/env bash
# fused_bench.sh [EPOCHS] [IMAGES] -- what fold-fused training of a frozen backbone costs, in one
# run. Not part of ctest.
#
# A frozen ResNet-18 on 64x64 RGB sketches (tests/bench/make_sketches.py, IMAGES images, 10
# classes) with a linear head, batch 64, a curriculum in the seed's shape (the first two epochs
# without augmentation, then flips and rotation) and an hflip test-time view. Three runs:
#   one fold   fold 0 alone as its own job (fuse_folds = false): the backbone on every batch
#   5 fused    the five folds in one fused job (the default for a frozen backbone)
#   5 own      the five folds as five own jobs (fuse_folds = false)
# Prints their wall times, the ratio of the fused run to one fold (the goal: under 2) and the
# images the fused job ran through the backbone against the folds' own jobs (from its log).
# Run it on a quiet machine: other work on the cores changes the times. On a GPU machine the runs use
# cuda:0 (foldline picks the GPU itself); THREADS, PYTHON, FOLDLINE and BENCH_DIR override the defaults.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
foldline=${FOLDLINE:-$root/build/foldline}
epochs=${1:-5}
images=${2:-2000}
threads=${THREADS:-2}
python=${PYTHON:-/usr/bin/python3}   # numpy and Pillow, for make_sketches.py
work=${BENCH_DIR:-/tmp/foldline-fused-bench}
mkdir -p "$work"
src=$work/sketch-src-$images
if [[ ! -f $src/test.csv ]]; then
  rm -rf "$src" && mkdir -p "$src"
  "$python" "$root/tests/bench/make_sketches.py" "$src" "$images" 64 64 10
fi
[[ -f $work/sketch64-$images.h5 ]] || "$foldline" prep "$src" "$work/sketch64-$images.h5" --size 64 --quiet
cat > "$work/fused.cfg" <<CFG
run = { name = "fused"; out_dir = "$work/runs"; seed = 1; threads = $threads; };
data = { file = "$work/sketch64-$images.h5"; mean = [0.485, 0.456, 0.406]; std = [0.229, 0.224, 0.225];
         cache = "memory"; };
models = ( { name = "r18"; backbone = "resnet18"; freeze_backbone = true; head = { type = "linear"; };
             epochs = $epochs; batch = 64; optimizer = { type = "adam"; lr = 1e-3; };
             schedule = { type = "step"; step = 2; gamma = 0.5; };
             tta = [ "hflip" ];
             augment = ( { from_epoch = 0; ops = ( ); },
                         { from_epoch = 2; ops = ( { op = "hflip"; p = 0.5; }, { op = "vflip"; p = 0.5; },
                                                   { op = "rotate"; degrees = 10.0; p = 0.5; } ); } ); } );
CFG
rm -rf "$work/runs"
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
t0=$(date +%s.%N)
"$foldline" train "$work/fused.cfg" --set 'run.name="one"' --set models.0.fuse_folds=false \
  --set 'folds.use=[0]' > "$work/one.log"
t1=$(date +%s.%N)
"$foldline" train "$work/fused.cfg" > "$work/fused.log"
t2=$(date +%s.%N)
"$foldline" train "$work/fused.cfg" --set 'run.name="own"' --set models.0.fuse_folds=false > "$work/own.log"
t3=$(date +%s.%N)
one=$(secs "$t0" "$t1") fused=$(secs "$t1" "$t2") own=$(secs "$t2" "$t3")
count=$(sed -n 's/.*fused: \([0-9]*\) images through the backbone; the folds. own jobs: \([0-9]*\).*/\1 against \2/p' "$work/fused.log")
acc() { sed -n 's/^| soft-soft | \([0-9.]*\).*/\1/p' "$1" | head -n 1; }
echo "bench: frozen ResNet-18 64x64, $images images, $epochs epochs, batch 64, $threads threads:" \
     "one fold $one s, 5 folds fused $fused s, 5 folds as own jobs $own s"
echo "bench: 5 fused folds / one fold = $(awk -v a="$fused" -v b="$one" 'BEGIN { printf "%.2f", a / b }') (goal: < 2);" \
     "own jobs / fused = $(awk -v a="$own" -v b="$fused" 'BEGIN { printf "%.2f", a / b }');" \
     "backbone images $count; OOF soft-soft $(acc "$work/fused.log") fused, $(acc "$work/own.log") own jobs"
