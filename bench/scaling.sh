#!/usr/bin/env bash
# How the gateway's cost grows with load, on one private RabbitMQ node:
#
#   bench/scaling.sh [-n N] [--trickle R] [--seconds S] [--quick]
#                    [--out FILE] [--keep]
#
# (a) unary Publish with 1, 8, 64, 512, 2048 concurrent callers, beside
#     direct rabbitmq-c with the same number of messages in flight (its
#     confirm window);
# (b) 1, 100, 1,000, 5,000 open StreamMessages streams (one queue each)
#     while --trickle messages a second in all are published to them:
#     delivery latency p50/p99 (Publish to delivery), the gateway's CPU and
#     RSS;
# (c) message sizes 100 B, 4 KiB, 64 KiB, 1 MiB for PublishStream
#     (max_in_flight 256, 128 at 1 MiB; direct: the same window) and
#     StreamMessages (prefetch 1000, AUTO; direct: basic.consume, manual
#     acks).
# Throughput and the gateway's CPU per message for each point. Prints a
# Markdown table and, when Debian's python3-matplotlib is installed, draws
# FILE.png (or scaling.png in the work folder) with one panel per part.
#
# Options:
#   -n N          messages per (a) and (c) run at 100 B (default 50000;
#                 larger messages use fewer: 64 KiB N/10, 1 MiB N/100)
#   --trickle R   (b): messages per second in all (default 200)
#   --seconds S   (b): how long each point is measured (default 30)
#   --quick       a smoke run: -n 400 --seconds 2, (a) 1 and 8 callers,
#                 (b) 1 and 10 streams, (c) 100 B and 4 KiB
#   --build DIR   build folder (default build); --no-build uses it as is
#   --out FILE    also write the table to FILE (raw lines: FILE.raw, plot:
#                 FILE.png)
#   --keep        keep the work folder (broker logs, daemon log)
# Environment: AMQPGWD_FLAGS adds flags to amqpgwd.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=50000 TRICKLE=200 SECONDS_B=30
CALLERS="1 8 64 512 2048" STREAMS="1 100 1000 5000" SIZES="100 4096 65536 1048576"
BUILD=$ROOT/build DO_BUILD=1 OUT="" KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N=$2; shift 2 ;;
    --trickle) TRICKLE=$2; shift 2 ;;
    --seconds) SECONDS_B=$2; shift 2 ;;
    --quick) N=400 SECONDS_B=2 CALLERS="1 8" STREAMS="1 10" SIZES="100 4096"; shift ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scaling.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
log() { echo "scaling: $*" >&2; }

"$ROOT/scripts/bootstrap.sh"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
if [ "$DO_BUILD" = 1 ]; then
  log "building amqpgwd, amqpgw-bench, amqpgw-bench-direct"
  bench_build "$BUILD" amqpgwd amqpgw-bench amqpgw-bench-direct
fi
GWD=$BUILD/server/amqpgwd
GBENCH=$BUILD/bench/amqpgw-bench
DBENCH=$BUILD/bench/amqpgw-bench-direct
NODE=$ROOT/tests/support/rabbitmq-node.sh
PY=/usr/bin/python3

# 5,000 streams need a third consumer connection (2,047 channels each).
export AMQPGWD_FLAGS="--consumer_connections=3 ${AMQPGWD_FLAGS:-}"
bench_start amqpgw-scaling

Q=amqpgw-scaling
COMMON_G=(--server "$SERVER" --queue "$Q" --gateway_pid "$GW_PID" --broker_pid "$BROKER_PID")
COMMON_D=(--broker "$URI" --queue "$Q" --broker_pid "$BROKER_PID")

