#!/usr/bin/python3
"""Checks the multi-instance deployment files without Docker or Kubernetes:
docker/haproxy.cfg (validated by `haproxy -c`, its gRPC health check
decoded), docker/compose.cluster.yaml with docker/cluster/, and every
manifest under deploy/kubernetes/. Each is parsed and what must agree is
compared: ports (flags = container ports = probes = Service targetPorts =
HAProxy servers), labels and selectors, Secret and ConfigMap names and
keys, files referenced, image names, passwords and hashes, the grace period
against --shutdown_grace.

Usage: deploy_files_test.py REPO_ROOT   (run by ctest as deploy_files_test)
"""
import base64
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_flags import daemon_flags, env_flag  # noqa: E402

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
failures = []
passes = 0
notes = []


def check(ok, what):
    global passes
    if ok:
        passes += 1
    else:
        failures.append(what)
        print("FAIL: " + what)
    return ok


def path(rel):
    return os.path.join(ROOT, rel)


def read(rel):
    with open(path(rel), encoding="utf-8") as f:
        return f.read()


def port_of(host_port):
    """"0.0.0.0:50051" -> 50051 (None when there is no port)."""
    m = re.search(r":(\d+)$", str(host_port))
    return int(m.group(1)) if m else None


def duration_seconds(text):
    """Go/Abseil durations as the daemon takes them: 10s, 1m30s, 500ms."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", str(text))
    if not parts or "".join(a + b for a, b in parts) != str(text):
        return None
    return sum(float(n) * units[u] for n, u in parts)


def quantity_bytes(q):
    """Kubernetes memory quantities: 128Mi, 1Gi, 500M, 1048576."""
    m = re.match(r"^(\d+)(Ki|Mi|Gi|Ti|K|M|G|T)?$", str(q))
    if not m:
        return None
    mult = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30,
            "Ti": 1 << 40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    return int(m.group(1)) * mult[m.group(2)]


def subset(small, big):
    return all(big.get(k) == v for k, v in (small or {}).items())


FLAGS = daemon_flags(ROOT)
check({"listen", "http_listen", "broker_file", "shutdown_grace"} <= FLAGS,
      "could not read the daemon's flags")

# The image's user (docker/Dockerfile's runtime USER).
users = re.findall(r"^USER\s+(\d+)", read("docker/Dockerfile"), re.M)
IMAGE_UID = int(users[-1]) if users else None
check(IMAGE_UID is not None, "docker/Dockerfile: no numeric USER")


def check_env_flags(env, where):
    for key in env:
        flag = env_flag(key)
        if flag is None:
            continue
        check(flag in FLAGS, "%s: %s is not a daemon flag" % (where, key))


# --- docker/haproxy.cfg ----------------------------------------------------

HAPROXY_CFG = "docker/haproxy.cfg"
cfg_text = read(HAPROXY_CFG)


def haproxy_sections(text):
    """{(kind, name): [(line, condition-or-None), ...]}; `.if defined(V)`
    blocks keep V as the lines' condition."""
    sections, current, cond = {}, None, None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip() if not raw.lstrip().startswith(
            "tcp-check send-binary") else raw.rstrip()
        stripped = line.strip()
        if not stripped:
            continue
        m = re.match(r"\.if defined\((\w+)\)$", stripped)
        if m:
            cond = m.group(1)
            continue
        if stripped == ".endif":
            cond = None
            continue
        if not raw.startswith((" ", "\t")):
            words = stripped.split()
            current = (words[0], words[1] if len(words) > 1 else "")
            sections[current] = []
            continue
        if current is not None:
            sections[current].append((stripped, cond))
    return sections


sections = haproxy_sections(cfg_text)
cfg_code = "\n".join(l for l in cfg_text.splitlines()
                     if not l.lstrip().startswith("#"))
VARS = sorted(set(re.findall(r'"\$\{(\w+)\}"', cfg_code)))
check(set(VARS) >= {"HAPROXY_GRPC_BIND", "HAPROXY_HTTP_BIND",
                    "HAPROXY_STATS_BIND", "GATEWAY1_GRPC", "GATEWAY1_HTTP"},
      "haproxy.cfg: expected bind and gateway variables, got %s" % VARS)
OPTIONAL = set(re.findall(r"\.if defined\((\w+)\)", cfg_code))


def lines_of(kind, name):
    return [l for l, _ in sections.get((kind, name), [])]


def directive(lines, word):
    return [l for l in lines if l.split()[0] == word]


defaults = lines_of("defaults", "")
check(any(l == "mode http" for l in defaults), "haproxy.cfg: want mode http")
timeouts = {l.split()[1]: duration_seconds(l.split()[2])
            for l in directive(defaults, "timeout")}
# Long streams: StreamMessages may be idle for as long as its queue is.
for t in ("server", "client", "tunnel"):
    check((timeouts.get(t) or 0) >= 600,
          "haproxy.cfg: timeout %s must be long (>= 10 min) so that idle "
          "streams live, got %s" % (t, timeouts.get(t)))
check((timeouts.get("connect") or 99) <= 10,
      "haproxy.cfg: timeout connect should be short")
check("option abortonclose" in defaults,
      "haproxy.cfg: option abortonclose (a vanished client's stream must "
      "end on the gateway)")
check(any(l.startswith("option redispatch") for l in defaults),
      "haproxy.cfg: option redispatch")
retry_on = directive(defaults, "retry-on")
check(retry_on == ["retry-on conn-failure"],
      "haproxy.cfg: retry only connection failures (a request that reached "
      "a gateway must not be sent twice), got %s" % retry_on)

