"""The delivery guarantees against a real RabbitMQ: outbox with confirms, inbox dedupe, dead letters."""

import asyncio
import json
import uuid
from datetime import UTC, datetime

import aio_pika
import pytest
from sqlalchemy import select

from services.intake.models import TimelineEntry, inbox_message, outbox_message
from shared import deadletters, topology
from shared.events import IncidentClosed, IncidentRouted
from tests.support import bearer, client, delete_topology_queues, eventually, incident_payload, issue_token, make_runtime, migrate


@pytest.fixture
async def vhost(amqp_url):
    """A clean slate on the test vhost: delete every queue the topology knows."""
    return await delete_topology_queues(amqp_url)


@pytest.fixture
async def intake(tmp_path, vhost):
    runtime = make_runtime("intake", tmp_path, amqp_url=vhost)
    await migrate(runtime)
    runtime.police = await issue_token(runtime, "unit", "25349.police")
    yield runtime
    await runtime.relay.stop()
    await runtime.broker.stop()
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def read_queue(amqp_url, name, expect, timeout=10.0):
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    queue = await channel.declare_queue(name, passive=True)
    got = []

    async def all_read() -> bool:
        while len(got) < expect and (message := await queue.get(fail=False)) is not None:
            got.append(message)
            await message.ack()
        return len(got) >= expect

    try:
        await eventually(all_read, timeout=timeout, what=f"{expect} message(s) on {name}")
    finally:
        await connection.close()
    return got


class TestOutboxRelay:
    async def test_an_accepted_incident_is_published_persistent_with_its_event_id(self, intake, vhost):
        await intake.broker.connect()
        await topology.declare(intake.broker)
        intake.relay.start()
        async with client(intake) as http:
            incident_id = (await http.post("/v1/incidents", json=incident_payload(), headers=bearer(intake.police))).json()["incident_id"]
        [message] = await read_queue(vhost, "routing.incidents", 1)
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.correlation_id == incident_id and message.type == "incident.reported"
        assert message.user_id == "guest"  # the producer's broker user, which consumers check
        # Reporting's queue gets the facts alone: no case, none of the child's or reporter's data.
        [facts] = await read_queue(vhost, "reporting.events", 1)
        assert facts.type == "incident.recorded" and facts.correlation_id == incident_id and facts.user_id == "guest"
        payload = json.loads(facts.body)["payload"]
        assert set(payload) == {"incident_id", "facts"}
        for personal in ("Nguyễn", "description", "reporter", "birth_date", "full_name", "school"):
            assert personal not in facts.body.decode()

        async def marked():
            async with intake.sessionmaker() as session:
                row = (await session.execute(select(outbox_message).where(outbox_message.c.event_type == "incident.reported"))).one()
            return row.published_at is not None and row.event_id == message.message_id

        await eventually(marked)

    async def test_an_event_nothing_is_bound_to_stays_in_the_outbox(self, intake):
        await intake.broker.connect()
        await intake.broker.declare_exchange(topology.EVENTS)  # the exchange exists, but no queue is bound
        async with client(intake) as http:
            await http.post("/v1/incidents", json=incident_payload(), headers=bearer(intake.police))
        with pytest.raises(Exception, match="NO_ROUTE"):
            await intake.relay.publish_batch()
        async with intake.sessionmaker() as session:
            rows = (await session.execute(select(outbox_message))).all()
        assert {r.event_type for r in rows} == {"incident.reported", "incident.recorded"}
        assert all(r.published_at is None and r.attempts == 1 and "NO_ROUTE" in r.last_error for r in rows)


