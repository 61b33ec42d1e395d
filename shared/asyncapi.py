"""The AsyncAPI 3.0 document of the events on `baove.events`, written from shared/events.py and shared/topology.py.

One channel per routing key, one named message per event type with the envelope and its payload's
JSON schema, one `send` operation for the service that publishes it and one `receive` operation per
consumer queue bound to it. `baove contracts` writes it to docs/contracts/asyncapi.json.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from shared.events import EVENT_TYPES, Envelope
from shared.topology import CONSUMER_QUEUES, EVENTS, NOTIFICATIONS, binds, producer_of

REFS = "#/components/schemas/{model}"

# Who publishes each event type, and what it tells (the producer field of its envelope says the same).
PUBLISHED: dict[str, tuple[str, str]] = {
    "incident.reported": ("intake", "A report intake accepted: the facts every consumer may keep, and the case (personal data) only routing stores."),
    "incident.recorded": ("intake", "The facts of a report intake accepted, with no case: what reporting's queue receives instead of incident.reported."),
    "incident.routed": ("routing", "The units an incident was routed to, each with its role and the rule that chose it."),
    "assignment.acknowledged": ("routing", "A unit took note of its assignment (pending -> acknowledged)."),
    "assignment.status_changed": ("routing", "An assignment moved on (in_progress, done or declined; a declined lead goes to the cp_officer)."),
    "assignment.overdue": ("routing", "An assignment passed its due time without being acknowledged."),
    "incident.escalated": ("routing", "An unacknowledged emergency escalated to the commune's cp_officer and chairman."),
    "incident.step_overdue": (
        "routing",
        "A step of the Decree 56/2017 case process was not done by its deadline (the initial assessment, 12 hours after the "
        "report; the plan, 5 working days) or a temporary care reached its last day: told once, to the commune's chairman. "
        "Ids and times only.",
    ),
    "incident.step_changed": (
        "routing",
        "A case moved to another step of the Decree 56/2017 case process (the initial assessment recorded: received -> "
        "initial_assessment), in the transaction that moved it. Ids and step names only; the record stays in routing.",
    ),
    "incident.care_decided": (
        "routing",
        "The chairman decided or extended a child's temporary care away from the parents (Decree 56/2017 Art. 32): dates "
        "and ids only; its end is watched and told once as incident.step_overdue (step temporary_care).",
    ),
    "incident.closed": ("routing", "The commune closed the case with the review's risk level and outcome (free text: intake's timeline only)."),
    "incident.closure_recorded": (
        "routing",
        "The facts of a closing, with no outcome and no principal (incident, commune, risk level, time): what reporting's "
        "queue receives instead of incident.closed.",
    ),
    "incident.reopened": ("routing", "A closed case taken up again; the cp_officer gets a new lead assignment."),
    "incident.erased": (
        "intake",
        "An incident's personal data was erased in intake (on request or at the end of its retention period): "
        "each service that holds any blanks it and keeps the anonymous facts. Ids and codes only.",
    ),
    "activity.recorded": ("intake", "A unit recorded an activity under a task of its commune's plan: codes and counts, no personal data."),
    "activity.corrected": ("intake", "The author corrected an activity: the new revision replaces the earlier ones."),
    "activity.withdrawn": ("intake", "The author withdrew an activity: it no longer counts in any report."),
    "incident.possible_duplicate": ("intake", "A new report may be about a child of an earlier report of the commune: both ids and the score, no personal data."),
    "incident.linked": ("intake", "The commune's cp_officer linked two reports of the same child: one case, a child counted once."),
    "report.generated": ("reporting", "A periodic report, or a new revision of one, was generated; for systems outside baove."),
    "report.submitted": ("reporting", "A commune's report document was approved, signed and sent to the district; for the district's systems."),
    "report.due": (
        "reporting",
        "A commune's plan-period report is due in a few days (BAOVE_REPORTING_REPORT_DUE_DAYS) and its document is not sent: "
        "once per commune, period and reminder. Ids, dates and the document's status only.",
    ),
}


def _title(event_type: str) -> str:
    return EVENT_TYPES[event_type].__name__


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema([(Envelope, "validation"), *((m, "validation") for m in EVENT_TYPES.values())], ref_template=REFS)
    return top["$defs"]


def _message(event_type: str) -> dict[str, Any]:
    payload = {
        "allOf": [
            {"$ref": REFS.format(model="Envelope")},
            {
                "type": "object",
                "properties": {"event_type": {"const": event_type}, "payload": {"$ref": REFS.format(model=_title(event_type))}},
            },
        ]
    }
    return {
        "name": event_type,
        "title": _title(event_type),
        "summary": PUBLISHED[event_type][1],
        "contentType": "application/json",
        "correlationId": {"description": "the incident id (a report's own key for report.generated, the activity id for activity.*)", "location": "$message.payload#/correlation_id"},
        "payload": payload,
        "bindings": {"amqp": {"messageType": event_type, "bindingVersion": "0.3.0"}},
    }


def _channel(event_type: str) -> dict[str, Any]:
    exchange = {"name": EVENTS.name, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"}
    return {
        "address": event_type,
        "title": f"{EVENTS.name} {event_type}",
        "description": f"Messages published to the {EVENTS.name} topic exchange with routing key {event_type}.",
        "messages": {_title(event_type): {"$ref": f"#/components/messages/{_title(event_type)}"}},
        "bindings": {"amqp": {"is": "routingKey", "exchange": exchange, "bindingVersion": "0.3.0"}},
    }


def _operations(event_type: str) -> dict[str, Any]:
    publisher, _ = PUBLISHED[event_type]
    channel = {"$ref": f"#/channels/{event_type}"}
    messages = [{"$ref": f"#/channels/{event_type}/messages/{_title(event_type)}"}]
    # A notification has no queue of ours behind it, so it is not published mandatory (it must not bounce).
    mandatory = event_type not in NOTIFICATIONS
    operations = {
        f"{publisher}.send.{event_type}": {
            "action": "send",
            "channel": channel,
            "messages": messages,
            "summary": f"{publisher} publishes {event_type} from its outbox, persistent, after the transaction that made it commits.",
            "bindings": {"amqp": {"deliveryMode": 2, "mandatory": mandatory, "bindingVersion": "0.3.0"}},
        }
    }
    for queue in CONSUMER_QUEUES:
        bound = [pattern for pattern in queue.bindings if binds(pattern, event_type)]
        if bound:
            operations[f"{queue.name}.receive.{event_type}"] = {
                "action": "receive",
                "channel": channel,
                "messages": messages,
                "summary": f"{queue.service} consumes it from quorum queue {queue.name} (bound by {', '.join(bound)}). {queue.description}",
                "bindings": {"amqp": {"ack": True, "bindingVersion": "0.3.0"}},
            }
    return operations


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document, as a JSON-ready dict."""
    missing = EVENT_TYPES.keys() ^ PUBLISHED.keys()
    if missing:
        raise ValueError(f"event types without a publisher in shared/asyncapi.py, or gone from shared/events.py: {sorted(missing)}")
    wrong = {e: (p, producer_of(e)) for e, (p, _) in PUBLISHED.items() if producer_of(e) != p}
    if wrong:
        raise ValueError(f"publishers in shared/asyncapi.py that shared/topology.py PRODUCERS does not allow (said, allowed): {wrong}")
    events = sorted(EVENT_TYPES)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "baove events",
            "version": "1",
            "description": (
                f"Every event on the {EVENTS.name} topic exchange: who publishes it, which queues receive it, and its message "
                "(the envelope, whose payload is the event's own schema). Delivery is at least once: consumers drop a "
                "repeated event_id; a message that keeps failing goes to the queue's dead-letter queue."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {"host": "rabbitmq:5672", "protocol": "amqp", "pathname": "/baove", "description": "the broker, vhost baove"}
        },
        "channels": {e: _channel(e) for e in events},
        "operations": {k: v for e in events for k, v in _operations(e).items()},
        "components": {"messages": {_title(e): _message(e) for e in events}, "schemas": _schemas()},
    }
