"""The consumer-side inbox: a processed event is recorded in the handler's own transaction."""

from __future__ import annotations

from sqlalchemy import Column, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import UtcDateTime, dialect_insert, utcnow


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox_message",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("processed_at", UtcDateTime(), nullable=False),
    )


async def claim(session: AsyncSession, table: Table, consumer: str, event_id: str) -> bool:
    """Record the event as processed by `consumer`; False when it already was (a redelivery)."""
    stmt = (
        dialect_insert(session)(table)
        .values(consumer=consumer, event_id=event_id, processed_at=utcnow())
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
    )
    result = await session.execute(stmt)
    return result.rowcount == 1


async def claim_many(session: AsyncSession, table: Table, consumer: str, event_ids: list[str]) -> set[str]:
    """Record several events in one statement; the ids that were new (a redelivered one is left out)."""
    if not event_ids:
        return set()
    now = utcnow()
    stmt = (
        dialect_insert(session)(table)
        # Sorted: two replicas claiming overlapping ids take the row locks in the same order (no deadlock).
        .values([{"consumer": consumer, "event_id": e, "processed_at": now} for e in sorted(set(event_ids))])
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
        .returning(table.c.event_id)
    )
    return set((await session.execute(stmt)).scalars())
