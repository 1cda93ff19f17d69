#!/usr/bin/env bash
# What gRPC itself costs per call on this machine: amqpgw-bench against
# amqpgw-grpc-floor, a Gateway that does nothing, with the callback API
# (as amqpgwd), the same finishing each call from another thread (as
# amqpgwd's owner threads do), the async API on one thread, and the async
# API next to gRPC's default health service. No broker is involved.
#
#   bench/grpc_floor.sh [--reps R] [-n N] [--sync-n N] [--build DIR | --no-build]
#
# Per mode and repetition: unary Publish with 64 calls in flight (-n calls,
# default 100000; throughput, p50, server CPU per call) and GetStatus one at
# a time with 700 us idle between calls (--sync-n calls, default 3000; the
# round trip when the server's threads sleep between calls, as they do while
# the broker confirms a publish-sync call). Prints a Markdown table of
# medians.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=3 N=100000 SYNC_N=3000 BUILD=$ROOT/build DO_BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    -n) N=$2; shift 2 ;;
    --sync-n) SYNC_N=$2; shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "grpc_floor.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
if [ "$DO_BUILD" = 1 ]; then
  "$ROOT/scripts/bootstrap.sh"
  bench_build "$BUILD" amqpgw-bench amqpgw-grpc-floor
fi
GBENCH=$BUILD/bench/amqpgw-bench
FLOOR=$BUILD/bench/amqpgw-grpc-floor

WORK=$(mktemp -d /tmp/amqpgw-floor.XXXXXX)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for rep in $(seq 1 "$REPS"); do
  for mode in callback callback-hop async async-health; do
    ok=1
    bench_floor_start "$FLOOR" "$mode" "$WORK/addr" || ok=0
    SERVER_PID=$FLOOR_PID ADDR=$FLOOR_ADDR
    [ "$ok" = 1 ] || exit 1
    echo "grpc_floor: repetition $rep, $mode at $ADDR" >&2
    echo "server=$mode run=publish64 $("$GBENCH" publish --server "$ADDR" --queue floor \
      --concurrency 64 -n "$N" --gateway_pid "$SERVER_PID" | tail -n 1)" >> "$WORK/raw"
    echo "server=$mode run=status_idle $("$GBENCH" status-sync --server "$ADDR" \
      -n "$SYNC_N" --pause_us 700 --gateway_pid "$SERVER_PID" | tail -n 1)" >> "$WORK/raw"
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=""
  done
done

echo "bench/grpc_floor.sh --reps $REPS -n $N --sync-n $SYNC_N"
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(uname -sr)"
echo
/usr/bin/python3 - "$WORK/raw" <<'PYEOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
    rows.setdefault((kv["server"], kv["run"]), []).append(kv)
def med(mode, run, key, dec=0):
    vals = [float(r[key]) for r in rows.get((mode, run), []) if key in r]
    return f"{statistics.median(vals):,.{dec}f}" if vals else "n/a"
print("| Server | Publish x64 msg/s | p50 us | server CPU us/call | GetStatus idle p50 us | server CPU us/call |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for mode in ("callback", "callback-hop", "async", "async-health"):
    print(f"| {mode} | {med(mode, 'publish64', 'msgs_per_s')} | {med(mode, 'publish64', 'p50_us')} "
          f"| {med(mode, 'publish64', 'gw_cpu_us_per_msg', 1)} | {med(mode, 'status_idle', 'p50_us')} "
          f"| {med(mode, 'status_idle', 'gw_cpu_us_per_msg', 1)} |")
PYEOF
