#!/usr/bin/env bash
# check_format.sh -- developer script: every C and C++ file that git tracks is formatted as the
# repository's .clang-format says (clang-format 14, as Debian 12 ships it). CI runs it as the ctest
# test `format`.
#
#   bash tools/check_format.sh         list the files that differ (file:line of the first difference); exit 1
#   bash tools/check_format.sh --fix   format them in place
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cf=${CLANG_FORMAT:-$(command -v clang-format-14 || command -v clang-format || true)}
if [[ -z $cf ]]; then
  echo "check_format: clang-format not found HINT: apt-get install clang-format (or set CLANG_FORMAT)" >&2
  exit 1
fi
if ! "$cf" --version | grep -q "version 14\."; then
  echo "check_format: $cf is not clang-format 14 ($("$cf" --version)) HINT: apt-get install clang-format-14" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cpp' '*.hpp')
if [[ ${1:-} == --fix ]]; then
  "$cf" -i "${files[@]}"
  exit 0
fi
bad=0
for f in "${files[@]}"; do
  if ! out=$("$cf" --dry-run --Werror "$f" 2>&1); then
    first=$(grep -m1 -o "^$f:[0-9]*" <<<"$out" || echo "$f")
    echo "check_format: $first: differs from .clang-format HINT: bash tools/check_format.sh --fix" >&2
    bad=$((bad + 1))
  fi
done
if ((bad)); then
  echo "check_format: $bad of ${#files[@]} files differ" >&2
  exit 1
fi
echo "check_format: ${#files[@]} files formatted"
