#!/usr/bin/env bash
# The gateway against direct AMQP, side by side, on one private RabbitMQ node.
#
#   bench/compare.sh [--reps R] [-n N] [--cli-n N] [--quick] [--out FILE]
#                    [--keep]
#
# Builds amqpgwd and the two load tools, starts its own RabbitMQ node and
# daemon (nothing else on the machine is touched), runs every scenario R times
# with the gateway and the direct rabbitmq-c runs alternating (the order
# flips every repetition), and prints a Markdown table of medians with the
# ratio gateway / direct and the issue's targets. Raw summary lines are
# kept in the work folder (printed at the end) and, with --out, next to FILE.
#
# Options:
#   --reps R          repetitions per scenario (default 3)
#   -n N              messages per publish and stream run (default 100000;
#                     N/10 for the prefetch-10 streams)
#   --sync-n N        messages per publish-sync run (default 3000)
#   --cli-n N         messages of the `amqpgw publish --count N` run, and of
#                     the direct run it is compared with (default 60000)
#   --py-n N          messages per Python run (default 20000)
#   --idle-seconds S  how long 100 idle streams are watched (default 60)
#   --quick           a smoke run: --reps 1 -n 20000 --sync-n 500
#                     --cli-n 5000 --py-n 5000 --idle-seconds 10
#   --build DIR       build folder (default build); --no-build uses it as is
#   --out FILE        also write the table (and FILE.raw, the raw lines)
#   --keep            keep the work folder (broker logs, daemon log)
#   --only "F..."     run only these scenario functions each repetition
#   --pin             the broker on CPU 0, everything else (amqpgwd, the
#                     floor servers, every client) on CPU 1: the broker's
#                     work then has a core to itself, as on a host of its
#                     own, instead of sharing both with the gateway
#                     (e.g. "sub_g stream_d stream_g", in that order, flipped
#                     every other repetition), and no idle runs
# Environment: AMQPGWD_FLAGS adds flags to amqpgwd (e.g.
# "--publisher_connections=2"); the script adds --metrics_listen, and reads
# amqpgwd's publish histograms around the unary, PublishStream and
# publish-sync runs (run_split: a message's time at the broker and the
# gateway's own).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=3 N=100000 SYNC_N=3000 PY_N=20000 IDLE_S=60 CLI_N=60000 SYNC_PAUSE_US=250
BUILD=$ROOT/build DO_BUILD=1 OUT="" KEEP=0 ONLY="" PIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    -n) N=$2; shift 2 ;;
    --sync-n) SYNC_N=$2; shift 2 ;;
    --cli-n) CLI_N=$2; shift 2 ;;
    --py-n) PY_N=$2; shift 2 ;;
    --idle-seconds) IDLE_S=$2; shift 2 ;;
    --quick) REPS=1 N=20000 SYNC_N=500 PY_N=5000 IDLE_S=10 CLI_N=5000; shift ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --keep) KEEP=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --pin) PIN=1; shift ;;
    -h|--help) sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

SMALL_N=$((N / 10))
log() { echo "compare: $*" >&2; }

"$ROOT/scripts/bootstrap.sh"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
if [ "$DO_BUILD" = 1 ]; then
  log "building amqpgwd, amqpgw, amqpgw-bench, amqpgw-bench-direct, amqpgw-grpc-floor"
  bench_build "$BUILD" amqpgwd amqpgw amqpgw-bench amqpgw-bench-direct amqpgw-grpc-floor
fi
GWD=$BUILD/server/amqpgwd
GBENCH=$BUILD/bench/amqpgw-bench
DBENCH=$BUILD/bench/amqpgw-bench-direct
CLI=$BUILD/client/amqpgw
NODE=$ROOT/tests/support/rabbitmq-node.sh
# No management plugin: its statistics collection would load the measured broker.
export AMQPGW_NODE_MANAGEMENT=0
PY=/usr/bin/python3  # Debian's, with python3-grpcio and python3-aio-pika

# /metrics on a port of its own: the publish latency split (run_split).
AMQPGWD_FLAGS="${AMQPGWD_FLAGS:-} --metrics_listen=127.0.0.1:0"
bench_start amqpgw-bench
METRICS_URL=$(grep -o 'metrics: http://[^ ]*' "$WORK/amqpgwd.log" | head -n 1 | cut -d' ' -f2)
# gRPC's own floor in the same run: amqpgw-grpc-floor answers at once
# (callback, as amqpgwd) or after one hand-off to another thread
# (callback-hop, as amqpgwd's owner threads finish its calls).
FLOOR_PIDS=()
trap 'kill "${FLOOR_PIDS[@]}" 2>/dev/null || true; bench_cleanup' EXIT
# start_floor NAME MODE [FLAG...]: bench_floor_start (lib.sh), remembered
# for the cleanup.
start_floor() {
  local ok=1
  bench_floor_start "$BUILD/bench/amqpgw-grpc-floor" "$2" "$WORK/floor-$1.addr" "${@:3}" || ok=0
  FLOOR_PIDS+=("$FLOOR_PID")
  [ "$ok" = 1 ] || exit 1
}
start_floor callback callback
FLOOR=$FLOOR_ADDR FLOOR_GW_PID=$FLOOR_PID
start_floor hop callback-hop
HOP=$FLOOR_ADDR HOP_GW_PID=$FLOOR_PID
# pin CPUS_BROKER CPUS_REST: the broker's threads on the first CPU list,
# amqpgwd's, the floor servers' and this script's (so every client started
# from now on) on the second. -a: every thread; threads started later
# inherit their creator's CPUs.
pin() {
  taskset -a -c -p "$1" "$BROKER_PID" >/dev/null
  for pid in "$GW_PID" "${FLOOR_PIDS[@]}" $$; do taskset -a -c -p "$2" "$pid" >/dev/null; done
}
ALL_CPUS=0-$(($(nproc) - 1))
if [ -n "$PIN" ]; then
  pin 0 1
  log "pinned: the broker on CPU 0; amqpgwd, the floor servers and the clients on CPU 1"
