#!/usr/bin/env bash
# Does the gateway's memory stay flat under a steady load? One private
# RabbitMQ node and one amqpgwd; for --minutes M (default 10):
#   - 100 StreamMessages streams on 100 queues, with --trickle R messages a
#     second in all published to them by unary Publish calls;
#   - beside them, rounds of PublishStream (--round N messages, max_in_flight
#     256) into one queue, each followed by a Subscribe that takes and acks
#     all N in-stream.
# The gateway's RSS is sampled every --every S seconds (default 15). Prints
# the samples, then one line: RSS after the first minute (the start: pools,
# caches and gRPC's arenas are warm by then), at the end, the peak, and the
# growth from start to end; plus what was published and consumed.
#
#   bench/soak.sh [--minutes M] [--trickle R] [--round N] [--every S]
#                 [--build DIR | --no-build] [--keep]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MINUTES=10 TRICKLE=200 ROUND=20000 EVERY=15 BUILD=$ROOT/build DO_BUILD=1 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) MINUTES=$2; shift 2 ;;
    --trickle) TRICKLE=$2; shift 2 ;;
    --round) ROUND=$2; shift 2 ;;
    --every) EVERY=$2; shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
log() { echo "soak: $*" >&2; }

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
if [ "$DO_BUILD" = 1 ]; then
  "$ROOT/scripts/bootstrap.sh"
  log "building amqpgwd, amqpgw-bench"
  bench_build "$BUILD" amqpgwd amqpgw-bench
fi
GWD=$BUILD/server/amqpgwd
GBENCH=$BUILD/bench/amqpgw-bench
NODE=$ROOT/tests/support/rabbitmq-node.sh
export AMQPGW_NODE_MANAGEMENT=0
bench_start amqpgw-soak

rss_mb() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$GW_PID/status"; }
SECONDS_TOTAL=$((MINUTES * 60))
log "steady load for $MINUTES min: 100 streams + a trickle of $TRICKLE msg/s, PublishStream/Subscribe rounds of $ROUND"
"$GBENCH" streams --server "$SERVER" --queue soak-s --streams 100 \
  --duration "$SECONDS_TOTAL" --trickle "$TRICKLE" > "$WORK/streams.out" 2> "$WORK/streams.err" &
STREAMS_PID=$!
(
  end=$((SECONDS + SECONDS_TOTAL))
  while [ "$SECONDS" -lt "$end" ]; do
    "$GBENCH" publish-stream --server "$SERVER" --queue soak-b -n "$ROUND" \
      --max_in_flight 256 | tail -n 1
    "$GBENCH" subscribe --server "$SERVER" --queue soak-b -n "$ROUND" \
      --prefetch 1000 --max_batch 256 --ack_batch 250 | tail -n 1
  done
) > "$WORK/rounds.out" 2> "$WORK/rounds.err" &
ROUNDS_PID=$!

START_RSS="" PEAK=0 t=0
while kill -0 "$STREAMS_PID" 2>/dev/null; do
  sleep "$EVERY"  # a sampling interval, not a synchronisation
  t=$((t + EVERY))
  kill -0 "$GW_PID" 2>/dev/null || { log "amqpgwd exited"; cat "$WORK/amqpgwd.log" >&2; exit 1; }
  r=$(rss_mb)
  echo "t=${t}s rss_mb=$r"
  if [ -z "$START_RSS" ] && [ "$t" -ge 60 ]; then START_RSS=$r; fi
  PEAK=$(awk -v a="$PEAK" -v b="$r" 'BEGIN {print (b > a) ? b : a}')
  [ "$t" -ge $((SECONDS_TOTAL + 120)) ] && break
done
END_RSS=$(rss_mb)
wait "$STREAMS_PID" || { log "the streams load failed:"; cat "$WORK/streams.err" >&2; exit 1; }
wait "$ROUNDS_PID" || true
ROUNDS=$(grep -c 'mode=subscribe' "$WORK/rounds.out" || true)
FAILED=$(grep -Ec 'errors=[1-9]|failed=[1-9]' "$WORK/rounds.out" || true)
echo "minutes=$MINUTES rss_start_mb=$START_RSS rss_end_mb=$END_RSS rss_peak_mb=$PEAK" \
  "growth_mb=$(awk -v a="$START_RSS" -v b="$END_RSS" 'BEGIN {printf "%.1f", b - a}')" \
  "rounds=$ROUNDS round_messages=$ROUND rounds_with_errors=$FAILED"
echo "streams: $(tail -n 1 "$WORK/streams.out")"
