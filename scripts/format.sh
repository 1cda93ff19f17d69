#!/usr/bin/env bash
# Formats the C++ sources with clang-format (.clang-format: Google style).
#
#   scripts/format.sh           rewrite every tracked .cc/.h file in place
#   scripts/format.sh --check   change nothing; list unformatted files and
#                               exit 1 if there are any (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null 2>&1 || scripts/bootstrap.sh
mapfile -t files < <(git ls-files '*.cc' '*.h' | grep -v '^web/')
if [ "${1:-}" = "--check" ]; then
  bad=()
  for f in "${files[@]}"; do
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
      bad+=("$f")
    fi
  done
  if [ ${#bad[@]} -gt 0 ]; then
    echo "format.sh: not clang-format clean (run scripts/format.sh):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
  fi
  exit 0
fi
clang-format -i "${files[@]}"
