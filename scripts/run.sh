#!/usr/bin/env bash
# Builds amqpgw (the daemon amqpgwd and the CLI amqpgw) and runs the daemon in
# the foreground. Without a broker address (AMQPGW_BROKER or --broker=...),
# it first starts a private RabbitMQ node under .run/rabbitmq on a free port.
# Ctrl-C stops both.
#
#   scripts/run.sh                             private broker, defaults
#   AMQPGW_BROKER=amqp://u:p@host:5672/ scripts/run.sh
#   scripts/run.sh --listen=0.0.0.0:50051      any amqpgwd flag
#   scripts/run.sh --http_listen=127.0.0.1:9090  the browser view elsewhere
#   scripts/run.sh --build-only                build both binaries, then exit
#
# Environment:
#   AMQPGW_BUILD_DIR   build folder (default build). A folder configured
#                      before keeps its settings; a new one is configured
#                      RelWithDebInfo (with ccache when there is one).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${AMQPGW_BUILD_DIR:-build}
# What run.sh builds: the daemon it runs and the CLI its banner shows.
TARGETS=(amqpgwd amqpgw)

build_only=0
daemon_args=()
for arg in "$@"; do
  case "$arg" in
    --build-only) build_only=1 ;;
    *) daemon_args+=("$arg") ;;
  esac
done

scripts/bootstrap.sh
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  LAUNCHER=()
  command -v ccache >/dev/null 2>&1 && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${LAUNCHER[@]}" >/dev/null
fi
cmake --build "$BUILD_DIR" -j"$(nproc)" --target "${TARGETS[@]}"
BUILD_ABS=$(cd "$BUILD_DIR" && pwd)
DAEMON=$BUILD_ABS/server/amqpgwd
CLI=$BUILD_ABS/client/amqpgw
for binary in "$DAEMON" "$CLI"; do
  if [ ! -x "$binary" ]; then
    echo "run: $binary was not built" >&2
    exit 1
  fi
done
if [ "$build_only" = 1 ]; then
  echo "run: built $DAEMON and $CLI" >&2
  exit 0
fi

broker=${AMQPGW_BROKER:-}
listen=${AMQPGW_LISTEN:-127.0.0.1:50051}
http_listen=${AMQPGW_HTTP_LISTEN-127.0.0.1:8080}
for arg in "${daemon_args[@]}"; do
  case "$arg" in
    --broker=*) broker=${arg#--broker=} ;;
    --listen=*) listen=${arg#--listen=} ;;
    --http_listen=*) http_listen=${arg#--http_listen=} ;;
  esac
done
if [ -n "$http_listen" ]; then
  browser="http://$http_listen/   (the browser view; grpc-web on the same port)"
else
  browser="(off: --http_listen is empty)"
fi
# The address a client on this machine dials: a wildcard listen address
# becomes loopback.
port=${listen##*:}
case "${listen%:*}" in
  0.0.0.0) dial=127.0.0.1:$port ;;
  "[::]") dial="[::1]:$port" ;;
  *) dial=$listen ;;
esac
cli=$(printf '%q' "$CLI")
# The CLI's default --server is 127.0.0.1:50051.
if [ "$dial" != 127.0.0.1:50051 ]; then cli="$cli --server $dial"; fi

NODE_DIR="$ROOT/.run/rabbitmq"
if [ -z "$broker" ]; then
  echo "run: starting a private RabbitMQ node in .run/rabbitmq ..." >&2
  AMQPGW_BROKER=$(tests/support/rabbitmq-node.sh start "$NODE_DIR")
  export AMQPGW_BROKER
  broker=$AMQPGW_BROKER
  trap 'echo "run: stopping RabbitMQ" >&2; tests/support/rabbitmq-node.sh stop "$NODE_DIR"' EXIT
fi

cat >&2 <<MSG

  amqpgw is starting
    gRPC:    $listen
    browser: $browser
    broker:  $(echo "$broker" | sed -E 's#//([^:@/]+):[^@]*@#//\1@#g')
    CLI:     $(printf '%q' "$CLI")   ('amqpgw help' lists its commands)

  Try it from another terminal:
    $cli queue declare hello
    $cli publish hello 'Hello, RabbitMQ'
    $cli consume hello --max 1

  Any gRPC tool works through server reflection, e.g. buf from npm:
    npx --yes --package=@bufbuild/buf buf curl --protocol grpc --http2-prior-knowledge --list-methods http://$dial

  Ctrl-C stops it.

MSG
# Not exec: the EXIT trap stops the node after the daemon exits. In the
# background, so that SIGTERM or SIGINT to this script reaches the daemon
# (a script's background job ignores the terminal's SIGINT): it shuts down
# cleanly, and this script waits for it.
"$DAEMON" "${daemon_args[@]}" &
daemon_pid=$!
trap 'kill -TERM "$daemon_pid" 2>/dev/null || true' TERM INT
status=0
while kill -0 "$daemon_pid" 2>/dev/null; do
  wait "$daemon_pid" && status=0 || status=$?
done
exit "$status"
