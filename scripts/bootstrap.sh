#!/usr/bin/env bash
# Installs the Debian 12 packages amqpgw needs to build, run and test.
# Idempotent: quiet and quick when everything is there. Needs root (or sudo)
# only when something is missing.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config git ca-certificates python3 ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  grpc-proto libabsl-dev librabbitmq-dev libspdlog-dev libfmt-dev
  libcpp-httplib-dev libssl-dev nlohmann-json3-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev clang clang-format libclang-rt-14-dev
  rabbitmq-server amqp-tools openssl procps iproute2 haproxy
  python3-grpcio python3-protobuf python3-pika python3-aio-pika python3-yaml
  chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js and npm (browser view, polyglot tests): Debian's, unless a node is
# already on PATH.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bootstrap: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "bootstrap: run as root (or install sudo) to install: ${missing[*]}" >&2
    exit 1
  }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "bootstrap: done" >&2
