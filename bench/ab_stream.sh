#!/usr/bin/env bash
# An A/B of two amqpgwd configurations (or two sets of amqpgw-bench flags) on
# StreamMessages, with the direct rabbitmq-c consumer as the reference, all
# on one private RabbitMQ node.
#
#   bench/ab_stream.sh [--reps R] [-n N] [--prefetch P] [--ack MODE]
#                      [--size S] [--a-bench F] [--b-bench F] [--no-direct]
#                      [--build DIR | --no-build] -- A_FLAGS B_FLAGS
#
# Starts its own RabbitMQ node and two daemons, one with A_FLAGS and one with
# B_FLAGS (amqpgwd flags, one shell word each side; quote several), then per
# repetition fills the queue with N messages and drains it through A, B and
# the direct tool (the order of A and B flips every repetition). Prints one
# line per run: msgs/s, CPU per delivery of the gRPC client, the daemon and
# the broker, and the daemon's voluntary context switches per delivery (all
# its threads, from /proc/PID/task/*/status).
#
# Options:
#   --reps R       repetitions (default 3)
#   -n N           deliveries per run (default 100000)
#   --prefetch P   StreamMessages and direct prefetch (default 1000)
#   --ack MODE     auto, client or none for the gateway runs (default auto)
#   --size S       body bytes (default 100)
#   --a-bench F    more amqpgw-bench flags for A's runs (one shell word),
#   --b-bench F    and for B's, e.g. --b-bench "--max_batch 256"
#   --no-direct    skip the direct runs
#   --build DIR    build folder (default build); --no-build uses it as is
# Examples: bench/ab_stream.sh -- "" --consumer_read_pause=0
#           bench/ab_stream.sh --b-bench "--max_batch 256" -- "" ""
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=3 N=100000 PREFETCH=1000 ACK=auto SIZE=100 DIRECT=1 A_BENCH="" B_BENCH=""
BUILD=$ROOT/build DO_BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    -n) N=$2; shift 2 ;;
    --prefetch) PREFETCH=$2; shift 2 ;;
    --ack) ACK=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --a-bench) A_BENCH=$2; shift 2 ;;
    --b-bench) B_BENCH=$2; shift 2 ;;
    --no-direct) DIRECT=0; shift ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ab_stream.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ $# -ne 2 ]; then
  echo "ab_stream.sh: give -- A_FLAGS B_FLAGS (see --help)" >&2
  exit 2
fi
A_FLAGS=$1 B_FLAGS=$2

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
if [ "$DO_BUILD" = 1 ]; then
  "$ROOT/scripts/bootstrap.sh"
  bench_build "$BUILD" amqpgwd amqpgw-bench amqpgw-bench-direct
fi
GWD=$BUILD/server/amqpgwd
GBENCH=$BUILD/bench/amqpgw-bench
DBENCH=$BUILD/bench/amqpgw-bench-direct
NODE=$ROOT/tests/support/rabbitmq-node.sh
# No management plugin: its statistics collection would load the measured broker.
export AMQPGW_NODE_MANAGEMENT=0

WORK=$(mktemp -d /tmp/amqpgw-ab.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  "$NODE" stop "$WORK/rabbitmq" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

URI=$("$NODE" start "$WORK/rabbitmq" | tail -n 1)
BROKER_PID=$(cat "$WORK/rabbitmq/rabbitmq.pid")

declare -A PID PORT BENCH_FLAGS=([A]="$A_BENCH" [B]="$B_BENCH")
# start NAME FLAGS: a daemon on a free port; waits until its session is READY.
start() {
  local log=$WORK/$1.log
  # shellcheck disable=SC2086
  "$GWD" --broker="$URI" --listen=127.0.0.1:0 --http_listen= $2 > "$log" 2>&1 &
  PID[$1]=$!
  PIDS+=("$!")
  PORT[$1]=$(bench_gateway_port "$log" "${PID[$1]}")
}
start A "$A_FLAGS"
start B "$B_FLAGS"
echo "A: amqpgwd ${A_FLAGS:-(defaults)}${A_BENCH:+; amqpgw-bench $A_BENCH}"
echo "B: amqpgwd ${B_FLAGS:-(defaults)}${B_BENCH:+; amqpgw-bench $B_BENCH}"
echo "$N deliveries of $SIZE B, prefetch $PREFETCH, ack $ACK (direct: manual)"

Q=amqpgw-ab
fill() {
  "$DBENCH" publish --broker "$URI" --queue "$Q" -n "$N" --size "$SIZE" \
    --window 1024 --purge >/dev/null
}
vcs() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^voluntary_ctxt_switches/ {s += $2} END {print s + 0}'
}
pick() {
  echo "$1" | tr ' ' '\n' |
    grep -E '^(msgs_per_s|client_cpu_us_per_msg|gw_cpu_us_per_msg|broker_cpu_us_per_msg|deliveries_per_response)=' |
    tr '\n' ' '
}
gateway_run() {
  local pid=${PID[$1]} v0 v1 line
  fill
  v0=$(vcs "$pid")
  # shellcheck disable=SC2086
  line=$("$GBENCH" stream ${BENCH_FLAGS[$1]} --server "127.0.0.1:${PORT[$1]}" --queue "$Q" -n "$N" \
    --size "$SIZE" --prefetch "$PREFETCH" --ack "$ACK" --gateway_pid "$pid" \
    --broker_pid "$BROKER_PID" | tail -n 1)
  v1=$(vcs "$pid")
  echo "$1 $(pick "$line")vcs_per_msg=$(awk -v a="$v0" -v b="$v1" -v n="$N" \
    'BEGIN {printf "%.3f", (b - a) / n}')"
}
direct_run() {
  local line
  fill
  line=$("$DBENCH" stream --broker "$URI" --queue "$Q" -n "$N" --size "$SIZE" \
    --prefetch "$PREFETCH" --broker_pid "$BROKER_PID" | tail -n 1)
  echo "direct $(pick "$line")"
}
for rep in $(seq 1 "$REPS"); do
  if [ $((rep % 2)) = 1 ]; then gateway_run A; gateway_run B
  else gateway_run B; gateway_run A; fi
  if [ "$DIRECT" = 1 ]; then direct_run; fi
done