# run PART X COMMAND...: one measured run; its summary line goes to $RAW
# tagged with the part and the x value.
run() {
  local part=$1 x=$2 line
  shift 2
  if line=$("$@" 2> "$WORK/last.err" | tail -n 1) && [ -n "$line" ]; then
    echo "part=$part x=$x $line" >> "$RAW"
    log "$part x=$x: $(echo "$line" | grep -o 'tool=[^ ]*') $(echo "$line" | grep -o 'msgs_per_s=[^ ]*' || true) $(echo "$line" | grep -o 'delivery_p50_us=[^ ]*' || true)"
  else
    echo "part=$part x=$x failed=1" >> "$RAW"
    log "$part x=$x: FAILED: $*"; cat "$WORK/last.err" >&2
  fi
}
# Messages for size S bytes: fewer for large ones (at least 50).
n_for() {
  local size=$1 n=$N
  [ "$size" -ge 65536 ] && n=$((N / 10))
  [ "$size" -ge 1048576 ] && n=$((N / 100))
  [ "$n" -lt 50 ] && n=50
  echo "$n"
}

log "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
"$DBENCH" publish "${COMMON_D[@]}" -n "$N" --purge >/dev/null  # warm-up

# (a) Concurrent unary callers.
for c in $CALLERS; do
  run unary "$c" "$GBENCH" publish "${COMMON_G[@]}" -n "$N" --concurrency "$c" --purge
  run unary_direct "$c" "$DBENCH" publish "${COMMON_D[@]}" -n "$N" --window "$c" --purge
done

# (b) Open streams with a trickle.
for k in $STREAMS; do
  run streams "$k" "$GBENCH" streams --server "$SERVER" --queue "$Q-s" \
    --gateway_pid "$GW_PID" --streams "$k" --duration "$SECONDS_B" --trickle "$TRICKLE"
done

# (c) Message sizes.
for size in $SIZES; do
  n=$(n_for "$size")
  # 256 in flight, or fewer when 256 messages would fill half of the
  # gateway's --max_pending_bytes (256 MiB by default; past it the gateway
  # refuses with RESOURCE_EXHAUSTED): 128 at 1 MiB. Direct gets the same.
  w=$((134217728 / size)); [ "$w" -gt 256 ] && w=256
  run size_pubstream "$size" "$GBENCH" publish-stream "${COMMON_G[@]}" -n "$n" --size "$size" \
    --max_in_flight "$w" --purge
  run size_pub_direct "$size" "$DBENCH" publish "${COMMON_D[@]}" -n "$n" --size "$size" \
    --window "$w" --purge
  "$DBENCH" publish "${COMMON_D[@]}" -n "$n" --size "$size" --window 1024 --purge >/dev/null
  run size_stream "$size" "$GBENCH" stream "${COMMON_G[@]}" -n "$n" --size "$size" \
    --prefetch 1000 --ack auto
  "$DBENCH" publish "${COMMON_D[@]}" -n "$n" --size "$size" --window 1024 --purge >/dev/null
  run size_stream_direct "$size" "$DBENCH" stream "${COMMON_D[@]}" -n "$n" --size "$size" \
    --prefetch 1000
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

