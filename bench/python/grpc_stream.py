"""Reads N messages through amqpgwd's StreamMessages with Python grpcio.

The consumer a Python user writes against the gateway: one stream, AUTO
acks, every delivery's body touched. Prints one key=value summary line like
amqpgw-bench. Needs the generated stubs on PYTHONPATH (bench/compare.sh
makes them with protoc) and Debian's python3-grpcio (/usr/bin/python3).

  grpc_stream.py --server HOST:PORT --queue Q -n N [--prefetch P]
                 [--max_batch B]
"""
import argparse
import time

import grpc
from benchlib import cpu_seconds, print_summary
from amqpgw.v1 import gateway_pb2 as pb
from amqpgw.v1 import gateway_pb2_grpc as rpc


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", default="127.0.0.1:50051")
    p.add_argument("--queue", default="amqpgw-bench")
    p.add_argument("-n", type=int, default=100000)
    p.add_argument("--prefetch", type=int, default=1000)
    p.add_argument("--max_batch", type=int, default=0)
    p.add_argument("--gateway_pid", type=int, default=0)
    p.add_argument("--label", default="")
    a = p.parse_args()

    channel = grpc.insecure_channel(a.server)
    gw = rpc.GatewayStub(channel)
    gw.DeclareQueue(pb.DeclareQueueRequest(name=a.queue), timeout=30)
    gw_cpu0 = cpu_seconds(a.gateway_pid)
    cpu0 = time.process_time()
    start = time.monotonic()
    got = 0
    size = 0
    stream = gw.StreamMessages(
        pb.StreamMessagesRequest(queue=a.queue, prefetch=a.prefetch,
                                 ack_mode=pb.StreamMessagesRequest.AUTO,
                                 max_messages=a.n, max_batch=a.max_batch),
        timeout=1800)
    last = start
    for event in stream:
        if event.HasField("delivery"):
            got += 1
            size += len(event.delivery.body)
        elif event.HasField("batch"):
            for d in event.batch.deliveries:
                got += 1
                size += len(d.body)
        else:
            continue
        if got == a.n:
            last = time.monotonic()
    elapsed = (last if got == a.n else time.monotonic()) - start
    client_cpu = time.process_time() - cpu0
    gw_cpu = cpu_seconds(a.gateway_pid) - gw_cpu0
    items = [("tool", "python-grpcio"), ("mode", "stream")]
    if a.label:
        items.append(("label", a.label))
    items += [("n", a.n), ("prefetch", a.prefetch), ("ack", "auto")]
    if a.max_batch:
        items.append(("max_batch", a.max_batch))
    items += [("ok", got), ("errors", a.n - got)]
    extra = []
    if a.gateway_pid:
        extra.append(("gw_cpu_us_per_msg", f"{gw_cpu * 1e6 / max(got, 1):.2f}"))
    print_summary(items, got, elapsed, client_cpu, extra)
    return 0 if got == a.n else 1


if __name__ == "__main__":
    raise SystemExit(main())
