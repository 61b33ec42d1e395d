"""Broker least privilege on the live RabbitMQ node: a user per service with the permissions of shared/topology.py.

A throw-away vhost gets the topology as the deployed broker's definitions declare it, and three users made
for this run with `permissions(service)` (the regexes deploy/k8s/rabbitmq/definitions.json is rendered from).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed
from faststream.rabbit import RabbitBroker
from sqlalchemy import func, select

from services.reporting.models import AssignmentFact
from services.routing.channels import AmqpChannel
from shared import topology
from shared.events import AssignmentAcknowledged
from shared.topology import DEAD_LETTERS, EVENTS, INTAKE_TIMELINE, REPORTING_EVENTS, ROUTING_INCIDENTS, permissions
from tests.harness import ROOT, rabbitmqctl
from tests.integration.test_routing_cases import finish, post
from tests.routing_support import reported, route, routing_runtime
from tests.support import bearer, client, eventually, incident_payload, issue_token, make_runtime, migrate

AT = datetime(2025, 3, 2, 1, tzinfo=UTC)


class Users:
    """This run's broker users in `vhost`, one per service, with the topology's permissions (or `topic_write` overrides)."""

    def __init__(self, vhost_url: str) -> None:
        self.vhost_url = vhost_url
        self.vhost = urlsplit(vhost_url).path[1:]
        tag = secrets.token_hex(3)
        self.names = {service: f"{service}-{tag}" for service in topology.SERVICES}
        self.passwords = {service: secrets.token_hex(12) for service in topology.SERVICES}

    def create(self) -> None:
        for service, user in self.names.items():
            rabbitmqctl("add_user", user, self.passwords[service])
            self.permit(service)

    def permit(self, service: str, topic_write: str | None = None) -> None:
        p = permissions(service)
        user = self.names[service]
        rabbitmqctl("set_permissions", "-p", self.vhost, user, p.configure, p.write, p.read)
        rabbitmqctl("set_topic_permissions", "-p", self.vhost, user, EVENTS.name, topic_write or p.topic_write, p.topic_read)

    def delete(self) -> None:
        for user in self.names.values():
            rabbitmqctl("delete_user", user, check=False)

    def url(self, service: str) -> str:
        parts = urlsplit(self.vhost_url)
        netloc = f"{self.names[service]}:{self.passwords[service]}@{parts.hostname}:{parts.port or 5672}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@pytest.fixture(scope="module")
def broker_users(amqp_url):
    """Made once for the module: each rabbitmqctl call takes seconds."""
    made = Users(amqp_url)
    made.create()
    yield made
    made.delete()


@pytest.fixture
async def users(broker_users, amqp_url):
    """The topology declared afresh by the vhost's administrator (guest), as the broker's definitions do at boot."""
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    for spec in topology.CONSUMER_QUEUES:
        for name in (spec.name, spec.dead_letter_name):
            await channel.queue_delete(name)
    await connection.close()
    broker = RabbitBroker(amqp_url)
    await topology.declare(broker)
    await broker.stop()
    return broker_users


async def refused(url: str, action, error=ChannelAccessRefused) -> bool:
    """Whether the broker refuses `action(channel)` with `error` (it closes the channel)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await action(channel)
        await asyncio.sleep(0.3)  # a refused publish closes the channel asynchronously
        if channel.is_closed:
            raise error  # pragma: no cover - the close reason is what the action awaited
    except error:
        return True
    finally:
        await connection.close()
    return False


async def publish(channel, routing_key: str, body: bytes = b"{}", **properties) -> None:
    exchange = await channel.get_exchange(EVENTS.name, ensure=False)
    await exchange.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **properties), routing_key=routing_key)


async def bind(channel, queue: str, key: str) -> None:
    await (await channel.declare_queue(queue, passive=True)).bind(EVENTS.name, routing_key=key)


