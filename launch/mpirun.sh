#!/usr/bin/env bash
# mpirun.sh -- foldline train on every GPU or core of this machine, without a scheduler:
#
#   launch/mpirun.sh CONFIG [foldline train options...]
#
# Ranks: one per GPU when nvidia-smi lists any, else one per 4 cores (all of them on a
# smaller machine). Each rank is bound to its share of the cores (mpirun --map-by slot:PE=N
# --bind-to core) and trains with that many threads (--set run.threads=N, before your
# options). As root it sets OMPI_ALLOW_RUN_AS_ROOT*. Environment:
#
#   NP=R            this many ranks instead
#   THREADS=N       cores per rank (default: the cores divided among the ranks)
#   OVERSUBSCRIBE=1 allow more ranks than cores (mpirun --oversubscribe; no binding then)
#   FOLDLINE=path   the binary (default: foldline on PATH, else this repository's build/foldline)
#   MPIRUN=path     the launcher (default: mpirun)
set -euo pipefail

if (($# < 1)) || [[ $1 == -h || $1 == --help ]]; then
  echo "usage: [NP=R] [THREADS=N] [OVERSUBSCRIBE=1] $0 CONFIG [foldline train options...]" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${FOLDLINE:-$(command -v foldline || echo "$here/build/foldline")}
[[ -x $bin ]] || { echo "mpirun.sh: error: no foldline at $bin HINT: build it, or set FOLDLINE" >&2; exit 2; }

cores=$(nproc)
gpus=0
if command -v nvidia-smi >/dev/null; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
fi
np=${NP:-}
((gpus > 0)) && np=${np:-$gpus}
if [[ -n $np ]]; then
  threads=${THREADS:-$((cores / np > 0 ? cores / np : 1))}
else
  threads=${THREADS:-$((cores < 4 ? cores : 4))}
  np=$((cores / threads > 0 ? cores / threads : 1))
fi

cmd=("${MPIRUN:-mpirun}" -np "$np")
if [[ ${OVERSUBSCRIBE:-0} == 1 ]]; then
  cmd+=(--oversubscribe --bind-to none)
else
  cmd+=(--map-by "slot:PE=$threads" --bind-to core)
fi
if [[ $(id -u) == 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
config=$1
shift
echo "mpirun.sh: $np rank(s) x $threads thread(s) on $(hostname) ($cores cores, $gpus GPUs)"
exec "${cmd[@]}" "$bin" train "$config" --set "run.threads=$threads" "$@"
