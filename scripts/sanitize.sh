#!/usr/bin/env bash
# The test suite under sanitizers, and the fuzzers.
#
#   scripts/sanitize.sh asan   ASan + UBSan build (build-asan), every test
#   scripts/sanitize.sh tsan   TSan build (build-tsan), the concurrency tests
#   scripts/sanitize.sh fuzz   clang + libFuzzer + ASan + UBSan (build-fuzz):
#                              builds the fuzzers only and runs each for
#                              AMQPGW_FUZZ_SECONDS (default 30)
# Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-asan}
shift || true
case "$mode" in
  asan) AMQPGW_SANITIZE=address,undefined exec scripts/test.sh "$@" ;;
  tsan) AMQPGW_SANITIZE=thread exec scripts/test.sh -L concurrency "$@" ;;
  fuzz) ;;
  *)
    echo "usage: $0 asan|tsan|fuzz [ctest args]" >&2
    exit 2
    ;;
esac

scripts/bootstrap.sh
LAUNCHER=()
command -v ccache >/dev/null 2>&1 && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
dir=build-fuzz
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${LAUNCHER[@]}" \
  -DAMQPGW_FUZZ=ON -DAMQPGW_SANITIZE=address,undefined \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DAMQPGW_FUZZ_SECONDS="${AMQPGW_FUZZ_SECONDS:-30}" >/dev/null
# Only the fuzzers (and what they link), not the daemon and the tests.
mapfile -t targets < <(cd "$dir" && ctest -N -L fuzz | sed -n 's/^ *Test *#[0-9]*: //p')
cmake --build "$dir" -j"$(nproc)" --target "${targets[@]}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
cd "$dir"
exec ctest --output-on-failure -j2 -L fuzz "$@"
