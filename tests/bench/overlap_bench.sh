#!/usr/bin/env bash
# overlap_bench.sh [EPOCHS] -- the gradient all-reduce of a data-parallel step with and without
# dist.overlap, in one run. Not part of ctest.
#
# ResNet-18 on 64x64 RGB (tests/bench/make_sketches.py, 2,000 images, batch 64), one group of
# 2 ranks x 1 thread on this host (MPI over shared memory), trained EPOCHS epochs (default 2)
# twice: dist.overlap = false (one all-reduce of the 11.2 M gradients after backward) and
# dist.overlap = true (25 MB buckets that start during backward). From foldline's epoch line of
# the last epoch it prints, for each: the all-reduce time exposed after backward and its share of
# the training time, the all-reduce time in all, and the epoch's training images per second; then
# whether the two runs' validation losses agree (2 ranks: the sums are the same, bit for bit).
#
# ACROSS_HOSTS=1 runs the two ranks on two test hosts instead (tests/hosts/testhosts.py, as root: network
# namespaces on this machine, MPI over TCP on veths), one rank each.
# BUCKET_MB=N sets dist.bucket_mb of the overlapped run; MODES="on" (or "off") runs one of the two. Run it on a quiet machine: other work on
# the cores changes the figures.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
foldline=${FOLDLINE:-$root/build/foldline}
epochs=${1:-2}
bucket_mb=${BUCKET_MB:-25}
modes=${MODES:-off on}
work=${BENCH_DIR:-/tmp/foldline-mpi-bench}
mkdir -p "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

src=$work/sketch-src
if [[ ! -f $src/test.csv ]]; then
  rm -rf "$src" && mkdir -p "$src"
  /usr/bin/python3 "$root/tests/bench/make_sketches.py" "$src" 2000 64 64 10
fi
[[ -f $work/sketch64.h5 ]] || "$foldline" prep "$src" "$work/sketch64.h5" --size 64 --quiet

cat > "$work/overlap.cfg" <<CFG
run = { name = "overlap"; out_dir = "$work/runs"; seed = 1; threads = 1; };
data = { file = "$work/sketch64.h5"; mean = [0.5]; std = [0.5]; cache = "memory"; };
folds = { use = [0]; };
dist = { ranks_per_job = 2; };
models = ( { name = "resnet18"; backbone = "resnet18"; epochs = $epochs; batch = 64;
             optimizer = { type = "adamw"; lr = 1e-3; weight_decay = 0.01; }; } );
CFG

figures() { # the last epoch's line -> "exposed S s (P%), in all S s (P%), N img/s"
  sed -n 's/.*, \([0-9]*\) img\/s, all-reduce exposed \([0-9.]*\) s (\([0-9]*\)% of training), in all \([0-9.]*\) s (\([0-9]*\)%), \(.*\)/exposed \2 s (\3% of training), in all \4 s (\5%), \1 img\/s, \6/p' "$1" | tail -n 1
}
val_loss() { sed -n "s/.*epoch $epochs\/$epochs.*val loss \([0-9.]*\).*/\1/p" "$1"; }

ranks() { # FOLDLINE ARGS... on 2 ranks: on this host, or on 2 test hosts
  if [[ ${ACROSS_HOSTS:-0} == 1 ]]; then
    /usr/bin/python3 - "$root" "$@" <<'PY'
import subprocess, sys
sys.path.insert(0, sys.argv[1] + "/tests/hosts")
from testhosts import TestHosts
with TestHosts(n=2) as h:
    argv = h.mpirun_argv(2, extra=["--map-by", "node", "--bind-to", "none"]) + sys.argv[2:]
    sys.exit(h.run(0, argv).returncode)
PY
  else
    mpirun --oversubscribe --bind-to none -np 2 "$@"
  fi
}

for mode in $modes; do
  rm -rf "$work/runs/overlap_$mode"
  overlap=false
  [[ $mode == on ]] && overlap=true
  ranks "$foldline" train "$work/overlap.cfg" \
    --set "run.name=\"overlap_$mode\"" --set "dist.overlap=$overlap" --set "dist.bucket_mb=$bucket_mb" \
    > "$work/overlap_$mode.log"
  grep 'epoch' "$work/overlap_$mode.log"
done
where="on this host (shared memory)"
[[ ${ACROSS_HOSTS:-0} == 1 ]] && where="on 2 test hosts (TCP over veths)"
echo "bench: ResNet-18 64x64, batch 64 over 2 ranks x 1 thread $where, MPI ($(lscpu | sed -n 's/^Model name: *//p'))," \
     "last of $epochs epochs:"
[[ $modes == *off* ]] && echo "bench:   overlap off: $(figures "$work/overlap_off.log")"
[[ $modes == *on* ]] && echo "bench:   overlap on ($bucket_mb MB buckets): $(figures "$work/overlap_on.log")"
[[ $modes == *off*on* ]] && echo "bench:   val loss off $(val_loss "$work/overlap_off.log"), on $(val_loss "$work/overlap_on.log")"
exit 0
