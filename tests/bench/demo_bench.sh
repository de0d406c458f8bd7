#!/usr/bin/env bash
# demo_bench.sh [speed|full] -- foldline's demo against a plain PyTorch k-fold
# script (tests/bench/kfold_baseline.py, Debian's python3-torch) on the same
# data file, folds, test set and thread count, in one run. Not part of ctest.
# Needs the data file (launch/demo.sh makes it) and python3-torch, python3-h5py.
#
# The machine may be shared, so both sides are measured in CPU time (user +
# system of the whole process, every thread: /usr/bin/time) as well as wall
# time, and the two are interleaved so that they share the load:
#
#   speed (default): ROUNDS rounds (default 2) of, for each precision in
#     PRECISIONS (default "bf16 fp32"): foldline train configs/demo.cfg on fold 0
#     for one epoch, then the script with the same recipe (smallresnet in
#     channels_last, AdamW, batch 128, one-cycle, label smoothing, hflip, hflip
#     TTA, bf16 autocast or fp32) on fold 0 for one epoch. Each process trains
#     fold 0's 48,000 rows once, predicts fold 0's 12,000 (validation) and the
#     10,000 test rows: images per CPU-second = 48,000 / its CPU-seconds.
#     Prints each run, the script's own training-loop figure, and the ratio
#     foldline / script per precision (the goal: >= 1.3), and foldline bf16 /
#     script fp32 (the demo against the plain script a user writes).
#   full: the whole demo (5 folds, the vote included), then the script with the
#     same recipe and epochs (EPOCHS, default the demo's 10), then the
#     tutorials' CNN as the issue measured it (usercnn, 5 folds x 4 epochs). Test
#     accuracies, wall and CPU time of each; the quiet-machine wall time is
#     estimated as CPU-seconds / THREADS (every thread busy, none waiting).
#
# THREADS (default 2, the demo's machine) sets both; BENCH_DIR where the runs go.
# OMP_WAIT_POLICY=PASSIVE is set for both, so that a thread waiting on a loaded
# machine sleeps instead of spinning on CPU time that would count as work.
set -euo pipefail
mode=${1:-speed}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
foldline=${FOLDLINE:-$root/build/foldline}
py=/usr/bin/python3
threads=${THREADS:-2}
rounds=${ROUNDS:-2}
precisions=${PRECISIONS:-bf16 fp32}
epochs=${EPOCHS:-10}
work=${BENCH_DIR:-/tmp/foldline-demo-bench}
data=$root/data/fashion-mnist.h5
[[ -f $data ]] || { echo "demo_bench: no $data HINT: run bash launch/demo.sh (or its prep line) first" >&2; exit 1; }
rm -rf "$work" && mkdir -p "$work"
export OMP_WAIT_POLICY=PASSIVE
load() { cut -d' ' -f1 /proc/loadavg; }
# timed LOG CMD...: runs CMD with its output in LOG, then prints "WALL CPU" (seconds)
timed() {
  local log=$1
  shift
  /usr/bin/time -o "$log.time" -f "%e %U %S" "$@" >"$log" 2>&1 || { echo "demo_bench: failed, see $log" >&2; exit 1; }
  awk '{ printf "%.1f %.1f\n", $1, $2 + $3 }' "$log.time"
}
rows0=$($py -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r'); print(int((f['train/fold'][:] != 0).sum()))" "$data")
recipe=(--net smallresnet --channels-last 1 --optimizer adamw --weight-decay 1e-4 --lr 3e-3 --onecycle 1 --warmup 0.25
        --label-smoothing 0.1 --hflip 1 --tta 1 --batch 128)
echo "demo_bench: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $threads threads, load $(load)"
cd "$root"

if [[ $mode == speed ]]; then
  for r in $(seq 1 "$rounds"); do
    for p in $precisions; do
      bf=0 && [[ $p == bf16 ]] && bf=1
      l0=$(load)
      read -r fw fc < <(timed "$work/fl_${p}_$r.log" "$foldline" train configs/demo.cfg --set "folds.use=[0]" \
        --set models.0.epochs=1 --set models.0.precision="$p" --set run.threads="$threads" \
        --set run.out_dir="$work/fl_${p}_$r")
      read -r bw bc < <(timed "$work/py_${p}_$r.log" $py tests/bench/kfold_baseline.py "$data" --folds 0 --epochs 1 \
        --threads "$threads" --bf16 "$bf" "${recipe[@]}")
      bl=$(sed -n 's/^baseline: training \([0-9]*\) images per CPU-second/\1/p' "$work/py_${p}_$r.log")
      echo "$r $p $fw $fc $bw $bc $bl" >>"$work/speed.txt"
      awk -v n="$rows0" -v p="$p" -v r="$r" -v fw="$fw" -v fc="$fc" -v bw="$bw" -v bc="$bc" -v bl="$bl" -v l0="$l0" \
        -v l1="$(load)" 'BEGIN { printf "round %d %s: foldline %.0f images/CPU-s (%.1f CPU-s, wall %.1f s); script %.0f" \
        " images/CPU-s (%.1f CPU-s, wall %.1f s; its training loop alone %d); ratio %.2f (load %s -> %s)\n",
        r, p, n / fc, fc, fw, n / bc, bc, bw, bl, bc / fc, l0, l1 }'
    done
  done
  # per precision: the ratio of the summed CPU-seconds over the rounds
  awk -v n="$rows0" '{ fc[$2] += $4; bc[$2] += $6; k[$2]++ }
    END { for (p in fc) printf "%s: foldline %.0f images/CPU-s, script %.0f, ratio %.2f (goal >= 1.3; %d rounds)\n",
            p, n * k[p] / fc[p], n * k[p] / bc[p], bc[p] / fc[p], k[p]
          if (("bf16" in fc) && ("fp32" in bc))
            printf "the demo (foldline bf16) against the plain script (fp32): ratio %.2f\n",
              (bc["fp32"] / k["fp32"]) / (fc["bf16"] / k["bf16"]) }' "$work/speed.txt"
  exit 0
