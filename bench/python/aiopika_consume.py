"""Reads N messages from RabbitMQ with aio-pika, the way the sample app did.

connect_robust, a channel with prefetch P, queue.iterator() and
`async with message.process()`, which acks each message when its block
ends. Prints one key=value summary line like amqpgw-bench. Debian's
python3-aio-pika (/usr/bin/python3).

  aiopika_consume.py --broker URI --queue Q -n N [--prefetch P]
"""
import argparse
import asyncio
import time

import aio_pika
from benchlib import print_summary


async def consume(a):
    connection = await aio_pika.connect_robust(a.broker)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=a.prefetch)
        queue = await channel.declare_queue(a.queue, durable=True)
        cpu0 = time.process_time()
        start = time.monotonic()
        got = 0
        size = 0
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    got += 1
                    size += len(message.body)
                if got == a.n:
                    break
        elapsed = time.monotonic() - start
        client_cpu = time.process_time() - cpu0
    return got, elapsed, client_cpu


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/")
    p.add_argument("--queue", default="amqpgw-bench")
    p.add_argument("-n", type=int, default=100000)
    p.add_argument("--prefetch", type=int, default=1000)
    p.add_argument("--label", default="")
    a = p.parse_args()
    got, elapsed, client_cpu = asyncio.run(consume(a))
    items = [("tool", "python-aio-pika"), ("mode", "stream")]
    if a.label:
        items.append(("label", a.label))
    items += [("n", a.n), ("prefetch", a.prefetch), ("ack", "per-message"),
              ("ok", got), ("errors", a.n - got)]
    print_summary(items, got, elapsed, client_cpu)
    return 0 if got == a.n else 1


if __name__ == "__main__":
    raise SystemExit(main())
