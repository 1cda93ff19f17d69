#!/usr/bin/env bash
# Builds amqpgw and runs the whole test suite with ctest. Tests start their
# own RabbitMQ node(s) on free ports under the build tree.
#
#   scripts/test.sh                  everything
#   scripts/test.sh -L unit          only unit tests (any ctest arguments)
#
# Environment: AMQPGW_BUILD_DIR (default build), AMQPGW_CMAKE_ARGS (extra
# cmake arguments, e.g. -DAMQPGW_SANITIZE=address,undefined).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

BUILD_DIR=${AMQPGW_BUILD_DIR:-build}
LAUNCHER=()
command -v ccache >/dev/null 2>&1 && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${LAUNCHER[@]}" \
  ${AMQPGW_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
cd "$BUILD_DIR"
exec ctest --output-on-failure -j2 --timeout 900 "$@"
