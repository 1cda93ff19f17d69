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
