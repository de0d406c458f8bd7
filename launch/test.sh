#!/usr/bin/env bash
# test.sh -- install, build, and run foldline's test suite (ctest).
# Extra arguments go to ctest, e.g.  launch/test.sh -R prep_  or  -j1.
set -euo pipefail
export FOLDLINE_WITH_TESTS=1
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"
cd "$FOLDLINE_BUILD_DIR"
ctest --output-on-failure --timeout 600 -j "$(nproc 2>/dev/null || echo 2)" "$@"
