"""Routing's subscribers: each reported incident is routed to the units that must act."""

from __future__ import annotations

from functools import partial

from shared.runtime import Runtime, Work
from shared.topology import ROUTING_INCIDENTS

from .reported import handle_reported


def incident_work(runtime: Runtime) -> Work:
    """The incident.reported handler with the runtime's rule sets, clock and metrics."""
    state = runtime.api.state
    return partial(handle_reported, rule_sets=state.rule_sets, clock=state.clock, metrics=state.metrics)


def register(runtime: Runtime) -> None:
    runtime.subscriber(ROUTING_INCIDENTS, incident_work(runtime))
