#!/usr/bin/env bash
# The daemon's resident size across broker memory-alarm bursts: a private
# RabbitMQ node, amqpgwd with --max_pending_bytes 256 MiB, and ROUNDS rounds
# of: alarm on (rabbitmqctl set_vm_memory_high_watermark 0.0000001), 400
# PublishBatch calls of 64 x 16 KiB piling up behind it (up to the cap; the
# rest RESOURCE_EXHAUSTED), alarm off, drain, purge. Prints the resident
# size at the peak, when drained and 5 s later (docs: memory).
#
#   bench/memory_alarm.sh [BUILD_DIR]      ROUNDS=5 by default
#   ENV="MALLOC_ARENA_MAX=2" bench/memory_alarm.sh    (allocator settings)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
BUILD=${1:-$ROOT/build}
bench_build "$BUILD" amqpgwd
WORK=$(mktemp -d /tmp/amqpgw-memory-XXXXXX)
NODE_DIR="$WORK/node"
"$ROOT/tests/support/rabbitmq-node.sh" start "$NODE_DIR" >/dev/null
# shellcheck disable=SC1091
. "$NODE_DIR/node.env"
log="$WORK/amqpgwd.log"
# shellcheck disable=SC2086
env ${ENV:-} "$BUILD/server/amqpgwd" --broker="$URI" --listen=127.0.0.1:0 \
  --http_listen= --max_pending_bytes=268435456 >"$log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  "$ROOT/tests/support/rabbitmq-node.sh" stop "$NODE_DIR" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
port=$(bench_gateway_port "$log" "$pid")
/usr/bin/python3 "$ROOT/bench/python/memory_alarm.py" --server "127.0.0.1:$port" \
  --pid "$pid" --node-dir "$NODE_DIR" --rounds "${ROUNDS:-5}"
