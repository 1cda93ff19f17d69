"""Shared by the bench/python scripts: CPU time from /proc and the summary
line (key=value pairs, like amqpgw-bench's)."""
import os


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` (0: none, 0.0)."""
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_summary(items, ok, elapsed, client_cpu, extra=()):
    """Prints `items` (a list of (key, value)) followed by the rate and the
    client's CPU per message, then `extra`, as one line."""
    items = list(items) + [
        ("elapsed_s", f"{elapsed:.3f}"),
        ("msgs_per_s", f"{ok / elapsed:.0f}"),
        ("client_cpu_us_per_msg", f"{client_cpu * 1e6 / max(ok, 1):.2f}")]
    items += list(extra)
    print(" ".join(f"{k}={v}" for k, v in items), flush=True)