async def unbind(channel, queue: str, key: str) -> None:
    await (await channel.declare_queue(queue, passive=True)).unbind(EVENTS.name, routing_key=key)


async def messages_in(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url)
    try:
        declared = await (await connection.channel()).declare_queue(queue, passive=True)
        return declared.declaration_result.message_count
    finally:
        await connection.close()


class TestWhatReportingsUserCannotDo:
    async def test_it_cannot_delete_or_unbind_routings_queue(self, users):
        reporting = users.url("reporting")
        assert await refused(reporting, lambda channel: channel.queue_delete(ROUTING_INCIDENTS.name))
        assert await refused(reporting, lambda channel: unbind(channel, ROUTING_INCIDENTS.name, "incident.reported"))
        assert await refused(reporting, lambda channel: channel.exchange_delete(EVENTS.name))
        # Still there, still bound: intake's event reaches it.
        connection = await aio_pika.connect(users.url("intake"))
        await publish(await connection.channel(publisher_confirms=True), "incident.reported", user_id=users.names["intake"])
        await connection.close()
        assert await eventually(lambda: _at_least(users.vhost_url, ROUTING_INCIDENTS.name, 1), timeout=5)

    async def test_it_cannot_publish_an_event_it_does_not_produce(self, users):
        reporting = users.url("reporting")
        for key in ("incident.reported", "assignment.acknowledged", "incident.closed"):
            assert await refused(reporting, lambda channel, key=key: publish(channel, key, user_id=users.names["reporting"])), key
        assert await messages_in(users.vhost_url, ROUTING_INCIDENTS.name) == 0
        assert await messages_in(users.vhost_url, REPORTING_EVENTS.name) == 0
        # Its own routing key is allowed.
        assert not await refused(reporting, lambda channel: publish(channel, "report.generated", user_id=users.names["reporting"]))

    async def test_it_cannot_bind_its_queue_to_the_events_that_carry_a_case(self, users):
        reporting = users.url("reporting")
        for key in ("incident.reported", "incident.*", "#"):
            assert await refused(reporting, lambda channel, key=key: bind(channel, REPORTING_EVENTS.name, key)), key

    async def test_it_cannot_read_another_services_queue_or_publish_into_it_directly(self, users):
        reporting = users.url("reporting")

        async def consume(channel):
            queue = await channel.declare_queue(ROUTING_INCIDENTS.name, passive=True)
            await queue.get(fail=False)

        assert await refused(reporting, consume)
        assert await refused(
            reporting,
            lambda channel: channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=ROUTING_INCIDENTS.name),
        )

    async def test_it_cannot_claim_another_users_id(self, users):
        reporting = users.url("reporting")
        # A routing key it may publish, with routing's name as user_id: the broker checks user_id against the login.
        assert await refused(
            reporting, lambda channel: publish(channel, "report.generated", user_id=users.names["routing"]), ChannelPreconditionFailed
        )


async def _at_least(url: str, queue: str, n: int) -> bool:
    return await messages_in(url, queue) >= n


class TestReportingsQueue:
    async def test_an_upgraded_queue_loses_its_old_bindings_and_gets_no_case_and_no_outcome(self, users, amqp_url):
        # reporting.events as the previous versions bound it: incident.* (which took incident.reported), then
        # incident.closed (which carries the closing's free-text outcome).
        connection = await aio_pika.connect(amqp_url)
        for key in ("incident.*", "incident.closed"):
            await bind(await connection.channel(), REPORTING_EVENTS.name, key)
        await connection.close()
        broker = RabbitBroker(amqp_url)  # the development user, which may unbind it
        try:
            await topology.declare(broker, own=(REPORTING_EVENTS,))
        finally:
            await broker.stop()
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        for key in ("incident.reported", "incident.recorded", "incident.closed", "incident.closure_recorded"):
            await publish(channel, key, user_id="guest")
        await connection.close()
        assert await eventually(lambda: _at_least(amqp_url, ROUTING_INCIDENTS.name, 1), timeout=5)
        assert await messages_in(amqp_url, ROUTING_INCIDENTS.name) == 1
        assert await eventually(lambda: _at_least(amqp_url, INTAKE_TIMELINE.name, 1), timeout=5)
        assert await messages_in(amqp_url, REPORTING_EVENTS.name) == 2  # incident.recorded and incident.closure_recorded only

    async def test_reportings_user_cannot_bind_its_queue_to_the_closing_with_its_outcome(self, users):
        assert await refused(users.url("reporting"), lambda channel: bind(channel, REPORTING_EVENTS.name, "incident.closed"))


