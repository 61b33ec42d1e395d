"""Reporting's subscriber: every incident and assignment event feeds the read model."""

from __future__ import annotations

from functools import partial

from shared.clock import Clock
from shared.runtime import Runtime
from shared.topology import REPORTING_EVENTS

from .fold import handle_event, handle_events


def register(runtime: Runtime, clock: Clock) -> None:
    # Facts are stamped with reporting's own clock, the one the report scheduler compares them with.
    runtime.subscriber(REPORTING_EVENTS, partial(handle_event, clock=clock), partial(handle_events, clock=clock))
