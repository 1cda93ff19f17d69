#!/usr/bin/env bash
# Load through HAProxy (docker/haproxy.cfg) with 1, 2 and 3 gateways on
# loopback, on a 3-node RabbitMQ cluster with a quorum queue (configured
# as docker/compose.cluster.yaml configures it): throughput and latency
# percentiles per gateway count, with the CPU the gateways and HAProxy
# spent per message.
#
#   bench/balancer.sh [-n N] [--mode M] [--concurrency C] [--batch B]
#                     [--gateways "1 2 3"] [--reps R] [--single]
#                     [--build DIR | --no-build] [--keep]
#
# Per repetition and gateway count: fresh gateways and HAProxy (the
# cluster stays), the queue purged, then one amqpgw-bench run of N messages
# through HAProxy. On one machine the gateways, HAProxy, the three nodes
# and the load generator share the cores: expect no speed-up from more
# gateways here; the point is that throughput and p99 hold (see
# docs/production.md for what to expect on real hardware).
#
# Options:
#   -n N            messages per run (default 50000)
#   --mode M        amqpgw-bench mode: publish (unary, default),
#                   publish-batch or publish-sync
#   --concurrency C calls in flight (default 64; publish-sync: 1)
#   --batch B       publish-batch: messages per call (default 256)
#   --gateways L    gateway counts to run (default "1 2 3")
#   --reps R        repetitions (default 1)
#   --single        one RabbitMQ node (classic queue) instead of the cluster
#   --build DIR     build folder (default build); --no-build uses it as is
#   --keep          keep the work folder (logs of nodes, gateways, HAProxy)
# Environment: AMQPGWD_FLAGS adds flags to every amqpgwd.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=50000 MODE=publish CONC=64 BATCH=256 COUNTS="1 2 3" REPS=1 SINGLE=0
BUILD=$ROOT/build DO_BUILD=1 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --gateways) COUNTS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --single) SINGLE=1; shift ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "balancer.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$MODE" in
  publish|publish-batch|publish-sync) ;;
  *) echo "balancer.sh: --mode publish, publish-batch or publish-sync" >&2
     exit 2 ;;
esac
for c in $COUNTS; do
  case "$c" in 1|2|3) ;; *)
    echo "balancer.sh: docker/haproxy.cfg takes 1 to 3 gateways" >&2; exit 2 ;;
  esac
done
log() { echo "balancer: $*" >&2; }

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

WORK=$(mktemp -d /tmp/amqpgw-balancer.XXXXXX)
NODES=()
PIDS=()
stop_pids() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  stop_pids
  for d in "${NODES[@]}"; do "$NODE" stop "$d" >/dev/null 2>&1 || true; done
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The broker: three nodes loading docker/cluster/definitions.json at boot
# (the gateways' user, quorum queues by default), or one plain node.
USERINFO=guest:guest
if [ "$SINGLE" = 1 ]; then
  log "starting a RabbitMQ node"
  "$NODE" start "$WORK/rabbit1" >/dev/null
  NODES=("$WORK/rabbit1")
else
  log "starting a 3-node RabbitMQ cluster"
  export AMQPGW_NODE_COOKIE="balancer-$$-$RANDOM"
  export RABBITMQ_EXTRA_CONF="load_definitions = $ROOT/docker/cluster/definitions.json"
  for i in 1 2 3; do
    NODES+=("$WORK/rabbit$i")
    "$NODE" start "$WORK/rabbit$i" >/dev/null
  done
  SEED=$(. "$WORK/rabbit1/node.env"; echo "$NODE")
  for i in 2 3; do
    "$NODE" ctl "$WORK/rabbit$i" stop_app >/dev/null
    "$NODE" ctl "$WORK/rabbit$i" join_cluster "$SEED" >/dev/null
    "$NODE" ctl "$WORK/rabbit$i" start_app >/dev/null
  done
  "$NODE" ctl "$WORK/rabbit1" await_online_nodes 3 >/dev/null
  unset RABBITMQ_EXTRA_CONF
  USERINFO=$(grep -m1 -o 'amqp://[^@]*@' "$ROOT/docker/cluster/broker-1.uri" |
    sed 's#amqp://##; s#@$##')