grpc_front = lines_of("frontend", "grpc")
binds = directive(grpc_front, "bind")
check(binds == ['bind "${HAPROXY_GRPC_BIND}" proto h2'],
      "haproxy.cfg: the gRPC frontend binds ${HAPROXY_GRPC_BIND} with proto "
      "h2, got %s" % binds)
check(directive(grpc_front, "default_backend")
      == ["default_backend gateways_grpc"],
      "haproxy.cfg: frontend grpc -> backend gateways_grpc")

grpc_back = sections.get(("backend", "gateways_grpc"), [])
check("balance roundrobin" in [l for l, _ in grpc_back],
      "haproxy.cfg: gateways_grpc must balance roundrobin (per request)")
grpc_servers = {}
for l, cond in grpc_back:
    w = l.split()
    if w[0] != "server":
        continue
    grpc_servers[w[1]] = (w[2].strip('"'), cond)
    check("proto h2" in l and " check" in l,
          "haproxy.cfg: gRPC server %s needs proto h2 and check" % w[1])
check(sorted(grpc_servers) == ["gw1", "gw2", "gw3"],
      "haproxy.cfg: want gRPC servers gw1..gw3, got %s" % sorted(grpc_servers))
for name, (addr, cond) in grpc_servers.items():
    n = name[2:]
    check(addr == "${GATEWAY%s_GRPC}" % n,
          "haproxy.cfg: server %s must use ${GATEWAY%s_GRPC}" % (name, n))
    check(cond == (None if n == "1" else "GATEWAY%s_GRPC" % n),
          "haproxy.cfg: server %s: only gw2 and gw3 are optional" % name)

# The health check: grpc.health.v1.Health/Check as raw HTTP/2 frames.
sends = [bytes.fromhex(l.split()[2]) for l, _ in grpc_back
         if l.startswith("tcp-check send-binary")]
expects = [bytes.fromhex(l.split()[3]) for l, _ in grpc_back
           if l.startswith("tcp-check expect binary")]
check(("option tcp-check" in [l for l, _ in grpc_back]) and sends
      and len(expects) == 1, "haproxy.cfg: want the tcp-check gRPC health "
      "check (send-binary frames, one expect binary)")


def h2_frames(data):
    frames = []
    while data:
        if len(data) < 9:
            return None
        n = int.from_bytes(data[:3], "big")
        frames.append((data[3], data[4], int.from_bytes(data[5:9], "big")
                       & 0x7FFFFFFF, data[9:9 + n]))
        if len(data) < 9 + n:
            return None
        data = data[9 + n:]
    return frames


HPACK_STATIC = {1: (":authority", ""), 2: (":method", "GET"),
                3: (":method", "POST"), 4: (":path", "/"),
                6: (":scheme", "http"), 7: (":scheme", "https"),
                31: ("content-type", "")}


def hpack_int(data, i, bits):
    mask = (1 << bits) - 1
    v = data[i] & mask
    i += 1
    if v < mask:
        return v, i
    m = 0
    while True:
        b = data[i]
        i += 1
        v += (b & 0x7F) << m
        m += 7
        if not b & 0x80:
            return v, i


def hpack_string(data, i):
    check(not data[i] & 0x80, "haproxy.cfg: health check headers must not "
          "be Huffman coded (this decoder reads literal strings)")
    n, i = hpack_int(data, i, 7)
    return data[i:i + n].decode(), i + n


def hpack_decode(block):
    """Indexed fields and literals without indexing (the forms the check
    uses), static table only."""
    headers, i = [], 0
    while i < len(block):
        b = block[i]
        if b & 0x80:
            idx, i = hpack_int(block, i, 7)
            headers.append(HPACK_STATIC[idx])
        elif b & 0xF0 == 0:
            idx, i = hpack_int(block, i, 4)
            if idx == 0:
                name, i = hpack_string(block, i)
            else:
                name = HPACK_STATIC[idx][0]
            value, i = hpack_string(block, i)
            headers.append((name, value))
        else:
            raise ValueError("unexpected HPACK representation %02x" % b)
    return headers


sent = b"".join(sends)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
if check(sent.startswith(PREFACE), "haproxy.cfg: health check must start "
         "with the HTTP/2 client preface"):
    frames = h2_frames(sent[len(PREFACE):])
    if check(frames is not None and [f[0] for f in frames] == [4, 1, 0],
             "haproxy.cfg: health check frames must be SETTINGS, HEADERS, "
             "DATA"):
        settings, hdrs, data = frames
        check(settings[1] == 0 and settings[2] == 0 and settings[3] == b"",
              "haproxy.cfg: an empty SETTINGS frame (not an ACK) on stream 0")
        check(hdrs[1] & 0x4 and hdrs[2] == 1,
              "haproxy.cfg: HEADERS on stream 1 with END_HEADERS")
        try:
            headers = dict(hpack_decode(hdrs[3]))
        except (ValueError, KeyError, IndexError) as e:
            headers = {}
            check(False, "haproxy.cfg: health check HPACK: %s" % e)
        want = {":method": "POST", ":scheme": "http",
                ":path": "/grpc.health.v1.Health/Check",
                "content-type": "application/grpc", "te": "trailers"}
        check(subset(want, headers) and ":authority" in headers,
              "haproxy.cfg: health check headers %s, want %s"
              % (headers, want))
        check(data[1] & 0x1 and data[2] == 1 and data[3] == bytes(5),
              "haproxy.cfg: DATA on stream 1 with END_STREAM carrying an "
              "empty HealthCheckRequest (00 00000000)")

