#!/usr/bin/env bash
# demo.sh -- install, build, and run foldline's main job on the embedded
# default: Fashion-MNIST from Debian's dataset-fashion-mnist package.
#   1. prep: the IDX files -> data/fashion-mnist.h5 (60,000 train rows in 5
#      stratified folds, 10,000 labelled test rows); skipped if already made
#   2. inspect: what the data file holds
#   3. train configs/demo.cfg: 2 small CNNs x 5 folds on the CPU, then the vote
#      and its report (runs/demo/ensemble/report.md, report.html, submission.csv).
#      Rerunning skips the folds already trained; rm -rf runs/demo to start over.
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
"$FOLDLINE" train configs/demo.cfg
echo "demo: the report with charts (learning curves, confusion, calibration): $FOLDLINE_ROOT/runs/demo/ensemble/report.html"
