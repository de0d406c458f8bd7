#!/usr/bin/env bash
# prep_bench.sh [N_TRAIN] [N_TEST] [SIDE] [SIZE] -- prep throughput against the
# Pillow + multiprocessing + h5py loop a user would write, on the same JPEGs,
# in one run. Default: 15,000 train + 1,000 test sketches of about 600x600 -> 224.
# Prints both images/s figures, their ratio, and where foldline's time goes.
# Not part of ctest: a benchmark, not a test. Needs the build and the test
# oracles (tools/test.sh installs them).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
foldline=${FOLDLINE:-$root/build/foldline}
py=/usr/bin/python3
n_train=${1:-15000} n_test=${2:-1000} side=${3:-600} size=${4:-224}
work=${BENCH_DIR:-/tmp/foldline-prep-bench}
src=$work/src-$n_train-$n_test-$side
threads=$(nproc)

if [[ ! -f $src/test.csv ]]; then
  echo "bench: writing $n_train + $n_test JPEGs of about ${side}x$side to $src (once)"
  rm -rf "$src" && mkdir -p "$src"
  $py "$root/tests/bench/make_sketches.py" "$src" "$n_train" "$n_test" "$side"
fi
sync
echo "bench: $(du -sh "$src" | cut -f1) of JPEGs; $threads cores"

rm -f "$work/foldline.h5" "$work/baseline.h5"
# Warm the page cache equally for both: read every file once.
cat "$src"/train/*/* "$src"/test/* >/dev/null 2>&1 || true

/usr/bin/time -f "foldline peak RSS %M KiB" "$foldline" prep "$src" "$work/foldline.h5" --size "$size" --threads "$threads" | tee "$work/foldline.log"
/usr/bin/time -f "baseline peak RSS %M KiB" $py "$root/tests/bench/prep_baseline.py" "$src" "$work/baseline.h5" "$size" "$threads" | tee "$work/baseline.log"

fl=$(sed -n 's/.* = \([0-9]*\) images\/s.*/\1/p' "$work/foldline.log" | head -1)
bl=$(sed -n 's/.* = \([0-9]*\) images\/s.*/\1/p' "$work/baseline.log" | head -1)
echo "bench: foldline $fl images/s, baseline $bl images/s, ratio $(awk -v a="$fl" -v b="$bl" 'BEGIN { printf "%.2f", a / b }')"
$py - "$work/foldline.h5" "$work/baseline.h5" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1])["train/images"], h5py.File(sys.argv[2])["train/images"]
n = min(len(a), 200)
d = np.abs(a[:n].astype(int) - b[:n].astype(int))
print(f"bench: pixels vs baseline on {n} images: mean abs diff {d.mean():.4f}, max {d.max()}")
PY
