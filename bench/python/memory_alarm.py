#!/usr/bin/python3
"""Memory-alarm bursts against a running amqpgwd (bench/memory_alarm.sh
starts the node and the daemon): while the broker's memory alarm blocks
publishing, PublishBatch calls pile up in the gateway (up to
--max_pending_bytes, the rest RESOURCE_EXHAUSTED); then the alarm clears, the
burst drains, the queue is purged. Prints the daemon's resident size at the
peak, when drained, and 5 s later.

  memory_alarm.py --server 127.0.0.1:P --pid PID --node-dir DIR --rounds 5
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

def stubs(out):
    subprocess.run(["/usr/bin/protoc", f"-I{HERE}/proto", f"--python_out={out}",
                    f"--grpc_python_out={out}",
                    "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
                    "amqpgw/v1/gateway.proto"], check=True)
    sys.path.insert(0, out)

def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return -1

def ctl(node_dir, *args):
    subprocess.run([f"{HERE}/tests/support/rabbitmq-node.sh", "ctl", node_dir, *args],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server"); p.add_argument("--pid", type=int)
    p.add_argument("--node-dir"); p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--body", type=int, default=16384)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--calls", type=int, default=400)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        stubs(d)
        import grpc
        from amqpgw.v1 import gateway_pb2 as pb, gateway_pb2_grpc as rpc
        ch = grpc.insecure_channel(a.server, options=[
            ("grpc.max_send_message_length", 64 << 20),
            ("grpc.max_receive_message_length", 64 << 20)])
        stub = rpc.GatewayStub(ch)
        stub.DeclareQueue(pb.DeclareQueueRequest(name="mem"))
        body = os.urandom(a.body)
        req = pb.PublishBatchRequest(messages=[
            pb.PublishRequest(routing_key="mem", body=body) for _ in range(a.batch)])
        print(f"start rss {rss_mb(a.pid):.0f} MB", flush=True)
        for r in range(a.rounds):
            ctl(a.node_dir, "set_vm_memory_high_watermark", "0.0000001")
            time.sleep(2)  # the alarm reaches the gateway (connection.blocked)
            codes = {}
            futs = [stub.PublishBatch.future(req, timeout=90) for _ in range(a.calls)]
            time.sleep(8)  # the burst piles up behind the alarm
            peak = rss_mb(a.pid)
            ctl(a.node_dir, "set_vm_memory_high_watermark", "0.4")
            for f in futs:
                try:
                    f.result(); c = "OK"
                except grpc.RpcError as e:
                    c = e.code().name
                codes[c] = codes.get(c, 0) + 1
            stub.PurgeQueue(pb.PurgeQueueRequest(name="mem"))
            drained = rss_mb(a.pid)
            time.sleep(5)
            later = rss_mb(a.pid)
            print(f"round {r+1}: peak {peak:.0f} MB, drained {drained:.0f} MB, "
                  f"+5s {later:.0f} MB, calls {codes}", flush=True)

main()
