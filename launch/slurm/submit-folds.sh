#!/usr/bin/env bash
# submit-folds.sh -- one SLURM array task per fold, then the vote once all of them succeeded:
#
#   launch/slurm/submit-folds.sh CONFIG [foldline train options...]
#
#   FOLDS=0-4           the array indexes = the folds to train (default: folds.sbatch's --array)
#   SBATCH_OPTS="..."   more sbatch options for both jobs, e.g. "--partition=gpu --account=x"
#   FOLDLINE=path       the binary (default: foldline on PATH, else this repository's build/foldline)
#
# Prints the two job ids: the array's and the vote's (sbatch --dependency=afterok:<array>).
set -euo pipefail

if (($# < 1)) || [[ $1 == -h || $1 == --help ]]; then
  echo "usage: [FOLDS=0-4] [SBATCH_OPTS=...] $0 CONFIG [foldline train options...]" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ -z ${FOLDLINE:-} ]] && ! command -v foldline >/dev/null && [[ -x $here/../../build/foldline ]]; then
  FOLDLINE=$(cd "$here/../../build" && pwd)/foldline
  export FOLDLINE  # the jobs run copies of the scripts, which cannot find the repository themselves
fi
read -r -a opts <<<"${SBATCH_OPTS:-}"
array=$(sbatch --parsable ${FOLDS:+--array="$FOLDS"} "${opts[@]}" "$here/folds.sbatch" "$@")
array=${array%%;*}  # "id;cluster" on federated clusters
vote=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes "${opts[@]}" \
  "$here/vote.sbatch" "$@")
vote=${vote%%;*}
echo "folds: job $array (array ${FOLDS:-of folds.sbatch}: foldline train $* --fold <task index>)"
echo "vote:  job $vote (after every fold succeeded: foldline train $*)"
