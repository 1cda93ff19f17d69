#!/usr/bin/env bash
# The system calls amqpgwd makes for unary Publish calls: strace -c on the
# whole daemon around `amqpgw-bench publish --concurrency C -n N`, on a
# private RabbitMQ node. It counts what a change to the write path saves
# (e.g. one send per flush instead of three per message).
#
#   bench/syscalls.sh [-n N] [--concurrency C] [--build DIR | --no-build]
#                     [--gateway PATH]
#
# Options:
#   -n N             calls counted (default 30000), after a warm-up of 5000
#   --concurrency C  callers (default 64)
#   --build DIR      build folder (default build); --no-build uses it as is
#   --gateway PATH   another amqpgwd binary (say, an older build) with the
#                    same tools, for an A/B
# Prints the load tool's line, then strace's table (calls per system call;
# the daemon runs slower under strace, so only the counts mean anything).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=30000 CONC=64 BUILD=$ROOT/build DO_BUILD=1 GWD=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --gateway) GWD=$(realpath "$2"); shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "syscalls.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v strace >/dev/null || { echo "syscalls.sh: needs strace" >&2; exit 2; }

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
log() { echo "syscalls: $*" >&2; }
[ "$DO_BUILD" = 1 ] && bench_build "$BUILD" amqpgwd amqpgw-bench
GWD=${GWD:-$BUILD/server/amqpgwd}
GBENCH=$BUILD/bench/amqpgw-bench
NODE=$ROOT/tests/support/rabbitmq-node.sh
export AMQPGW_NODE_MANAGEMENT=0
bench_start amqpgw-syscalls
Q=amqpgw-bench
"$GBENCH" publish --server "$SERVER" --queue "$Q" -n 5000 --concurrency "$CONC" --purge >/dev/null

# Attached to every thread before the load starts: strace says so, one line
# per thread, before it counts anything.
threads=$(find "/proc/$GW_PID/task" -mindepth 1 -maxdepth 1 | wc -l)
strace -c -f -p "$GW_PID" -o "$WORK/strace.txt" 2> "$WORK/strace.err" &
ST=$!
for _ in $(seq 1 100); do
  [ "$(grep -c attached "$WORK/strace.err" || true)" -ge "$threads" ] && break
  sleep 0.1  # polling a condition with a deadline
done
"$GBENCH" publish --server "$SERVER" --queue "$Q" -n "$N" --concurrency "$CONC" --purge
kill -INT "$ST"
wait "$ST" || true
cat "$WORK/strace.txt"