class TestEachServiceStartsWithItsOwnUser:
    @pytest.mark.parametrize("service", topology.SERVICES)
    async def test_it_declares_what_it_must_at_start_and_nothing_else(self, users, service, caplog):
        broker = RabbitBroker(users.url(service))
        try:
            await topology.declare(broker, own=topology.queues_of(service))
        finally:
            await broker.stop()


    async def test_intakes_relay_publishes_both_its_events_as_itself(self, users, tmp_path):
        runtime = make_runtime("intake", tmp_path, amqp_url=users.url("intake"))
        runtime.common.broker_users = dict(users.names)
        await migrate(runtime)
        police = await issue_token(runtime, "unit", "25349.police")
        await runtime.broker.connect()
        await topology.declare(runtime.broker, own=runtime.queues)
        runtime.relay.start()
        try:
            async with client(runtime) as http:
                answer = await http.post("/v1/incidents", json=incident_payload(), headers=bearer(police))
            assert answer.status_code == 202
            for queue, event_type in ((ROUTING_INCIDENTS.name, "incident.reported"), (REPORTING_EVENTS.name, "incident.recorded")):
                assert await eventually(lambda queue=queue: _at_least(users.vhost_url, queue, 1), timeout=10), queue
                message = await _take(users.vhost_url, queue)
                assert (message.type, message.user_id) == (event_type, users.names["intake"])
        finally:
            await runtime.relay.stop()
            await runtime.broker.stop()
            await runtime.engine.dispose()
            await runtime.auth_engine.dispose()


    async def test_routings_relay_sends_a_closings_outcome_to_intake_and_only_its_facts_to_reporting(self, users, tmp_path):
        outcome = "Cháu Nguyễn Thị Kết Quả đã về ở với bà ngoại tại ấp 2"  # free text that names the child
        runtime = await routing_runtime(tmp_path, amqp_url=users.url("routing"))
        runtime.common.broker_users = dict(users.names)
        runtime.tokens = {unit: await issue_token(runtime, "unit", unit) for unit in ("25349.cp_officer", "25349.health")}
        event = reported(category="injury", urgency="medium", hamlet=None)
        await route(runtime, event)
        await finish(runtime, "25349.health", event.incident_id)
        await finish(runtime, "25349.cp_officer", event.incident_id)
        answer = await post(runtime, f"/v1/incidents/{event.incident_id}/close", "25349.cp_officer", {"risk_level": "medium", "outcome": outcome})
        assert answer.status_code == 200, answer.text
        await runtime.broker.connect()
        try:
            while await runtime.relay.publish_batch():  # every event routing staged, in order, as routing's user
                pass
        finally:
            await runtime.broker.stop()
            await runtime.engine.dispose()
            await runtime.auth_engine.dispose()
        timeline = await _drain(users.vhost_url, INTAKE_TIMELINE.name)
        [closed] = [m for m in timeline if m.type == "incident.closed"]
        assert json.loads(closed.body)["payload"]["outcome"] == outcome and closed.user_id == users.names["routing"]
        facts = await _drain(users.vhost_url, REPORTING_EVENTS.name)
        assert "incident.closed" not in {m.type for m in facts}
        [closure] = [m for m in facts if m.type == "incident.closure_recorded"]
        assert json.loads(closure.body)["payload"] == {
            "incident_id": event.incident_id, "commune_code": "25349", "risk_level": "medium", "at": json.loads(closed.body)["payload"]["at"],
        }
        assert closure.user_id == users.names["routing"] and closure.correlation_id == event.incident_id
        for message in facts:  # nor any word of it, in any event reporting's queue holds, nor in its dead letters
            assert "Kết Quả" not in message.body.decode() and "outcome" not in message.body.decode()
        assert await messages_in(users.vhost_url, REPORTING_EVENTS.dead_letter_name) == 0


