"""Publishes N messages to RabbitMQ with aio-pika and publisher confirms.

The Python baseline of grpc_publish_stream.py: connect_robust, a channel
with publisher confirms (aio-pika's default), persistent 100-byte bodies to
the default exchange, at most --window publishes awaiting their confirm at
once (each `await exchange.publish(...)` returns once the broker confirmed
it). Prints one key=value summary line like amqpgw-bench. Debian's
python3-aio-pika (/usr/bin/python3).

  aiopika_publish.py --broker URI --queue Q -n N [--window W]
"""
import argparse
import asyncio
import time

import aio_pika
from benchlib import print_summary


async def publish(a):
    connection = await aio_pika.connect_robust(a.broker)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(a.queue, durable=True)
        await queue.purge()
        body = b"x" * 100
        window = asyncio.Semaphore(a.window)
        ok = 0

        async def one():
            nonlocal ok
            try:
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=a.queue)
                ok += 1
            finally:
                window.release()

        cpu0 = time.process_time()
        start = time.monotonic()
        tasks = []
        for _ in range(a.n):
            await window.acquire()
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.gather(*tasks, return_exceptions=True)
        elapsed = time.monotonic() - start
        client_cpu = time.process_time() - cpu0
    return ok, elapsed, client_cpu


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/")
    p.add_argument("--queue", default="amqpgw-bench")
    p.add_argument("-n", type=int, default=20000)
    p.add_argument("--window", type=int, default=256)
    a = p.parse_args()
    ok, elapsed, client_cpu = asyncio.run(publish(a))
    items = [("tool", "python-aio-pika"), ("mode", "publish"), ("n", a.n),
             ("window", a.window), ("ok", ok), ("errors", a.n - ok)]
    print_summary(items, ok, elapsed, client_cpu)
    return 0 if ok == a.n else 1


if __name__ == "__main__":
    raise SystemExit(main())