fi

[[ $mode == full ]] || { echo "demo_bench: unknown mode \"$mode\" HINT: speed or full" >&2; exit 2; }
l0=$(load)
read -r fw fc < <(timed "$work/foldline.log" "$foldline" train configs/demo.cfg --set run.out_dir="$work/runs" \
  --set run.threads="$threads")
report=$work/runs/demo/ensemble/report.md
# the best method's test accuracy (report.md): the Methods table's third column
fl_best=$(awk -F'|' '/^## Methods/ { on = 1; next } /^## / { on = 0 } on && $4 ~ /^ *[0-9]/ { v = $4 + 0; if (v > b) b = v }
  END { printf "%.4f", b }' "$report")
echo "foldline demo: best ensemble test acc $fl_best, wall $fw s, $fc CPU-s (quiet estimate $(awk -v c="$fc" \
  -v t="$threads" 'BEGIN { printf "%.0f", c / t }') s; load $l0 -> $(load))"
l0=$(load)
read -r bw bc < <(timed "$work/baseline_recipe.log" $py tests/bench/kfold_baseline.py "$data" --epochs "$epochs" \
  --threads "$threads" --bf16 1 "${recipe[@]}")
br=$(sed -n 's/.*soft vote test acc \([0-9.]*\)/\1/p' "$work/baseline_recipe.log")
echo "script, the demo's recipe (5 folds x $epochs epochs): soft vote test acc $br, wall $bw s, $bc CPU-s (load $l0 -> $(load))"
l0=$(load)
read -r uw uc < <(timed "$work/baseline_usercnn.log" $py tests/bench/kfold_baseline.py "$data" --epochs 4 \
  --threads "$threads")
ua=$(sed -n 's/.*soft vote test acc \([0-9.]*\)/\1/p' "$work/baseline_usercnn.log")
echo "script, the tutorials' CNN (5 folds x 4 epochs): soft vote test acc $ua, wall $uw s, $uc CPU-s (load $l0 -> $(load))"
awk -v fa="$fl_best" -v fc="$fc" -v ba="$br" -v bc="$bc" -v ua="$ua" -v uc="$uc" 'BEGIN {
  printf "at equal CPU time: foldline %s the recipe script (%.4f in %.0f CPU-s against %.4f in %.0f)," \
    " %s the tutorials script (%.4f in %.0f CPU-s)\n", (fa > ba && fc <= bc) ? "ahead of" : "not ahead of", fa, fc,
    ba, bc, (fa > ua && fc <= uc) ? "ahead of" : "not ahead at equal time of", ua, uc }'