# SERVING's number comes from grpc-proto's health.proto.
health_proto = "/usr/share/grpc-proto/grpc/health/v1/health.proto"
serving = None
if os.path.exists(health_proto):
    with open(health_proto, encoding="utf-8") as f:
        m = re.search(r"\bSERVING\s*=\s*(\d+)", f.read())
    serving = int(m.group(1)) if m else None
else:
    notes.append("%s missing (grpc-proto): SERVING taken as 1" % health_proto)
    serving = 1
if expects:
    frames = h2_frames(expects[0])
    ok = (frames is not None and len(frames) == 1 and frames[0][0] == 0
          and frames[0][2] == 1)
    if check(ok, "haproxy.cfg: expect binary must be one DATA frame on "
             "stream 1"):
        msg = frames[0][3]
        # gRPC message: flag 0, length, then field 1 (status) varint.
        check(msg[:1] == b"\x00" and int.from_bytes(msg[1:5], "big")
              == len(msg) - 5 and msg[5:] == bytes([0x08, serving]),
              "haproxy.cfg: expect binary must be HealthCheckResponse "
              "{status: SERVING (%s)}" % serving)

http_front = lines_of("frontend", "http")
check(directive(http_front, "bind") == ['bind "${HAPROXY_HTTP_BIND}"'],
      "haproxy.cfg: the HTTP frontend binds ${HAPROXY_HTTP_BIND} (HTTP/1.1)")
http_back = sections.get(("backend", "gateways_http"), [])
check("balance roundrobin" in [l for l, _ in http_back],
      "haproxy.cfg: gateways_http must balance roundrobin")
http_servers = {}
for l, cond in http_back:
    w = l.split()
    if w[0] == "server":
        http_servers[w[1]] = (w[2].strip('"'), cond, l)
check(sorted(http_servers) == sorted(grpc_servers),
      "haproxy.cfg: the HTTP servers must be the gRPC ones")
for name, (addr, cond, l) in http_servers.items():
    n = name[2:]
    check(addr == "${GATEWAY%s_HTTP}" % n,
          "haproxy.cfg: HTTP server %s must use ${GATEWAY%s_HTTP}" % (name, n))
    check(("track gateways_grpc/%s" % name) in l,
          "haproxy.cfg: HTTP server %s must track gateways_grpc/%s"
          % (name, name))
    check(cond == grpc_servers.get(name, (None, "?"))[1],
          "haproxy.cfg: HTTP server %s must be optional exactly when its "
          "gRPC server is" % name)
stats_front = lines_of("frontend", "stats")
check(directive(stats_front, "bind") == ['bind "${HAPROXY_STATS_BIND}"']
      and "monitor-uri /healthz" in stats_front
      and "stats uri /stats" in stats_front,
      "haproxy.cfg: stats frontend on ${HAPROXY_STATS_BIND} with /stats and "
      "/healthz")


