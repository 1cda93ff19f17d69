#!/usr/bin/env bash
# A private RabbitMQ node in a folder of its own, as a plain process (no
# systemd, no Docker). Used by ctest's fixture, scripts/run.sh and bench/.
#
#   rabbitmq-node.sh start DIR [AMQP_PORT]  start (or restart) the node in DIR;
#                                          ports are free ones unless given,
#                                          and kept across restarts
#   rabbitmq-node.sh stop DIR               stop it gracefully
#   rabbitmq-node.sh kill DIR               SIGKILL it (crash test)
#   rabbitmq-node.sh ctl DIR ARGS...        rabbitmqctl on that node
#   rabbitmq-node.sh plugins DIR ARGS...    rabbitmq-plugins on that node
#   rabbitmq-node.sh env DIR                print its settings (sh syntax)
#
# DIR/node.env holds NODE, AMQP_PORT, DIST_PORT, URI, MGMT_PORT and MGMT_URL
# after a start. The management plugin (rabbitmq_management) listens on
# 127.0.0.1:MGMT_PORT (MGMT_URL http://127.0.0.1:MGMT_PORT/); with
# AMQPGW_NODE_MANAGEMENT=0 the node runs without it (MGMT_PORT stays
# reserved in node.env, nothing listens there).
# AMQPGW_NODE_COOKIE sets the Erlang cookie (nodes of one cluster share it);
# RABBITMQ_EXTRA_CONF adds lines to rabbitmq.conf (e.g. a TLS listener).
# Ports stay in 20000-31999: away from the CLI's own distribution ports
# (moved to 36000-36999 here) and from AMQP ports whose default distribution
# port (+20000) would overflow.
set -euo pipefail

RABBIT_BIN=/usr/lib/rabbitmq/bin
export RABBITMQ_CTL_DIST_PORT_MIN=${RABBITMQ_CTL_DIST_PORT_MIN:-36000}
export RABBITMQ_CTL_DIST_PORT_MAX=${RABBITMQ_CTL_DIST_PORT_MAX:-36999}

die() { echo "rabbitmq-node: $*" >&2; exit 1; }

port_free() {
  # True when nothing listens on 127.0.0.1:$1 and it can be bound.
  python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
PY
}

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 12000 ))
    if port_free "$p"; then echo "$p"; return 0; fi
  done
  die "no free port found"
}

load_env() {
  local dir=$1
  [ -f "$dir/node.env" ] || die "no node in $dir (start it first)"
  # shellcheck disable=SC1091
  . "$dir/node.env"
}

node_env() {
  # The environment both the server and its CLI need.
  local dir=$1
  echo HOME="$dir" \
    RABBITMQ_NODENAME="$NODE" \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_PID_FILE="$dir/rabbitmq.pid" \
    RABBITMQ_DIST_PORT="$DIST_PORT"
}

ctl() {
  local dir=$1; shift
  load_env "$dir"
  env $(node_env "$dir") "$RABBIT_BIN/rabbitmqctl" -n "$NODE" "$@"
}

plugins() {
  local dir=$1; shift
  load_env "$dir"
  env $(node_env "$dir") "$RABBIT_BIN/rabbitmq-plugins" -n "$NODE" "$@"
}

alive() {
  local dir=$1
  [ -f "$dir/rabbitmq.pid" ] && kill -0 "$(cat "$dir/rabbitmq.pid")" 2>/dev/null
}