class TestInbox:
    async def test_a_redelivered_event_is_processed_once(self, intake, vhost):
        await intake.broker.connect()
        await topology.declare(intake.broker)
        await intake.broker.start()
        async with client(intake) as http:
            incident_id = (await http.post("/v1/incidents", json=incident_payload(), headers=bearer(intake.police))).json()["incident_id"]
        envelope = IncidentRouted(
            incident_id=incident_id, commune_code="25349", category="violence", urgency="high", rules_version="t", assignments=()
        ).envelope(correlation_id=incident_id, producer="routing")
        for _ in range(3):  # the same event three times, as after a publisher retry
            await intake.broker.publish(
                envelope.model_dump_json().encode(), exchange=topology.EVENTS, routing_key="incident.routed",
                persist=True, message_id=str(envelope.event_id), user_id="guest",
            )

        async def routed_entries():
            async with intake.sessionmaker() as session:
                rows = (await session.execute(select(TimelineEntry).where(TimelineEntry.kind == "routed"))).scalars().all()
            return rows

        await eventually(routed_entries)
        await asyncio.sleep(0.5)  # give the duplicates their chance to be (wrongly) processed
        assert len(await routed_entries()) == 1
        assert intake.consumer_metrics.duplicates.labels("intake.timeline")._value.get() == 2


class TestDeadLetters:
    async def test_a_malformed_message_is_dead_lettered_at_once(self, intake, vhost):
        await intake.broker.connect()
        await topology.declare(intake.broker)
        await intake.broker.start()
        await intake.broker.publish(b"{not an envelope", exchange=topology.EVENTS, routing_key="incident.closed", persist=True)
        [dead] = await read_queue(vhost, "intake.timeline.dlq", 1)
        assert dead.body == b"{not an envelope"
        assert dead.headers["x-death"][0]["reason"] == "rejected"

    async def test_a_message_that_always_fails_is_dead_lettered_after_the_delivery_limit(self, intake, vhost):
        spec = topology.ConsumerQueue("test", f"poison-{uuid.uuid4().hex[:6]}", ("incident.closed",), "always fails", delivery_limit=2)
        attempts = []

        async def failing(session, event, envelope):
            attempts.append(envelope.event_id)
            raise RuntimeError("handler bug")

        intake.subscriber(spec, failing)
        await intake.broker.connect()
        await topology.declare(intake.broker, (spec,))
        await intake.broker.start()
        # A valid envelope whose work fails: redelivered until the limit, then dead-lettered.
        closed = IncidentClosed(
            incident_id="x", commune_code="25349", risk_level="low", outcome="ok", by="t", at=datetime.now(UTC)
        ).envelope(correlation_id="x", producer="routing")
        await intake.broker.publish(closed.model_dump_json().encode(), exchange=topology.EVENTS, routing_key="incident.closed", persist=True, user_id="guest")
        [dead] = await read_queue(vhost, spec.dead_letter_name, 1, timeout=20)
        assert len(attempts) == 3  # first delivery + 2 redeliveries (x-delivery-limit 2)
        assert dead.headers["x-death"][0]["reason"] == "delivery_limit"


class TestGroupCommit:
    async def test_deliveries_share_transactions_and_a_poison_event_fails_alone(self, intake, vhost):
        spec = topology.ConsumerQueue("test", f"group-{uuid.uuid4().hex[:6]}", ("incident.closed",), "group commit", delivery_limit=2)
        # Events per transaction; each session is held so that its id is never reused by a later one.
        events_in: dict[int, int] = {}
        held: list = []
        poison = "incident-poison"

        async def work(session, event, envelope):
            if id(session) not in events_in:
                held.append(session)
            events_in[id(session)] = events_in.get(id(session), 0) + 1
            if event.incident_id == poison:
                raise RuntimeError("handler bug")
            return []

        intake.subscriber(spec, work)
        await intake.broker.connect()
        await topology.declare(intake.broker, (spec,))
        ids = [f"incident-{i}" for i in range(300)]
        ids.insert(150, poison)
        now = datetime.now(UTC)
        connection = await aio_pika.connect(vhost)
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.EVENTS.name)
        # Queued before the consumer starts, so deliveries arrive together.
        await asyncio.gather(*(
            exchange.publish(
                aio_pika.Message(
                    IncidentClosed(incident_id=i, commune_code="25349", risk_level="low", outcome="ok", by="t", at=now)
                    .envelope(correlation_id=i, producer="routing").model_dump_json().encode(),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id="guest",
                ),
                routing_key="incident.closed",
            )
            for i in ids
        ))
        await connection.close()
        await intake.broker.start()
        [dead] = await read_queue(vhost, spec.dead_letter_name, 1, timeout=30)
        assert dead.headers["x-death"][0]["reason"] == "delivery_limit"
        assert poison in dead.body.decode()

        async def processed():
            async with intake.sessionmaker() as session:
                rows = await session.execute(select(inbox_message.c.event_id).where(inbox_message.c.consumer == spec.name))
                return len(rows.all())

        assert await eventually(lambda: _equals(processed, 300), timeout=20)
        await asyncio.sleep(0.3)
        assert await processed() == 300  # each good event committed once, the poison never
        # Deliveries were folded together: batches of many events, and far fewer transactions than events even
        # though the poison's batches are retried event by event (up to a prefetch's worth, at each of its deliveries).
        assert max(events_in.values()) >= 10, sorted(events_in.values())
        assert len(events_in) < 301 * 0.6, len(events_in)
        connection = await aio_pika.connect(vhost)
        queue = await (await connection.channel()).declare_queue(spec.name, passive=True)
        assert queue.declaration_result.message_count == 0  # every delivery acked
        await connection.close()


