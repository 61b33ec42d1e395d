"""An agency's own broker user on the live RabbitMQ node, made by `baove agency-access` as an operator runs it.

The session's throw-away vhost gets the topology (as the broker's definitions declare it) and two agency queues;
the command makes a user (named for this run: users are the node's, not the vhost's) for one of them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
from aio_pika.exceptions import ProbableAuthenticationError
from faststream.rabbit import RabbitBroker

from services.routing.channels import AmqpChannel
from services.routing.models import Delivery, Subscription
from shared import topology
from shared.topology import AGENCIES, EVENTS, REPORTING_EVENTS, ROUTING_INCIDENTS, ROUTING_NOTIFY
from tests.harness import ROOT, rabbitmqctl
from tests.integration.test_broker_privileges import publish, refused

POLICE, HEALTH = "25349.police", "25349.health"


def agency_access(vhost_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BAOVE_AMQP_URL": vhost_url, "BAOVE_ENV": "dev"}
    return subprocess.run([sys.executable, "-m", "services.cli", "agency-access", *args], env=env, cwd=ROOT, capture_output=True, text=True)


def url_as(vhost_url: str, user: str, password: str) -> str:
    parts = urlsplit(vhost_url)
    return urlunsplit((parts.scheme, f"{user}:{password}@{parts.hostname}:{parts.port or 5672}", parts.path, "", ""))


class Agency:
    def __init__(self, vhost_url: str, user: str, password: str) -> None:
        self.user, self.password, self.url = user, password, url_as(vhost_url, user, password)


@pytest.fixture(scope="module")
def police(amqp_url, tmp_path_factory):
    """The police's user, made by the command with a password from a file (made once: rabbitmqctl calls take a second)."""
    user = f"agency-{secrets.token_hex(3)}"
    password_file = tmp_path_factory.mktemp("agency") / "password"
    password = secrets.token_urlsafe(24)
    password_file.write_text(password + "\n")
    done = agency_access(amqp_url, "--unit", POLICE, "--user", user, "--password-file", str(password_file))
    assert done.returncode == 0, done.stderr
    yield Agency(amqp_url, user, password), done
    rabbitmqctl("delete_user", user, check=False)


@pytest.fixture
async def topology_declared(amqp_url):
    broker = RabbitBroker(amqp_url)
    try:
        await topology.declare(broker)
        await topology.declare_agency_queue(broker, HEALTH)
    finally:
        await broker.stop()


def notification(unit_id: str, n: int) -> tuple[Subscription, Delivery]:
    subscription = Subscription(id=f"s-{n}", unit_id=unit_id, channel="amqp", target=f"agency.{unit_id}")
    payload = {"type": "assignment.created", "notification_id": f"d-{n}", "unit_id": unit_id, "urgency": "emergency"}
    delivery = Delivery(id=f"d-{n}-{secrets.token_hex(4)}", event_type="assignment.created", payload=payload)
    return subscription, delivery


async def send(amqp_url: str, unit_id: str, n: int) -> Delivery:
    """As routing's notifier sends it (the development user, which may declare and publish)."""
    broker = RabbitBroker(amqp_url)
    await broker.connect()
    try:
        subscription, delivery = notification(unit_id, n)
        outcome = await AmqpChannel(broker).send(subscription, delivery)
        assert outcome.delivered, outcome.error
        return delivery
    finally:
        await broker.stop()


async def take(url: str, queue: str) -> aio_pika.abc.AbstractIncomingMessage | None:
    connection = await aio_pika.connect(url)
    try:
        declared = await (await connection.channel()).declare_queue(queue, passive=True)
        message = await declared.get(fail=False, timeout=5)
        if message is not None:
            await message.ack()
        return message
    finally:
        await connection.close()


async def consume(channel, queue: str) -> None:
    await (await channel.declare_queue(queue, passive=True)).get(fail=False)


class TestTheAgencysUser:
    def test_the_command_says_what_it_did_and_never_the_password(self, police):
        agency, done = police
        assert f"agency.{POLICE}" in done.stderr and agency.user in done.stderr
        assert r"^agency\.25349\.police$" in done.stderr
        assert agency.password not in done.stdout + done.stderr
        assert done.stdout == ""  # its password came from the file: nothing to show

    async def test_it_consumes_its_own_queues_notification(self, police, topology_declared, amqp_url):
        agency, _ = police
        sent = await send(amqp_url, POLICE, 1)
        message = await take(agency.url, f"agency.{POLICE}")
        assert message is not None and message.message_id == sent.id
        assert json.loads(message.body)["unit_id"] == POLICE
        assert message.routing_key == f"{POLICE}.assignment.created"

    async def test_it_cannot_read_another_agencys_queue_nor_the_services_queues(self, police, topology_declared, amqp_url):
        agency, _ = police
        await send(amqp_url, HEALTH, 2)
        for queue in (
            f"agency.{HEALTH}",
            ROUTING_INCIDENTS.name,
            REPORTING_EVENTS.name,
            ROUTING_NOTIFY.name,
            ROUTING_INCIDENTS.dead_letter_name,
        ):
            assert await refused(agency.url, lambda channel, queue=queue: consume(channel, queue)), queue
        assert (await take(amqp_url, f"agency.{HEALTH}")) is not None  # the health unit's notification is still there

    async def test_it_cannot_publish_declare_bind_or_delete(self, police, topology_declared):
        agency, user = police[0], police[0].user
        assert await refused(agency.url, lambda channel: publish(channel, "incident.reported", user_id=user))

        async def to_agencies(channel):
            exchange = await channel.get_exchange(AGENCIES.name, ensure=False)
            await exchange.publish(aio_pika.Message(b"{}", user_id=user), routing_key=f"{HEALTH}.assignment.created")

        assert await refused(agency.url, to_agencies)
        assert await refused(agency.url, lambda channel: channel.declare_queue(f"agency.{POLICE}.mine", durable=True))
        assert await refused(agency.url, lambda channel: channel.declare_queue(exclusive=True))  # a server-named queue
        assert await refused(
            agency.url,
            lambda channel: _bind(channel, f"agency.{POLICE}", EVENTS.name, "#"),  # the events carry the case
        )
        assert await refused(agency.url, lambda channel: _bind(channel, f"agency.{POLICE}", AGENCIES.name, f"{HEALTH}.#"))
        assert await refused(agency.url, lambda channel: channel.queue_delete(f"agency.{POLICE}"))

    def test_its_user_has_no_tags_and_no_topic_permissions(self, police):
        agency, _ = police
        users = {u["user"]: u for u in json.loads(rabbitmqctl("list_users", "--formatter", "json").stdout)}
        assert users[agency.user]["tags"] in ([], "[]", "")
        topic = rabbitmqctl("list_user_topic_permissions", agency.user, "--formatter", "json").stdout
        assert json.loads(topic or "[]") == []