start_once() {
  local dir=$1
  mkdir -p "$dir/mnesia" "$dir/log"
  # Plugins enabled before (rabbitmq-node.sh plugins DIR enable ...) stay;
  # rabbitmq_management is added or removed.
  local plugins=""
  if [ -f "$dir/enabled_plugins" ]; then
    plugins=$(tr -d '[]. \n' < "$dir/enabled_plugins" | tr ',' '\n' |
      grep -v -x -e rabbitmq_management -e '' | paste -sd, -) || true
  fi
  local mgmt_conf=""
  if [ "${AMQPGW_NODE_MANAGEMENT:-1}" != 0 ]; then
    # Rates are sampled every second (the default is 5 s) so that tests see
    # them move soon after a load starts.
    mgmt_conf="management.tcp.ip = 127.0.0.1
management.tcp.port = $MGMT_PORT
collect_statistics_interval = 1000"
    plugins="rabbitmq_management${plugins:+,$plugins}"
  fi
  cat > "$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
loopback_users = none
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = info
$mgmt_conf
${RABBITMQ_EXTRA_CONF:-}
EOF
  echo "[$plugins]." > "$dir/enabled_plugins"
  if [ -n "${AMQPGW_NODE_COOKIE:-}" ]; then
    rm -f "$dir/.erlang.cookie"
    printf '%s' "$AMQPGW_NODE_COOKIE" > "$dir/.erlang.cookie"
    chmod 400 "$dir/.erlang.cookie"
  fi
  rm -f "$dir/rabbitmq.pid"
  # setsid: the node must not get the terminal's Ctrl-C before we stop it.
  env $(node_env "$dir") setsid "$RABBIT_BIN/rabbitmq-server" \
    > "$dir/log/server.out" 2>&1 < /dev/null &
  local launcher=$!
  # Wait (bounded) for the node to answer; stop early if it died.
  local deadline=$(( $(date +%s) + 90 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if env $(node_env "$dir") "$RABBIT_BIN/rabbitmqctl" -n "$NODE" \
         await_startup --timeout 10 >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$launcher" 2>/dev/null && ! alive "$dir"; then
      return 1
    fi
    sleep 0.5  # polling a condition with a deadline
  done
  return 1
}

cmd_start() {
  local dir; dir=$(realpath -m "$1"); local want_port=${2:-}
  mkdir -p "$dir"
  if alive "$dir"; then load_env "$dir"; echo "$URI"; return 0; fi
  local fixed=0
  if [ -f "$dir/node.env" ]; then
    load_env "$dir"; fixed=1
    if [ -z "${MGMT_PORT:-}" ]; then  # a folder from before the plugin
      MGMT_PORT=$(free_port)
      printf 'MGMT_PORT=%s\nMGMT_URL=http://127.0.0.1:%s/\n' \
        "$MGMT_PORT" "$MGMT_PORT" >> "$dir/node.env"
    fi
  fi
  for attempt in 1 2 3; do
    if [ "$fixed" = 0 ]; then
      AMQP_PORT=${want_port:-$(free_port)}
      DIST_PORT=$(free_port)
      MGMT_PORT=$(free_port)
      NODE="amqpgw-$(basename "$dir" | tr -cd 'a-zA-Z0-9-' | cut -c1-20)-$$-$RANDOM@localhost"
      URI="amqp://guest:guest@127.0.0.1:$AMQP_PORT/"
      cat > "$dir/node.env" <<EOF
NODE=$NODE
AMQP_PORT=$AMQP_PORT
DIST_PORT=$DIST_PORT
URI=$URI
MGMT_PORT=$MGMT_PORT
MGMT_URL=http://127.0.0.1:$MGMT_PORT/
EOF
    fi
    if start_once "$dir"; then echo "$URI"; return 0; fi
    echo "rabbitmq-node: start attempt $attempt failed; log tail:" >&2
    tail -n 20 "$dir/log/server.out" >&2 || true
    cmd_kill "$dir" >/dev/null 2>&1 || true
    [ "$fixed" = 1 ] && [ "$attempt" -ge 2 ] && break
    [ -z "$want_port" ] && fixed=0
  done
  die "could not start RabbitMQ in $dir"
}

cmd_stop() {
  local dir; dir=$(realpath -m "$1")
  [ -f "$dir/node.env" ] || return 0
  load_env "$dir"
  if alive "$dir"; then
    local pid; pid=$(cat "$dir/rabbitmq.pid")
    ctl "$dir" stop >/dev/null 2>&1 || true
    local deadline=$(( $(date +%s) + 30 ))
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
      sleep 0.2  # polling a condition with a deadline
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/rabbitmq.pid"
}

cmd_kill() {
  local dir; dir=$(realpath -m "$1")
  if [ -f "$dir/rabbitmq.pid" ]; then
    local pid; pid=$(cat "$dir/rabbitmq.pid")
    kill -9 "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  fi
  rm -f "$dir/rabbitmq.pid"
}

[ $# -ge 2 ] || die "usage: $0 start|stop|kill|ctl|plugins|env DIR [ARGS...]"
verb=$1; shift
case "$verb" in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  kill) cmd_kill "$@" ;;
  ctl) d=$(realpath -m "$1"); shift; ctl "$d" "$@" ;;
  plugins) d=$(realpath -m "$1"); shift; plugins "$d" "$@" ;;
  env) load_env "$(realpath -m "$1")"; cat "$(realpath -m "$1")/node.env" ;;
  *) die "unknown command $verb" ;;
esac