fi
sleep 1  # let start-up settle before reading the idle RSS
IDLE_RSS_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$GW_PID/status")

# Python stubs, generated at run time.
mkdir -p "$WORK/py"
/usr/bin/protoc -I"$ROOT/proto" --python_out="$WORK/py" --grpc_python_out="$WORK/py" \
  --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \
  amqpgw/v1/gateway.proto amqpgw/v1/options.proto

Q=amqpgw-bench
COMMON_G=(--server "$SERVER" --queue "$Q" --gateway_pid "$GW_PID" --broker_pid "$BROKER_PID")
COMMON_D=(--broker "$URI" --queue "$Q" --broker_pid "$BROKER_PID")

# run SCENARIO COMMAND...: one measured run; its summary line goes to $RAW.
run() {
  local scenario=$1; shift
  local line
  if line=$("$@" 2> "$WORK/last.err" | tail -n 1) && [ -n "$line" ]; then
    echo "scenario=$scenario $line" >> "$RAW"
    log "$scenario: $(echo "$line" | grep -o 'tool=[^ ]*') $(echo "$line" | grep -o 'msgs_per_s=[^ ]*') $(echo "$line" | grep -o 'p50_us=[^ ]*' || true)"
  else
    echo "scenario=$scenario failed=1 cmd=$(basename "$1")" >> "$RAW"
    log "$scenario: FAILED: $*"; cat "$WORK/last.err" >&2
  fi
}
# run_split SCENARIO CMD...: run, plus where the gateway's publishes spent
# their time, from amqpgwd's two publish histograms scraped before and after:
# gw_queued_us (the call's hand-off to its write to the broker: the
# gateway's own share) and broker_confirm_us (that write to the confirm),
# means per message, appended to the summary line.
publish_sums() {
  # Nothing (and no split) if /metrics does not answer.
  curl -sf "$METRICS_URL" 2>/dev/null | awk '/^amqpgw_publish_(queued|confirm)_seconds_(sum|count) / {printf "%s=%s ", $1, $2}' || true
}
run_split() {
  local before after extra
  before=$(publish_sums)
  run "$@"
  after=$(publish_sums)
  extra=$("$PY" - "$before" "$after" <<'PYEOF'
import sys
before, after = (dict(kv.split("=") for kv in a.split()) for a in sys.argv[1:3])
def delta(key):
    return float(after.get(key, 0)) - float(before.get(key, 0))
out = []
for part, name in (("queued", "gw_queued_us"), ("confirm", "broker_confirm_us")):
    n = delta(f"amqpgw_publish_{part}_seconds_count")
    if n > 0:
        out.append(f"{name}={delta(f'amqpgw_publish_{part}_seconds_sum') / n * 1e6:.1f}")
print(" ".join(out))
PYEOF
)
  [ -z "$extra" ] || sed -i "\$ s/\$/ $extra/" "$RAW"
}
# cli_publish N: `amqpgw publish --count N` as a user runs it (100-byte
# persistent bodies, default --max-in-flight) on an emptied queue; prints a
# summary line like the load tools' (the CLI's own rate, the gateway's CPU
# per message from /proc).
cli_publish() {
  local n=$1 body ticks cpu0 cpu1 json
  body=$(head -c 100 /dev/zero | tr '\0' x)
  ticks=$(getconf CLK_TCK)
  "$CLI" --server "$SERVER" queue purge "$Q" >/dev/null
  cpu0=$(awk '{print $14 + $15}' "/proc/$GW_PID/stat")
  json=$("$CLI" --server "$SERVER" publish "$Q" "$body" --count "$n" --json --no-progress)
  cpu1=$(awk '{print $14 + $15}' "/proc/$GW_PID/stat")
  "$PY" - "$json" "$n" "$cpu0" "$cpu1" "$ticks" <<'PYEOF'
import json, sys
r = json.loads(sys.argv[1])
n, cpu = int(sys.argv[2]), (float(sys.argv[4]) - float(sys.argv[3])) / float(sys.argv[5])
print(f"tool=cli mode=publish-count n={n} size=100 persistent=1 ok={r['sent']} "
      f"errors={r['failed']} msgs_per_s={r['rate']:.1f} "
      f"gw_cpu_us_per_msg={cpu * 1e6 / max(1, r['sent'] + r['failed']):.2f}")
sys.exit(0 if r["failed"] == 0 and "rpc_error" not in r else 1)
PYEOF
}
# The queue holds exactly N fresh messages (not timed).
fill() {
  "$DBENCH" publish "${COMMON_D[@]}" -n "$1" --window 1024 --purge >/dev/null
}