async def _drain(url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message in the queue now (acknowledged)."""
    connection = await aio_pika.connect(url)
    got = []
    try:
        declared = await (await connection.channel()).declare_queue(queue, passive=True)
        while (message := await declared.get(fail=False)) is not None:
            await message.ack()
            got.append(message)
    finally:
        await connection.close()
    return got


async def _take(url: str, queue: str) -> aio_pika.abc.AbstractIncomingMessage:
    connection = await aio_pika.connect(url)
    try:
        message = await (await (await connection.channel()).declare_queue(queue, passive=True)).get()
        await message.ack()
        return message
    finally:
        await connection.close()


class TestRoutingsNotifierAsItsOwnUser:
    async def test_it_declares_an_agency_queue_and_fills_it_but_cannot_read_it(self, users, amqp_url):
        from tests.integration.test_agency_access import notification, take

        unit = f"25349.police-{secrets.token_hex(2)}"
        broker = RabbitBroker(users.url("routing"))
        await broker.connect()
        try:
            subscription, delivery = notification(unit, 1)
            outcome = await AmqpChannel(broker).send(subscription, delivery)
            assert outcome.delivered, outcome.error
        finally:
            await broker.stop()
        assert await refused(users.url("routing"), lambda ch: take_on(ch, f"agency.{unit}")), "routing reads no agency's queue"
        assert await refused(users.url("reporting"), lambda ch: ch.declare_exchange(topology.AGENCIES.name, type="topic", durable=True))
        message = await take(amqp_url, f"agency.{unit}")
        assert message is not None and json.loads(message.body)["notification_id"] == "d-1"
        connection = await aio_pika.connect(amqp_url)
        await (await connection.channel()).queue_delete(f"agency.{unit}")
        await connection.close()


async def take_on(channel, queue: str) -> None:
    await (await channel.declare_queue(queue, passive=True)).get(fail=False)


class TestForgedEvents:
    async def test_an_event_not_sent_by_its_producers_user_is_dead_lettered_and_not_believed(self, users, tmp_path, request):
        # The mistake this guards against: reporting's topic permission too wide (".*").
        users.permit("reporting", topic_write=".*")
        request.addfinalizer(lambda: users.permit("reporting"))
        runtime = make_runtime("reporting", tmp_path, amqp_url=users.url("reporting"), prefetch_count=1)
        runtime.common.broker_users = dict(users.names)
        runtime.settings.check_broker_user("reporting")
        await migrate(runtime)
        await runtime.broker.connect()
        await topology.declare(runtime.broker, own=runtime.queues)
        await runtime.broker.start()
        try:
            sent = {}
            for sender, user_id, assignment in (
                ("reporting", users.names["reporting"], "forged-by-reporting"),
                ("routing", None, "no-user-id"),
                ("routing", users.names["routing"], "believed"),
            ):
                envelope = AssignmentAcknowledged(
                    incident_id="inc-1", assignment_id=assignment, unit_id="25349.police", unit_type="police", role="lead",
                    commune_code="25349", by="25349.police", at=AT, due_at=AT, assigned_at=AT,
                ).envelope(correlation_id="inc-1", producer="routing")
                sent[assignment] = str(envelope.event_id)
                connection = await aio_pika.connect(users.url(sender))
                properties = {"user_id": user_id} if user_id else {}
                await publish(
                    await connection.channel(publisher_confirms=True), "assignment.acknowledged",
                    envelope.model_dump_json().encode(), message_id=str(envelope.event_id), **properties,
                )
                await connection.close()

            async def believed() -> set[str]:
                async with runtime.sessionmaker() as session:
                    return set((await session.execute(select(AssignmentFact.assignment_id))).scalars())

            assert await eventually(lambda: _equals(believed, {"believed"}), timeout=10)
            dead = await _dead_letters(users)
            assert sorted(dead) == sorted([sent["forged-by-reporting"], sent["no-user-id"]])
            forged = runtime.consumer_metrics.forged.labels(REPORTING_EVENTS.name, "assignment.acknowledged")._value.get()
            assert forged == 2
            async with runtime.sessionmaker() as session:
                assert (await session.execute(select(func.count()).select_from(AssignmentFact))).scalar_one() == 1
        finally:
            await runtime.broker.stop()
            await runtime.engine.dispose()
            await runtime.auth_engine.dispose()


async def _equals(read, expected) -> bool:
    return await read() == expected


async def _dead_letters(users) -> list[str]:
    """The message ids in reporting.events.dlq, read as the reporting user."""
    connection = await aio_pika.connect(users.url("reporting"))
    got: list[str] = []
    try:
        queue = await (await connection.channel()).declare_queue(REPORTING_EVENTS.dead_letter_name, passive=True)

        async def two() -> bool:
            while (message := await queue.get(fail=False)) is not None:
                got.append(message.message_id)
                await message.ack()
            return len(got) >= 2

        await eventually(two, timeout=10, what="two dead letters")
    finally:
        await connection.close()
    return got


class TestDeadLetterQueueLimits:
    async def test_the_operators_policy_gives_every_dlq_a_ttl_and_a_length_limit(self, users, request):
        # The command `baove dlq policy` prints, run as the operator would.
        env = {**os.environ, "BAOVE_AMQP_URL": users.vhost_url, "BAOVE_DLQ_TTL_DAYS": "0.00003", "BAOVE_DLQ_MAX_LENGTH": "2"}
        printed = subprocess.run(
            [sys.executable, "-m", "services.cli", "dlq", "policy"], env=env, cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        command = shlex.split(printed)
        assert command[:2] == ["rabbitmqctl", "set_policy"]
        rabbitmqctl(*command[1:])
        # The vhost is the session's: other tests' dead letters must not expire in seconds.
        request.addfinalizer(lambda: rabbitmqctl("clear_policy", "-p", users.vhost, topology.DEAD_LETTER_POLICY))
        listed = rabbitmqctl("list_queues", "-p", users.vhost, "name", "policy", "--formatter", "json").stdout
        applied = {q["name"]: q["policy"] for q in json.loads(listed)}
        policies = {p["name"]: p for p in json.loads(rabbitmqctl("list_policies", "-p", users.vhost, "--formatter", "json").stdout)}
        for spec in topology.CONSUMER_QUEUES:
            definition = policies[applied[spec.dead_letter_name]]["definition"]
            definition = json.loads(definition) if isinstance(definition, str) else definition
            assert definition["message-ttl"] == 2592 and definition["max-length"] == 2  # 0.00003 days = 2.592 s
        # The broker applies them: three letters leave two, and those go after the TTL.
        connection = await aio_pika.connect(users.vhost_url)
        channel = await connection.channel(publisher_confirms=True)
        dead_letters = await channel.get_exchange(DEAD_LETTERS.name)
        for n in range(3):
            await dead_letters.publish(aio_pika.Message(f"letter {n}".encode()), routing_key=REPORTING_EVENTS.name)
        await connection.close()
        assert await messages_in(users.vhost_url, REPORTING_EVENTS.dead_letter_name) == 2
        assert await eventually(lambda: _none_in(users.vhost_url, REPORTING_EVENTS.dead_letter_name), timeout=15)


async def _none_in(url: str, queue: str) -> bool:
    return await messages_in(url, queue) == 0
