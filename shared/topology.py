"""The RabbitMQ topology in one place: the events exchange, each consumer's quorum queue and its dead letters.

Queue arguments are part of the contract with the broker: RabbitMQ refuses to redeclare a
queue with other arguments (PRECONDITION_FAILED), so changing them is a migration.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from aiormq.exceptions import ChannelAccessRefused, ChannelNotFoundEntity
from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

log = logging.getLogger("baove.topology")

EVENTS = RabbitExchange("baove.events", type=ExchangeType.TOPIC, durable=True)
DEAD_LETTERS = RabbitExchange("baove.dead-letters", type=ExchangeType.DIRECT, durable=True)
# Thin notifications for agencies with their own systems (routing's notifier publishes, never the events themselves).
AGENCIES = RabbitExchange("baove.agencies", type=ExchangeType.TOPIC, durable=True)


def agency_queue(unit_id: str) -> RabbitQueue:
    """`agency.{unit_id}`: one unit's notifications only, bound to `{unit_id}.#` on baove.agencies."""
    return RabbitQueue(f"agency.{unit_id}", queue_type=QueueType.QUORUM, durable=True)


def agency_binding(unit_id: str) -> str:
    return f"{unit_id}.#"


async def declare_agency_queue(broker: RabbitBroker, unit_id: str) -> None:
    """The exchange baove.agencies, the queue `agency.{unit_id}` and its one binding (idempotent)."""
    exchange = await broker.declare_exchange(AGENCIES)
    queue = await broker.declare_queue(agency_queue(unit_id))
    await queue.bind(exchange, routing_key=agency_binding(unit_id))


def agency_permissions(unit_id: str) -> tuple[str, str, str]:
    """An agency's broker user in the vhost (configure, write, read): consume its own queue, nothing else.

    No configure (it declares nothing, deletes nothing, binds nothing), no write (it publishes nowhere), read on
    `agency.{unit_id}` alone. A passive declare needs no permission, so its consumer may check the queue is there."""
    return "^$", "^$", f"^{re.escape(agency_queue(unit_id).name)}$"


# RabbitMQ 3.10 quorum queues have no default limit: without one a poison message loops forever.
DEFAULT_DELIVERY_LIMIT = 5


@dataclass(frozen=True)
class ConsumerQueue:
    service: str
    purpose: str
    bindings: tuple[str, ...]
    description: str
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT
    # Bindings an older version made: unbound at start, so an upgraded queue stops receiving them.
    retired_bindings: tuple[str, ...] = ()

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
    ("incident.reported", "incident.erased", "incident.linked"),
    "Routing decides the units for each reported incident and fills their inboxes; it blanks an erased incident's case; "
    "a report linked to an earlier one of the same child joins that case's process.",
)
REPORTING_EVENTS = ConsumerQueue(
    "reporting",
    "events",
    # Never incident.reported (it carries the case): its facts come alone as incident.recorded. Never incident.closed
    # (its outcome is free text): its facts come alone as incident.closure_recorded. incident.erased: the facts
    # stay, but reporting drops the incident's dead letters. The case process (issue 17): its steps, late steps and
    # temporary care, whose ids, step names and times are kept (never who moved them).
    (
        "incident.recorded", "incident.routed", "incident.escalated", "incident.closure_recorded", "incident.reopened",
        "incident.erased", "incident.linked", "assignment.*", "activity.*",
        "incident.step_changed", "incident.step_overdue", "incident.care_decided",
    ),
    "Reporting keeps a read model without personal data for the periodic reports.",
    retired_bindings=("incident.*", "incident.closed"),
)
INTAKE_TIMELINE = ConsumerQueue(
    "intake",
    "timeline",
    (
        "incident.routed", "assignment.*", "incident.escalated", "incident.closed", "incident.reopened", "incident.erased",
        "incident.step_overdue", "incident.step_changed", "incident.care_decided",
    ),
    "Intake records what happened to each incident for its timeline (an erasure: its dead letters and files are cleaned).",
)
ROUTING_NOTIFY = ConsumerQueue(
    "routing",
    "notify",
    ("incident.routed", "assignment.overdue", "incident.escalated", "incident.closed", "report.due", "incident.step_overdue"),
    "Routing's notifier turns the events a unit subscribed to into webhook and email deliveries.",
)

# Notifications for systems outside baove (the district's): no queue of ours consumes them, so a
# publish with nobody bound must not bounce. The report itself is stored and served over HTTP; a possible
# duplicate is read by the commune's cp_officer through intake's API.
NOTIFICATIONS = frozenset({"report.generated", "report.submitted", "incident.possible_duplicate"})

