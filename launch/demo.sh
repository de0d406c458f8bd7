#!/usr/bin/env bash
# demo.sh -- install, build, and run foldline's main job on the embedded
# default: Fashion-MNIST from Debian's dataset-fashion-mnist package.
#   1. prep: the IDX files -> data/fashion-mnist.h5 (60,000 train rows in 5
#      stratified folds, 10,000 labelled test rows); skipped if already made
#   2. inspect: what the data file holds
#   3. train configs/demo.cfg: the small ResNet x 5 folds on the CPU, then the vote
#      and its report (runs/demo/ensemble/report.md, report.html, submission.csv).
#      With 2 cores or more it runs as 2 MPI ranks (launch/mpirun.sh, NP=2), each
#      with half the cores, training every fold data-parallel (demo.cfg's
#      dist.ranks_per_job = 0); on one core, one process. Rerunning skips the
#      folds already trained; rm -rf runs/demo to start over.
# Options after the script's name go to foldline train (e.g. --set run.out_dir=DIR).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../tools/deps.sh"
cd "$FOLDLINE_ROOT"

src=/usr/share/datasets/fashion-mnist
data=data/fashion-mnist.h5
mkdir -p data
if [[ ! -f $data ]]; then
  "$FOLDLINE" prep "$src" "$data" --channels 1 --folds 5 --seed 42 --classes configs/fashion-mnist.classes
fi
"$FOLDLINE" inspect "$data"
if (($(nproc) >= 2)); then
  NP=2 FOLDLINE=$FOLDLINE bash launch/mpirun.sh configs/demo.cfg "$@"
else
  "$FOLDLINE" train configs/demo.cfg "$@"
fi
echo "demo: the report with charts (learning curves, confusion, calibration): $FOLDLINE_ROOT/runs/demo/ensemble/report.html" \
  "(under your run.out_dir instead when you set one)"
