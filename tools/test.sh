#!/usr/bin/env bash
# test.sh -- install, build, and run foldline's test suite (ctest), in two builds:
#   1. build/: Debian's libtorch 1.13 (CPU), every test;
#   2. build-torch2/: PyPI's torch 2.x (CUDA built), made by tools/torch2.sh (a virtual environment
#      cached outside the repository, several GB, once), the tests labelled torch2: the unit and
#      bridge tests again, timm's EVA backbones, the comparison with build 1. Skipped with one line
#      when PyPI cannot be reached; FOLDLINE_TORCH2=0 leaves it out. Its test labelled slow (the
#      seed's two large EVAs on the CPU, about 12 minutes on 2 cores) runs with FOLDLINE_TORCH2_SLOW=1.
# Extra arguments go to ctest, e.g.  tools/test.sh -R prep_  or  -j1; with them build 2 runs only
# when FOLDLINE_TORCH2=1 says so (and gets them too).
set -euo pipefail
export FOLDLINE_WITH_TESTS=1
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"
jobs=$(nproc 2>/dev/null || echo 2)
rc=0
(cd "$FOLDLINE_BUILD_DIR" && ctest --output-on-failure --timeout 600 -j "$jobs" "$@") || rc=$?

torch2_default=1
(($#)) && torch2_default=0
if [[ ${FOLDLINE_TORCH2:-$torch2_default} != 0 ]]; then
  t2=0
  bash "$FOLDLINE_ROOT/tools/torch2.sh" || t2=$?
  if [[ $t2 == 77 ]]; then
    echo "foldline: the torch 2.x build is skipped (the line above says why); build 1's tests ran" >&2
  elif [[ $t2 != 0 ]]; then
    rc=$t2
  else
    slow=(-LE slow)
    [[ ${FOLDLINE_TORCH2_SLOW:-0} == 1 ]] && slow=()
    ctest --test-dir "${FOLDLINE_TORCH2_BUILD_DIR:-$FOLDLINE_ROOT/build-torch2}" --output-on-failure \
      --timeout 1800 -j "$jobs" -L torch2 "${slow[@]}" "$@" || rc=$?
  fi
fi
exit $rc