async def _equals(read, expected):
    return await read() == expected


class TestDeadLetterTools:
    async def test_dead_letters_are_listed_with_their_reason_and_replayed_once_fixed(self, intake, vhost, monkeypatch):
        spec = topology.ConsumerQueue("test", f"fixable-{uuid.uuid4().hex[:6]}", ("incident.closed",), "fails until fixed", delivery_limit=1)
        fixed = asyncio.Event()
        handled = []

        async def until_fixed(session, event, envelope):
            if not fixed.is_set():
                raise RuntimeError("cause not fixed yet")
            handled.append(envelope.event_id)
            return []

        intake.subscriber(spec, until_fixed)
        await intake.broker.connect()
        await topology.declare(intake.broker, (spec,))
        await intake.broker.start()
        closed = IncidentClosed(
            incident_id="inc-9", commune_code="25349", risk_level="low", outcome="ok", by="t", at=datetime.now(UTC)
        ).envelope(correlation_id="inc-9", producer="routing")
        await intake.broker.publish(
            closed.model_dump_json().encode(), exchange=topology.EVENTS, routing_key="incident.closed", persist=True, user_id="guest",
            message_id=str(closed.event_id), correlation_id="inc-9", message_type="incident.closed",
        )

        monkeypatch.setattr(topology, "CONSUMER_QUEUES", (*topology.CONSUMER_QUEUES, spec))

        async def listed():
            return await deadletters.list_dead_letters(vhost, spec.name)

        [letter] = await eventually(listed, timeout=15)
        assert (letter.reason, letter.event_type, letter.correlation_id) == ("delivery_limit", "incident.closed", "inc-9")
        assert len(await deadletters.list_dead_letters(vhost, spec.name)) == 1  # listing does not consume

        fixed.set()
        assert await deadletters.replay(vhost, spec.name) == {spec.name: 1}
        await eventually(lambda: asyncio.sleep(0, result=handled == [closed.event_id]))
        assert await deadletters.list_dead_letters(vhost, spec.name) == []


class TestNotifications:
    async def test_report_generated_with_nobody_bound_is_published_not_stuck(self, intake):
        from shared.events import ReportGenerated

        await intake.broker.connect()
        await intake.broker.declare_exchange(topology.EVENTS)  # no queue bound to report.generated
        envelope = ReportGenerated(org_unit="25349", period="2025-6M", revision=1, as_of=datetime.now(UTC)).envelope(
            correlation_id="25349:2025-6M", producer="reporting"
        )
        async with intake.unit_of_work() as uow:
            await uow.stage(envelope)
        assert await intake.relay.publish_batch() == 1
        async with intake.sessionmaker() as session:
            row = (await session.execute(select(outbox_message))).one()
        assert row.published_at is not None
