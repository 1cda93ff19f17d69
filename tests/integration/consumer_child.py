#!/usr/bin/python3
"""A grpcio consumer for subscribe_test: a separate process the test can kill
with SIGKILL, or a StreamMessages AUTO reader that stops after k deliveries
(to measure what AUTO loses). Stubs are generated at run time (protoc +
grpc_python_plugin); run with Debian's /usr/bin/python3 (python3-grpcio).

  consumer_child.py --server H:P --queue Q --proto DIR subscribe --prefetch P --ack K
      Subscribe; acks the first K deliveries on the stream (one request
      each), printing "acked N" after each result; then "holding M" with the
      deliveries it holds unacked, and reads on without acking until killed.
  consumer_child.py ... auto --prefetch P --max-batch B --stop-after K
      StreamMessages AUTO; reads K deliveries as fast as it can, cancels,
      prints "read K" and exits.
"""
import argparse
import os
import queue
import subprocess
import sys
import tempfile


def generate_stubs(proto_root, out_dir):
    subprocess.run(
        ["/usr/bin/protoc", f"-I{proto_root}", f"--python_out={out_dir}",
         f"--grpc_python_out={out_dir}",
         "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
         "amqpgw/v1/gateway.proto", "amqpgw/v1/options.proto"],
        check=True)
    sys.path.insert(0, out_dir)


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def subscribe(stub, pb, args):
    requests = queue.Queue()
    requests.put(pb.SubscribeRequest(start=pb.SubscribeStart(
        queue=args.queue, prefetch=args.prefetch)))

    def gen():
        while True:
            r = requests.get()
            if r is None:
                return
            yield r

    acked = 0
    held = 0
    pending = []
    for ev in stub.Subscribe(gen()):
        kind = ev.WhichOneof("event")
        if kind == "batch":
            for d in ev.batch.deliveries:
                if acked + len(pending) < args.ack:
                    pending.append(d.delivery_id)
                    requests.put(pb.SubscribeRequest(ack=pb.SubscribeAck(
                        delivery_ids=[d.delivery_id])))
                else:
                    held += 1
        elif kind == "ack":
            acked += len(ev.ack.applied_ids)
            pending = [i for i in pending if i not in ev.ack.applied_ids]
            say(f"acked {acked}")
        if acked >= args.ack and held >= args.hold:
            say(f"holding {held}")
            args.hold = 1 << 62  # say it once; read on until killed


def auto(stub, pb, args):
    req = pb.StreamMessagesRequest(queue=args.queue, prefetch=args.prefetch,
                                   max_batch=args.max_batch,
                                   ack_mode=pb.StreamMessagesRequest.AUTO)
    call = stub.StreamMessages(req)
    read = 0
    for ev in call:
        kind = ev.WhichOneof("event")
        if kind == "delivery":
            read += 1
        elif kind == "batch":
            read += len(ev.batch.deliveries)
        if read >= args.stop_after:
            break
    call.cancel()
    say(f"read {read}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--proto", required=True)
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("subscribe")
    s.add_argument("--prefetch", type=int, default=100)
    s.add_argument("--ack", type=int, default=0)
    s.add_argument("--hold", type=int, default=1)
    a = sub.add_parser("auto")
    a.add_argument("--prefetch", type=int, default=100)
    a.add_argument("--max-batch", type=int, default=0)
    a.add_argument("--stop-after", type=int, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as stubs:
        generate_stubs(args.proto, stubs)
        import grpc
        import amqpgw.v1.gateway_pb2 as pb
        import amqpgw.v1.gateway_pb2_grpc as pb_grpc
        with grpc.insecure_channel(args.server) as channel:
            stub = pb_grpc.GatewayStub(channel)
            if args.mode == "subscribe":
                subscribe(stub, pb, args)
            else:
                auto(stub, pb, args)


if __name__ == "__main__":
    main()
