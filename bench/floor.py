"""The broker floor: the pipeline's hops with plain aio-pika and no application work.

Same shape as the product: a persistent, confirmed publish to a topic exchange that fans out
to two quorum queues; the consumer of the first republishes (persistent, confirmed) a second
event that fans out to two more; every queue is drained and acked.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika

QUORUM = {"x-queue-type": "quorum"}


async def run_floor(amqp_url: str, n: int, prefetch: int = 50, window: int = 200) -> float:
    """Messages per second for `n` incidents through the product's hops."""
    tag = uuid.uuid4().hex[:6]
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        pub = await connection.channel(publisher_confirms=True)
        exchange = await pub.declare_exchange(f"floor-{tag}", aio_pika.ExchangeType.TOPIC, durable=True)
        names = {key: f"floor-{tag}-{key}" for key in ("routing", "reporting", "timeline")}
        queues = {}
        for key, name in names.items():
            queues[key] = await pub.declare_queue(name, durable=True, arguments=QUORUM)
        await queues["routing"].bind(exchange, "incident.reported")
        await queues["reporting"].bind(exchange, "incident.reported")
        await queues["reporting"].bind(exchange, "incident.routed")
        await queues["timeline"].bind(exchange, "incident.routed")

        done = asyncio.Event()
        counts = {"reporting": 0, "timeline": 0}
        body = b"x" * 1200  # about the size of an incident.reported envelope

        relay = await connection.channel(publisher_confirms=True)
        await relay.set_qos(prefetch_count=prefetch)
        relay_exchange = await relay.get_exchange(exchange.name)

        async def route(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await relay_exchange.publish(
                aio_pika.Message(body[:600], delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=str(uuid.uuid4())),
                routing_key="incident.routed",
            )
            await message.ack()

        def sink(key: str):
            async def consume(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                await message.ack()
                counts[key] += 1
                if counts["reporting"] >= 2 * n and counts["timeline"] >= n:
                    done.set()

            return consume

        consumers = []
        for key, handler in (("routing", route), ("reporting", sink("reporting")), ("timeline", sink("timeline"))):
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=prefetch)
            queue = await channel.get_queue(names[key])
            consumers.append(await queue.consume(handler))

        start = time.perf_counter()
        pending: set[asyncio.Future] = set()
        for _ in range(n):
            pending.add(
                asyncio.ensure_future(
                    exchange.publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=str(uuid.uuid4())),
                        routing_key="incident.reported",
                    )
                )
            )
            if len(pending) >= window:  # as the outbox relay does: a batch of confirms in flight
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*pending)
        await done.wait()
        elapsed = time.perf_counter() - start
        for name in names.values():
            await pub.queue_delete(name)
        await pub.exchange_delete(exchange.name)
    return n / elapsed
