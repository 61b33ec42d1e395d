"""An agency's own system reading its baove notifications from RabbitMQ: a starting point to copy.

The agency receives from the commune's operator (`baove agency-access --unit UNIT`) a broker user that may
consume its queue `agency.UNIT` and nothing else. Each message is the thin notification described by
docs/contracts/notifications.schema.json (`payload`): what happened, the urgency, the due time and a
link to the console, never the child's data. The same notification can arrive twice (at-least-once
delivery): keep its `message_id` (= `notification_id`) and skip one already handled.

    AGENCY_AMQP_URL='amqps://agency.25349.police:PASSWORD@broker.example:5671/baove' \
    AGENCY_UNIT=25349.police python agency_consumer.py [--schema notifications.schema.json] [--seen seen.txt]

Needs only `aio-pika` (and `jsonschema` if --schema is given).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path

import aio_pika


def load_validator(schema_file: str | None):
    """A check of each body against the published schema, or None."""
    if schema_file is None:
        return None
    import jsonschema

    schema = json.loads(Path(schema_file).read_text(encoding="utf-8"))["payload"]
    return jsonschema.Draft202012Validator(schema)


def handle(notification: dict) -> None:
    """The agency's own work: open a ticket, page the officer on duty... Here: one line on standard output."""
    print(
        notification["type"],
        notification["urgency"],
        notification["unit_id"],
        notification.get("due_at") or "-",
        notification["console_url"],
        flush=True,
    )


async def consume(url: str, unit_id: str, seen_file: Path, validator, count: int | None) -> None:
    seen = set(seen_file.read_text().split()) if seen_file.exists() else set()
    handled = 0
    done = asyncio.Event()
    # connect_robust reconnects after a broker restart; the queue is durable, nothing is lost meanwhile.
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=10)
        # passive: the user may not declare (the operator's command made the queue); this only checks it is there.
        queue = await channel.declare_queue(f"agency.{unit_id}", passive=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal handled
            try:
                notification = json.loads(message.body)
                if validator is not None:
                    validator.validate(notification)
            except Exception as exc:  # not a notification of the published schema: set aside, never retried
                print(f"rejected {message.message_id}: {type(exc).__name__}", file=sys.stderr, flush=True)
                await message.reject(requeue=False)
                return
            if message.message_id not in seen:
                handle(notification)
                seen.add(message.message_id)
                with seen_file.open("a") as f:
                    f.write(message.message_id + "\n")
            # Handled, recorded, then acknowledged: a crash before the ack gets the message again (skipped once recorded).
            await message.ack()
            handled += 1
            if count is not None and handled >= count:
                done.set()

        await queue.consume(on_message)
        await done.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="Consume an agency's baove notifications")
    parser.add_argument("--schema", help="validate each body against docs/contracts/notifications.schema.json")
    parser.add_argument("--seen", default="seen-notifications.txt", help="where handled notification ids are kept")
    parser.add_argument("--count", type=int, help="stop after this many messages (default: run until stopped)")
    args = parser.parse_args()
    url, unit_id = os.environ["AGENCY_AMQP_URL"], os.environ["AGENCY_UNIT"]
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: unacknowledged messages stay in the queue
        asyncio.run(consume(url, unit_id, Path(args.seen), load_validator(args.schema), args.count))


if __name__ == "__main__":
    main()
