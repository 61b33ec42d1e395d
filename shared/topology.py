"""The RabbitMQ topology in one place: the events exchange, each consumer's quorum queue and its dead letters.

Queue arguments are part of the contract with the broker: RabbitMQ refuses to redeclare a
queue with other arguments (PRECONDITION_FAILED), so changing them is a migration.
"""

from __future__ import annotations

from dataclasses import dataclass

from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

EVENTS = RabbitExchange("baove.events", type=ExchangeType.TOPIC, durable=True)
DEAD_LETTERS = RabbitExchange("baove.dead-letters", type=ExchangeType.DIRECT, durable=True)
# Thin notifications for agencies with their own systems (routing's notifier publishes, never the events themselves).
AGENCIES = RabbitExchange("baove.agencies", type=ExchangeType.TOPIC, durable=True)


def agency_queue(unit_id: str) -> RabbitQueue:
    """`agency.{unit_id}`: one unit's notifications only, bound to `{unit_id}.#` on baove.agencies."""
    return RabbitQueue(f"agency.{unit_id}", queue_type=QueueType.QUORUM, durable=True)

# RabbitMQ 3.10 quorum queues have no default limit: without one a poison message loops forever.
DEFAULT_DELIVERY_LIMIT = 5


@dataclass(frozen=True)
class ConsumerQueue:
    service: str
    purpose: str
    bindings: tuple[str, ...]
    description: str
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT

    @property
    def name(self) -> str:
        return f"{self.service}.{self.purpose}"

    @property
    def dead_letter_name(self) -> str:
        return f"{self.name}.dlq"

    def queue(self) -> RabbitQueue:
        return RabbitQueue(
            self.name,
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments={
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": DEAD_LETTERS.name,
                "x-dead-letter-routing-key": self.name,
                # At-least-once dead-lettering: a dead letter is not dropped if the DLQ cannot take it.
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )

    def dead_letter_queue(self) -> RabbitQueue:
        return RabbitQueue(self.dead_letter_name, queue_type=QueueType.QUORUM, durable=True)


ROUTING_INCIDENTS = ConsumerQueue(
    "routing",
    "incidents",
    ("incident.reported", "incident.erased"),
    "Routing decides the units for each reported incident and fills their inboxes; it blanks an erased incident's case.",
)
REPORTING_EVENTS = ConsumerQueue(
    "reporting",
    "events",
    ("incident.*", "assignment.*", "activity.*"),
    "Reporting keeps a read model without personal data for the periodic reports.",
)
INTAKE_TIMELINE = ConsumerQueue(
    "intake",
    "timeline",
    ("incident.routed", "assignment.*", "incident.escalated", "incident.closed", "incident.reopened", "incident.erased"),
    "Intake records what happened to each incident for its timeline (an erasure: its dead letters and files are cleaned).",
)
ROUTING_NOTIFY = ConsumerQueue(
    "routing",
    "notify",
    ("incident.routed", "assignment.overdue", "incident.escalated", "incident.closed"),
    "Routing's notifier turns the events a unit subscribed to into webhook and email deliveries.",
)

# Notifications for systems outside baove (the district's): no queue of ours consumes them, so a
# publish with nobody bound must not bounce. The report itself is stored and served over HTTP.
NOTIFICATIONS = frozenset({"report.generated", "report.submitted"})

CONSUMER_QUEUES: tuple[ConsumerQueue, ...] = (ROUTING_INCIDENTS, REPORTING_EVENTS, INTAKE_TIMELINE, ROUTING_NOTIFY)


def queues_of(service: str) -> tuple[ConsumerQueue, ...]:
    return tuple(q for q in CONSUMER_QUEUES if q.service == service)


async def declare(broker: RabbitBroker, queues: tuple[ConsumerQueue, ...] = CONSUMER_QUEUES) -> None:
    """Declare the exchanges, the queues, their dead-letter queues and bindings (idempotent)."""
    events = await broker.declare_exchange(EVENTS)
    dead_letters = await broker.declare_exchange(DEAD_LETTERS)
    for spec in queues:
        queue = await broker.declare_queue(spec.queue())
        for key in spec.bindings:
            await queue.bind(events, routing_key=key)
        dlq = await broker.declare_queue(spec.dead_letter_queue())
        await dlq.bind(dead_letters, routing_key=spec.name)
