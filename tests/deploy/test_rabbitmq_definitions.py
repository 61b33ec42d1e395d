"""deploy/k8s/rabbitmq: the definitions match shared/topology.py, and each service user gets only what it needs.

RabbitMQ's access rules for what the services do:
- exchange.declare, queue.declare and queue.delete need *configure* on the exchange or queue (a passive
  declare needs nothing);
- queue.bind and queue.unbind need *write* on the queue and *read* on the exchange, and on a topic exchange
  the binding key must match the user's topic *read* permission;
- basic.publish needs *write* on the exchange, and on a topic exchange the routing key must match the
  user's topic *write* permission; basic.consume needs *read* on the queue;
- declaring a queue that does not exist yet with a dead-letter exchange also needs *read* on the
  queue and *write* on that exchange (checked by test_rabbitmq_broker.py on a real broker).
So each service configures, binds and reads only its own queue and its dead-letter queue, publishes only
the routing keys it produces (shared/topology.py PRODUCERS) and binds only its own binding keys. The
definitions declare the whole topology at broker boot; a service declares the rest only passively.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess

import pytest

from shared.events import EVENT_TYPES
from shared.topology import CONSUMER_QUEUES, DEAD_LETTER_POLICY, DEAD_LETTERS, EVENTS, producer_of
from tests.deploy import rabbitmq_definitions
from tests.deploy.common import BROKER, DEPLOY, compose, definitions, kustomization

VHOST = "baove"
SERVICE_USERS = sorted({q.service for q in CONSUMER_QUEUES} | {"intake", "routing", "reporting"})
EXCHANGES = {EVENTS.name, DEAD_LETTERS.name}
ALL_QUEUES = {name for q in CONSUMER_QUEUES for name in (q.name, q.dead_letter_name)}
START = BROKER / "start.sh"


def permission(user: str) -> dict:
    [p] = [p for p in definitions()["permissions"] if p["user"] == user and p["vhost"] == VHOST]
    return p


def allows(regex: str, name: str) -> bool:
    # RabbitMQ matches permissions with re:run(Name, Regex): a search, anchored only by ^ and $.
    return re.search(regex, name) is not None


def own_queues(service: str) -> set[str]:
    return {name for q in CONSUMER_QUEUES if q.service == service for name in (q.name, q.dead_letter_name)}


def test_the_definitions_are_generated_from_shared_topology():
    for path in rabbitmq_definitions.FILES:
        assert path.read_text() == rabbitmq_definitions.render(), (
            f"{path} is out of date: python -m tests.deploy.rabbitmq_definitions --write"
        )


class TestUsers:
    def test_there_is_a_user_per_service_and_an_administrator_for_people(self):
        users = {u["name"]: u for u in definitions()["users"]}
        assert set(users) == {"ops", *SERVICE_USERS}
        # ops replays dead letters keeping their producer's user_id, which only an impersonator may set.
        assert users["ops"]["tags"] == ["administrator", "impersonator"]
        assert all(users[s]["tags"] == [] for s in SERVICE_USERS)

    def test_no_user_has_a_password_in_the_repository(self):
        assert all(u["password_hash"] == "" for u in definitions()["users"])

    def test_each_user_is_on_one_line_as_start_sh_expects(self):
        text = (BROKER / "definitions.json").read_text()
        for user in definitions()["users"]:
            assert re.search(rf'"name": *"{user["name"]}", *"password_hash": *""', text), user["name"]

    def test_there_is_no_guest_and_only_the_baove_vhost(self):
        assert "guest" not in {u["name"] for u in definitions()["users"]}
        assert [v["name"] for v in definitions()["vhosts"]] == [VHOST]


class TestServicePermissions:
    @pytest.mark.parametrize("service", SERVICE_USERS)
    def test_a_service_configures_only_its_own_queues(self, service):
        # Not another's queue (it could delete or redeclare it), not an exchange (it could delete baove.events).
        for name in EXCHANGES | ALL_QUEUES:
            assert allows(permission(service)["configure"], name) == (name in own_queues(service)), name

    @pytest.mark.parametrize("service", SERVICE_USERS)
    def test_a_service_may_publish_events_and_bind_only_its_own_queues(self, service):
        write = permission(service)["write"]
        assert allows(write, EVENTS.name)
        for name in ALL_QUEUES:
            assert allows(write, name) == (name in own_queues(service)), name

    @pytest.mark.parametrize("service", SERVICE_USERS)
    def test_a_service_may_create_its_own_queue_with_its_dead_letter_exchange(self, service):
        assert allows(permission(service)["write"], DEAD_LETTERS.name)
        for name in own_queues(service):
            assert allows(permission(service)["read"], name), name

    @pytest.mark.parametrize("service", SERVICE_USERS)
    def test_a_service_may_bind_from_both_exchanges(self, service):
        for name in EXCHANGES:
            assert allows(permission(service)["read"], name), name

    @pytest.mark.parametrize("service", SERVICE_USERS)
    def test_a_service_cannot_read_another_services_queues(self, service):
        for name in ALL_QUEUES - own_queues(service):
            assert not allows(permission(service)["read"], name), name

    @pytest.mark.parametrize("service", SERVICE_USERS)
    @pytest.mark.parametrize("kind", ["configure", "write", "read"])
    @pytest.mark.parametrize(
        "other",
        ["", "amq.default", "amq.topic", "amq.rabbitmq.reply-to", "baove.events.copy", "x.routing.incidents",
         "routing.incidents.dlq.copy", "baove_events", "routing-incidents", "spy"],
    )
    def test_nothing_outside_the_topology_is_allowed(self, service, kind, other):
        assert not allows(permission(service)[kind], other)

    def test_the_administrator_may_do_anything_in_the_vhost(self):
        assert permission("ops") | {"user": "ops"} == {
            "user": "ops", "vhost": VHOST, "configure": ".*", "write": ".*", "read": ".*"
        }



def topic_permission(user: str) -> dict:
    [p] = [p for p in definitions()["topic_permissions"] if p["user"] == user and p["vhost"] == VHOST]
    assert p["exchange"] == EVENTS.name
    return p


# Routing keys of events announced by issues 15 and 16 (erasure, activities), produced by intake.
ANNOUNCED = ("incident.erased", "activity.recorded", "activity.corrected", "activity.withdrawn")


class TestTopicPermissions:
    @pytest.mark.parametrize("service", SERVICE_USERS)
    @pytest.mark.parametrize("key", [*sorted(EVENT_TYPES), *ANNOUNCED])
    def test_a_service_publishes_only_the_routing_keys_it_produces(self, service, key):
        assert allows(topic_permission(service)["write"], key) == (producer_of(key) == service)

    @pytest.mark.parametrize("key", ["", "incident", "incident.reported.x", "x.incident.reported", "assignment", "spy.key"])
    def test_no_service_publishes_a_routing_key_nobody_produces(self, key):
        for service in SERVICE_USERS:
            assert not allows(topic_permission(service)["write"], key), (service, key)

    @pytest.mark.parametrize("service", SERVICE_USERS)
    def test_a_service_binds_its_queues_by_their_own_binding_keys_only(self, service):
        read = topic_permission(service)["read"]
        mine = {key for q in CONSUMER_QUEUES if q.service == service for key in q.bindings}
        assert all(allows(read, key) for key in mine)
        for key in {key for q in CONSUMER_QUEUES for key in q.bindings} - mine | {"#", "*.*", "incident.*"}:
            assert not allows(read, key), key

    def test_reporting_can_never_bind_to_the_event_carrying_a_case(self):
        assert not allows(topic_permission("reporting")["read"], "incident.reported")
        assert allows(topic_permission("routing")["read"], "incident.reported")

    def test_reporting_can_never_bind_to_the_closing_carrying_its_outcome(self):
        assert not allows(topic_permission("reporting")["read"], "incident.closed")
        assert allows(topic_permission("reporting")["read"], "incident.closure_recorded")
        assert allows(topic_permission("intake")["read"], "incident.closed")


class TestTopology:
    def test_the_exchanges_are_those_of_shared_topology(self):
        got = {e["name"]: e for e in definitions()["exchanges"]}
        assert set(got) == EXCHANGES
        for exchange in (EVENTS, DEAD_LETTERS):
            assert got[exchange.name] == {
                "name": exchange.name, "vhost": VHOST, "type": exchange.type.value,
                "durable": True, "auto_delete": False, "internal": False, "arguments": {},
            }

    def test_the_queues_have_exactly_the_arguments_the_services_declare(self):
        # Any difference and the services' declare fails with PRECONDITION_FAILED.
        got = {q["name"]: q for q in definitions()["queues"]}
        assert set(got) == ALL_QUEUES
        for spec in CONSUMER_QUEUES:
            for queue in (spec.queue(), spec.dead_letter_queue()):
                assert got[queue.name] == {
                    "name": queue.name, "vhost": VHOST, "durable": True, "auto_delete": False,
                    "arguments": dict(queue.arguments or {}),
                }, json.dumps(dict(queue.arguments or {}))

    def test_the_bindings_are_those_of_shared_topology(self):
        got = {(b["source"], b["destination"], b["routing_key"]) for b in definitions()["bindings"]}
        want = set()
        for spec in CONSUMER_QUEUES:
            want |= {(EVENTS.name, spec.name, key) for key in spec.bindings}
            want.add((DEAD_LETTERS.name, spec.dead_letter_name, spec.name))
        assert got == want
        assert all(b["vhost"] == VHOST and b["destination_type"] == "queue" and b["arguments"] == {}
                   for b in definitions()["bindings"])


class TestPolicies:
    def policy_for(self, queue: str) -> list[dict]:
        return [p for p in definitions()["policies"] if p["vhost"] == VHOST and re.search(p["pattern"], queue)]

    @pytest.mark.parametrize("spec", CONSUMER_QUEUES, ids=lambda s: s.name)
    def test_each_consumer_queue_has_a_dead_letter_policy_equal_to_its_arguments(self, spec):
        [policy] = self.policy_for(spec.name)
        args = spec.queue().arguments
        assert policy["apply-to"] == "queues"
        assert policy["definition"] == {
            "delivery-limit": args["x-delivery-limit"],
            "dead-letter-exchange": args["x-dead-letter-exchange"],
            "dead-letter-routing-key": args["x-dead-letter-routing-key"],
            "dead-letter-strategy": args["x-dead-letter-strategy"],
            "overflow": args["x-overflow"],
        }

    @pytest.mark.parametrize("spec", CONSUMER_QUEUES, ids=lambda s: s.name)
    def test_a_dead_letter_queue_keeps_letters_for_a_while_and_a_number_only(self, spec):
        # No delivery limit there (that would drop letters kept for inspection); a TTL and a length the operator sets.
        [policy] = self.policy_for(spec.dead_letter_name)
        assert policy["name"] == DEAD_LETTER_POLICY and policy["apply-to"] == "queues"
        assert policy["definition"] == {"message-ttl": 14 * 86_400_000, "max-length": 10_000, "overflow": "drop-head"}


class TestConfiguration:
    @pytest.mark.parametrize("conf", ["compose/rabbitmq/rabbitmq.conf", "k8s/rabbitmq/rabbitmq.conf"])
    def test_the_broker_loads_the_definitions_start_sh_writes(self, conf):
        settings = dict(
            line.split(" = ", 1) for line in (DEPLOY / conf).read_text().splitlines()
            if line.strip() and not line.startswith("#")
        )
        assert settings["load_definitions"] == "/var/lib/rabbitmq/baove-definitions.json"
        assert 'out=${BAOVE_DEFINITIONS_FILE:-/var/lib/rabbitmq/baove-definitions.json}' in START.read_text()
        assert settings["prometheus.tcp.port"] == "15692"
        assert settings["listeners.tcp.default"] == "5672"

    def test_compose_and_kubernetes_take_the_definitions_and_start_script_from_one_place(self):
        mounts = {
            target: (DEPLOY / "compose" / source).resolve()
            for source, target, *_ in (volume.split(":") for volume in compose()["services"]["rabbitmq"]["volumes"])
            if source.startswith(".")
        }
        assert mounts["/etc/rabbitmq/baove/definitions.json"] == BROKER / "definitions.json"
        assert mounts["/etc/rabbitmq/baove/start.sh"] == BROKER / "start.sh"
        generated = {f for g in kustomization()["configMapGenerator"] for f in g["files"]}
        assert {"rabbitmq/definitions.json", "rabbitmq/start.sh"} <= generated
        copies = [p for p in DEPLOY.rglob("*") if p.name in ("definitions.json", "start.sh") and p.parent != BROKER]
        assert not copies, f"copies of the broker files: {copies}"

    def test_the_plugins_include_prometheus_and_on_kubernetes_peer_discovery(self):
        compose = (DEPLOY / "compose" / "rabbitmq" / "enabled_plugins").read_text()
        k8s = (DEPLOY / "k8s" / "rabbitmq" / "enabled_plugins").read_text()
        assert "rabbitmq_prometheus" in compose and "rabbitmq_management" in compose
        assert "rabbitmq_peer_discovery_k8s" in k8s and "rabbitmq_prometheus" in k8s
        assert compose.strip().endswith("].") and k8s.strip().endswith("].")


PASSWORDS = {
    "BAOVE_RABBITMQ_PASSWORD_OPS": "0123456789abcdef-ops",
    "BAOVE_RABBITMQ_PASSWORD_INTAKE": "0123456789abcdef-intake",
    "BAOVE_RABBITMQ_PASSWORD_ROUTING": "0123456789abcdef-routing",
    "BAOVE_RABBITMQ_PASSWORD_REPORTING": "0123456789abcdef-reporting",
}


def run_start(tmp_path, command=("true",), **env):
    out = tmp_path / "definitions.json"
    environment = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path),
        "BAOVE_DEFINITIONS_TEMPLATE": str(BROKER / "definitions.json"),
        "BAOVE_DEFINITIONS_FILE": str(out), **env,
    }
    result = subprocess.run(["bash", str(START), *command], env=environment, capture_output=True, text=True)
    return result, out


class TestStartScript:
    def test_it_writes_the_operators_dead_letter_limits_into_the_policy(self, tmp_path):
        result, out = run_start(tmp_path, BAOVE_DLQ_TTL_DAYS="3.5", BAOVE_DLQ_MAX_LENGTH="250", **PASSWORDS)
        assert result.returncode == 0, result.stderr
        [policy] = [p for p in json.loads(out.read_text())["policies"] if p["name"] == DEAD_LETTER_POLICY]
        assert policy["definition"] == {"message-ttl": 302_400_000, "max-length": 250, "overflow": "drop-head"}
        others = [p for p in json.loads(out.read_text())["policies"] if p["name"] != DEAD_LETTER_POLICY]
        assert others == [p for p in definitions()["policies"] if p["name"] != DEAD_LETTER_POLICY]

    @pytest.mark.parametrize(("name", "bad"), [("BAOVE_DLQ_TTL_DAYS", "two"), ("BAOVE_DLQ_TTL_DAYS", "0"), ("BAOVE_DLQ_MAX_LENGTH", "-1")])
    def test_it_refuses_a_dead_letter_limit_that_is_not_a_number(self, tmp_path, name, bad):
        result, out = run_start(tmp_path, **{name: bad}, **PASSWORDS)
        assert result.returncode != 0 and name in result.stderr and not out.exists()

    def test_it_writes_each_user_a_rabbitmq_sha256_hash_of_its_password(self, tmp_path):
        result, out = run_start(tmp_path, **PASSWORDS)
        assert result.returncode == 0, result.stderr
        written = json.loads(out.read_text())
        for user in written["users"]:
            raw = base64.b64decode(user["password_hash"])
            salt, digest = raw[:4], raw[4:]
            password = PASSWORDS[f"BAOVE_RABBITMQ_PASSWORD_{user['name'].upper()}"]
            assert digest == hashlib.sha256(salt + password.encode()).digest(), user["name"]
        assert {k: v for k, v in written.items() if k != "users"} == {
            k: v for k, v in definitions().items() if k != "users"
        }
        assert oct(out.stat().st_mode & 0o777) == "0o600"

    def test_it_removes_the_passwords_from_the_brokers_environment(self, tmp_path):
        result, _ = run_start(tmp_path, command=("env",), **PASSWORDS)
        assert result.returncode == 0, result.stderr
        assert "BAOVE_RABBITMQ_PASSWORD" not in result.stdout
        assert not any(p in result.stdout for p in PASSWORDS.values())

    @pytest.mark.parametrize("bad", ["", "REPLACE_ME", "change-me-please-now", "guest", "short-password"])
    def test_it_refuses_a_missing_placeholder_or_short_password(self, tmp_path, bad):
        result, out = run_start(tmp_path, **{**PASSWORDS, "BAOVE_RABBITMQ_PASSWORD_ROUTING": bad})
        assert result.returncode != 0
        assert "BAOVE_RABBITMQ_PASSWORD_ROUTING" in result.stderr
        assert not out.exists()

    def test_it_installs_the_erlang_cookie_owner_only(self, tmp_path):
        cookie = tmp_path / "cookie-from-secret"
        cookie.write_text("a" * 32)
        result, _ = run_start(tmp_path, BAOVE_ERLANG_COOKIE_FILE=str(cookie), **PASSWORDS)
        assert result.returncode == 0, result.stderr
        installed = tmp_path / ".erlang.cookie"
        assert installed.read_text() == "a" * 32
        assert oct(installed.stat().st_mode & 0o777) == "0o600"

    def test_it_refuses_a_placeholder_erlang_cookie(self, tmp_path):
        cookie = tmp_path / "cookie-from-secret"
        cookie.write_text("REPLACE_ME_openssl_rand_hex_32")
        result, _ = run_start(tmp_path, BAOVE_ERLANG_COOKIE_FILE=str(cookie), **PASSWORDS)
        assert result.returncode != 0 and "cookie" in result.stderr
