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
