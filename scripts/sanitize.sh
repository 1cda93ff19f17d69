#!/usr/bin/env bash
# The test suite under sanitizers, and the fuzzers.
#
#   scripts/sanitize.sh asan   ASan + UBSan build (build-asan), every test
#   scripts/sanitize.sh tsan   TSan build (build-tsan), the concurrency tests
#   scripts/sanitize.sh fuzz   clang + libFuzzer + ASan (build-fuzz), each
#                              fuzzer for AMQPGW_FUZZ_SECONDS (default 30)
# Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
mode=${1:-asan}
shift || true

LAUNCHER=()
command -v ccache >/dev/null 2>&1 && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
case "$mode" in
  asan)
    dir=build-asan
    args=(-DAMQPGW_SANITIZE=address,undefined)
    filter=()
    # Uninstrumented Debian libraries (gRPC's internal threads) keep some
    # allocations until exit: report leaks in our code only.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=0}
    export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitizers/lsan.supp}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    ;;
  tsan)
    dir=build-tsan
    args=(-DAMQPGW_SANITIZE=thread)
    filter=(-L concurrency)
    export TSAN_OPTIONS=${TSAN_OPTIONS:-suppressions=$PWD/tests/sanitizers/tsan.supp:halt_on_error=1:second_deadlock_stack=1}
    ;;
  fuzz)
    dir=build-fuzz
    args=(-DAMQPGW_FUZZ=ON -DAMQPGW_SANITIZE=address,undefined
          -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
          -DAMQPGW_FUZZ_SECONDS=${AMQPGW_FUZZ_SECONDS:-30})
    filter=(-L fuzz)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
    ;;
  *)
    echo "usage: $0 asan|tsan|fuzz [ctest args]" >&2
    exit 2
    ;;
esac
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${LAUNCHER[@]}" "${args[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
cd "$dir"
exec ctest --output-on-failure -j2 --timeout 1200 "${filter[@]}" "$@"
