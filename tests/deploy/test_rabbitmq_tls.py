"""AMQP over TLS: a service connects to an amqps:// broker only when its certificate was signed by BAOVE_AMQP_CA_FILE.

A throwaway CA signs the certificate of a RabbitMQ node (tests/deploy/broker_node.py, with an SSL listener beside
the plain one); a second CA, which signed nothing the node holds, stands for a broker that is not ours.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil

import pytest
from pydantic import SecretStr

from services.intake.app import create_runtime
from shared.settings import CommonSettings, IntakeSettings
from shared.topology import declare
from tests.deploy import broker_node
from tests.deploy.test_rabbitmq_broker import unavailable

pytestmark = pytest.mark.integration  # within the deploy layer: needs a live RabbitMQ node

PASSWORDS = {user: secrets.token_hex(16) for user in ("ops", "intake", "routing", "reporting")}


@pytest.fixture(scope="module")
def cas(tmp_path_factory):
    if shutil.which("openssl") is None:
        unavailable("openssl not found")
    folder = tmp_path_factory.mktemp("tls")
    return {"ours": broker_node.throwaway_ca(folder, "ours"), "theirs": broker_node.throwaway_ca(folder, "theirs")}


@pytest.fixture(scope="module")
def node(tmp_path_factory, cas):
    why = broker_node.available()
    if why:
        unavailable(why)
    started = broker_node.BrokerNode(tmp_path_factory.mktemp("rabbitmq-tls"), PASSWORDS, tls=cas["ours"])
    try:
        started.start()
        yield started
    finally:
        started.stop()


async def connect_intake(node, tmp_path, ca_file):
    """Intake's runtime, built from its settings as in production, connecting to the node over amqps://."""
    common = CommonSettings(data_dir=tmp_path, amqp_ca_file=ca_file)
    runtime = create_runtime(IntakeSettings(amqp_url=SecretStr(node.amqps_url("intake")), common=common, graceful_timeout=5.0))
    try:
        await asyncio.wait_for(runtime.broker.connect(), 30)
        assert await runtime.broker.ping(timeout=5)
        await declare(runtime.broker, own=runtime.queues)  # what the service does at start, over the encrypted connection
        return node.ctl("list_connections", "user", "ssl", "peer_cert_subject", "--quiet", "--no-table-headers").stdout
    finally:
        await runtime.broker.stop()
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()


def certificate_refused(exc: BaseException) -> bool:
    """Whether an exception (or one it was raised from) is the TLS handshake's certificate check failing."""
    while exc is not None:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


async def test_a_service_connects_over_amqps_when_the_ca_file_signed_the_broker(node, cas, tmp_path):
    connections = await connect_intake(node, tmp_path, cas["ours"].cacert)
    assert any(line.split("\t")[:2] == ["intake", "true"] for line in connections.splitlines()), connections


@pytest.mark.parametrize("trusted", ["theirs", "system"])
async def test_a_broker_whose_certificate_the_ca_file_did_not_sign_is_refused(node, cas, tmp_path, trusted):
    """Another CA's file, or none (the system's CAs): the handshake fails before a password is sent."""
    with pytest.raises(Exception) as refused:  # noqa: PT011 - faststream, aio-pika and ssl each wrap it their way
        await connect_intake(node, tmp_path, cas["theirs"].cacert if trusted == "theirs" else None)
    assert certificate_refused(refused.value), repr(refused.value)
