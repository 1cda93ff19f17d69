#!/usr/bin/env bash
# Builds amqpgw and runs the daemon in the foreground. Without a broker
# address (AMQPGW_BROKER or --broker=...), it first starts a private RabbitMQ
# node under .run/rabbitmq on a free port. Ctrl-C stops both.
#
#   scripts/run.sh                             private broker, defaults
#   AMQPGW_BROKER=amqp://u:p@host:5672/ scripts/run.sh
#   scripts/run.sh --listen=0.0.0.0:50051      any amqpgwd flag
#   scripts/run.sh --http_listen=127.0.0.1:9090  the browser view elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/bootstrap.sh

LAUNCHER=()
command -v ccache >/dev/null 2>&1 && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "${LAUNCHER[@]}" >/dev/null
cmake --build build -j"$(nproc)" --target amqpgwd

have_broker=${AMQPGW_BROKER:+1}
listen=${AMQPGW_LISTEN:-127.0.0.1:50051}
http_listen=${AMQPGW_HTTP_LISTEN-127.0.0.1:8080}
for arg in "$@"; do
  case "$arg" in
    --broker=*) have_broker=1 ;;
    --listen=*) listen=${arg#--listen=} ;;
    --http_listen=*) http_listen=${arg#--http_listen=} ;;
  esac
done
if [ -n "$http_listen" ]; then
  browser="http://$http_listen/   (the browser view; grpc-web on the same port)"
else
  browser="(off: --http_listen is empty)"
fi

NODE_DIR="$ROOT/.run/rabbitmq"
if [ -z "$have_broker" ]; then
  echo "run: starting a private RabbitMQ node in .run/rabbitmq ..." >&2
  AMQPGW_BROKER=$(tests/support/rabbitmq-node.sh start "$NODE_DIR")
  export AMQPGW_BROKER
  trap 'echo "run: stopping RabbitMQ" >&2; tests/support/rabbitmq-node.sh stop "$NODE_DIR"' EXIT
fi

cat >&2 <<MSG

  amqpgw is starting
    gRPC:    $listen   (try: grpcurl -plaintext $listen list)
    browser: $browser
    broker:  $(echo "$AMQPGW_BROKER" | sed -E 's#//([^:@/]+):[^@]*@#//\1@#')
  Ctrl-C stops it.

MSG
# Not exec: the trap stops the node after the daemon exits.
build/server/amqpgwd "$@"
