"""A publish whose confirm never comes must fail the batch, not hang it.

tests/cluster found it: a cluster node stopped while a relay's batch was in flight; the publishes on the closed
connection never completed, the relay's transaction stayed open holding its rows (FOR UPDATE), the other replica's
relay skipped them (SKIP LOCKED), and 7 reports were never routed until the process restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest
from sqlalchemy import insert, select

from services.intake.models import outbox_message
from shared.db import utcnow
from shared.metrics import OutboxMetrics, new_registry
from shared.outbox import OutboxRelay
from tests.support import make_runtime, migrate


@pytest.fixture
def pg_url(pg_database) -> str:
    return pg_database()


class _NoConfirm:
    """A broker whose publishes are never confirmed."""

    async def publish(self, *_args, **_kwargs) -> None:
        await asyncio.Event().wait()


class _Confirming:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def publish(self, _body, **kwargs) -> None:
        self.sent.append(kwargs["message_id"])


async def test_a_batch_whose_confirms_never_come_fails_and_another_relay_sends_its_rows(tmp_path, pg_url):
    runtime = make_runtime("intake", tmp_path, pg_url)
    await migrate(runtime)
    event_id = str(uuid.uuid4())
    try:
        async with runtime.sessionmaker() as session, session.begin():
            await session.execute(
                insert(outbox_message).values(
                    event_id=event_id, event_type="incident.recorded", correlation_id=event_id, body="{}", created_at=utcnow(), attempts=0
                )
            )

        def relay(broker) -> OutboxRelay:
            return OutboxRelay(runtime.sessionmaker, outbox_message, broker, OutboxMetrics.create(new_registry()), publish_timeout=0.5)

        started = time.monotonic()
        with contextlib.suppress(TimeoutError):  # the batch's failure: the relay's loop logs it and tries again later
            await asyncio.wait_for(relay(_NoConfirm()).publish_batch(), 5)
        # The relay gave up by itself (its publish timeout, not this test's 5 s): its transaction ended, the row unlocked.
        assert time.monotonic() - started < 3
        async with runtime.sessionmaker() as session:
            row = (await session.execute(select(outbox_message).where(outbox_message.c.event_id == event_id))).one()
        assert row.published_at is None
        # ... and the other replica's relay, which skips locked rows, sends it.
        confirming = _Confirming()
        assert await asyncio.wait_for(relay(confirming).publish_batch(), 5) == 1
        assert confirming.sent == [event_id]
    finally:
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()
