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
#   TIMEOUT_S=T     the hang watch's dist.timeout_s; Open MPI's keepalive is set to agree with it
#   HOSTS=a,b       run across these hosts (mpirun --host; add :N for N ranks on a host), one rank
#                   per host by default (--map-by node); or HOSTFILE=path
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

# Open MPI's out-of-band keepalive (its daemons' links): by default 300 s idle, then 9 probes 20 s
# apart, so a host cut off is noticed after about 8 minutes. It is set to agree with foldline's hang
# watch, dist.timeout_s (TIMEOUT_S, else a --set dist.timeout_s=..., else the config's, else 600): a
# lost host ends the job within about that time, and a shorter blip loses nothing.
timeout_of() {  # CONFIG [foldline options...]
  local t="" a prev=""
  for a in "${@:2}"; do
    [[ $prev == --set && $a == dist.timeout_s=* ]] && t=${a#dist.timeout_s=}
    [[ $a == --set=dist.timeout_s=* ]] && t=${a#--set=dist.timeout_s=}
    prev=$a
  done
  [[ -z $t && -r $1 ]] && t=$(sed -n 's/.*timeout_s[[:space:]]*[=:][[:space:]]*\([0-9][0-9.]*\).*/\1/p' "$1" | head -n 1)
  t=${TIMEOUT_S:-${t:-600}}
  echo "${t%%.*}"
}
keepalive_args() {  # SECONDS -> mpirun options: detection after about SECONDS
  local t=$1 idle intvl
  idle=$((t / 2 > 10 ? t / 2 : 10))
  intvl=$((t / 20 > 2 ? t / 20 : 2))
  echo --mca oob_tcp_keepalive_time "$idle" --mca oob_tcp_keepalive_intvl "$intvl" --mca oob_tcp_keepalive_probes 10
}

map=slot
if [[ -n ${HOSTS:-} || -n ${HOSTFILE:-} ]]; then
  map=node  # one rank per host in turn: fold-parallel ranks spread over the hosts
  if [[ -z ${NP:-} && -n ${HOSTS:-} ]]; then  # a rank per listed slot
    np=0
    IFS=, read -ra hl <<<"$HOSTS"
    for h in "${hl[@]}"; do [[ $h == *:* ]] && np=$((np + ${h##*:})) || np=$((np + 1)); done
  fi
fi
cmd=("${MPIRUN:-mpirun}" -np "$np")
[[ -n ${HOSTS:-} ]] && cmd+=(--host "$HOSTS")
[[ -n ${HOSTFILE:-} ]] && cmd+=(--hostfile "$HOSTFILE")
# The ranks on other hosts get their login's environment, not this one's: the BLAS's kernel choice
# travels with them, so that every host computes as this one does (results are bit-exact per kernel).
for v in OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; do
  [[ -n ${!v:-} ]] && cmd+=(-x "$v")
done
timeout_s=$(timeout_of "$@")
# shellcheck disable=SC2207
cmd+=($(keepalive_args "$timeout_s"))
if [[ -n ${TIMEOUT_S:-} ]]; then
  set -- "$1" --set "dist.timeout_s=$TIMEOUT_S" "${@:2}"
fi
if [[ ${OVERSUBSCRIBE:-0} == 1 ]]; then
  cmd+=(--oversubscribe --bind-to none --map-by "$map")
else
  cmd+=(--map-by "$map:PE=$threads" --bind-to core)
fi
if [[ $(id -u) == 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
config=$1
shift
echo "mpirun.sh: $np rank(s) x $threads thread(s) on ${HOSTS:-${HOSTFILE:-$(hostname)}} ($cores cores, $gpus GPUs here);" \
     "keepalive after ${timeout_s} s (dist.timeout_s)"
# Ctrl-C and SIGTERM: Open MPI's mpirun answers them by killing the ranks (SIGTERM, SIGKILL one
# second later) and exits 1. Here mpirun runs in its own session, out of the terminal's reach, and
# the signal goes on to it as SIGUSR1, which it forwards to every rank: each stops after its current
# step with a checkpoint, and the exit status is 75 ("rerun to resume"), as for one process.
setsid "${cmd[@]}" "$bin" train "$config" --set "run.threads=$threads" "$@" &
mpirun_pid=$!
trap 'kill -USR1 "$mpirun_pid" 2>/dev/null || true' INT TERM
while :; do
  rc=0
  wait "$mpirun_pid" || rc=$?
  kill -0 "$mpirun_pid" 2>/dev/null || exit "$rc"  # a trapped signal interrupted wait: wait again
done
