"""Publishes N messages through amqpgwd's PublishStream with Python grpcio.

The publisher a Python user writes against the gateway (docs/clients.md): a
generator of requests, each answer counted as it comes. Persistent 100-byte
bodies, max_in_flight 256, and --answers_per_response K answers per
response (max_answers_per_response; 1: one per response, the default).
Prints one key=value summary line like amqpgw-bench. Needs the generated
stubs on PYTHONPATH (bench/compare.sh makes them with protoc) and Debian's
python3-grpcio (/usr/bin/python3).

  grpc_publish_stream.py --server HOST:PORT --queue Q -n N
                         [--answers_per_response K]
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
    p.add_argument("-n", type=int, default=20000)
    p.add_argument("--answers_per_response", type=int, default=1)
    p.add_argument("--gateway_pid", type=int, default=0)
    a = p.parse_args()

    channel = grpc.insecure_channel(a.server)
    gw = rpc.GatewayStub(channel)
    gw.DeclareQueue(pb.DeclareQueueRequest(name=a.queue), timeout=30)
    gw.PurgeQueue(pb.PurgeQueueRequest(name=a.queue), timeout=30)
    body = b"x" * 100

    def requests():
        for i in range(1, a.n + 1):
            r = pb.PublishStreamRequest(
                sequence=i,
                message=pb.PublishRequest(routing_key=a.queue, body=body))
            if i == 1:
                r.max_in_flight = 256
                r.max_answers_per_response = a.answers_per_response
            yield r

    gw_cpu0 = cpu_seconds(a.gateway_pid)
    cpu0 = time.process_time()
    start = time.monotonic()
    ok = errors = 0
    for response in gw.PublishStream(requests(), timeout=1800):
        answers = response.answers or [response]
        for answer in answers:
            if answer.result.code == 0:
                ok += 1
            else:
                errors += 1
    elapsed = time.monotonic() - start
    client_cpu = time.process_time() - cpu0
    gw_cpu = cpu_seconds(a.gateway_pid) - gw_cpu0
    items = [("tool", "python-grpcio"), ("mode", "publish-stream"),
             ("n", a.n), ("answers_per_response", a.answers_per_response),
             ("ok", ok), ("errors", a.n - ok)]
    extra = []
    if a.gateway_pid:
        extra.append(("gw_cpu_us_per_msg", f"{gw_cpu * 1e6 / max(ok, 1):.2f}"))
    print_summary(items, ok, elapsed, client_cpu, extra)
    return 0 if ok == a.n else 1


if __name__ == "__main__":
    raise SystemExit(main())