def haproxy_check(env, what):
    full = dict(os.environ)
    for v in VARS:
        full.pop(v, None)
    full.update(env)
    r = subprocess.run([HAPROXY, "-c", "-f", path(HAPROXY_CFG)], env=full,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    check(r.returncode == 0 and "Configuration file is valid" in r.stdout,
          "haproxy -c -f %s (%s) failed:\n%s" % (HAPROXY_CFG, what, r.stdout))


HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
if check(os.access(HAPROXY, os.X_OK),
         "haproxy not installed (scripts/bootstrap.sh installs it)"):
    loopback = {"HAPROXY_GRPC_BIND": "127.0.0.1:50051",
                "HAPROXY_HTTP_BIND": "127.0.0.1:8080",
                "HAPROXY_STATS_BIND": "127.0.0.1:8404"}
    for count in (1, 2, 3):
        env = dict(loopback)
        for n in range(1, count + 1):
            env["GATEWAY%d_GRPC" % n] = "127.0.0.1:%d" % (41000 + n)
            env["GATEWAY%d_HTTP" % n] = "127.0.0.1:%d" % (42000 + n)
        haproxy_check(env, "%d gateway(s) on loopback" % count)
    # Without a required variable it must refuse to start.
    env = dict(loopback)
    r = subprocess.run([HAPROXY, "-c", "-f", path(HAPROXY_CFG)],
                       env={k: v for k, v in env.items()},
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    check(r.returncode != 0,
          "haproxy.cfg: must refuse to start without GATEWAY1_GRPC")

# --- docker/compose.cluster.yaml -------------------------------------------

COMPOSE = "docker/compose.cluster.yaml"
compose = yaml.safe_load(read(COMPOSE))
services = compose.get("services", {})
rabbits = sorted(s for s in services if s.startswith("rabbitmq"))
gateways = sorted(s for s in services if s.startswith("gateway"))
check(rabbits == ["rabbitmq1", "rabbitmq2", "rabbitmq3"],
      "compose.cluster: want rabbitmq1..3, got %s" % rabbits)
check(gateways == ["gateway1", "gateway2", "gateway3"],
      "compose.cluster: want gateway1..3, got %s" % gateways)
check("haproxy" in services, "compose.cluster: want an haproxy service")
top_configs = compose.get("configs", {})
top_secrets = compose.get("secrets", {})
for kind, table in (("config", top_configs), ("secret", top_secrets)):
    for name, entry in table.items():
        check(os.path.isfile(os.path.join(ROOT, "docker", entry.get("file",
                                                                    ""))),
              "compose.cluster: %s %s: file %s missing"
              % (kind, name, entry.get("file")))


def mounted(svc, kind):
    """{target path: source file (repo-relative)} of a service's configs
    or secrets."""
    table = top_configs if kind == "configs" else top_secrets
    out = {}
    for ref in svc.get(kind, []):
        source = ref if isinstance(ref, str) else ref.get("source")
        if not check(source in table, "compose.cluster: %s %s is not defined"
                     % (kind, source)):
            continue
        target = (ref.get("target") if isinstance(ref, dict) else None) or (
            "/run/secrets/" + source if kind == "secrets" else "/" + source)
        out[target] = os.path.normpath(os.path.join("docker",
                                                    table[source]["file"]))
    return out


def check_healthcheck(name, svc):
    hc = svc.get("healthcheck", {})
    test = hc.get("test")
    check(isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL"),
          "compose.cluster: %s needs a healthcheck" % name)
    return test or []


# RabbitMQ nodes: one image, one cookie, names = classic config peers.
rabbit_conf_lines = {}
for line in read("docker/cluster/rabbitmq.conf").splitlines():
    line = line.strip()
    if line and not line.startswith("#"):
        k, _, v = line.partition("=")
        rabbit_conf_lines[k.strip()] = v.strip()
check(rabbit_conf_lines.get("cluster_formation.peer_discovery_backend")
      == "classic_config", "cluster/rabbitmq.conf: classic config discovery")
peers = {v for k, v in rabbit_conf_lines.items()
         if k.startswith("cluster_formation.classic_config.nodes.")}
definitions_path = rabbit_conf_lines.get("load_definitions")
cookies = set()
for name in rabbits:
    svc = services[name]
    check(str(svc.get("image", "")).startswith("rabbitmq:3-management"),
          "compose.cluster: %s must use rabbitmq:3-management" % name)
    check("rabbit@%s" % svc.get("hostname") in peers,
          "compose.cluster: %s's node rabbit@%s is not a classic_config peer"
          % (name, svc.get("hostname")))
    check(svc.get("hostname") == name,
          "compose.cluster: %s's hostname must be its service name (the "
          "name the others and the gateways resolve)" % name)
    configs = mounted(svc, "configs")
    secrets = mounted(svc, "secrets")
    check(configs.get(definitions_path) == "docker/cluster/definitions.json",
          "compose.cluster: %s must mount cluster/definitions.json at %s "
          "(load_definitions)" % (name, definitions_path))
    check(any(t.startswith("/etc/rabbitmq/conf.d/") and t.endswith(".conf")
              and s == "docker/cluster/rabbitmq.conf"
              for t, s in configs.items()),
          "compose.cluster: %s must mount cluster/rabbitmq.conf in "
          "/etc/rabbitmq/conf.d/" % name)
    cookie = [s for t, s in secrets.items() if "cookie" in t]
    check(len(cookie) == 1, "compose.cluster: %s needs the Erlang cookie "
          "secret" % name)
    cookies.update(cookie)
    entry = " ".join(svc.get("entrypoint", []))
    check("/run/secrets/erlang_cookie" in entry
          and "/var/lib/rabbitmq/.erlang.cookie" in entry
          and "docker-entrypoint.sh rabbitmq-server" in entry,
          "compose.cluster: %s must install the cookie, then run the image's "
          "entrypoint" % name)
    check_healthcheck(name, svc)
check(peers == {"rabbit@" + r for r in rabbits},
      "cluster/rabbitmq.conf: peers %s must be the three nodes" % peers)
check(len(cookies) == 1, "compose.cluster: the nodes must share one cookie")

# Definitions: the gateways' user, its hash, quorum queues by default.
definitions = json.loads(read("docker/cluster/definitions.json"))
def_users = {u["name"]: u for u in definitions.get("users", [])}
root_vhost = [v for v in definitions.get("vhosts", []) if v["name"] == "/"]
check(root_vhost and root_vhost[0].get("default_queue_type") == "quorum"
      and root_vhost[0].get("metadata", {}).get("default_queue_type")
      == "quorum",
      "cluster/definitions.json: vhost / must default to quorum queues")
for p in definitions.get("policies", []):
    # RabbitMQ 3.10 (the tests' broker) knows only these.
    check(p.get("apply-to") in ("queues", "exchanges", "all"),
          "cluster/definitions.json: policy %s apply-to %s"
          % (p.get("name"), p.get("apply-to")))


def password_matches(user, password):
    u = def_users.get(user)
    if u is None or u.get("hashing_algorithm") != \
            "rabbit_password_hashing_sha256":
        return False
    raw = base64.b64decode(u["password_hash"])
    salt, digest = raw[:4], raw[4:]
    return hashlib.sha256(salt + password.encode()).digest() == digest


# Gateways: built from docker/Dockerfile, each with its broker list.
listen_ports, http_ports, instance_ids, first_nodes = {}, {}, set(), set()
for name in gateways:
    svc = services[name]
    build = svc.get("build", {})
    context = os.path.normpath(os.path.join(ROOT, "docker",
                                            build.get("context", ".")))
    check(context == ROOT, "compose.cluster: %s build context must be the "
          "repository" % name)
    check(build.get("dockerfile") == "docker/Dockerfile"
          and os.path.isfile(os.path.join(context, "docker/Dockerfile")),
          "compose.cluster: %s must build docker/Dockerfile" % name)
    env = svc.get("environment", {})
    check_env_flags(env, "compose.cluster " + name)
    listen_ports[name] = port_of(env.get("AMQPGW_LISTEN", ""))
    http_ports[name] = port_of(env.get("AMQPGW_HTTP_LISTEN", ""))
    check(str(env.get("AMQPGW_LISTEN", "")).startswith("0.0.0.0:")
          and str(env.get("AMQPGW_HTTP_LISTEN", "")).startswith("0.0.0.0:"),
          "compose.cluster: %s must listen beyond loopback" % name)
    instance_ids.add(env.get("AMQPGW_INSTANCE_ID"))
    secrets = mounted(svc, "secrets")
    advertised = str(env.get("AMQPGW_ADVERTISE_ADDRESS", ""))
    check(advertised == "%s:%s" % (name, listen_ports[name]),
          "compose.cluster: %s: AMQPGW_ADVERTISE_ADDRESS must be its own "
          "service name and gRPC port, got %r" % (name, advertised))
    check(env.get("AMQPGW_PEER_SECRET_FILE") in secrets,
          "compose.cluster: %s: AMQPGW_PEER_SECRET_FILE is not one of its "
          "secrets" % name)
    broker_file = env.get("AMQPGW_BROKER_FILE")
    check(broker_file in secrets, "compose.cluster: %s: AMQPGW_BROKER_FILE "
          "%s is not one of its secrets" % (name, broker_file))
    check("AMQPGW_BROKER" not in env,
          "compose.cluster: %s: the password belongs in the broker file, "
          "not AMQPGW_BROKER" % name)
    if broker_file in secrets:
        uris = [l.strip() for l in read(secrets[broker_file]).splitlines()
                if l.strip() and not l.strip().startswith("#")]
        hosts = []
        for uri in uris:
            u = urlsplit(uri)
            hosts.append(u.hostname)
            check(u.scheme == "amqp" and u.port == 5672,
                  "%s: %s must be amqp://...:5672" % (secrets[broker_file],
                                                     u.hostname))
            check(password_matches(u.username, u.password or ""),
                  "%s: user %s's password does not match definitions.json's "
                  "password_hash" % (secrets[broker_file], u.username))
        check(sorted(hosts) == rabbits, "%s must list every node once, got %s"
              % (secrets[broker_file], hosts))
        first_nodes.add(hosts[0] if hosts else None)
    deps = svc.get("depends_on", {})
    check(all(deps.get(r, {}).get("condition") == "service_healthy"
              for r in rabbits),
          "compose.cluster: %s must wait for every node to be healthy" % name)
    test = check_healthcheck(name, svc)
    check(test[1:3] == ["/usr/local/bin/amqpgw", "health"]
          and "127.0.0.1:%s" % listen_ports[name] in test,
          "compose.cluster: %s's healthcheck must run `amqpgw health` on its "
          "gRPC port" % name)
    grace = duration_seconds(env.get("AMQPGW_SHUTDOWN_GRACE", ""))
    stop = duration_seconds(svc.get("stop_grace_period", "10s"))
    check(grace is not None and stop is not None and stop >= grace + 5,
          "compose.cluster: %s stop_grace_period %s must exceed "
          "AMQPGW_SHUTDOWN_GRACE %s" % (name, svc.get("stop_grace_period"),
                                        env.get("AMQPGW_SHUTDOWN_GRACE")))
check(len(instance_ids) == len(gateways) and None not in instance_ids,
      "compose.cluster: every gateway needs its own AMQPGW_INSTANCE_ID")
check(len(first_nodes) == len(gateways),
      "compose.cluster: each gateway should start on a different node")
COMPOSE_IMAGES = {services[g].get("image") for g in gateways}
check(len(COMPOSE_IMAGES) == 1, "compose.cluster: one gateway image")

# HAProxy: its variables are the gateways' addresses and its published ports.
hap = services.get("haproxy", {})
check(str(hap.get("image", "")).startswith("haproxy:2.6"),
      "compose.cluster: haproxy must use haproxy:2.6 (the version tested)")
check(mounted(hap, "configs").get("/usr/local/etc/haproxy/haproxy.cfg")
      == HAPROXY_CFG, "compose.cluster: haproxy must mount %s as its "
      "configuration" % HAPROXY_CFG)
hap_env = {k: str(v) for k, v in hap.get("environment", {}).items()}
missing = [v for v in VARS if v not in hap_env and v not in OPTIONAL]
check(not missing, "compose.cluster: haproxy lacks %s" % missing)
check(set(hap_env) <= set(VARS),
      "compose.cluster: haproxy sets variables haproxy.cfg does not use: %s"
      % sorted(set(hap_env) - set(VARS)))
for i, name in enumerate(gateways, 1):
    check(hap_env.get("GATEWAY%d_GRPC" % i)
          == "%s:%s" % (name, listen_ports[name]),
          "compose.cluster: GATEWAY%d_GRPC must be %s:%s (its --listen)"
          % (i, name, listen_ports[name]))
    check(hap_env.get("GATEWAY%d_HTTP" % i)
          == "%s:%s" % (name, http_ports[name]),
          "compose.cluster: GATEWAY%d_HTTP must be %s:%s (its --http_listen)"
          % (i, name, http_ports[name]))
published = {int(str(p).rsplit(":", 1)[-1]) for p in hap.get("ports", [])}
bound = {port_of(hap_env.get(v)) for v in ("HAPROXY_GRPC_BIND",
                                           "HAPROXY_HTTP_BIND",
                                           "HAPROXY_STATS_BIND")}
check(bound <= published, "compose.cluster: haproxy binds %s but publishes "
      "%s" % (sorted(bound), sorted(published)))
check(all(services.get("haproxy", {}).get("depends_on", {}).get(g, {})
          .get("condition") == "service_healthy" for g in gateways),
      "compose.cluster: haproxy waits for healthy gateways")
test = " ".join(check_healthcheck("haproxy", hap))
check("/healthz" in test and str(port_of(hap_env.get("HAPROXY_STATS_BIND")))
      in test, "compose.cluster: haproxy's healthcheck must ask /healthz on "
      "the stats port")
for name in rabbits:
    for p in services[name].get("ports", []):
        check(str(p).startswith("127.0.0.1:"),
              "compose.cluster: %s publishes %s beyond loopback" % (name, p))
for p in hap.get("ports", []):
    check(str(p).startswith("127.0.0.1:"),
          "compose.cluster: haproxy publishes %s beyond loopback" % p)
for name in gateways:
    check(not services[name].get("ports"),
          "compose.cluster: %s must be reached through haproxy only" % name)

# --- deploy/kubernetes/ ----------------------------------------------------

K8S = "deploy/kubernetes"
manifest_files = sorted(os.path.relpath(p, path(K8S))
                        for p in glob.glob(path(K8S + "/*.yaml")))
kustomization = yaml.safe_load(read(K8S + "/kustomization.yaml"))
resources = kustomization.get("resources", [])
for r in resources:
    check(os.path.isfile(path(K8S + "/" + r)),
          "kustomization.yaml: %s does not exist" % r)
check(sorted(resources + ["kustomization.yaml"]) == manifest_files,
      "kustomization.yaml must list every manifest: has %s, folder has %s"
      % (sorted(resources), manifest_files))

objects = []
for f in resources:
    for doc in yaml.safe_load_all(read(K8S + "/" + f)):
        if doc is None:
            continue
        check(doc.get("apiVersion") and doc.get("kind")
              and doc.get("metadata", {}).get("name"),
              "%s: every object needs apiVersion, kind, metadata.name" % f)
        objects.append(doc)


def objects_of(kind):
    return [o for o in objects if o.get("kind") == kind]


deployments = objects_of("Deployment")
svcs = objects_of("Service")
config_maps = {o["metadata"]["name"]: o for o in objects_of("ConfigMap")}
k8s_secrets = {o["metadata"]["name"]: o for o in objects_of("Secret")}
pdbs = objects_of("PodDisruptionBudget")
hpas = objects_of("HorizontalPodAutoscaler")
check(len(deployments) == 1 and svcs and config_maps and k8s_secrets
      and len(pdbs) == 1 and len(hpas) == 1,
      "deploy/kubernetes: want a Deployment, Service(s), ConfigMap, Secret, "
      "PodDisruptionBudget, HorizontalPodAutoscaler")
check(all(o["apiVersion"] == want for kind, want in (
    ("Deployment", "apps/v1"), ("PodDisruptionBudget", "policy/v1"),
    ("HorizontalPodAutoscaler", "autoscaling/v2"), ("Service", "v1"))
    for o in objects_of(kind)), "deploy/kubernetes: API versions")


def secret_data(s):
    data = dict(s.get("stringData", {}))
    for k, v in s.get("data", {}).items():
        data[k] = base64.b64decode(v).decode()
    return data


if deployments:
    dep = deployments[0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    tmpl_labels = spec["template"]["metadata"].get("labels", {})
    selector = spec["selector"].get("matchLabels", {})
    check(selector and subset(selector, tmpl_labels),
          "Deployment: selector %s must match the pod labels %s"
          % (selector, tmpl_labels))
    check(spec.get("replicas") == 3, "Deployment: want 3 replicas")
    containers = pod.get("containers", [])
    check(len(containers) == 1, "Deployment: one container")
    c = containers[0]
    check(c.get("image") in COMPOSE_IMAGES, "Deployment: image %s must be "
          "the one compose builds (%s)" % (c.get("image"), COMPOSE_IMAGES))
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check({"grpc", "http"} <= set(ports),
          "Deployment: want container ports grpc and http")

    # The environment: ConfigMap (envFrom) + env.
    env = {}
    for ref in c.get("envFrom", []):
        name = ref.get("configMapRef", {}).get("name")
        if check(name in config_maps,
                 "Deployment: envFrom ConfigMap %s is not defined" % name):
            env.update(config_maps[name].get("data", {}))
    defined = set()
    for e in c.get("env", []):
        for ref in re.findall(r"\$\((\w+)\)", str(e.get("value", ""))):
            check(ref in defined, "Deployment: env %s uses $(%s) before it is "
                  "defined" % (e["name"], ref))
        defined.add(e["name"])
        env[e["name"]] = e.get("value", "<from %s>" % list(
            e.get("valueFrom", {}).keys()))
    check_env_flags(env, "deploy/kubernetes")
    check("AMQPGW_INSTANCE_ID" in env,
          "Deployment: every pod needs its own AMQPGW_INSTANCE_ID")
    check(str(env.get("AMQPGW_ADVERTISE_ADDRESS", "")).endswith(
              ":%s" % ports.get("grpc")),
          "Deployment: AMQPGW_ADVERTISE_ADDRESS must name the grpc port, got "
          "%r" % env.get("AMQPGW_ADVERTISE_ADDRESS"))
    peer_secret = str(env.get("AMQPGW_PEER_SECRET_FILE", ""))
    check(peer_secret.startswith("/etc/amqpgw/secrets/") and any(
              peer_secret.rsplit("/", 1)[-1] in s.get("stringData", {})
              for s in k8s_secrets.values()),
          "Deployment: AMQPGW_PEER_SECRET_FILE must be a key of the mounted "
          "Secret, got %r" % peer_secret)

    # Ports: flags = container ports = probes = Service targetPorts.
    check(port_of(env.get("AMQPGW_LISTEN")) == ports.get("grpc"),
          "Deployment: AMQPGW_LISTEN %s must use the grpc containerPort %s"
          % (env.get("AMQPGW_LISTEN"), ports.get("grpc")))
    check(port_of(env.get("AMQPGW_HTTP_LISTEN")) == ports.get("http"),
          "Deployment: AMQPGW_HTTP_LISTEN %s must use the http containerPort "
          "%s" % (env.get("AMQPGW_HTTP_LISTEN"), ports.get("http")))
    for key in ("AMQPGW_LISTEN", "AMQPGW_HTTP_LISTEN",
                "AMQPGW_METRICS_LISTEN"):
        if key in env:
            check(str(env[key]).startswith("0.0.0.0:"),
                  "Deployment: %s must listen beyond loopback" % key)
    if "AMQPGW_METRICS_LISTEN" in env:
        mport = port_of(env["AMQPGW_METRICS_LISTEN"])
        check(ports.get("metrics") == mport,
              "Deployment: AMQPGW_METRICS_LISTEN must use the metrics port")
        ann = spec["template"]["metadata"].get("annotations", {})
        check(ann.get("prometheus.io/port") == str(mport),
              "Deployment: prometheus.io/port must be the metrics port")
    probes = {}
    for kind in ("readinessProbe", "livenessProbe"):
        p = c.get(kind, {})
        probes[kind] = p
        check(p.get("grpc", {}).get("port") == ports.get("grpc"),
              "Deployment: %s must be a grpc probe on the grpc port %s"
              % (kind, ports.get("grpc")))
        check(p.get("grpc", {}).get("service", "") in ("",
                                                       "amqpgw.v1.Gateway"),
              "Deployment: %s asks for a service the daemon does not report"
              % kind)

    def window(p):
        return (p.get("initialDelaySeconds", 0)
                + p.get("periodSeconds", 10) * p.get("failureThreshold", 3))
    check(window(probes["livenessProbe"]) >= 60 and
          window(probes["livenessProbe"]) > window(probes["readinessProbe"]),
          "Deployment: liveness must be patient (a broker outage makes the "
          "check fail, and a restart does not help)")
    check(env.get("AMQPGW_TLS_CERT") is None,
          "Deployment: grpc probes speak plaintext; with TLS use exec probes")

    # Secrets: the files the flags name exist in the mounted Secret.
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    files = {}
    for v in pod.get("volumes", []):
        sec = v.get("secret")
        if not sec:
            continue
        name = sec.get("secretName")
        if not check(name in k8s_secrets,
                     "Deployment: volume %s: Secret %s is not defined"
                     % (v["name"], name)):
            continue
        data = secret_data(k8s_secrets[name])
        items = sec.get("items") or [{"key": k, "path": k} for k in data]
        for it in items:
            check(it["key"] in data, "Deployment: Secret %s has no key %s"
                  % (name, it["key"]))
            if v["name"] in mounts:
                files[mounts[v["name"]] + "/" + it["path"]] = \
                    data.get(it["key"], "")
        check(sec.get("defaultMode") in (0o400, 0o440),
              "Deployment: Secret files must not be world-readable")
    for key in ("AMQPGW_BROKER_FILE", "AMQPGW_AUTH_TOKENS"):
        check(env.get(key) in files, "Deployment: %s=%s is not a file of a "
              "mounted Secret (%s)" % (key, env.get(key), sorted(files)))
    check("AMQPGW_BROKER" not in env,
          "Deployment: the broker password belongs in the Secret's file")
    for line in files.get(env.get("AMQPGW_BROKER_FILE"), "").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            u = urlsplit(line)
            check(u.scheme in ("amqp", "amqps") and u.hostname,
                  "Secret broker.uri: %r is not an amqp(s) URI" % line[:60])
    tokens = []
    for line in files.get(env.get("AMQPGW_AUTH_TOKENS"), "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        check(len(fields) == 2 and fields[1] in ("publish", "consume",
                                                 "admin")
              and len(fields[0]) >= 16,
              "Secret tokens: want '<token of 16+ characters> <role>'")
        tokens.append(fields[0])
    check(tokens and len(set(tokens)) == len(tokens),
          "Secret tokens: at least one, none repeated")

    # Shutdown: preStop pause + --shutdown_grace fit in the grace period.
    grace = duration_seconds(env.get("AMQPGW_SHUTDOWN_GRACE", ""))
    check(grace is not None, "ConfigMap: set AMQPGW_SHUTDOWN_GRACE")
    pre = c.get("lifecycle", {}).get("preStop", {})
    pause = 0
    cmd = pre.get("exec", {}).get("command", [])
    if cmd[:1] == ["/bin/sleep"]:
        pause = duration_seconds(cmd[1] + "s" if cmd[1].isdigit() else cmd[1])
    elif "sleep" in pre:
        pause = pre["sleep"]["seconds"]
    total = pod.get("terminationGracePeriodSeconds", 30)
    check(grace is not None and total >= pause + grace + 5,
          "Deployment: terminationGracePeriodSeconds %s must cover the "
          "preStop pause %s + --shutdown_grace %s + 5 s"
          % (total, pause, grace))

    # Resources from docs/performance.md's figures.
    res = c.get("resources", {})
    req_mem = quantity_bytes(res.get("requests", {}).get("memory"))
    lim_mem = quantity_bytes(res.get("limits", {}).get("memory"))
    check(res.get("requests", {}).get("cpu") and req_mem,
          "Deployment: want CPU and memory requests")
    perf = read("docs/performance.md")
    rss = [float(x) for x in re.findall(
        r"\| RSS [^|]*\| ([\d.]+) MB", perf)]
    peak = max(rss) if rss else 48
    check(rss, "docs/performance.md: no RSS rows to size memory from")
    check(req_mem and req_mem >= peak * 1e6,
          "Deployment: memory request %s below the measured %s MB"
          % (res.get("requests", {}).get("memory"), peak))
    pending = int(env.get("AMQPGW_MAX_PENDING_BYTES", 256 << 20))
    request = int(env.get("AMQPGW_MAX_REQUEST_BYTES", 64 << 20))
    check(pending >= request, "ConfigMap: AMQPGW_MAX_PENDING_BYTES must be "
          "at least AMQPGW_MAX_REQUEST_BYTES (the daemon refuses less)")
    check(lim_mem and lim_mem >= peak * 1e6 + pending + 2 * request,
          "Deployment: memory limit %s must hold the measured RSS plus "
          "--max_pending_bytes plus two requests"
          % res.get("limits", {}).get("memory"))
    sc = pod.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == IMAGE_UID,
          "Deployment: run as the image's non-root user %s" % IMAGE_UID)

    # Services: selectors match the pods; targetPorts are container ports.
    for s in svcs:
        sname = s["metadata"]["name"]
        check(subset(s["spec"].get("selector"), tmpl_labels)
              and s["spec"].get("selector"),
              "Service %s: selector must match the pods" % sname)
        for p in s["spec"].get("ports", []):
            target = p.get("targetPort", p.get("port"))
            number = ports.get(target) if isinstance(target, str) else target
            check(number is not None and number in ports.values(),
                  "Service %s: targetPort %s is not a container port"
                  % (sname, target))
            if p.get("name") in ports:
                check(number == ports[p["name"]],
                      "Service %s: port %s must reach container port %s"
                      % (sname, p["name"], p["name"]))
    check(any(p.get("name") == "grpc" for s in svcs
              for p in s["spec"].get("ports", []))
          and any(p.get("name") == "http" for s in svcs
                  for p in s["spec"].get("ports", [])),
          "Service: want the gRPC and HTTP ports")
    check(any("balances connections, not" in read(K8S + "/" + f)
              for f in resources if "service" in f),
          "service.yaml must explain that a Service balances connections, "
          "not requests")

    for pdb in pdbs:
        check(pdb["spec"].get("selector", {}).get("matchLabels") == selector,
              "PodDisruptionBudget: selector must be the Deployment's")
        avail = pdb["spec"].get("minAvailable")
        unavail = pdb["spec"].get("maxUnavailable")
        check((unavail is not None and 0 < unavail < spec["replicas"])
              or (avail is not None and 0 < avail < spec["replicas"]),
              "PodDisruptionBudget: must allow one disruption, not all")
    for hpa in hpas:
        ref = hpa["spec"]["scaleTargetRef"]
        check(ref == {"apiVersion": "apps/v1", "kind": "Deployment",
                      "name": dep["metadata"]["name"]},
              "HorizontalPodAutoscaler: must scale the Deployment")
        check(hpa["spec"].get("minReplicas") == spec["replicas"]
              and hpa["spec"].get("maxReplicas", 0) > spec["replicas"],
              "HorizontalPodAutoscaler: minReplicas = replicas < maxReplicas")
        check(any(m.get("resource", {}).get("name") == "cpu"
                  for m in hpa["spec"].get("metrics", [])),
              "HorizontalPodAutoscaler: scale on CPU")

# kustomize (kubectl) renders the folder, when it is installed.
kubectl = shutil.which("kubectl")
if kubectl:
    r = subprocess.run([kubectl, "kustomize", path(K8S)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode == 0:
        rendered = [d for d in yaml.safe_load_all(r.stdout) if d]
        check(len(rendered) == len(objects),
              "kubectl kustomize rendered %d objects, want %d"
              % (len(rendered), len(objects)))
    else:
        notes.append("kubectl kustomize unavailable: %s" % r.stderr.strip()
                     [:200])
else:
    notes.append("kubectl not installed: kustomize rendering not checked")

# --- Documentation and bootstrap -------------------------------------------

bootstrap = read("scripts/bootstrap.sh")
check(re.search(r"(^|\s)haproxy(\s|$)", bootstrap) is not None,
      "scripts/bootstrap.sh must install haproxy")
check(os.path.isfile(path("docs/production.md")),
      "docs/production.md missing")
if os.path.isfile(path("docs/production.md")):
    prod = read("docs/production.md")
    for f in (HAPROXY_CFG, COMPOSE, K8S):
        check(f in prod, "docs/production.md must walk through %s" % f)
check("docs/production.md" in read("README.md"),
      "README must link docs/production.md")

for n in notes:
    print("NOTE: " + n)
print("%d passed, %d failed" % (passes, len(failures)))
sys.exit(1 if failures else 0)
