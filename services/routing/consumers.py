"""Routing's subscribers: each reported incident is routed to the units that must act."""

from __future__ import annotations

from functools import partial

from shared.runtime import Runtime, Work
from shared.topology import ROUTING_INCIDENTS, ROUTING_NOTIFY

from .notify import record_deliveries
from .reported import handle_reported


def incident_work(runtime: Runtime) -> Work:
    """The incident.reported handler with the runtime's rule sets, clock and metrics."""
    state = runtime.api.state
    return partial(handle_reported, rule_sets=state.rule_sets, clock=state.clock, metrics=state.metrics)


def register(runtime: Runtime) -> None:
    runtime.subscriber(ROUTING_INCIDENTS, incident_work(runtime))
    runtime.subscriber(ROUTING_NOTIFY, notify_work(runtime))


def notify_work(runtime: Runtime) -> Work:
    """The notifier's handler: deliveries for the units subscribed to the event, stored for the delivery loop."""
    state = runtime.api.state
    return partial(record_deliveries, settings=runtime.settings.notify, clock=state.clock)
