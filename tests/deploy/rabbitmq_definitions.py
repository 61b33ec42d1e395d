"""deploy/k8s/rabbitmq/definitions.json, generated from shared/topology.py.

    python -m tests.deploy.rabbitmq_definitions --write   # after changing shared/topology.py

writes it (compose mounts the same file). test_rabbitmq_definitions.py fails while the
file differs from what this renders, and checks the permissions it renders on their own terms.
Adding a binding is safe for a running broker; changing a queue's arguments is a migration
(the broker refuses to redeclare a queue with other arguments).
"""

from __future__ import annotations

import json
import sys

from shared.settings import CommonSettings
from shared.topology import CONSUMER_QUEUES, DEAD_LETTERS, EVENTS, dead_letter_policy, permissions, regex_alternatives
from tests.deploy.common import BROKER

VHOST = "baove"
USERS = ("ops", "intake", "routing", "reporting")
FILES = (BROKER / "definitions.json",)


def render() -> str:
    exchanges = (EVENTS, DEAD_LETTERS)
    permitted = [{"user": "ops", "vhost": VHOST, "configure": ".*", "write": ".*", "read": ".*"}]
    topic_permissions = []
    for service in USERS[1:]:
        p = permissions(service)
        permitted.append({"user": service, "vhost": VHOST, "configure": p.configure, "write": p.write, "read": p.read})
        topic_permissions.append(
            {"user": service, "vhost": VHOST, "exchange": EVENTS.name, "write": p.topic_write, "read": p.topic_read}
        )
    policies = [
        {
            "vhost": VHOST, "name": f"dead-letter-{q.name}", "pattern": f"^{regex_alternatives([q.name])}$",
            "apply-to": "queues", "priority": 0,
            "definition": {
                "delivery-limit": q.delivery_limit,
                "dead-letter-exchange": DEAD_LETTERS.name,
                "dead-letter-routing-key": q.name,
                "dead-letter-strategy": "at-least-once",
                "overflow": "reject-publish",
            },
        }
        for q in CONSUMER_QUEUES
    ]
    # start.sh replaces the two numbers with BAOVE_DLQ_TTL_DAYS and BAOVE_DLQ_MAX_LENGTH when they are set.
    fields = CommonSettings.model_fields
    policies.append({"vhost": VHOST, **dead_letter_policy(fields["dlq_ttl_days"].default, fields["dlq_max_length"].default)})
    queues = [
        {"name": queue.name, "vhost": VHOST, "durable": True, "auto_delete": False, "arguments": dict(queue.arguments or {})}
        for q in CONSUMER_QUEUES
        for queue in (q.queue(), q.dead_letter_queue())
    ]
    bindings = []
    for q in CONSUMER_QUEUES:
        bindings += [
            {"source": EVENTS.name, "vhost": VHOST, "destination": q.name, "destination_type": "queue",
             "routing_key": key, "arguments": {}}
            for key in q.bindings
        ]
        bindings.append({"source": DEAD_LETTERS.name, "vhost": VHOST, "destination": q.dead_letter_name,
                         "destination_type": "queue", "routing_key": q.name, "arguments": {}})
    document = {
        "rabbitmq_version": "3.10.8",
        "users": "@USERS@",
        "vhosts": [{"name": VHOST}],
        "permissions": permitted,
        "topic_permissions": topic_permissions,
        "parameters": [],
        "global_parameters": [],
        "policies": policies,
        "queues": queues,
        "exchanges": [
            {"name": e.name, "vhost": VHOST, "type": e.type.value, "durable": True, "auto_delete": False,
             "internal": False, "arguments": {}}
            for e in exchanges
        ],
        "bindings": bindings,
    }
    # One user per line: start.sh finds each user's empty password_hash by its line.
    users = ",\n".join(
        "    " + json.dumps({"name": user, "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_sha256",
                             # ops replays dead letters with their producer's user_id: impersonator.
                             "tags": ["administrator", "impersonator"] if user == "ops" else []})
        for user in USERS
    )
    return json.dumps(document, indent=2).replace('"@USERS@"', "[\n" + users + "\n  ]") + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.deploy.rabbitmq_definitions --write")
    for path in FILES:
        path.write_text(render())
        print(f"wrote {path.relative_to(BROKER.parents[2])}")
