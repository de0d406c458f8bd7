#!/usr/bin/env bash
# mpi_bench.sh [EPOCHS] -- two figures of training under MPI, in one run. Not part of ctest.
#
# 1. Fold-parallel against threads: the five folds of Fashion-MNIST (Debian's
#    dataset-fashion-mnist, 60,000 training images, smallcnn, EPOCHS epochs)
#    trained by 2 ranks x 1 thread (each rank its own folds) and by 1 rank x 2
#    threads (the folds one after another). Prints both wall times and their
#    ratio; the predictions of the two runs are compared as well.
# 2. The all-reduce's share of a data-parallel step: ResNet-18 on 64x64 RGB
#    (tests/bench/make_sketches.py, 2,000 images, batch 64) trained by one group
#    of 2 ranks x 1 thread; foldline's epoch line gives the leader's seconds in
#    the gradient all-reduce and their share of the training time.
#
# Run it on a quiet machine: other work on the cores changes both figures.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
foldline=${FOLDLINE:-$root/build/foldline}
epochs=${1:-1}
work=${BENCH_DIR:-/tmp/foldline-mpi-bench}
mkdir -p "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fm=/usr/share/datasets/fashion-mnist
[[ -f $work/fmnist.h5 ]] || "$foldline" prep "$fm" "$work/fmnist.h5" --channels 1 --folds 5 --seed 42 --quiet

# ---- 1. five folds: 2 ranks x 1 thread against 1 rank x 2 threads
cat > "$work/folds.cfg" <<CFG
run = { name = "folds"; out_dir = "$work/runs"; seed = 1; };
data = { file = "$work/fmnist.h5"; mean = [0.286]; std = [0.353]; cache = "memory"; };
models = ( { name = "cnn"; backbone = "smallcnn"; epochs = $epochs; batch = 128;
             optimizer = { type = "adam"; lr = 2e-3; }; } );
CFG
rm -rf "$work/runs"
t0=$(date +%s.%N)
mpirun --oversubscribe --bind-to none -np 2 "$foldline" train "$work/folds.cfg" --set run.threads=1 \
  --set 'run.name="ranks"' > "$work/ranks.log"
t1=$(date +%s.%N)
"$foldline" train "$work/folds.cfg" --set run.threads=2 --set 'run.name="threads"' > "$work/threads.log"
t2=$(date +%s.%N)
ranks=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
threads=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f", b - a }')
acc() { sed -n 's/^| soft-soft | \([0-9.]*\).*/\1/p' "$1" | head -n 1; }
echo "bench: 5 folds of Fashion-MNIST, smallcnn, $epochs epoch(s): 2 ranks x 1 thread $ranks s," \
     "1 rank x 2 threads $threads s, ratio (threads / ranks) $(awk -v a="$threads" -v b="$ranks" 'BEGIN { printf "%.2f", a / b }')" \
     "(OOF soft-soft accuracy $(acc "$work/ranks.log") and $(acc "$work/threads.log"))"

# ---- 2. the all-reduce's share of a ResNet-18 step at 2 ranks
src=$work/sketch-src
if [[ ! -f $src/test.csv ]]; then
  rm -rf "$src" && mkdir -p "$src"
  /usr/bin/python3 "$root/tests/bench/make_sketches.py" "$src" 2000 64 64 10
fi
[[ -f $work/sketch64.h5 ]] || "$foldline" prep "$src" "$work/sketch64.h5" --size 64 --quiet
cat > "$work/dp.cfg" <<CFG
run = { name = "dp"; out_dir = "$work/runs"; seed = 1; threads = 1; };
data = { file = "$work/sketch64.h5"; mean = [0.5]; std = [0.5]; };
folds = { use = [0]; };
dist = { ranks_per_job = 2; };
models = ( { name = "resnet18"; backbone = "resnet18"; epochs = 2; batch = 64;
             optimizer = { type = "adamw"; lr = 1e-3; weight_decay = 0.01; }; } );
CFG
mpirun --oversubscribe --bind-to none -np 2 "$foldline" train "$work/dp.cfg" | tee "$work/dp.log" | grep 'epoch'
line=$(grep 'epoch 2/2' "$work/dp.log")
echo "bench: ResNet-18 64x64, batch 64 over 2 ranks x 1 thread, MPI all-reduce of 11.2 M gradients:" \
     "$(echo "$line" | sed -n 's/.*all-reduce \(.*\)/all-reduce \1/p') (last epoch)"
