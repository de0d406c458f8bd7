#!/usr/bin/env bash
# demo_bench.sh [speed|full] -- foldline's demo against a plain PyTorch k-fold
# script (tests/bench/kfold_baseline.py, Debian's python3-torch) on the same
# data file, folds and test set, in one run. Not part of ctest. Needs the data
# file (launch/demo.sh makes it), mpirun, python3-torch and python3-h5py.
#
# Wall-clock figures: run it on a quiet machine (it prints the load before and
# after each run). foldline runs as launch/demo.sh runs it: NP ranks (default
# 2) through launch/mpirun.sh, each with its share of the cores, data-parallel
# (demo.cfg's dist.ranks_per_job = 0). The scripts run as one process with
# torch's default threads (every core), as a user runs them.
#
#   speed (default): ROUNDS rounds (default 2), interleaved, of one epoch of
#     fold 0 (training on the other folds' 48,000 rows) of the demo's network
#     (smallresnet + linear head, AdamW, batch 128, one-cycle, label smoothing,
#     hflip, hflip TTA) in:
#       foldline   configs/demo.cfg (bf16 autocast, channels_last, NP ranks)
#       plain      the script as a user writes it: fp32, NCHW
#       levers     the script with the levers a script can pull: bf16 autocast
#                  and channels_last
#     Compares training images/s (the training loop's images over its seconds,
#     each side's own figure): foldline / plain and foldline / levers, goal >= 1.3.
#   full: the whole demo (5 folds x 10 epochs and the vote), then each script
#     given foldline's wall time (--budget-s: as many epochs per fold as fit):
#     the demo's recipe with the levers, and the tutorials' CNN (usercnn, fp32).
#     Test accuracies and wall times; foldline is ahead at equal wall time when
#     its best ensemble beats both.
#
# NP (default 2), BENCH_DIR where the runs go (default /tmp/foldline-demo-bench).
set -euo pipefail
mode=${1:-speed}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export FOLDLINE=${FOLDLINE:-$root/build/foldline}
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
py=/usr/bin/python3
np_=${NP:-2}
rounds=${ROUNDS:-2}
work=${BENCH_DIR:-/tmp/foldline-demo-bench}
data=$root/data/fashion-mnist.h5
[[ -f $data ]] || { echo "demo_bench: no $data HINT: run bash launch/demo.sh (or its prep line) first" >&2; exit 1; }
[[ $mode == speed || $mode == full ]] || { echo "demo_bench: unknown mode \"$mode\" HINT: speed or full" >&2; exit 2; }
rm -rf "$work" && mkdir -p "$work"
load() { cut -d' ' -f1 /proc/loadavg; }
# timed LOG CMD...: runs CMD with its output in LOG, then prints its wall seconds
timed() {
  local log=$1
  shift
  /usr/bin/time -o "$log.time" -f "%e" "$@" >"$log" 2>&1 || { echo "demo_bench: failed, see $log" >&2; exit 1; }
  cat "$log.time"
}
# foldline LOG [train options]: the demo's training as launch/demo.sh starts it
foldline() {
  local log=$1
  shift
  if ((np_ > 1)); then
    NP=$np_ timed "$log" bash "$root/launch/mpirun.sh" configs/demo.cfg "$@"
  else
    timed "$log" "$FOLDLINE" train configs/demo.cfg "$@"
  fi
}
recipe=(--net smallresnet --optimizer adamw --weight-decay 1e-4 --lr 3e-3 --onecycle 1 --warmup 0.25
        --label-smoothing 0.1 --hflip 1 --tta 1 --batch 128)
echo "demo_bench: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, foldline on $np_ rank(s), load $(load)"
cd "$root"

if [[ $mode == speed ]]; then
  for r in $(seq 1 "$rounds"); do
    l0=$(load)
    w=$(foldline "$work/fl_$r.log" --set "folds.use=[0]" --set models.0.epochs=1 --set run.out_dir="$work/fl_$r")
    v=$(sed -n 's/.*epoch 1\/1 .* \([0-9][0-9]*\) img\/s.*/\1/p' "$work/fl_$r.log")
    echo "$r foldline $v $w $l0 $(load)" | tee -a "$work/speed.txt"
    for side in plain levers; do
      l0=$(load)
      lv=(--bf16 0 --channels-last 0) && [[ $side == levers ]] && lv=(--bf16 1 --channels-last 1)
      w=$(timed "$work/${side}_$r.log" $py tests/bench/kfold_baseline.py "$data" --folds 0 --epochs 1 \
        "${recipe[@]}" "${lv[@]}")
      v=$(sed -n 's/^baseline: training \([0-9]*\) images\/s/\1/p' "$work/${side}_$r.log")
      echo "$r $side $v $w $l0 $(load)" | tee -a "$work/speed.txt"
    done
  done
  # columns: round side images/s wall load-before load-after; the ratio of the mean images/s
  awk '{ s[$2] += $3; k[$2]++ }
    END { f = s["foldline"] / k["foldline"]; p = s["plain"] / k["plain"]; l = s["levers"] / k["levers"]
          printf "training images/s, mean of %d rounds: foldline %.0f, plain script %.0f, script with levers %.0f\n",
            k["foldline"], f, p, l
          printf "foldline / plain script %.2f, foldline / script with levers %.2f (goal >= 1.3)\n", f / p, f / l }' \
    "$work/speed.txt"
  exit 0
fi

l0=$(load)
fw=$(foldline "$work/foldline.log" --set run.out_dir="$work/runs")
report=$work/runs/demo/ensemble/report.md
# the best method's test accuracy (report.md): the Methods table's third column
fl_best=$(awk -F'|' '/^## Methods/ { on = 1; next } /^## / { on = 0 } on && $4 ~ /^ *[0-9]/ { v = $4 + 0; if (v > b) b = v }
  END { printf "%.4f", b }' "$report")
echo "foldline demo: best ensemble test acc $fl_best, wall $fw s (load $l0 -> $(load))"
budget=${fw%.*}
l0=$(load)
bw=$(timed "$work/baseline_recipe.log" $py tests/bench/kfold_baseline.py "$data" --budget-s "$budget" \
  "${recipe[@]}" --bf16 1 --channels-last 1)
br=$(sed -n 's/.*soft vote test acc \([0-9.]*\)/\1/p' "$work/baseline_recipe.log")
be=$(sed -n 's/.* \([0-9]*\) epochs per fold/\1/p' "$work/baseline_recipe.log")
echo "script, the demo's recipe with bf16 and channels_last, given $budget s: 5 folds x $be epochs, soft vote test acc" \
  "$br, wall $bw s (load $l0 -> $(load))"
l0=$(load)
uw=$(timed "$work/baseline_usercnn.log" $py tests/bench/kfold_baseline.py "$data" --budget-s "$budget")
ua=$(sed -n 's/.*soft vote test acc \([0-9.]*\)/\1/p' "$work/baseline_usercnn.log")
ue=$(sed -n 's/.* \([0-9]*\) epochs per fold/\1/p' "$work/baseline_usercnn.log")
echo "script, the tutorials' CNN, given $budget s: 5 folds x $ue epochs, soft vote test acc $ua, wall $uw s" \
  "(load $l0 -> $(load))"
awk -v fa="$fl_best" -v ba="$br" -v ua="$ua" 'BEGIN {
  printf "at equal wall time: foldline %.4f, the recipe script %.4f, the tutorials script %.4f: foldline %s\n", fa, ba,
    ua, (fa > ba && fa > ua) ? "ahead" : "NOT ahead" }'
