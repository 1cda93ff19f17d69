#!/usr/bin/env bash
# Load through HAProxy (docker/haproxy.cfg) with 1, 2 and 3 gateways on
# loopback: unary Publish from many callers, and Subscribe consumers, per
# gateway count; a Markdown table of msgs/s (with p50/p99 where one process
# measures them, and the CPU the gateways and HAProxy spent per message).
#
#   bench/balancer.sh [-n N] [--concurrency C] [--consumers K] [--batch B]
#                     [--modes "publish subscribe"] [--gateways "1 2 3"]
#                     [--reps R] [--cluster] [--quick]
#                     [--build DIR | --no-build] [--out FILE] [--keep]
#
# bench/lib.sh's bench_start gives the work folder, a private RabbitMQ node
# and gateway 1 (kept for every run); per repetition and gateway count,
# gateways 2 and 3 and HAProxy are started fresh, the queue is purged, and
# each mode runs once through HAProxy:
#   publish    one amqpgw-bench publish: N unary Publish calls, C in flight
#              over one HTTP/2 connection, which HAProxy spreads call by
#              call over the gateways (round robin)
#   publish-batch, publish-sync  the same with amqpgw-bench's mode of
#              that name (PublishBatch of B; one call at a time)
#   subscribe  N messages put in the queue first (PublishBatch, not timed),
#              then K amqpgw-bench subscribe processes at once, each a
#              Subscribe stream (HAProxy spreads the streams) acking its
#              share of N;
#              msgs/s is N over the wall time of all K
# On one machine the gateways, HAProxy, the broker and the load generator
# share the cores: expect no speed-up from more gateways here; the point is
# that throughput holds and nothing fails (docs/production.md says what to
# expect on real hardware). The lead runs it on an idle machine.
#
# Options:
#   -n N            messages per run (default 50000)
#   --concurrency C publish: calls in flight (default 64)
#   --consumers K   subscribe: streams (default 6, 2 per gateway at 3)
#   --batch B       publish-batch: messages per call (default 256)
#   --modes L       modes to run (default "publish subscribe")
#   --gateways L    gateway counts to run (default "1 2 3")
#   --reps R        repetitions (default 1)
#   --cluster       two more RabbitMQ nodes joined to bench_start's, all
#                   loading docker/cluster/definitions.json (quorum queues
#                   by default, as docker/compose.cluster.yaml runs them;
#                   plus the user guest); gateway n starts on node n
#   --quick         a smoke run: -n 2000, --consumers 3 (shows it works;
#                   the figures mean nothing)
#   --build DIR     build folder (default build); --no-build uses it as is
#   --out FILE      also write the table to FILE
#   --keep          keep the work folder (logs of nodes, gateways, HAProxy)
# Environment: AMQPGWD_FLAGS adds flags to every amqpgwd.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=50000 CONC=64 CONSUMERS=6 BATCH=256 MODES="publish subscribe" COUNTS="1 2 3" REPS=1
CLUSTER=0 BUILD=$ROOT/build DO_BUILD=1 KEEP=0 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --consumers) CONSUMERS=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --gateways) COUNTS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --cluster) CLUSTER=1; shift ;;
    --quick) N=2000 CONSUMERS=3; shift ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "balancer.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for m in $MODES; do
  case "$m" in publish|publish-batch|publish-sync|subscribe) ;; *)
    echo "balancer.sh: --modes takes publish, publish-batch, publish-sync" \
      "and subscribe" >&2; exit 2 ;;
  esac
done
for c in $COUNTS; do
  case "$c" in 1|2|3) ;; *)
    echo "balancer.sh: docker/haproxy.cfg takes 1 to 3 gateways" >&2; exit 2 ;;
  esac
done
log() { echo "balancer: $*" >&2; }
export KEEP  # read by bench_cleanup (bench/lib.sh)

"$ROOT/scripts/bootstrap.sh"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
if [ "$DO_BUILD" = 1 ]; then
  log "building amqpgwd and amqpgw-bench"
  bench_build "$BUILD" amqpgwd amqpgw-bench
fi
GWD=$BUILD/server/amqpgwd
GBENCH=$BUILD/bench/amqpgw-bench
NODE=$ROOT/tests/support/rabbitmq-node.sh
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

# Nodes of a cluster share the Erlang cookie, and load
# docker/cluster/definitions.json at boot as compose's do (quorum queues by
# default), with bench_start's user guest added (definitions loaded at boot
# replace the default user): all set before bench_start starts node 1.
DEFS=""
if [ "$CLUSTER" = 1 ]; then
  export AMQPGW_NODE_COOKIE="balancer-$$-$RANDOM"
  DEFS=$(mktemp /tmp/amqpgw-balancer-defs.XXXXXX.json)
  python3 - "$ROOT/docker/cluster/definitions.json" "$DEFS" <<'PY'