CONSUMER_QUEUES: tuple[ConsumerQueue, ...] = (ROUTING_INCIDENTS, REPORTING_EVENTS, INTAKE_TIMELINE, ROUTING_NOTIFY)


# Who may publish what: routing-key pattern (topic syntax) -> the one service that produces it. The broker's
# topic permissions (write) and every consumer's producer check are made from this table: a new event
# type gets its line here, or the broker refuses its publish and consumers dead-letter it as forged.
PRODUCERS: dict[str, str] = {
    "incident.reported": "intake",
    "incident.recorded": "intake",
    "incident.erased": "intake",  # issue 15: erasure of one incident travels as an event
    "activity.*": "intake",  # issue 16: activity.recorded, activity.corrected, activity.withdrawn
    "incident.possible_duplicate": "intake",  # issue 17: ids and a score, for the cp_officer
    "incident.linked": "intake",  # issue 17: the cp_officer's decision; reporting counts the child once
    "incident.routed": "routing",
    "assignment.*": "routing",
    "incident.escalated": "routing",
    "incident.step_overdue": "routing",  # issue 17: a process step (the initial assessment) late; to the chairman
    "incident.step_changed": "routing",  # issue 17: a case moved to another process step (ids and step names)
    "incident.care_decided": "routing",  # issue 17: the chairman's temporary care decision (dates only)
    "incident.closed": "routing",
    "incident.closure_recorded": "routing",  # issue 15: a closing's facts without its outcome, for reporting
    "incident.reopened": "routing",
    "report.*": "reporting",  # report.generated, report.submitted, report.due (issue 18: the reminder)
}
SERVICES = ("intake", "routing", "reporting")


def binds(pattern: str, routing_key: str) -> bool:
    """Whether a topic binding (`*` one word, `#` any number) takes this routing key."""
    return re.fullmatch(topic_regex(pattern), routing_key) is not None


def topic_regex(pattern: str) -> str:
    """A topic pattern as a regular expression over whole routing keys (unanchored)."""
    words = [r"[^.]+" if w == "*" else r".*" if w == "#" else re.escape(w) for w in pattern.split(".")]
    return r"\.".join(words)


def producer_of(routing_key: str) -> str | None:
    """The service that produces this routing key, or None: nobody may."""
    found = {service for pattern, service in PRODUCERS.items() if binds(pattern, routing_key)}
    if len(found) > 1:
        raise ValueError(f"{routing_key} has more than one producer in PRODUCERS: {sorted(found)}")
    return found.pop() if found else None


def queues_of(service: str) -> tuple[ConsumerQueue, ...]:
    return tuple(q for q in CONSUMER_QUEUES if q.service == service)


def regex_alternatives(names) -> str:
    return "|".join(name.replace(".", "\\.") for name in names)


@dataclass(frozen=True)
class Permissions:
    """A service's broker user in the vhost: RabbitMQ's three regexes plus its topic permissions on `baove.events`.

    configure: its own queues only (so it cannot delete or redeclare another's, nor any exchange);
    write: publish to the exchanges, bind its own queues; read: bind from the exchanges, consume its own queues;
    topic write: the routing keys it produces (PRODUCERS); topic read: the binding keys of its own queues.
    """

    configure: str
    write: str
    read: str
    topic_write: str
    topic_read: str


def permissions(service: str) -> Permissions:
    own = queues_of(service)
    own_queues = rf"^({regex_alternatives(q.name for q in own)})(\.dlq)?$" if own else "^$"
    exchanges = rf"^({regex_alternatives([EVENTS.name, DEAD_LETTERS.name])})$"
    produced = [topic_regex(p) for p, s in PRODUCERS.items() if s == service]
    bound = sorted({key for q in own for key in q.bindings})
    # Routing's notifier declares baove.agencies and each agency.{unit} queue with its binding, and publishes there;
    # it never reads an agency's queue (the agency's own user does: agency_permissions).
    agencies = rf"|^{regex_alternatives([AGENCIES.name])}$|^agency\..+$" if service == "routing" else ""
    return Permissions(
        configure=own_queues + agencies,
        write=f"{exchanges}|{own_queues}{agencies}",
        read=f"{exchanges}|{own_queues}" + (rf"|^{regex_alternatives([AGENCIES.name])}$" if agencies else ""),
        topic_write=f"^({'|'.join(produced)})$" if produced else "^$",
        topic_read=f"^({'|'.join(re.escape(k) for k in bound)})$" if bound else "^$",
    )


