"""Routing's subscribers: each reported incident is routed to the units that must act; an erased one is blanked."""

from __future__ import annotations

from functools import partial

from sqlalchemy import event as sqlalchemy_event

from shared.events import Envelope, Event, IncidentErased, IncidentLinked
from shared.runtime import Runtime, Work
from shared.topology import ROUTING_INCIDENTS, ROUTING_NOTIFY

from .cases import handle_linked
from .erasure import handle_erased
from .notify import record_deliveries
from .reported import handle_reported


def incident_work(runtime: Runtime) -> Work:
    """The routing.incidents handler: incident.reported with the runtime's rule sets, clock and metrics; incident.erased;
    incident.linked."""
    state = runtime.api.state
    reported = partial(handle_reported, rule_sets=state.rule_sets, clock=state.clock, metrics=state.metrics)

    async def work(session, event: Event, envelope: Envelope) -> list[Envelope]:
        if isinstance(event, IncidentErased):
            return await handle_erased(session, event, envelope)
        if isinstance(event, IncidentLinked):
            return await handle_linked(session, event, envelope)
        return await reported(session, event, envelope)

    return work


def register(runtime: Runtime) -> None:
    runtime.subscriber(ROUTING_INCIDENTS, incident_work(runtime))
    runtime.subscriber(ROUTING_NOTIFY, notify_work(runtime))


def notify_work(runtime: Runtime) -> Work:
    """The notifier's handler: deliveries for the units subscribed to the event, stored for the delivery loop,
    which is woken once they are committed (an emergency goes out at once, not at the loop's next tick)."""
    state = runtime.api.state
    record = partial(record_deliveries, settings=runtime.settings.notify, clock=state.clock)

    async def work(session, event: Event, envelope: Envelope) -> list[Envelope]:
        if await record(session, event, envelope):
            sqlalchemy_event.listen(session.sync_session, "after_commit", lambda _: state.notifier.wake(), once=True)
        return []

    return work
