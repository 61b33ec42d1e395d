"""Dead letters an operator can act on: list them with their reason, replay them once the cause is fixed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aio_pika

from shared import topology
from shared.topology import ConsumerQueue


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    message_id: str | None
    event_type: str | None
    correlation_id: str | None
    reason: str
    count: int
    first_death_at: datetime | None
    size: int


def _describe(spec: ConsumerQueue, message: aio_pika.abc.AbstractIncomingMessage) -> DeadLetter:
    deaths = (message.headers or {}).get("x-death") or [{}]
    death = deaths[0]
    return DeadLetter(
        queue=spec.name,
        message_id=message.message_id,
        event_type=message.type,
        correlation_id=message.correlation_id,
        reason=str(death.get("reason", "unknown")),
        count=int(death.get("count", 1)),
        first_death_at=death.get("time"),
        size=len(message.body),
    )


def _select(queue: str | None) -> list[ConsumerQueue]:
    known = topology.CONSUMER_QUEUES
    specs = [s for s in known if queue in (None, s.name, s.dead_letter_name)]
    if not specs:
        raise ValueError(f"unknown queue {queue!r}; known: {', '.join(s.name for s in known)}")
    return specs


async def list_dead_letters(amqp_url: str, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
    """Peek at dead letters: taken unacknowledged and returned when the channel closes."""
    found: list[DeadLetter] = []
    connection = await aio_pika.connect(amqp_url)
    try:
        for spec in _select(queue):
            channel = await connection.channel()
            try:
                dlq = await channel.declare_queue(spec.dead_letter_name, passive=True)
                for _ in range(limit):
                    message = await dlq.get(fail=False, no_ack=False)
                    if message is None:
                        break
                    found.append(_describe(spec, message))
            finally:
                await channel.close()  # unacked messages go back to the queue
    finally:
        await connection.close()
    return found


async def replay(amqp_url: str, queue: str | None = None, limit: int | None = None) -> dict[str, int]:
    """Send dead letters back to the queue they died in; each is acked only after the broker confirms the copy."""
    replayed: dict[str, int] = {}
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        for spec in _select(queue):
            dlq = await channel.declare_queue(spec.dead_letter_name, passive=True)
            replayed[spec.name] = 0
            while limit is None or replayed[spec.name] < limit:
                message = await dlq.get(fail=False, no_ack=False)
                if message is None:
                    break
                headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-")}
                copy = aio_pika.Message(
                    message.body,
                    headers=headers,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=message.message_id,
                    correlation_id=message.correlation_id,
                    type=message.type,
                    app_id=message.app_id,
                )
                # To this queue only (default exchange): other consumers already handled the event.
                await channel.default_exchange.publish(copy, routing_key=spec.name, mandatory=True)
                await message.ack()
                replayed[spec.name] += 1
    finally:
        await connection.close()
    return replayed


async def dead_letter_counts(channel: aio_pika.abc.AbstractChannel, specs: tuple[ConsumerQueue, ...]) -> dict[str, int]:
    counts = {}
    for spec in specs:
        dlq = await channel.declare_queue(spec.dead_letter_name, passive=True)
        counts[spec.name] = dlq.declaration_result.message_count
    return counts


async def drop_dead_letters(channel: aio_pika.abc.AbstractChannel, specs: tuple[ConsumerQueue, ...], incident_ids: set[str]) -> dict[str, int]:
    """Remove the dead letters of erased incidents (their correlation id) from these queues' DLQs; the others are
    taken unacknowledged and go back when the caller closes the channel. Returns how many were dropped per queue."""
    dropped = {}
    for spec in specs:
        dlq = await channel.declare_queue(spec.dead_letter_name, passive=True)
        dropped[spec.name] = 0
        for _ in range(dlq.declaration_result.message_count):
            message = await dlq.get(fail=False, no_ack=False)
            if message is None:
                break
            if message.correlation_id in incident_ids:
                await message.ack()
                dropped[spec.name] += 1
    return dropped
