#!/usr/bin/env bash
# The test suite under sanitizers, and the fuzzers.
#
#   scripts/sanitize.sh asan   ASan + UBSan build (build-asan), every test
#   scripts/sanitize.sh tsan   TSan build (build-tsan), the concurrency tests
#   scripts/sanitize.sh tsan-unit  TSan (build-tsan), the core unit tests
#                              only (fake connection, no broker): builds just
#                              amqpgw_core and those tests, so it is quick
#                              enough for CI
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
  tsan-unit | fuzz) ;;
  *)
    echo "usage: $0 asan|tsan|tsan-unit|fuzz [ctest args]" >&2
    exit 2
    ;;
esac

scripts/bootstrap.sh
LAUNCHER=()
command -v ccache >/dev/null 2>&1 && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

if [ "$mode" = tsan-unit ]; then
  dir=build-tsan
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${LAUNCHER[@]}" \
    -DAMQPGW_SANITIZE=thread >/dev/null
  mapfile -t targets < <(cd "$dir" && ctest -N -R '^core_' | sed -n 's/^ *Test *#[0-9]*: //p')
  cmake --build "$dir" -j"$(nproc)" --target "${targets[@]}"
  export TSAN_OPTIONS=${TSAN_OPTIONS:-suppressions=$PWD/tests/sanitizers/tsan.supp:halt_on_error=1:second_deadlock_stack=1}
  cd "$dir"
  exec ctest --output-on-failure -j2 -R '^core_' "$@"
fi

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