# Dead letters hold whole events (intake's and routing's hold children's data): kept this long, this many at most.
DEAD_LETTER_POLICY = "dead-letter-queues"


def dead_letter_policy(ttl_days: float, max_length: int) -> dict:
    """The policy on every `*.dlq` (a policy, not queue arguments: those cannot change on a running broker).

    The oldest dead letter goes first when the queue is full (drop-head), each goes after ttl_days."""
    return {
        "name": DEAD_LETTER_POLICY,
        "pattern": rf"^({regex_alternatives(q.name for q in CONSUMER_QUEUES)})\.dlq$",
        "apply-to": "queues",
        "priority": 0,
        "definition": {"message-ttl": round(ttl_days * 86_400_000), "max-length": max_length, "overflow": "drop-head"},
    }


async def _exists(connection, kind: str, name: str) -> bool:
    """A passive declare on a channel of its own (a refusal closes the channel): needs no permission."""
    channel = await connection.channel()
    try:
        if kind == "exchange":
            await channel.declare_exchange(name, passive=True)
        else:
            await channel.declare_queue(name, passive=True)
        return True
    except ChannelNotFoundEntity:
        return False
    finally:
        if not channel.is_closed:
            await channel.close()


async def _attempt(connection, what: str, action) -> bool:
    """Run `action(channel)` on a throwaway channel; an ACCESS_REFUSED is logged (least privilege) and returns False."""
    channel = await connection.channel()
    try:
        await action(channel)
        return True
    except ChannelAccessRefused:
        log.warning("broker refused %s: the broker's definitions must do it (deploy/README.md)", what)
        return False
    finally:
        if not channel.is_closed:
            await channel.close()


async def declare(
    broker: RabbitBroker, queues: tuple[ConsumerQueue, ...] = CONSUMER_QUEUES, *, own: tuple[ConsumerQueue, ...] | None = None
) -> None:
    """Declare the exchanges, the queues, their dead-letter queues and bindings (idempotent), as far as this user may.

    `own` (default: every queue in `queues`) are the connecting service's: declared with their arguments,
    bound, their retired bindings removed. Any other queue (and an exchange) is created, with its bindings,
    only when missing: on a development broker whose single user may. Under least privilege a service may
    configure only its own queues; the broker's definitions create everything else at boot.
    """
    await broker.connect()
    connection = broker._connection  # noqa: SLF001 - throwaway channels: a refusal must not close the broker's own
    own = queues if own is None else own
    for exchange in (EVENTS, DEAD_LETTERS):
        if not await _exists(connection, "exchange", exchange.name):
            await _attempt(
                connection,
                f"declaring exchange {exchange.name}",
                lambda ch, e=exchange: ch.declare_exchange(e.name, type=e.type.value, durable=True),
            )
    for spec in queues:
        if spec not in own and await _exists(connection, "queue", spec.name):
            continue
        await _declare_queue(connection, spec, mine=spec in own)


async def _declare_queue(connection, spec: ConsumerQueue, *, mine: bool) -> None:
    async def queue(channel) -> None:
        declared = await channel.declare_queue(spec.name, durable=True, arguments=spec.queue().arguments)
        for key in spec.bindings:
            await declared.bind(EVENTS.name, routing_key=key)

    async def dead_letters(channel) -> None:
        dlq = await channel.declare_queue(spec.dead_letter_name, durable=True, arguments=spec.dead_letter_queue().arguments)
        await dlq.bind(DEAD_LETTERS.name, routing_key=spec.name)

    if mine:
        # Its own queue: any refusal here (PRECONDITION_FAILED on other arguments, ACCESS_REFUSED) stops the start.
        channel = await connection.channel()
        try:
            await queue(channel)
            await dead_letters(channel)
        finally:
            await channel.close()
        for key in spec.retired_bindings:
            await _attempt(
                connection,
                f"removing the retired binding {key} of {spec.name}",
                lambda ch, key=key: _unbind(ch, spec.name, key),
            )
    elif await _attempt(connection, f"declaring {spec.name}", queue):
        await _attempt(connection, f"declaring {spec.dead_letter_name}", dead_letters)


async def _unbind(channel, queue: str, key: str) -> None:
    declared = await channel.declare_queue(queue, passive=True)
    await declared.unbind(EVENTS.name, routing_key=key)