log "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Idle: resources with no traffic (first, on a fresh daemon). ---
if [ -z "$ONLY" ]; then
log "idle: 100 open streams for ${IDLE_S}s"
run idle100 "$GBENCH" streams --server "$SERVER" --queue "$Q" --gateway_pid "$GW_PID" \
  --streams 100 --duration "$IDLE_S"
log "1000 open streams on 1000 queues"
run streams1000 "$GBENCH" streams --server "$SERVER" --queue "$Q" --gateway_pid "$GW_PID" \
  --streams 1000 --duration 10
fi

# --- Warm-up (not recorded): broker, daemon, both tools. ---
log "warm-up"
"$DBENCH" publish "${COMMON_D[@]}" -n 20000 --purge >/dev/null
"$GBENCH" publish-batch "${COMMON_G[@]}" -n 20000 --purge >/dev/null
SPLIT_BEFORE=$(publish_sums)
"$GBENCH" publish "${COMMON_G[@]}" -n 20000 --concurrency 64 --purge >/dev/null
SPLIT_AFTER=$(publish_sums)
# gRPC's floor at the unary row's own pace: the do-nothing server finishing
# each Publish on another thread as long after its arrival as amqpgwd's
# unary calls waited for their confirm in this warm-up (its mean), on 1 ms
# ticks, so that the calls due together finish together, as one confirm of
# several messages finishes them (lab: about as many wake-ups of that
# thread per call as amqpgwd's publisher thread has).
FLOOR_DELAY_US=$("$PY" - "$SPLIT_BEFORE" "$SPLIT_AFTER" <<'PYEOF'
import sys
before, after = (dict(kv.split("=") for kv in a.split()) for a in sys.argv[1:3])
key = "amqpgw_publish_confirm_seconds"
n = float(after.get(key + "_count", 0)) - float(before.get(key + "_count", 0))
s = float(after.get(key + "_sum", 0)) - float(before.get(key + "_sum", 0))
print(int(s / n * 1e6) if n > 0 else 3000)
PYEOF
)
start_floor paced callback-hop --delay_us "$FLOOR_DELAY_US" --tick_us 1000
PACED=$FLOOR_ADDR PACED_GW_PID=$FLOOR_PID
log "paced floor: each Publish finished ${FLOOR_DELAY_US} us after it arrives (1 ms ticks)"

