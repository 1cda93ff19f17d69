# shellcheck shell=bash
# Shared by the bench/*.sh scripts; source it after setting ROOT.

# bench_build BUILD TARGET...: configures BUILD if it has no cache yet
# (RelWithDebInfo, ccache when present) and builds the targets with -j2:
# the machine is shared, and the benchmark itself wants the cores.
bench_build() {
  local build=$1 launcher=()
  shift
  if [ ! -f "$build/CMakeCache.txt" ]; then
    command -v ccache >/dev/null 2>&1 &&
      launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    cmake -S "$ROOT" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      "${launcher[@]}" >/dev/null
  fi
  cmake --build "$build" -j2 --target "$@" >/dev/null
}

# bench_gateway_port LOG PID [TRIES]: waits (0.1 s a try, default 300)
# until the amqpgwd that writes LOG listens and its broker session is READY,
# and prints its gRPC port; fails, showing the log, if the daemon exits or
# the time runs out.
bench_gateway_port() {
  local log=$1 pid=$2 tries=${3:-300} port=""
  for _ in $(seq 1 "$tries"); do
    port=$(grep -o 'gRPC; port [0-9]*' "$log" | grep -o '[0-9]*$' || true)
    if [ -n "$port" ] && grep -q 'session: READY' "$log"; then
      echo "$port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1  # polling a condition with a deadline
  done
  echo "amqpgwd did not start (log: $log):" >&2
  cat "$log" >&2
  return 1
}

# bench_start PREFIX: a work folder (/tmp/PREFIX.XXXXXX, or under BENCH_DIR
# when set, e.g. /dev/shm for a broker whose disk is RAM; as WORK, with an
# empty RAW results file), a private RabbitMQ node in it (URI, BROKER_PID)
# and amqpgwd on it (GW_PID, PORT, SERVER; more flags in AMQPGWD_FLAGS; no
# HTTP port unless BENCH_HTTP_LISTEN gives its --http_listen), and
# an EXIT trap that stops both and removes the folder unless KEEP=1. Needs
# NODE, GWD and a `log` function.
bench_start() {
  WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/$1.XXXXXX")
  RAW=$WORK/results.txt
  : > "$RAW"
  GW_PID=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  log "starting a private RabbitMQ node in $WORK/rabbitmq"
  URI=$("$NODE" start "$WORK/rabbitmq" | tail -n 1)
  BROKER_PID=$(cat "$WORK/rabbitmq/rabbitmq.pid")
  log "starting amqpgwd"
  # shellcheck disable=SC2086
  "$GWD" --broker="$URI" --listen=127.0.0.1:0 \
    --http_listen="${BENCH_HTTP_LISTEN:-}" ${AMQPGWD_FLAGS:-} \
    > "$WORK/amqpgwd.log" 2>&1 &
  GW_PID=$!
  PORT=$(bench_gateway_port "$WORK/amqpgwd.log" "$GW_PID")
  SERVER=127.0.0.1:$PORT
}

bench_cleanup() {
  if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
  fi
  "$NODE" stop "$WORK/rabbitmq" >/dev/null 2>&1 || true
  if [ "${KEEP:-0}" = 1 ]; then log "work folder kept: $WORK"; else rm -rf "$WORK"; fi
}

# bench_floor_start BIN MODE ADDR_FILE [FLAG...]: starts amqpgw-grpc-floor
# (BIN) in MODE, with the FLAGs, in the background (FLOOR_PID) and waits up
# to 5 s for the address it prints on its first line (FLOOR_ADDR); fails,
# saying so, if none comes.
bench_floor_start() {
  : > "$3"
  "$1" "$2" "${@:4}" > "$3" &
  FLOOR_PID=$!
  FLOOR_ADDR=""
  for _ in $(seq 1 100); do
    FLOOR_ADDR=$(head -n 1 "$3")
    [ -n "$FLOOR_ADDR" ] && return 0
    sleep 0.05  # polling a condition with a deadline
  done
  echo "amqpgw-grpc-floor $2 did not start" >&2
  return 1
}
