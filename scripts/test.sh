#!/usr/bin/env bash
# Builds amqpgw and runs the whole test suite with ctest. Tests start their
# own RabbitMQ node(s) on free ports under the build tree.
#
#   scripts/test.sh                  everything
#   scripts/test.sh -L unit          only unit tests (any ctest arguments)
#
# Environment:
#   AMQPGW_SANITIZE    address,undefined or thread: a sanitizer build in its
#                      own folder (build-asan, build-tsan), with the
#                      sanitizers' options and suppressions set
#                      (scripts/sanitize.sh wraps this)
#   AMQPGW_BUILD_DIR   build folder (default build, or the sanitizer's)
#   AMQPGW_CMAKE_ARGS  extra cmake arguments
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

SANITIZE=${AMQPGW_SANITIZE:-}
SUPP=$PWD/tests/sanitizers
case "$SANITIZE" in
  "") default_dir=build ;;
  thread)
    default_dir=build-tsan
    export TSAN_OPTIONS=${TSAN_OPTIONS:-suppressions=$SUPP/tsan.supp:halt_on_error=1:second_deadlock_stack=1}
    ;;
  *address*|*undefined*)
    default_dir=build-asan
    # Uninstrumented Debian libraries (gRPC's internal threads) keep some
    # allocations until exit: report leaks in our code only.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=0}
    export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SUPP/lsan.supp}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    ;;
  *) echo "test.sh: AMQPGW_SANITIZE must be address,undefined or thread" >&2; exit 2 ;;
esac
BUILD_DIR=${AMQPGW_BUILD_DIR:-$default_dir}
LAUNCHER=()
command -v ccache >/dev/null 2>&1 && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${LAUNCHER[@]}" \
  -DAMQPGW_SANITIZE="$SANITIZE" ${AMQPGW_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
cd "$BUILD_DIR"
# Sanitized code runs several times slower: more time per test, and the
# timing-sensitive resilience tests (heartbeat detection within seconds on
# 2 shared cores) get one retry there; a test that fails twice fails.
args=(--timeout 900)
[ -n "$SANITIZE" ] && args=(--timeout 1800 --repeat until-pass:2)
exec ctest --output-on-failure -j2 "${args[@]}" "$@"
