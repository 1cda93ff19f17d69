#!/usr/bin/python3
"""amqpgw from Python: Publish, PublishBatch, a CLIENT-ack stream, a typed
header round trip, a stream of batches (max_batch), PublishStream and a
Subscribe consumer that acks in-stream and stops with `stop`, with stubs
generated at run time (protoc + grpc_python_plugin). Run with Debian's /usr/bin/python3
(python3-grpcio).

    /usr/bin/python3 gateway_client.py --server 127.0.0.1:50051 --queue demo
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def generate_stubs(proto_root, out_dir):
    subprocess.run(
        ["/usr/bin/protoc", f"-I{proto_root}", f"--python_out={out_dir}",
         f"--grpc_python_out={out_dir}",
         "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
         "amqpgw/v1/gateway.proto", "amqpgw/v1/options.proto"],
        check=True)
    sys.path.insert(0, out_dir)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--queue", required=True)
    parser.add_argument("--proto", default=os.path.join(HERE, "../../../proto"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as stubs:
        generate_stubs(args.proto, stubs)
        run(args.server, args.queue)
    print("python: ok")


def run(server, queue):
    import grpc
    from amqpgw.v1 import gateway_pb2 as pb
    from amqpgw.v1 import gateway_pb2_grpc as rpc

    # --- snippet (docs/clients.md) ---
    gw = rpc.GatewayStub(grpc.insecure_channel(server))
    gw.DeclareQueue(pb.DeclareQueueRequest(name=queue, durable=False), timeout=10)

    # Publish answers once the broker has confirmed the message.
    headers = {
        "attempt": pb.FieldValue(int_value=5),
        "urgent": pb.FieldValue(bool_value=True),
        "blob": pb.FieldValue(bytes_value=b"\x00\x01\xff"),
        "meta": pb.FieldValue(table_value=pb.FieldTable(
            fields={"region": pb.FieldValue(string_value="eu")})),
    }
    sent = gw.Publish(pb.PublishRequest(
        routing_key=queue, body=b"hello from python",
        properties=pb.MessageProperties(content_type="text/plain",
                                        headers=headers)), timeout=10)

    # PublishBatch: one result per message, in order.
    batch = gw.PublishBatch(pb.PublishBatchRequest(messages=[
        pb.PublishRequest(routing_key=queue, body=f"batch {i}".encode())
        for i in range(3)]), timeout=10)
    assert batch.ok_count == 3, batch

    # A stream with CLIENT acks: ack each delivery once handled. The stream
    # ends by itself after max_messages, all acked.
    stream = gw.StreamMessages(pb.StreamMessagesRequest(
        queue=queue, ack_mode=pb.StreamMessagesRequest.CLIENT,
        max_messages=4, prefetch=10), timeout=30)
    received = []
    for event in stream:
        if event.HasField("subscribed"):
            subscription = event.subscribed.subscription_id
        elif event.HasField("delivery"):
            d = event.delivery
            received.append(d)
            gw.Ack(pb.AckRequest(subscription_id=subscription,
                                 delivery_ids=[d.delivery_id]), timeout=10)
    # --- end of snippet ---

    assert [d.body for d in received] == [
        b"hello from python", b"batch 0", b"batch 1", b"batch 2"], received
    first = received[0]
    assert first.properties.message_id == sent.message_id
    assert first.properties.content_type == "text/plain"
    h = first.properties.headers
    assert h["attempt"].WhichOneof("kind") == "int_value", h["attempt"]
    assert h["attempt"].int_value == 5
    assert h["urgent"].bool_value is True
    assert h["blob"].bytes_value == b"\x00\x01\xff"
    assert h["meta"].table_value.fields["region"].string_value == "eu"
    assert [d.delivery_id for d in received] == [1, 2, 3, 4]
    # Everything acked: the queue is empty once the stream is gone.
    left = gw.InspectQueue(pb.InspectQueueRequest(name=queue), timeout=10)
    assert left.message_count == 0, left

    gw.PublishBatch(pb.PublishBatchRequest(messages=[
        pb.PublishRequest(routing_key=queue, body=f"m{i}".encode())
        for i in range(500)]), timeout=30)
    # For throughput: several deliveries per response (max_batch), one Ack
    # call per batch.
    # --- snippet: batches (docs/clients.md) ---
    stream = gw.StreamMessages(pb.StreamMessagesRequest(
        queue=queue, ack_mode=pb.StreamMessagesRequest.CLIENT,
        prefetch=1000, max_batch=256, max_messages=500), timeout=30)
    bodies = []
    for event in stream:
        if event.HasField("subscribed"):
            subscription = event.subscribed.subscription_id
        elif event.HasField("batch"):
            bodies += [d.body for d in event.batch.deliveries]
            gw.Ack(pb.AckRequest(
                subscription_id=subscription,
                delivery_ids=[d.delivery_id for d in event.batch.deliveries]),
                timeout=10)
    # --- end of snippet ---
    assert bodies == [f"m{i}".encode() for i in range(500)], bodies[:5]
    left = gw.InspectQueue(pb.InspectQueueRequest(name=queue), timeout=10)
    assert left.message_count == 0, left

    # Many messages on one stream, each answered (by its sequence, in any
    # order) once the broker has confirmed it; at most max_in_flight (read
    # from the first request) unconfirmed at a time.
    # --- snippet: PublishStream (docs/clients.md) ---
    def messages():
        for i in range(1, 101):
            yield pb.PublishStreamRequest(
                sequence=i, max_in_flight=64,
                message=pb.PublishRequest(routing_key=queue,
                                          body=f"s{i}".encode()))

    confirmed = set()
    for answer in gw.PublishStream(messages(), timeout=60):
        if answer.result.code == 0:
            confirmed.add(answer.sequence)
        else:
            print(answer.sequence, answer.result.error)
    # --- end of snippet ---
    assert confirmed == set(range(1, 101)), sorted(confirmed)[:5]
    left = gw.InspectQueue(pb.InspectQueueRequest(name=queue), timeout=10)
    assert left.message_count == 100, left

    # 500 in all (s1..s100, then p0..p399) for the Subscribe snippet.
    gw.PublishBatch(pb.PublishBatchRequest(messages=[
        pb.PublishRequest(routing_key=queue, body=f"p{i}".encode())
        for i in range(400)]), timeout=30)
    published = [f"s{i}".encode() for i in range(1, 101)] + [
        f"p{i}".encode() for i in range(400)]

    # --- snippet: Subscribe (docs/clients.md) ---
    # At-least-once: each batch is acked on the stream only after all of its
    # deliveries were processed; whatever is not acked when the stream ends
    # goes back to the queue. To stop cleanly, send `stop` (no more
    # deliveries), go on processing and acking what still arrives, and the
    # gateway sends a `summary` and ends the stream once nothing is
    # outstanding. Here it stops after `limit` messages; a service would put
    # the stop request into `outbox` on SIGTERM.
    from queue import SimpleQueue

    def consume(queue, process, limit):
        outbox = SimpleQueue()  # requests after the first; None half-closes

        def requests():
            yield pb.SubscribeRequest(start=pb.SubscribeStart(
                queue=queue, prefetch=100, max_batch=64))
            while (request := outbox.get()) is not None:
                yield request

        processed, stopping, summary = 0, False, None
        try:
            # No deadline: a consumer runs until it stops. A cancel or a
            # crash also requeues everything unacked.
            for r in gw.Subscribe(requests()):
                kind = r.WhichOneof("event")
                if kind == "batch":
                    for d in r.batch.deliveries:
                        process(d)
                    processed += len(r.batch.deliveries)
                    outbox.put(pb.SubscribeRequest(ack=pb.SubscribeAck(
                        delivery_ids=[d.delivery_id
                                      for d in r.batch.deliveries])))
                    if processed >= limit and not stopping:
                        outbox.put(pb.SubscribeRequest(stop=pb.SubscribeStop()))
                        stopping = True
                elif kind == "ack" and r.ack.stale_ids:
                    # Delivered before a reconnect: the broker redelivers
                    # them (redelivered=True) under new ids.
                    print("stale:", list(r.ack.stale_ids))
                elif kind == "summary":
                    summary = r.summary  # delivered, acked, rejected, requeued
        finally:
            outbox.put(None)  # half-close our side
        return processed, summary
    # --- end of snippet ---

    def ready_becomes(count):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            left = gw.InspectQueue(pb.InspectQueueRequest(name=queue),
                                   timeout=10)
            if left.message_count == count:
                return
            time.sleep(0.05)
        raise AssertionError(f"queue holds {left.message_count}, not {count}")

    bodies = []
    first, summary = consume(queue, lambda d: bodies.append(d.body), 60)
    # The stop went with the ack that reached 60 (at most 59 + a batch of
    # 64); before its basic.cancel, the broker may have refilled the window
    # (prefetch 100).
    assert 60 <= first <= 59 + 64 + 100, first
    assert summary is not None, "no summary"
    assert (summary.delivered, summary.acked, summary.rejected,
            summary.requeued) == (first, first, 0, 0), summary
    ready_becomes(500 - first)
    second, summary = consume(queue, lambda d: bodies.append(d.body),
                              500 - first)
    assert second == 500 - first, second
    assert (summary.delivered, summary.acked, summary.rejected,
            summary.requeued) == (second, second, 0, 0), summary
    # Every message processed exactly once, none left.
    assert sorted(bodies) == sorted(published), len(bodies)
    ready_becomes(0)
    gw.DeleteQueue(pb.DeleteQueueRequest(name=queue), timeout=10)


if __name__ == "__main__":
    main()
