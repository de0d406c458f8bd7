#!/usr/bin/env bash
# demo_bench.sh [EPOCHS] -- the demo (foldline train configs/demo.cfg, vote
# included) against a plain PyTorch k-fold script (tests/bench/kfold_baseline.py:
# a small CNN, 5 folds x EPOCHS epochs, default 4, soft vote of the folds) on the
# same data file, the same folds and test set, the same thread count, in one
# run. Then the demo's network alone in both (the script's re-written
# smallresnet, one fold, one epoch) for the training images/s. Prints both test
# accuracies, both wall times, both training images/s and their ratio (the goal:
# >= 1.3), whether foldline's best ensemble is ahead at no more wall time, and
# the load average before and after each part. Not part of ctest. Needs the
# data file (launch/demo.sh makes it) and Debian's python3-torch and python3-h5py.
# THREADS (default: every core) sets both; BENCH_DIR where the runs go.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
foldline=${FOLDLINE:-$root/build/foldline}
py=/usr/bin/python3
epochs=${1:-4}
threads=${THREADS:-$(nproc)}
work=${BENCH_DIR:-/tmp/foldline-demo-bench}
data=$root/data/fashion-mnist.h5
[[ -f $data ]] || { echo "demo_bench: no $data HINT: run bash launch/demo.sh (or its prep line) first" >&2; exit 1; }
rm -rf "$work" && mkdir -p "$work"
load() { cut -d' ' -f1-3 /proc/loadavg; }
now() { date +%s.%N; }
echo "demo_bench: $(lscpu | sed -n 's/^Model name: *//p'), $threads threads"

cd "$root"
l0=$(load) t0=$(now)
"$foldline" train configs/demo.cfg --set run.out_dir="$work/runs" --set run.threads="$threads" >"$work/foldline.log" 2>&1
t1=$(now) l1=$(load)
fl_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
report=$work/runs/demo/ensemble/report.md
# the best method's test accuracy (report.md): the Methods table's third column
fl_best=$(awk -F'|' '/^## Methods/ { on = 1; next } /^## / { on = 0 } on && $4 ~ /^ *[0-9]/ { v = $4 + 0; if (v > b) b = v }
  END { printf "%.4f", b }' "$report")
# training images/s of the demo's first model: every epoch of every fold
fl_ips=$(cat "$work"/runs/demo/*/fold*/metrics.csv | awk -F, '$1 ~ /^[0-9]+$/ { n++; s += $8 } END { printf "%.0f", s / n }')
echo "foldline demo: best ensemble test acc $fl_best, wall ${fl_wall} s (load $l0 -> $l1)"

l2=$(load)
$py tests/bench/kfold_baseline.py "$data" --epochs "$epochs" --threads "$threads" >"$work/baseline.log" 2>&1
l3=$(load)
bl_acc=$(sed -n 's/.*soft vote test acc \([0-9.]*\)/\1/p' "$work/baseline.log")
bl_wall=$(sed -n 's/^baseline: wall \([0-9.]*\) s/\1/p' "$work/baseline.log")
echo "PyTorch script (usercnn, 5 folds x $epochs epochs): soft vote test acc $bl_acc, wall ${bl_wall} s (load $l2 -> $l3)"

l4=$(load)
$py tests/bench/kfold_baseline.py "$data" --net smallresnet --epochs 1 --folds 0 --threads "$threads" \
  --channels-last 1 --lr 3e-3 --onecycle 1 >"$work/baseline_net.log" 2>&1
l5=$(load)
bl_ips=$(sed -n 's/^baseline: training \([0-9]*\) images\/s/\1/p' "$work/baseline_net.log")
echo "demo's network (smallresnet, channels_last in both): foldline $fl_ips images/s, PyTorch script $bl_ips images/s," \
  "ratio $(awk -v a="$fl_ips" -v b="$bl_ips" 'BEGIN { printf "%.2f", a / b }') (goal >= 1.3; load $l4 -> $l5)"
awk -v fa="$fl_best" -v fw="$fl_wall" -v ba="$bl_acc" -v bw="$bl_wall" 'BEGIN {
  printf "at equal wall time: foldline %s (%.4f in %.0f s against %.4f in %.0f s)\n",
    (fa > ba && fw <= bw) ? "ahead" : (fa > ba ? "more accurate but slower" : "not ahead"), fa, fw, ba, bw }'