async def _bind(channel, queue: str, exchange: str, key: str) -> None:
    await (await channel.declare_queue(queue, passive=True)).bind(exchange, routing_key=key)


class TestRenewAndRevoke:
    async def test_a_second_run_changes_the_password_and_revoke_deletes_the_user(self, amqp_url, topology_declared):
        user = f"agency-{secrets.token_hex(3)}"
        try:
            first = agency_access(amqp_url, "--unit", HEALTH, "--user", user)
            assert first.returncode == 0, first.stderr
            old = first.stdout.strip()
            assert len(old) >= 24 and old not in first.stderr
            second = agency_access(amqp_url, "--unit", HEALTH, "--user", user)
            assert second.returncode == 0, second.stderr
            new = second.stdout.strip()
            assert new != old and "password was changed" in second.stderr
            with pytest.raises(ProbableAuthenticationError):
                await aio_pika.connect(url_as(amqp_url, user, old))
            assert not await refused(url_as(amqp_url, user, new), lambda channel: consume(channel, f"agency.{HEALTH}"))
            revoked = agency_access(amqp_url, "--unit", HEALTH, "--user", user, "--revoke")
            assert revoked.returncode == 0 and "deleted" in revoked.stderr
            with pytest.raises(ProbableAuthenticationError):
                await aio_pika.connect(url_as(amqp_url, user, new))
            again = agency_access(amqp_url, "--unit", HEALTH, "--user", user, "--revoke")
            assert again.returncode == 0 and "did not exist" in again.stderr
        finally:
            rabbitmqctl("delete_user", user, check=False)

    def test_a_unit_id_that_is_not_one_is_refused_before_anything_is_made(self, amqp_url):
        done = agency_access(amqp_url, "--unit", "25349.#", "--user", "agency-never")
        assert done.returncode != 0 and "unit id" in done.stderr


EXAMPLE = ROOT / "deploy" / "examples" / "agency_consumer.py"
SCHEMA = ROOT / "docs" / "contracts" / "notifications.schema.json"


class TestTheExampleConsumer:
    async def test_it_reads_its_queue_as_the_agency_validates_each_body_and_handles_a_duplicate_once(
        self, police, topology_declared, amqp_url, tmp_path
    ):
        from services.routing.notify import Notification

        assert "docs/contracts/notifications.schema.json" in EXAMPLE.read_text() and SCHEMA.exists()
        agency, _ = police
        while await take(amqp_url, f"agency.{POLICE}") is not None:  # what earlier tests left
            pass
        at = datetime(2026, 11, 30, 3, tzinfo=UTC)
        subscription, delivery = notification(POLICE, 3)
        delivery.payload = Notification(
            type="assignment.created",
            notification_id=delivery.id,
            incident_id="inc-3",
            assignment_id="as-3",
            unit_id=POLICE,
            commune_code="25349",
            category="violence",
            urgency="emergency",
            due_at=at,
            occurred_at=at,
            console_url="https://baove.example/cases/inc-3",
        ).model_dump(mode="json")
        broker = RabbitBroker(amqp_url)
        await broker.connect()
        try:
            for _ in range(2):  # the notifier sending again after a crash: the same message id
                assert (await AmqpChannel(broker).send(subscription, delivery)).delivered
        finally:
            await broker.stop()
        env = {**os.environ, "AGENCY_AMQP_URL": agency.url, "AGENCY_UNIT": POLICE}
        done = subprocess.run(
            [sys.executable, str(EXAMPLE), "--schema", str(SCHEMA), "--seen", str(tmp_path / "seen"), "--count", "2"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [f"assignment.created emergency {POLICE} 2026-11-30T03:00:00Z https://baove.example/cases/inc-3"]
        assert (tmp_path / "seen").read_text().split() == [delivery.id]
        assert await take(amqp_url, f"agency.{POLICE}") is None  # both acknowledged


class TestRefusals:
    def test_a_broker_url_that_may_not_declare_the_queue_makes_no_user(self, police, amqp_url):
        agency, _ = police
        done = agency_access(agency.url, "--unit", HEALTH, "--user", "agency-never-made")
        assert done.returncode == 1 and "refused declaring agency.25349.health" in done.stderr
        assert agency.password not in done.stderr
        assert "agency-never-made" not in rabbitmqctl("list_users", "--quiet").stdout
