#!/usr/bin/env bash
# Counts the gateway's work per message with callgrind (instructions in user
# space, independent of machine load), for one amqpgw-bench scenario.
#
#   bench/profile.sh [--broker URI] [--build DIR] [--out DIR] SCENARIO [-n N]
#
# SCENARIO: publish-batch (batch 256), publish (64 callers), publish-sync,
# stream (prefetch 1000, AUTO), or floor-publish: publish's load against
# amqpgw-grpc-floor (callback API, a Gateway that does nothing, no broker),
# gRPC's own instructions per call, to subtract from publish's to get what
# the gateway adds. Without --broker a private RabbitMQ node is
# started (and stopped). amqpgwd runs under valgrind --tool=callgrind; the
# counters are zeroed after a warm-up and dumped after the measured run.
# Prints instructions per message and the heaviest functions (inclusive);
# the callgrind file stays in --out (default: a temporary folder) for
# callgrind_annotate or kcachegrind.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build BROKER="" OUT="" N=""
while [ $# -gt 0 ]; do
  case "$1" in
    --broker) BROKER=$2; shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    -n) N=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "profile.sh: unknown flag $1" >&2; exit 2 ;;
    *) SCENARIO=$1; shift ;;
  esac
done
[ -n "${SCENARIO:-}" ] || { echo "profile.sh: which scenario? (see --help)" >&2; exit 2; }
case "$SCENARIO" in
  publish-batch) ARGS=(publish-batch --batch 256 --purge); N=${N:-25600} ;;
  publish) ARGS=(publish --concurrency 64 --purge); N=${N:-10000} ;;
  publish-sync) ARGS=(publish-sync --purge); N=${N:-1000} ;;
  stream) ARGS=(stream --prefetch 1000 --ack auto); N=${N:-20000} ;;
  floor-publish) ARGS=(publish --concurrency 64); N=${N:-10000} ;;
  *) echo "profile.sh: unknown scenario $SCENARIO" >&2; exit 2 ;;
esac

OUT=${OUT:-$(mktemp -d /tmp/amqpgw-profile.XXXXXX)}
mkdir -p "$OUT"
NODE=$ROOT/tests/support/rabbitmq-node.sh
# No management plugin: its statistics collection would load the measured broker.
export AMQPGW_NODE_MANAGEMENT=0
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
GW_PID=""
cleanup() {
  [ -n "$GW_PID" ] && kill -TERM "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
  [ -z "$BROKER" ] || [ ! -d "$OUT/rabbitmq" ] || "$NODE" stop "$OUT/rabbitmq" >/dev/null 2>&1
  true
}
trap cleanup EXIT
if [ "$SCENARIO" = floor-publish ]; then
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.%p" \
    "$BUILD/bench/amqpgw-grpc-floor" callback --listen 127.0.0.1:0 \
    > "$OUT/floor.out" 2> "$OUT/floor.log" &
  GW_PID=$!
  for _ in $(seq 600); do [ -s "$OUT/floor.out" ] && break; sleep 0.1; done
  PORT=$(head -n 1 "$OUT/floor.out" | sed 's/.*://')
  [ -n "$PORT" ] || { echo "profile.sh: amqpgw-grpc-floor did not start" >&2; exit 1; }
else
  if [ -z "$BROKER" ]; then
    BROKER=$("$NODE" start "$OUT/rabbitmq" | tail -n 1)
  fi
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.%p" \
    "$BUILD/server/amqpgwd" --broker="$BROKER" --listen=127.0.0.1:0 --http_listen= \
    > "$OUT/amqpgwd.log" 2>&1 &
  GW_PID=$!
  PORT=$(bench_gateway_port "$OUT/amqpgwd.log" "$GW_PID" 600)
fi
BENCH=$BUILD/bench/amqpgw-bench
Q=amqpgw-profile
fill() { "$BUILD/bench/amqpgw-bench-direct" publish --broker "$BROKER" --queue "$Q" \
           -n "$1" --window 1024 --purge >/dev/null; }

# Warm-up, then zero the counters and measure.
if [ "$SCENARIO" = stream ]; then fill 5000; fi
"$BENCH" "${ARGS[@]}" --server "127.0.0.1:$PORT" --queue "$Q" -n 5000 >/dev/null
if [ "$SCENARIO" = stream ]; then fill "$N"; fi
callgrind_control -z "$GW_PID" >/dev/null
"$BENCH" "${ARGS[@]}" --server "127.0.0.1:$PORT" --queue "$Q" -n "$N"
callgrind_control -d "$GW_PID" >/dev/null
FILE=$(ls -t "$OUT"/callgrind.*.* | head -n 1)
TOTAL=$(grep -m1 '^summary:' "$FILE" | awk '{print $2}')
echo "scenario=$SCENARIO n=$N instructions=$TOTAL instructions_per_msg=$((TOTAL / N)) file=$FILE"
callgrind_annotate --inclusive=yes --threshold=100 "$FILE" 2>/dev/null |
  grep -E 'amqpgw::|grpc::Server|Executor::ThreadMain|grpc_pollset_work|malloc|free' |
  sed -E 's#/[^ ]*/(server|gen)/#\1/#' | cut -c1-180 | head -n 40
