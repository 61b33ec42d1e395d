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

from shared.topology import CONSUMER_QUEUES, DEAD_LETTERS, EVENTS
from tests.deploy.common import BROKER

VHOST = "baove"
USERS = ("ops", "intake", "routing", "reporting")
FILES = (BROKER / "definitions.json",)


def _alternatives(names) -> str:
    return "|".join(name.replace(".", "\\.") for name in names)


def render() -> str:
    exchanges = (EVENTS, DEAD_LETTERS)
    exchange_names = rf"^({_alternatives(e.name for e in exchanges)})$"
    every_queue = rf"^({_alternatives(q.name for q in CONSUMER_QUEUES)})(\.dlq)?$"
    permissions = [{"user": "ops", "vhost": VHOST, "configure": ".*", "write": ".*", "read": ".*"}]
    for service in USERS[1:]:
        own = [q.name for q in CONSUMER_QUEUES if q.service == service]
        read = exchange_names + (rf"|^({_alternatives(own)})(\.dlq)?$" if own else "")
        topology = f"{exchange_names}|{every_queue}"
        permissions.append({"user": service, "vhost": VHOST, "configure": topology, "write": topology, "read": read})
    policies = [
        {
            "vhost": VHOST, "name": f"dead-letter-{q.name}", "pattern": f"^{_alternatives([q.name])}$",
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
        "permissions": permissions,
        "topic_permissions": [],
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
                             "tags": ["administrator"] if user == "ops" else []})
        for user in USERS
    )
    return json.dumps(document, indent=2).replace('"@USERS@"', "[\n" + users + "\n  ]") + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.deploy.rabbitmq_definitions --write")
    for path in FILES:
        path.write_text(render())
        print(f"wrote {path.relative_to(BROKER.parents[2])}")
