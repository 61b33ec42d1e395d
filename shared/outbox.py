"""The producer-side transactional outbox and its relay.

A domain row and the event that tells of it are written in one transaction; the relay
publishes unsent rows with publisher confirms and marks a row sent only after its confirm.
A crash between confirm and mark republishes the event: consumers dedupe on `event_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

from faststream.rabbit import RabbitBroker
from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import UtcDateTime, new_metadata, on_postgresql, utcnow
from shared.events import Envelope
from shared.inbox import inbox_table
from shared.loops import Backoff, repeat
from shared.metrics import OutboxMetrics
from shared.topology import EVENTS, NOTIFICATIONS

log = logging.getLogger("baove.outbox")


def outbox_table(metadata: MetaData) -> Table:
    table = Table(
        "outbox_message",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(64), nullable=False),
        Column("correlation_id", String(64), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("published_at", UtcDateTime(), nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", String(500), nullable=True),
    )
    Index("ix_outbox_message_unsent", table.c.published_at, table.c.id)
    return table


def service_metadata() -> tuple[MetaData, Table, Table]:
    """A service's own metadata, with its outbox and inbox tables already on it: (metadata, outbox, inbox)."""
    metadata = new_metadata()
    return metadata, outbox_table(metadata), inbox_table(metadata)


async def stage(session: AsyncSession, table: Table, *envelopes: Envelope) -> None:
    """Write events to the outbox inside the caller's transaction."""
    if not envelopes:
        return
    now = utcnow()
    await session.execute(
        table.insert(),
        [
            {
                "event_id": str(e.event_id),
                "event_type": e.event_type,
                "correlation_id": e.correlation_id,
                "body": e.model_dump_json(),
                "created_at": now,
                "attempts": 0,
            }
            for e in envelopes
        ],
    )


async def forget_published(session: AsyncSession, table: Table, correlation_id: str) -> None:
    """Delete the published events of one incident now rather than at the purge (it was erased)."""
    await session.execute(delete(table).where(table.c.correlation_id == correlation_id, table.c.published_at.is_not(None)))


class OutboxRelay:
    """Publishes the outbox. Over SQLite run one per database; over PostgreSQL rows are claimed with SKIP LOCKED."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        table: Table,
        broker: RabbitBroker,
        metrics: OutboxMetrics,
        *,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        retention: timedelta = timedelta(days=1),
        user_id: str | None = None,
        publish_timeout: float = 15.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        # The broker user this service connects as: the broker refuses any other, consumers check it is the producer's.
        self._user_id = user_id
        self._table = table
        self._broker = broker
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._retention = retention
        # A publish whose confirm never comes (its connection closed under it, as when a cluster node stops) must
        # fail, not hang: over PostgreSQL the batch's rows stay locked meanwhile and no other relay may send them.
        self._publish_timeout = publish_timeout
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._last_gauges = 0.0
        self._last_purge = 0.0
        self.healthy = True

    def notify(self) -> None:
        """Wake the relay now (called after a commit that staged events)."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task:
            await self._task

    async def run(self) -> None:
        await repeat(self._drain, pause=self._sleep, failed=self._failed, backoff=Backoff(0.5, 10.0), stopped=lambda: self._stopping)

    async def _drain(self) -> None:
        """Publish until a batch comes back short: a backlog goes out without waiting between batches."""
        while True:
            published = await self.publish_batch()
            await self._housekeeping()
            self.healthy = True
            if published < self._batch_size:
                return

    def _failed(self, exc: Exception) -> None:
        # Broker or database away: the rows stay; the loop tries again after its backoff.
        self.healthy = False
        log.warning("outbox relay cannot publish yet: %s", type(exc).__name__, extra={"error": str(exc)[:200]})

    async def _sleep(self) -> None:
        """Until a commit staged events (`notify`) or the poll interval passes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)
        self._wake.clear()

    async def publish_batch(self) -> int:
        """Publish one batch of unsent events; returns how many were confirmed."""
        t = self._table
        query = (
            select(t.c.id, t.c.event_id, t.c.event_type, t.c.correlation_id, t.c.body)
            .where(t.c.published_at.is_(None))
            .order_by(t.c.id)
            .limit(self._batch_size)
        )
        async with self._sessionmaker() as session:
            if on_postgresql(session):
                # Rows stay locked while they are published, so replicas' relays never send the same batch.
                async with session.begin():
                    rows = (await session.execute(query.with_for_update(skip_locked=True))).all()
                    return await self._send(session, rows)
            # SQLite: one relay per database file; hold no transaction while waiting for confirms.
            rows = (await session.execute(query)).all()
            await session.rollback()
            return await self._send(session, rows)

    async def _send(self, session: AsyncSession, rows) -> int:
        if not rows:
            return 0
        t = self._table
        # Sent in order on one channel; confirms are awaited together, not one round trip each.
        results = await asyncio.gather(
            *(asyncio.wait_for(self._publish(row), self._publish_timeout) for row in rows), return_exceptions=True
        )
        sent = [row.id for row, result in zip(rows, results) if not isinstance(result, BaseException)]
        failed = [(row.id, result) for row, result in zip(rows, results) if isinstance(result, BaseException)]
        async with session.begin_nested() if session.in_transaction() else session.begin():
            if sent:
                await session.execute(update(t).where(t.c.id.in_(sent)).values(published_at=utcnow()))
            for row_id, error in failed:
                await session.execute(
                    update(t)
                    .where(t.c.id == row_id)
                    .values(attempts=t.c.attempts + 1, last_error=f"{type(error).__name__}: {error}"[:500])
                )
        self._metrics.published.inc(len(sent))
        if failed:
            raise failed[0][1]
        return len(sent)

    async def _publish(self, row) -> None:
        await self._broker.publish(
            row.body.encode(),
            exchange=EVENTS,
            routing_key=row.event_type,
            persist=True,
            mandatory=row.event_type not in NOTIFICATIONS,
            message_id=row.event_id,
            correlation_id=row.correlation_id,
            message_type=row.event_type,
            content_type="application/json",
            user_id=self._user_id,
        )

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        t = self._table
        if now - self._last_gauges >= 5.0:
            self._last_gauges = now
            async with self._sessionmaker() as session:
                count, oldest = (
                    await session.execute(
                        select(func.count(), func.min(t.c.created_at)).where(t.c.published_at.is_(None))
                    )
                ).one()
            self._metrics.backlog.set(count)
            self._metrics.oldest_age.set(0 if oldest is None else (utcnow() - _aware(oldest)).total_seconds())
        if now - self._last_purge >= 600.0:
            self._last_purge = now
            async with self._sessionmaker() as session, session.begin():
                await session.execute(
                    delete(t).where(t.c.published_at.is_not(None), t.c.published_at < utcnow() - self._retention)
                )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