for rep in $(seq 1 "$REPS"); do
  log "repetition $rep of $REPS"
  # Publishing: PublishBatch 256 and unary Publish x64 against a window of
  # 256, persistent 100-byte messages, confirmed.
  pub_g_batch() { run pub_batch "$GBENCH" publish-batch "${COMMON_G[@]}" -n "$N" --batch 256 --purge; }
  pub_g_unary() { run_split pub_unary "$GBENCH" publish "${COMMON_G[@]}" -n "$N" --concurrency 64 --purge; }
  # PublishStream: one stream, at most 256 messages unconfirmed (the
  # gateway holds the window; the tool writes as gRPC lets it, as the CLI
  # does), up to 256 answers per response (as the CLI asks); and the same
  # with one answer per response.
  pub_g_stream() { run_split pub_stream "$GBENCH" publish-stream "${COMMON_G[@]}" -n "$N" --max_in_flight 256 --answers_per_response 256 --purge; }
  pub_g_stream1() { run_split pub_stream1 "$GBENCH" publish-stream "${COMMON_G[@]}" -n "$N" --max_in_flight 256 --purge; }
  # The CLI as a user runs it, against direct with the same message count.
  pub_cli() { run cli_publish cli_publish "$CLI_N"; }
  pub_d_cli() { run pub_direct_cli "$DBENCH" publish "${COMMON_D[@]}" -n "$CLI_N" --window 256 --purge; }
  pub_d() { run pub_direct "$DBENCH" publish "${COMMON_D[@]}" -n "$N" --window 256 --purge; }
  # The most 64 callers can get: direct with the same 64 messages in flight
  # (each caller waits for its confirm).
  pub_d64() { run pub_direct64 "$DBENCH" publish "${COMMON_D[@]}" -n "$N" --window 64 --purge; }
  # gRPC's floor, same tools: 64 unary callers against the do-nothing
  # server, finishing each call at once and after one thread hand-off, and
  # idle round trips with and without the hand-off.
  floor_g() {
    run floor_unary "$GBENCH" publish --server "$FLOOR" --queue "$Q" --gateway_pid "$FLOOR_GW_PID" -n "$N" --concurrency 64
    run floor_hop_unary "$GBENCH" publish --server "$HOP" --queue "$Q" --gateway_pid "$HOP_GW_PID" -n "$N" --concurrency 64
    run floor_paced_unary "$GBENCH" publish --server "$PACED" --queue "$Q" --gateway_pid "$PACED_GW_PID" -n "$N" --concurrency 64
    run floor_idle "$GBENCH" status-sync --server "$FLOOR" --gateway_pid "$FLOOR_GW_PID" -n "$SYNC_N" --pause_us 700
    run floor_hop_idle "$GBENCH" status-sync --server "$HOP" --gateway_pid "$HOP_GW_PID" -n "$SYNC_N" --pause_us 700
  }
  sync_g() { run_split sync_gateway "$GBENCH" publish-sync "${COMMON_G[@]}" -n "$SYNC_N" --purge; }
  # Direct window 1 back to back, and with the next publish a pause after
  # each confirm (about the round trip a gateway's caller takes between
  # messages, status_idle below): what the broker's going idle in between
  # costs its own latency.
  sync_d() {
    run sync_direct "$DBENCH" publish-sync "${COMMON_D[@]}" -n "$SYNC_N" --purge
    run sync_direct_paused "$DBENCH" publish-sync "${COMMON_D[@]}" -n "$SYNC_N" --purge --pause_us "$SYNC_PAUSE_US"
  }
  # The floor under publish-sync: a gRPC round trip through the gateway
  # without the broker, back to back and with the threads idle in between
  # (as they are while the broker confirms).
  status_g() {
    run status_hot "$GBENCH" status-sync --server "$SERVER" --gateway_pid "$GW_PID" -n "$SYNC_N"
    run status_idle "$GBENCH" status-sync --server "$SERVER" --gateway_pid "$GW_PID" -n "$SYNC_N" --pause_us 700
  }
  # What the broker pays for the properties amqpgwd adds when asked to
  # (--default_message_id, tracing); by default it adds neither.
  pub_d_props() { run pub_direct_props "$DBENCH" publish "${COMMON_D[@]}" -n "$N" --window 256 --purge --gateway_props; }
  stream_g() { fill "$N"; run stream_gateway "$GBENCH" stream "${COMMON_G[@]}" -n "$N" --prefetch 1000 --ack auto; }
  # The same with up to 256 deliveries per response (max_batch).
  streamb_g() { fill "$N"; run stream_batch_gateway "$GBENCH" stream "${COMMON_G[@]}" -n "$N" --prefetch 1000 --ack auto --max_batch 256; }
  # Subscribe: acks on the stream every 250 deliveries, up to 256 deliveries
  # per response (direct: manual acks, multiple=true every 250).
  sub_g() { fill "$N"; run subscribe_gateway "$GBENCH" subscribe "${COMMON_G[@]}" -n "$N" --prefetch 1000 --ack_batch 250 --max_batch 256; }
  # The consumer rows again with the broker on a core of its own (CPU 0)
  # and the gateway and clients on the other: whether the gateway keeps up
  # with the broker when it does not take the broker's cores.
  pinned() {
    [ -n "$PIN" ] || pin 0 1
    "$@"
    [ -n "$PIN" ] || pin "$ALL_CPUS" "$ALL_CPUS"
  }
  sub_gp() { fill "$N"; pinned run subscribe_gateway_pinned "$GBENCH" subscribe "${COMMON_G[@]}" -n "$N" --prefetch 1000 --ack_batch 250 --max_batch 256; }
  stream_gp() { fill "$N"; pinned run stream_gateway_pinned "$GBENCH" stream "${COMMON_G[@]}" -n "$N" --prefetch 1000 --ack auto; }
  stream_dp() { fill "$N"; pinned run stream_direct_pinned "$DBENCH" stream "${COMMON_D[@]}" -n "$N" --prefetch 1000 --ack_batch 250; }
  # The publishing rows that miss their targets on shared cores, pinned the
  # same way: PublishStream against direct window 256, and publish-sync
  # against direct window 1 plus the idle round trip, all pinned.
  pub_gp() { pinned run_split pub_stream_pinned "$GBENCH" publish-stream "${COMMON_G[@]}" -n "$N" --max_in_flight 256 --answers_per_response 256 --purge; }
  pub_dp() { pinned run pub_direct_pinned "$DBENCH" publish "${COMMON_D[@]}" -n "$N" --window 256 --purge; }
  sync_gp() { pinned run_split sync_gateway_pinned "$GBENCH" publish-sync "${COMMON_G[@]}" -n "$SYNC_N" --purge; }
  sync_dp() {
    pinned run sync_direct_pinned "$DBENCH" publish-sync "${COMMON_D[@]}" -n "$SYNC_N" --purge
    pinned run status_idle_pinned "$GBENCH" status-sync --server "$SERVER" --gateway_pid "$GW_PID" -n "$SYNC_N" --pause_us 700
  }
  stream_d() { fill "$N"; run stream_direct "$DBENCH" stream "${COMMON_D[@]}" -n "$N" --prefetch 1000 --ack_batch 250; }
  # A small window (no target): the consumer read pause must not hold it
  # back.
  small_g() { fill "$SMALL_N"; run stream10_gateway "$GBENCH" stream "${COMMON_G[@]}" -n "$SMALL_N" --prefetch 10 --ack auto; }
  small_d() { fill "$SMALL_N"; run stream10_direct "$DBENCH" stream "${COMMON_D[@]}" -n "$SMALL_N" --prefetch 10; }
  # py_grpc_run SCENARIO [grpc_stream.py flags]
  py_grpc_run() {
    fill "$PY_N"
    run "$1" env PYTHONPATH="$WORK/py" "$PY" "$ROOT/bench/python/grpc_stream.py" \
      --server "$SERVER" --queue "$Q" -n "$PY_N" --prefetch 1000 --gateway_pid "$GW_PID" "${@:2}"
  }
  py_g() { py_grpc_run py_grpc; }
  py_gb() { py_grpc_run py_grpc_batch --max_batch 256; }
  py_d() {
    fill "$PY_N"
    run py_aiopika "$PY" "$ROOT/bench/python/aiopika_consume.py" \
      --broker "$URI" --queue "$Q" -n "$PY_N" --prefetch 1000
  }
  # Python publishing: grpcio on PublishStream (max_in_flight 256; one
  # answer per response, and up to 256) against aio-pika with publisher
  # confirms and 256 awaiting their confirm.
  py_pub_run() {
    run "$1" env PYTHONPATH="$WORK/py" "$PY" "$ROOT/bench/python/grpc_publish_stream.py" \
      --server "$SERVER" --queue "$Q" -n "$PY_N" --gateway_pid "$GW_PID" "${@:2}"
  }
  py_pub() { py_pub_run py_grpc_publish; }
  py_pubb() { py_pub_run py_grpc_publish_batch --answers_per_response 256; }
  py_pub_d() {
    run py_aiopika_publish "$PY" "$ROOT/bench/python/aiopika_publish.py" \
      --broker "$URI" --queue "$Q" -n "$PY_N" --window 256
  }
  if [ -n "$ONLY" ]; then
    read -r -a only <<< "$ONLY"
    if [ $((rep % 2)) = 0 ]; then
      for ((i = ${#only[@]} - 1; i >= 0; i--)); do "${only[$i]}"; done
    else
      for f in "${only[@]}"; do "$f"; done
    fi
  elif [ $((rep % 2)) = 1 ]; then
    pub_g_batch; pub_d; pub_g_stream; pub_g_stream1; pub_g_unary; pub_d64; floor_g; pub_d_props
    pub_cli; pub_d_cli
    sync_g; sync_d; status_g
    stream_g; stream_d; streamb_g; sub_g; small_g; small_d
    sub_gp; stream_dp; stream_gp
    pub_gp; pub_dp; sync_gp; sync_dp
    py_g; py_d; py_gb
    py_pub; py_pub_d; py_pubb
  else
    pub_d_cli; pub_cli
    pub_d_props; floor_g; pub_d64; pub_g_unary; pub_g_stream1; pub_g_stream; pub_d; pub_g_batch
    status_g; sync_d; sync_g
    sub_g; streamb_g; stream_d; stream_g; small_d; small_g
    sync_dp; sync_gp; pub_dp; pub_gp
    stream_gp; stream_dp; sub_gp
    py_pubb; py_pub_d; py_pub
    py_gb; py_d; py_g
  fi
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

MACHINE="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), $(uname -sr)"
TABLE=$("$PY" - "$RAW" <<PYEOF
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kv = dict(p.split("=", 1) for p in line.split())
    rows.setdefault(kv["scenario"], []).append(kv)

def med(scenario, key):
    vals = [float(r[key]) for r in rows.get(scenario, []) if key in r and "failed" not in r]
    return statistics.median(vals) if vals else None

def fmt(v, unit="", dec=0):
    if v is None:
        return "n/a"
    return f"{v:,.{dec}f}{unit}"

def verdict(ok):
    return "n/a" if ok is None else ("met" if ok else "**missed**")

# Sums and differences of medians; None when any is missing.
def add(*xs):
    return None if None in xs else sum(xs)

def sub(a, b):
    return None if None in (a, b) else a - b

out = []
out.append("| Scenario | Gateway | Direct / baseline | Gateway vs direct | Target | |")
out.append("| --- | ---: | ---: | ---: | --- | --- |")
def ratio_row(name, g, d, target=None):
    gv, dv = med(g, "msgs_per_s"), med(d, "msgs_per_s")
    r = gv / dv if gv and dv else None
    if target is None:
        out.append(f"| {name} | {fmt(gv, ' msg/s')} | {fmt(dv, ' msg/s')} | {fmt(r, '', 2)} | | n/a |")
        return
    out.append(f"| {name} | {fmt(gv, ' msg/s')} | {fmt(dv, ' msg/s')} | {fmt(r, '', 2)} | >= {target} | {verdict(None if r is None else r >= target)} |")
ratio_row("PublishBatch, batch 256, persistent 100 B (direct: confirm window 256)", "pub_batch", "pub_direct", 0.9)
ratio_row("PublishStream, max_in_flight 256, up to 256 answers per response, persistent 100 B (direct: window 256)", "pub_stream", "pub_direct", 0.95)
ratio_row("PublishStream as above, one answer per response (no target)", "pub_stream1", "pub_direct")
ratio_row("amqpgw publish --count ${CLI_N} (the CLI on PublishStream; direct: window 256, same count)", "cli_publish", "pub_direct_cli", 0.9)
ratio_row("Publish, 64 concurrent callers (direct: window 64, the same 64 messages in flight)", "pub_unary", "pub_direct64", 0.8)
ratio_row("Publish, 64 concurrent callers vs direct window 256 (no target)", "pub_unary", "pub_direct")
ratio_row("Direct with 64 in flight (window 64) vs window 256 (no target)", "pub_direct64", "pub_direct")
ratio_row("gRPC's do-nothing callback server, the same 64 callers, no broker, vs direct window 64 (no target)", "floor_unary", "pub_direct64")
gc, fc = med("pub_unary", "gw_cpu_us_per_msg"), med("floor_unary", "gw_cpu_us_per_msg")
above = sub(gc, fc)
out.append(f"| Server CPU per Publish call, 64 callers (baseline: gRPC's do-nothing callback server, same callers) | {fmt(gc, ' us', 1)} | {fmt(fc, ' us', 1)} | {fmt(above, ' us', 1)} | <= +15 us | {verdict(None if above is None else above <= 15)} |")
hc = med("floor_hop_unary", "gw_cpu_us_per_msg")
hop_cpu = sub(hc, fc)
out.append(f"| The bound: the do-nothing server finishing each call after one hand-off to another thread (amqpgwd's EventLoop), as amqpgwd's one-owner-thread rule needs, vs at once (server CPU per call, same callers; no target) | {fmt(hc, ' us', 1)} | {fmt(fc, ' us', 1)} | {fmt(hop_cpu, ' us', 1)} | | n/a |")
pc = med("floor_paced_unary", "gw_cpu_us_per_msg")
paced = sub(gc, pc)
out.append(f"| The bound at the unary row's pace: server CPU per Publish call above gRPC's do-nothing server finishing each call on another thread ${FLOOR_DELAY_US} us after it arrived (amqpgwd's mean wait for a confirm in the warm-up; 1 ms ticks), same 64 callers ({fmt(med('floor_paced_unary', 'msgs_per_s'), ' msg/s')}) | {fmt(gc, ' us', 1)} | {fmt(pc, ' us', 1)} | {fmt(paced, ' us', 1)} | <= +15 us | {verdict(None if paced is None else paced <= 15)} |")
dc = med("pub_direct64", "client_cpu_us_per_msg")
amqp_base = add(fc, dc)
own = sub(gc, amqp_base)
out.append(f"| The gateway's own part: server CPU per Publish call above the do-nothing server plus what any rabbitmq-c publisher spends (the direct tool's own CPU per message at window 64) | {fmt(gc, ' us', 1)} | {fmt(amqp_base, ' us', 1)} | {fmt(own, ' us', 1)} | <= +15 us | {verdict(None if own is None else own <= 15)} |")
# Where the gateway's publishes spent their time (run_split: amqpgwd's
# publish histograms), and what 64 callers could get with the gateway's own
# share at zero: each caller has one call in flight, so a call takes
# 64 / rate on average (Little's law).
ur, d64 = med("pub_unary", "msgs_per_s"), med("pub_direct64", "msgs_per_s")
uq, ub = med("pub_unary", "gw_queued_us"), med("pub_unary", "broker_confirm_us")
ucall = 64 / ur * 1e6 if ur else None
urest = ucall - uq - ub if None not in (ucall, uq, ub) else None
out.append(f"| Publish x64, mean time per call (64 / msg/s) and its parts: at the broker (a message's write to its confirm) / the gateway's own (the call's hand-off to that write) / the rest (gRPC both ways, the response finished on the publisher thread after the confirm, the client) (no target) | {fmt(ucall, ' us')} | {fmt(ub, ' us')} / {fmt(uq, ' us')} / {fmt(urest, ' us')} | {fmt(None if None in (uq, ucall) else uq / ucall * 100, ' %', 1)} own | | n/a |")
ubound = 64 / (ucall - uq) * 1e6 if None not in (ucall, uq) else None
out.append(f"| The bound: Publish x64 with the gateway's own share at zero, 64 / (call - own), vs direct window 64 (no target) | {fmt(ubound, ' msg/s')} | {fmt(d64, ' msg/s')} | {fmt(None if None in (ubound, d64) else ubound / d64, '', 2)} | | n/a |")
# The same with everything but the broker's time and gRPC's own round trip
# taken out: the do-nothing server finishing each call after a hand-off,
# same 64 callers (its mean call: 64 / its rate).
fh64 = med("floor_hop_unary", "msgs_per_s")
fcall = 64 / fh64 * 1e6 if fh64 else None
fbound = 64 / (ub + fcall) * 1e6 if None not in (ub, fcall) else None
out.append(f"| The bound: Publish x64 if a call took only its time at the broker plus gRPC's own round trip (the do-nothing server with a hand-off, same callers: {fmt(fcall, ' us')}), vs direct window 64 (no target) | {fmt(fbound, ' msg/s')} | {fmt(d64, ' msg/s')} | {fmt(None if None in (fbound, d64) else fbound / d64, '', 2)} | | n/a |")
for name, sc in (("PublishStream", "pub_stream"), ("publish-sync", "sync_gateway")):
    q, b = med(sc, "gw_queued_us"), med(sc, "broker_confirm_us")
    out.append(f"| {name}, mean per message: at the broker / the gateway's own, as above (no target) | {fmt(b, ' us')} | {fmt(q, ' us')} | | | n/a |")
gp, dp = med("sync_gateway", "p50_us"), med("sync_direct", "p50_us")
si = med("status_idle", "p50_us")
base = add(dp, si)
diff = sub(gp, base)
out.append(f"| publish-sync p50 latency (baseline: direct window 1 p50 + GetStatus p50 with idle threads, an idle gRPC round trip through the gateway) | {fmt(gp, ' us')} | {fmt(base, ' us')} | {fmt(diff, ' us')} | <= +50 us | {verdict(None if diff is None else diff <= 50)} |")
fi, fh = med("floor_idle", "p50_us"), med("floor_hop_idle", "p50_us")
hop = sub(fh, fi)
out.append(f"| One thread hand-off with idle threads: gRPC's do-nothing server finishing each call on another thread (amqpgwd's EventLoop) vs at once, p50; a publish-sync call needs one to its owner thread (no target) | {fmt(fh, ' us')} | {fmt(fi, ' us')} | {fmt(hop, ' us')} | | n/a |")
base_hop = add(base, hop)
diff_hop = sub(gp, base_hop)
out.append(f"| publish-sync p50 above the same baseline plus that hand-off (no target) | {fmt(gp, ' us')} | {fmt(base_hop, ' us')} | {fmt(diff_hop, ' us')} | | n/a |")
dpp = med("sync_direct_paused", "p50_us")
idle_cost = sub(dpp, dp)
out.append(f"| The broker's own part: direct window 1 waiting ${SYNC_PAUSE_US} us after each confirm before the next publish (a caller one round trip away, as through a gateway) vs back to back, p50 of publish to confirm (no target) | {fmt(dpp, ' us')} | {fmt(dp, ' us')} | {fmt(idle_cost, ' us')} | | n/a |")
own_base = add(dpp, si)
own_sync = sub(gp, own_base)
out.append(f"| The gateway's own part: publish-sync p50 above direct window 1 paused as above + the idle round trip (the broker's idle cost taken out, the hand-off left in) | {fmt(gp, ' us')} | {fmt(own_base, ' us')} | {fmt(own_sync, ' us')} | <= +50 us | {verdict(None if own_sync is None else own_sync <= 50)} |")
ratio_row("StreamMessages, prefetch 1000, AUTO ack (direct: basic.consume prefetch 1000, manual acks)", "stream_gateway", "stream_direct", 0.9)
ratio_row("StreamMessages as above, max_batch 256 (up to 256 deliveries per response)", "stream_batch_gateway", "stream_direct", 0.9)
ratio_row("Subscribe, prefetch 1000, acks every 250 in-stream, max_batch 256 (direct: basic.consume prefetch 1000, manual acks every 250)", "subscribe_gateway", "stream_direct", 0.9)
ratio_row("StreamMessages, prefetch 10, AUTO ack (no target)", "stream10_gateway", "stream10_direct")
# The bounds: the rows again with the broker on a core of its own (CPU 0),
# as on a host of its own, and the gateway and every client on the other
# (direct pinned the same), under the same targets.
ratio_row("Pinned: StreamMessages AUTO as above, the broker on CPU 0 and the gateway and both clients on CPU 1 (direct pinned the same; the bound of the StreamMessages row)", "stream_gateway_pinned", "stream_direct_pinned", 0.9)
ratio_row("Pinned: Subscribe as above (direct pinned the same; the bound of the Subscribe row)", "subscribe_gateway_pinned", "stream_direct_pinned", 0.9)
ratio_row("Pinned: PublishStream as above (direct window 256 pinned the same; the bound of the PublishStream row)", "pub_stream_pinned", "pub_direct_pinned", 0.95)
gpp, dpp1, sip = med("sync_gateway_pinned", "p50_us"), med("sync_direct_pinned", "p50_us"), med("status_idle_pinned", "p50_us")
basep = add(dpp1, sip)
diffp = sub(gpp, basep)
out.append(f"| Pinned: publish-sync p50 (baseline: direct window 1 p50 + the idle round trip, both pinned the same; the bound of the publish-sync row) | {fmt(gpp, ' us')} | {fmt(basep, ' us')} | {fmt(diffp, ' us')} | <= +50 us | {verdict(None if diffp is None else diffp <= 50)} |")
for name, s in (("PublishBatch", "pub_batch"), ("PublishStream", "pub_stream"), ("PublishStream, one answer per response (no target)", "pub_stream1"), ("StreamMessages", "stream_gateway"), ("StreamMessages, max_batch 256", "stream_batch_gateway"), ("Publish x64 (no target)", "pub_unary")):
    c = med(s, "gw_cpu_us_per_msg")
    target = None if "no target" in name else 25
    out.append(f"| Gateway CPU per message, {name} | {fmt(c, ' us', 1)} | | | {'<= 25 us' if target else ''} | {verdict(None if c is None or target is None else c <= target)} |")
c = med("subscribe_gateway", "gw_cpu_us_per_msg")
out.append(f"| Gateway CPU per delivery, Subscribe (acks every 250 in-stream, max_batch 256) | {fmt(c, ' us', 1)} | | | <= 10 us | {verdict(None if c is None else c <= 10)} |")
idle = med("idle100", "gw_cpu_pct")
out.append(f"| Idle CPU, 100 open streams, ${IDLE_S} s | {fmt(idle, ' % of a core', 2)} | | | < 0.5 % | {verdict(None if idle is None else idle < 0.5)} |")
rss_idle = ${IDLE_RSS_KB} / 1024
out.append(f"| RSS idle (after start-up) | {fmt(rss_idle, ' MB', 1)} | | | < 40 MB | {verdict(rss_idle < 40)} |")
r100 = med("idle100", "gw_rss_open_mb")
out.append(f"| RSS with 100 open idle streams | {fmt(r100, ' MB', 1)} | | | < 40 MB | {verdict(None if r100 is None else r100 < 40)} |")
r1000 = med("streams1000", "gw_rss_open_mb")
out.append(f"| RSS with 1,000 open streams on 1,000 queues | {fmt(r1000, ' MB', 1)} | | | < 300 MB | {verdict(None if r1000 is None else r1000 < 300)} |")
pg, pd = med("py_grpc", "msgs_per_s"), med("py_aiopika", "msgs_per_s")
pr = pg / pd if pg and pd else None
out.append(f"| Python: grpcio StreamMessages vs aio-pika consumer (prefetch 1000) | {fmt(pg, ' msg/s')} | {fmt(pd, ' msg/s')} | {fmt(pr, 'x', 1)} | >= 3x | {verdict(None if pr is None else pr >= 3)} |")
pb = med("py_grpc_batch", "msgs_per_s")
pbr = pb / pd if pb and pd else None
out.append(f"| Python as above, max_batch 256 | {fmt(pb, ' msg/s')} | {fmt(pd, ' msg/s')} | {fmt(pbr, 'x', 1)} | >= 3x | {verdict(None if pbr is None else pbr >= 3)} |")
for name, s in (("Python publishing: grpcio PublishStream (max_in_flight 256, one answer per response) vs aio-pika with confirms (window 256; no target)", "py_grpc_publish"), ("Python publishing as above, up to 256 answers per response (no target)", "py_grpc_publish_batch")):
    g, d = med(s, "msgs_per_s"), med("py_aiopika_publish", "msgs_per_s")
    r = g / d if g and d else None
    out.append(f"| {name} | {fmt(g, ' msg/s')} | {fmt(d, ' msg/s')} | {fmt(r, 'x', 1)} | | n/a |")
out.append("")
out.append("Medians per scenario (CPU in microseconds per message; latency per call; cores busy: the three CPU columns times msg/s, out of this machine's cores):")
out.append("")
out.append("| Run | msg/s | p50 us | p99 us | p999 us | gateway CPU | broker CPU | client CPU | cores busy | gateway peak RSS MB | runs |")
out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
def busy(s):
    rate = med(s, "msgs_per_s")
    if rate is None:
        return None
    us = sum(med(s, k) or 0 for k in ("gw_cpu_us_per_msg", "broker_cpu_us_per_msg", "client_cpu_us_per_msg"))
    return us * rate / 1e6
for s in ("pub_batch", "pub_stream", "pub_stream1", "cli_publish", "pub_direct_cli", "pub_unary", "floor_unary", "floor_hop_unary", "floor_paced_unary", "pub_direct", "pub_direct64", "pub_direct_props", "sync_gateway", "sync_direct", "sync_direct_paused", "status_hot", "status_idle", "floor_idle", "floor_hop_idle", "stream_gateway", "stream_batch_gateway", "subscribe_gateway", "stream_direct", "stream_gateway_pinned", "subscribe_gateway_pinned", "stream_direct_pinned", "pub_stream_pinned", "pub_direct_pinned", "sync_gateway_pinned", "sync_direct_pinned", "status_idle_pinned", "stream10_gateway", "stream10_direct", "py_grpc", "py_grpc_batch", "py_aiopika", "py_grpc_publish", "py_grpc_publish_batch", "py_aiopika_publish"):
    if s not in rows:
        continue
    n = len([r for r in rows[s] if "failed" not in r])
    bad = len(rows[s]) - n
    cells = [fmt(med(s, "msgs_per_s")), fmt(med(s, "p50_us"), "", 0), fmt(med(s, "p99_us"), "", 0),
             fmt(med(s, "p999_us"), "", 0), fmt(med(s, "gw_cpu_us_per_msg"), "", 1),
             fmt(med(s, "broker_cpu_us_per_msg"), "", 1), fmt(med(s, "client_cpu_us_per_msg"), "", 1),
             fmt(busy(s), "", 2), fmt(med(s, "gw_rss_peak_mb"), "", 1)]
    out.append(f"| {s} | " + " | ".join(cells) + f" | {n}{' (' + str(bad) + ' failed)' if bad else ''} |")
print("\n".join(out))
PYEOF
)

{
  echo "bench/compare.sh --reps $REPS -n $N --sync-n $SYNC_N --cli-n $CLI_N --py-n $PY_N --idle-seconds $IDLE_S${ONLY:+ --only \"$ONLY\"}${PIN:+ --pin}${AMQPGWD_FLAGS:+ (AMQPGWD_FLAGS=$AMQPGWD_FLAGS)}"
  echo "Machine: $MACHINE; load average $LOAD_START at start, $LOAD_END at end"
  echo "RabbitMQ $("$NODE" ctl "$WORK/rabbitmq" version 2>/dev/null | tail -n 1), amqpgwd defaults unless AMQPGWD_FLAGS"
  echo
  echo "$TABLE"
} > "$WORK/table.md"
echo
cat "$WORK/table.md"
echo
echo "Raw summary lines:"
cat "$RAW"
if [ -n "$OUT" ]; then
  cp "$WORK/table.md" "$OUT"
  cp "$RAW" "$OUT.raw"
  log "table written to $OUT (raw lines: $OUT.raw)"
fi
