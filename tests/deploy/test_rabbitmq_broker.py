"""deploy/k8s/rabbitmq on a real RabbitMQ 3.10 node: the users, their permissions, the policies, the metrics.

The node is started through start.sh with the deploy configuration (tests/deploy/broker_node.py),
and each service connects as its own user and does what the service does at start.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import urllib.request

import aio_pika
import pytest
from aio_pika.exceptions import ProbableAuthenticationError
from aiormq.exceptions import ChannelAccessRefused
from faststream.rabbit import RabbitBroker

from shared.topology import CONSUMER_QUEUES, DEAD_LETTER_POLICY, EVENTS, declare, queues_of
from tests.deploy import broker_node
from tests.deploy.common import BROKER, DEPLOY, RABBITMQ_METRICS, alert_rules, dashboard_exprs, load_yaml, metric_names
from tests.support import eventually

# Within the deploy layer: needs a live RabbitMQ node (scripts/validate-deploy --no-live leaves it out).
pytestmark = pytest.mark.integration

SERVICES = ("intake", "routing", "reporting")
PASSWORDS = {user: secrets.token_hex(16) for user in ("ops", *SERVICES)}


def unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"a RabbitMQ node cannot be started here ({why}): CI needs it", pytrace=False)
    pytest.skip(f"a RabbitMQ node cannot be started here ({why})")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    why = broker_node.available()
    if why:
        unavailable(why)
    started = broker_node.BrokerNode(tmp_path_factory.mktemp("rabbitmq"), PASSWORDS)
    try:
        started.start()
        yield started
    finally:
        started.stop()


async def connect(node, user: str) -> aio_pika.abc.AbstractRobustConnection:
    return await asyncio.wait_for(aio_pika.connect(node.url(user)), 10)


async def refused(node, user: str, action) -> bool:
    connection = await connect(node, user)
    try:
        channel = await connection.channel()
        await action(channel)
    except ChannelAccessRefused:
        return True
    finally:
        await connection.close()
    return False


async def ignore(message) -> None:
    """A consumer that never receives anything here."""


def own(service: str) -> list[str]:
    return [q.name for q in CONSUMER_QUEUES if q.service == service]


def others(service: str) -> list[str]:
    return [name for q in CONSUMER_QUEUES if q.service != service for name in (q.name, q.dead_letter_name)]


class TestLogin:
    async def test_every_user_logs_in_with_the_password_from_the_environment(self, node):
        for user in PASSWORDS:
            connection = await connect(node, user)
            await connection.close()

    async def test_a_wrong_password_and_the_guest_user_are_refused(self, node):
        with pytest.raises(ProbableAuthenticationError):
            await aio_pika.connect(node.url("intake", "wrong-password-0000"))
        with pytest.raises(ProbableAuthenticationError):
            await aio_pika.connect(node.url("guest", "guest"))


class TestServiceUsers:
    @pytest.mark.parametrize("service", SERVICES)
    async def test_a_service_declares_what_it_may_as_it_does_at_start(self, node, service):
        broker = RabbitBroker(node.url(service))
        await broker.connect()
        try:
            await declare(broker, own=queues_of(service))
        finally:
            await broker.stop()

    @pytest.mark.parametrize("service", SERVICES)
    async def test_a_service_consumes_its_own_queue_and_dead_letters(self, node, service):
        for name in own(service) + [f"{n}.dlq" for n in own(service)]:
            connection = await connect(node, service)
            channel = await connection.channel()
            queue = await channel.declare_queue(name, passive=True)
            tag = await queue.consume(ignore)
            await queue.cancel(tag)
            await connection.close()

    @pytest.mark.parametrize("service", SERVICES)
    async def test_a_service_cannot_consume_another_services_queues(self, node, service):
        for name in others(service):

            async def consume(channel, name=name):
                queue = await channel.declare_queue(name, passive=True)
                await queue.consume(ignore)

            assert await refused(node, service, consume), name

    @pytest.mark.parametrize("service", SERVICES)
    async def test_a_service_cannot_create_a_queue_outside_the_topology(self, node, service):
        assert await refused(node, service, lambda channel: channel.declare_queue(f"{service}.spy", durable=True))

    async def test_an_event_published_by_intake_reaches_routing_through_the_topology(self, node):
        connection = await connect(node, "intake")
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(EVENTS.name, ensure=False)
        await exchange.publish(
            aio_pika.Message(b"{}", delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id="deploy-test-1"),
            routing_key="incident.reported", mandatory=True,
        )
        await connection.close()
        connection = await connect(node, "routing")
        channel = await connection.channel()
        queue = await channel.declare_queue("routing.incidents", passive=True)
        message = await queue.get(timeout=5)
        assert message.message_id == "deploy-test-1"
        await message.ack()
        await connection.close()


class TestDeadLettering:
    async def test_a_message_redelivered_past_the_limit_is_dead_lettered_to_its_dlq(self, node):
        for name in ("reporting.events", "reporting.events.dlq"):
            node.ctl("purge_queue", "-p", "baove", name)
        connection = await connect(node, "intake")  # incident.recorded: intake's, bound by reporting's queue alone
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EVENTS.name, ensure=False)
        await exchange.publish(aio_pika.Message(b"poison", message_id="poison-1"), routing_key="incident.recorded", mandatory=True)
        await connection.close()
        connection = await connect(node, "reporting")
        channel = await connection.channel()
        queue = await channel.declare_queue("reporting.events", passive=True)
        deliveries = 0
        while deliveries < 20:
            message = await queue.get(timeout=5, fail=False)
            if message is None:
                break
            deliveries += 1
            await message.nack(requeue=True)
        dlq = await channel.declare_queue("reporting.events.dlq", passive=True)
        # At-least-once dead-lettering moves the message asynchronously, with confirms.
        dead = await eventually(lambda: dlq.get(timeout=5, fail=False), timeout=30, interval=0.2, what="the poison in reporting.events.dlq")
        assert dead.message_id == "poison-1"
        assert deliveries == 6, "x-delivery-limit 5: the first delivery and 5 redeliveries"
        await dead.ack()
        await connection.close()

    def test_the_policies_apply_to_the_consumer_queues(self, node):
        listed = node.ctl("list_queues", "-p", "baove", "name", "policy", "--no-table-headers", "-q").stdout
        policies = dict(line.split("\t") if "\t" in line else (line, "") for line in listed.splitlines())
        for spec in CONSUMER_QUEUES:
            assert policies[spec.name] == f"dead-letter-{spec.name}"
            assert policies[spec.dead_letter_name] == DEAD_LETTER_POLICY


class TestMissingQueues:
    async def test_only_its_owner_can_recreate_a_deleted_queue(self, node):
        # Declaring a new queue with a dead-letter exchange needs read on it: the definitions
        # declare the topology at boot, so this only matters when someone deletes a queue.
        node.ctl("delete_queue", "-p", "baove", "routing.incidents")
        assert await refused(node, "intake", lambda channel: declare_routing_queue(channel))
        connection = await connect(node, "routing")
        await declare_routing_queue(await connection.channel())
        await connection.close()
        broker = RabbitBroker(node.url("routing"))
        await broker.connect()
        await declare(broker, own=queues_of("routing"))
        await broker.stop()


async def declare_routing_queue(channel):
    [spec] = [q for q in CONSUMER_QUEUES if q.name == "routing.incidents"]
    queue = spec.queue()
    return await channel.declare_queue(queue.name, durable=True, arguments=queue.arguments)


class TestMetrics:
    def test_the_rabbitmq_metrics_the_alerts_and_dashboards_read_are_exposed(self, node):
        read = {
            name for expr in [r["expr"] for r in alert_rules()] + [e for _, _, e in dashboard_exprs()]
            for name in metric_names(expr) if name.startswith("rabbitmq_")
        }
        assert read <= RABBITMQ_METRICS
        [queues_job] = [j for j in load_yaml(DEPLOY / "prometheus" / "prometheus.yml")["scrape_configs"]
                        if j["job_name"] == "rabbitmq-queues"]
        query = "&".join(f"{k}={v}" for k, values in queues_job["params"].items() for v in values)
        base = f"http://127.0.0.1:{node.prometheus_port}"
        exposed: set[str] = set()

        def all_exposed() -> bool:
            for path in ("/metrics", f"{queues_job['metrics_path']}?{query}"):
                with urllib.request.urlopen(base + path, timeout=5) as response:
                    text = response.read().decode()
                exposed.update(re.findall(r"^([a-z_]+)[{ ]", text, re.MULTILINE))
            return read <= exposed

        # Queue metrics appear after the first statistics emission (a few seconds after boot).
        eventually(all_exposed, timeout=30, interval=1, what=lambda: f"every metric read exposed (missing: {read - exposed})")


class TestCommittedDefinitions:
    def test_imported_as_committed_they_lock_every_user_out(self, node):
        # Last in this module: it removes the passwords start.sh gave the users.
        node.ctl("import_definitions", str(BROKER / "definitions.json"))
        for user, password in PASSWORDS.items():
            assert node.ctl("authenticate_user", user, password, check=False).returncode != 0, user


def test_the_kubernetes_configuration_boots_and_grows_the_quorum_queues(tmp_path):
    why = broker_node.available()
    if why:
        unavailable(why)
    k8s = broker_node.BrokerNode(tmp_path, PASSWORDS, kubernetes=True)
    try:
        k8s.start()
        grown = "holds a replica of every baove quorum queue"
        eventually(lambda: grown in k8s.log.read_text(), timeout=60, interval=2, what=f"'{grown}' in the log")
        plugins = k8s.ctl("eval", "application:which_applications().", timeout=30).stdout
        assert "rabbitmq_peer_discovery_k8s" in plugins
    finally:
        k8s.stop()