fi
PORTS=()
for d in "${NODES[@]}"; do PORTS+=("$(. "$d/node.env"; echo "$AMQP_PORT")"); done
broker_list() {  # gateway i (0-based) starts on node i
  local i=$1 k out="" n=${#PORTS[@]}
  for k in $(seq 0 $((n - 1))); do
    out+="${out:+,}amqp://$USERINFO@127.0.0.1:${PORTS[$(( (i + k) % n ))]}/"
  done
  echo "$out"
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
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
  echo "$1" | tr ' ' '\n' | grep -E "^$2=" | cut -d= -f2
}

TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))
QUEUE=amqpgw-balancer-bench
# More amqpgwd flags from the environment, as compare.sh takes them.
read -r -a FLAGS <<< "${AMQPGWD_FLAGS:-}"
[ "$MODE" = publish-batch ] && BENCH_EXTRA=(--batch "$BATCH") || BENCH_EXTRA=()
[ "$MODE" = publish-sync ] && CONC=1
printf '%s\n' "| gateways | rep | msgs/s | p50 us | p99 us | gateways CPU us/msg | HAProxy CPU us/msg |"
printf '%s\n' "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for rep in $(seq 1 "$REPS"); do
  for count in $COUNTS; do
    run=$WORK/run-$rep-$count
    mkdir -p "$run"
    GW_PIDS=()
    env_vars=()
    for i in $(seq 0 $((count - 1))); do
      log_file=$run/gw$((i + 1)).log
      : > "$log_file"
      env -u AMQPGW_BROKER "$GWD" --broker="$(broker_list "$i")" \
        --instance_id="gw$((i + 1))" --listen=127.0.0.1:0 \
        --http_listen=127.0.0.1:0 "${FLAGS[@]}" > "$log_file" 2>&1 &
      pid=$!
      PIDS+=("$pid")
      GW_PIDS+=("$pid")
      gport=$(bench_gateway_port "$log_file" "$pid")
      hport=$(grep -o 'grpc-web on [^ ]* (port [0-9]*' "$log_file" |
        grep -o '[0-9]*$' || true)
      env_vars+=("GATEWAY$((i + 1))_GRPC=127.0.0.1:$gport"
                 "GATEWAY$((i + 1))_HTTP=127.0.0.1:$hport")
    done
    front=$(free_port) web=$(free_port) stats=$(free_port)
    env HAPROXY_GRPC_BIND=127.0.0.1:$front HAPROXY_HTTP_BIND=127.0.0.1:$web \
      HAPROXY_STATS_BIND=127.0.0.1:$stats "${env_vars[@]}" \
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
    before_gw=0
    for pid in "${GW_PIDS[@]}"; do before_gw=$((before_gw + $(cpu_ticks "$pid"))); done
    before_hap=$(cpu_ticks "$HAP_PID")
    line=$("$GBENCH" "$MODE" --server "127.0.0.1:$front" --queue "$QUEUE" \
      -n "$N" --concurrency "$CONC" "${BENCH_EXTRA[@]}" --purge \
      --label "gateways=$count" | tail -n 1)
    after_gw=0
    for pid in "${GW_PIDS[@]}"; do after_gw=$((after_gw + $(cpu_ticks "$pid"))); done
    after_hap=$(cpu_ticks "$HAP_PID")
    echo "$line" > "$run/bench.txt"
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$count" "$rep" \
      "$(pick "$line" msgs_per_s)" "$(pick "$line" p50_us)" \
      "$(pick "$line" p99_us)" \
      "$(awk -v t=$((after_gw - before_gw)) -v u="$TICK_US" -v n="$N" 'BEGIN {printf "%.1f", t * u / n}')" \
      "$(awk -v t=$((after_hap - before_hap)) -v u="$TICK_US" -v n="$N" 'BEGIN {printf "%.1f", t * u / n}')"
    stop_pids
  done
done