PNG=${OUT:+$OUT.png}
PNG=${PNG:-$WORK/scaling.png}
TABLE=$("$PY" - "$RAW" "$PNG" <<'PYEOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    kv = dict(p.split("=", 1) for p in line.split())
    if kv.get("failed") == "1":
        continue
    rows.setdefault(kv["part"], {})[int(kv["x"])] = kv

def get(part, x, key):
    v = rows.get(part, {}).get(x, {}).get(key)
    return float(v) if v is not None else None

def fmt(v, dec=0):
    return "n/a" if v is None else f"{v:,.{dec}f}"

def size_name(s):
    return f"{s // 1048576} MiB" if s >= 1048576 else f"{s // 1024} KiB" if s >= 1024 else f"{s} B"

out = ["(a) Unary Publish, 100 B persistent: concurrent callers (direct: a confirm window of as many messages)", "",
       "| Callers | Gateway msg/s | Direct msg/s | Ratio | Gateway CPU us/msg | p50 us | p99 us |",
       "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for x in sorted(set(rows.get("unary", {})) | set(rows.get("unary_direct", {}))):
    g, d = get("unary", x, "msgs_per_s"), get("unary_direct", x, "msgs_per_s")
    out.append(f"| {x:,} | {fmt(g)} | {fmt(d)} | {fmt(g / d if g and d else None, 2)} | "
               f"{fmt(get('unary', x, 'gw_cpu_us_per_msg'), 1)} | {fmt(get('unary', x, 'p50_us'))} | {fmt(get('unary', x, 'p99_us'))} |")
out += ["", "(b) Open StreamMessages streams with a steady trickle in all", "",
        "| Streams | Trickle msg/s | Delivered | Delivery p50 us | Delivery p99 us | Gateway CPU % of a core | RSS MB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for x in sorted(rows.get("streams", {})):
    out.append(f"| {x:,} | {fmt(get('streams', x, 'trickle_per_s'))} | {fmt(get('streams', x, 'delivered'))} | "
               f"{fmt(get('streams', x, 'delivery_p50_us'))} | {fmt(get('streams', x, 'delivery_p99_us'))} | "
               f"{fmt(get('streams', x, 'gw_cpu_pct'), 2)} | {fmt(get('streams', x, 'gw_rss_open_mb'), 1)} |")
out += ["", "(c) Message size: PublishStream (max_in_flight 256, 128 at 1 MiB; direct: the same window) and StreamMessages (prefetch 1000, AUTO; direct: basic.consume)", "",
        "| Size | PublishStream msg/s | Direct msg/s | Ratio | Gateway CPU us/msg | StreamMessages msg/s | Direct msg/s | Ratio | Gateway CPU us/msg |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for x in sorted(set(rows.get("size_pubstream", {})) | set(rows.get("size_stream", {}))):
    pg, pd = get("size_pubstream", x, "msgs_per_s"), get("size_pub_direct", x, "msgs_per_s")
    sg, sd = get("size_stream", x, "msgs_per_s"), get("size_stream_direct", x, "msgs_per_s")
    out.append(f"| {size_name(x)} | {fmt(pg)} | {fmt(pd)} | {fmt(pg / pd if pg and pd else None, 2)} | "
               f"{fmt(get('size_pubstream', x, 'gw_cpu_us_per_msg'), 1)} | {fmt(sg)} | {fmt(sd)} | "
               f"{fmt(sg / sd if sg and sd else None, 2)} | {fmt(get('size_stream', x, 'gw_cpu_us_per_msg'), 1)} |")
print("\n".join(out))

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("\n(no PNG: python3-matplotlib is not installed)")
    sys.exit(0)
fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
def series(ax, part, key, label, style="o-"):
    xs = sorted(rows.get(part, {}))
    ys = [get(part, x, key) for x in xs]
    pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
ax = axes[0]
series(ax, "unary", "msgs_per_s", "gateway")
series(ax, "unary_direct", "msgs_per_s", "direct (window = callers)", "s--")
ax.set_xscale("log"); ax.set_xlabel("concurrent unary callers"); ax.set_ylabel("msg/s")
ax.set_title("(a) unary Publish"); ax.legend()
ax = axes[1]
series(ax, "streams", "delivery_p50_us", "delivery p50 (us)")
series(ax, "streams", "delivery_p99_us", "delivery p99 (us)", "s--")
ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("open streams")
ax.set_title("(b) open streams, trickle"); ax.legend(loc="upper left")
ax2 = ax.twinx()
xs = sorted(rows.get("streams", {}))
ax2.plot(xs, [get("streams", x, "gw_rss_open_mb") or 0 for x in xs], "k:", label="RSS MB")
ax2.set_ylabel("gateway RSS MB")
ax = axes[2]
series(ax, "size_pubstream", "msgs_per_s", "PublishStream")
series(ax, "size_pub_direct", "msgs_per_s", "direct publish", "s--")
series(ax, "size_stream", "msgs_per_s", "StreamMessages")
series(ax, "size_stream_direct", "msgs_per_s", "direct consume", "s--")
ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("message bytes"); ax.set_ylabel("msg/s")
ax.set_title("(c) message size"); ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print(f"\nPlot: {sys.argv[2]}")
PYEOF
)

{
  echo "bench/scaling.sh -n $N --trickle $TRICKLE --seconds $SECONDS_B${AMQPGWD_FLAGS:+ (AMQPGWD_FLAGS=$AMQPGWD_FLAGS)}"
  echo "Machine: $(nproc) cores, $(uname -sr); load average $LOAD_START at start, $LOAD_END at end"
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