import base64, hashlib, json, os, sys
d = json.load(open(sys.argv[1]))
salt = os.urandom(4)
h = base64.b64encode(salt + hashlib.sha256(salt + b"guest").digest()).decode()
d.setdefault("users", []).append({"name": "guest", "password_hash": h,
    "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]})
d.setdefault("permissions", []).append({"user": "guest", "vhost": "/",
    "configure": ".*", "write": ".*", "read": ".*"})
json.dump(d, open(sys.argv[2], "w"))
PY
  export RABBITMQ_EXTRA_CONF="load_definitions = $DEFS"
fi
# Gateway 1 (bench_start's) with an HTTP port too: docker/haproxy.cfg
# balances both ports.
BENCH_HTTP_LISTEN=127.0.0.1:0 bench_start amqpgw-balancer
PIDS=()  # what this script started besides bench_start's node and gateway
EXTRA_NODES=()
stop_pids() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  stop_pids
  for d in "${EXTRA_NODES[@]}"; do "$NODE" stop "$d" >/dev/null 2>&1 || true; done
  [ -n "$DEFS" ] && rm -f "$DEFS"
  bench_cleanup
}
trap cleanup EXIT

URIS=("$URI")
if [ "$CLUSTER" = 1 ]; then
  log "starting two more RabbitMQ nodes and joining them"
  # shellcheck disable=SC1091
  SEED=$(. "$WORK/rabbitmq/node.env"; echo "$NODE")
  for i in 2 3; do
    EXTRA_NODES+=("$WORK/rabbit$i")
    URIS+=("$("$NODE" start "$WORK/rabbit$i" | tail -n 1)")
    "$NODE" ctl "$WORK/rabbit$i" stop_app >/dev/null
    "$NODE" ctl "$WORK/rabbit$i" join_cluster "$SEED" >/dev/null
    "$NODE" ctl "$WORK/rabbit$i" start_app >/dev/null
  done
  "$NODE" ctl "$WORK/rabbitmq" await_online_nodes 3 >/dev/null
  unset RABBITMQ_EXTRA_CONF
  rm -f "$DEFS"
fi
broker_list() {  # gateway i (0-based) starts on node i, then the others
  local i=$1 k out="" n=${#URIS[@]}
  for k in $(seq 0 $((n - 1))); do
    out+="${out:+,}${URIS[$(( (i + k) % n ))]}"
  done
  echo "$out"
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
http_port() {  # the HTTP port in an amqpgwd log
  grep -o 'grpc-web on [^ ]* (port [0-9]*' "$1" | grep -o '[0-9]*$'
}
cpu_ticks() {  # utime + stime of a process, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
servers_up() {  # how many gateways HAProxy shows UP
  python3 - "$1" <<'PY'
import sys, urllib.request
try:
    page = urllib.request.urlopen(
        "http://127.0.0.1:%s/stats;csv" % sys.argv[1], timeout=2).read()
except Exception:
    print(0); sys.exit()
lines = page.decode().splitlines()
head = lines[0][2:].split(",")
px, sv, st = head.index("pxname"), head.index("svname"), head.index("status")
print(sum(1 for l in lines[1:] if l.split(",")[px:px + 1] == ["gateways_grpc"]
          and l.split(",")[sv] not in ("FRONTEND", "BACKEND")
          and l.split(",")[st] == "UP"))
PY
}
pick() {
  echo "$1" | tr ' ' '\n' | grep -E "^$2=" | cut -d= -f2 || true
}
per_msg() {  # clock ticks -> microseconds per message
  awk -v t="$1" -v u="$TICK_US" -v n="$N" 'BEGIN {printf "%.1f", t * u / n}'
}

TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))
QUEUE=amqpgw-balancer-bench
read -r -a FLAGS <<< "${AMQPGWD_FLAGS:-}"
TABLE=$WORK/table.md
{
  echo "| gateways | rep | mode | msgs/s | p50 us | p99 us | gateways CPU us/msg | HAProxy CPU us/msg |"
  echo "| ---: | ---: | :--- | ---: | ---: | ---: | ---: | ---: |"
} | tee "$TABLE"

for rep in $(seq 1 "$REPS"); do
  for count in $COUNTS; do
    run=$WORK/run-$rep-$count
    mkdir -p "$run"
    GW_PIDS=("$GW_PID")
    env_vars=("GATEWAY1_GRPC=$SERVER"
              "GATEWAY1_HTTP=127.0.0.1:$(http_port "$WORK/amqpgwd.log")")
    for i in $(seq 1 $((count - 1))); do
      log_file=$run/gw$((i + 1)).log
      : > "$log_file"
      env -u AMQPGW_BROKER "$GWD" --broker="$(broker_list "$i")" \
        --instance_id="gw$((i + 1))" --listen=127.0.0.1:0 \
        --http_listen=127.0.0.1:0 "${FLAGS[@]}" > "$log_file" 2>&1 &
      pid=$!
      PIDS+=("$pid")
      GW_PIDS+=("$pid")
      gport=$(bench_gateway_port "$log_file" "$pid")
      env_vars+=("GATEWAY$((i + 1))_GRPC=127.0.0.1:$gport"
                 "GATEWAY$((i + 1))_HTTP=127.0.0.1:$(http_port "$log_file")")
    done
    front=$(free_port) web=$(free_port) stats=$(free_port)
    env "HAPROXY_GRPC_BIND=127.0.0.1:$front" "HAPROXY_HTTP_BIND=127.0.0.1:$web" \
      "HAPROXY_STATS_BIND=127.0.0.1:$stats" "${env_vars[@]}" \
      "$HAPROXY" -db -f "$ROOT/docker/haproxy.cfg" > "$run/haproxy.log" 2>&1 &
    HAP_PID=$!
    PIDS+=("$HAP_PID")
    for _ in $(seq 1 300); do
      [ "$(servers_up "$stats")" = "$count" ] && break
      kill -0 "$HAP_PID" 2>/dev/null || { cat "$run/haproxy.log" >&2; exit 1; }
      sleep 0.1  # polling a condition with a deadline
    done
    if [ "$(servers_up "$stats")" != "$count" ]; then
      log "HAProxy does not show $count gateway(s) UP"; cat "$run/haproxy.log" >&2
      exit 1
    fi
    LB=127.0.0.1:$front
    for mode in $MODES; do
      log "rep $rep, $count gateway(s): $mode"
      if [ "$mode" = subscribe ]; then
        # The messages first (not timed, not counted).
        if ! "$GBENCH" publish-batch --server "$LB" --queue "$QUEUE" -n "$N" \
          --concurrency 4 --purge > "$run/fill.txt" 2>&1; then
          log "filling the queue failed:"; tail -n 5 "$run/fill.txt" >&2; exit 1
        fi
      fi
      before_gw=0
      for pid in "${GW_PIDS[@]}"; do before_gw=$((before_gw + $(cpu_ticks "$pid"))); done
      before_hap=$(cpu_ticks "$HAP_PID")
      start_ns=$(date +%s%N)
      if [ "$mode" != subscribe ]; then
        extra=(--concurrency "$CONC")
        [ "$mode" = publish-batch ] && extra+=(--batch "$BATCH")
        [ "$mode" = publish-sync ] && extra=()
        if ! line=$("$GBENCH" "$mode" --server "$LB" --queue "$QUEUE" -n "$N" \
          "${extra[@]}" --purge --label "gateways=$count" 2> "$run/$mode.err" |
          tail -n 1); then
          log "amqpgw-bench $mode failed:"; tail -n 5 "$run/$mode.err" >&2; exit 1
        fi
        echo "$line" > "$run/$mode.txt"
        rate=$(pick "$line" msgs_per_s) p50=$(pick "$line" p50_us) p99=$(pick "$line" p99_us)
      else
        sub_pids=()
        for k in $(seq 1 "$CONSUMERS"); do
          "$GBENCH" subscribe --server "$LB" --queue "$QUEUE" \
            -n $((N / CONSUMERS + (k <= N % CONSUMERS ? 1 : 0))) --label "gateways=$count" \
            > "$run/subscribe-$k.txt" 2>&1 &
          sub_pids+=("$!")
        done
        failed=0
        for pid in "${sub_pids[@]}"; do wait "$pid" || failed=1; done
        if [ "$failed" = 1 ]; then
          log "a subscribe run failed:"; tail -n 5 "$run"/subscribe-*.txt >&2; exit 1
        fi
        rate=$(awk -v n="$N" -v ns=$(( $(date +%s%N) - start_ns )) \
          'BEGIN {printf "%.0f", n / (ns / 1e9)}')
        p50="—" p99="—"
      fi
      after_gw=0
      for pid in "${GW_PIDS[@]}"; do after_gw=$((after_gw + $(cpu_ticks "$pid"))); done
      after_hap=$(cpu_ticks "$HAP_PID")
      printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$count" "$rep" \
        "$mode" "${rate:-?}" "${p50:-—}" "${p99:-—}" \
        "$(per_msg $((after_gw - before_gw)))" \
        "$(per_msg $((after_hap - before_hap)))" | tee -a "$TABLE"
    done
    stop_pids
  done
done
if [ -n "$OUT" ]; then cp "$TABLE" "$OUT"; log "table written to $OUT"; fi
