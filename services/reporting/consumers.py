"""Reporting's subscriber: every incident and assignment event feeds the read model."""

from __future__ import annotations

from shared.runtime import Runtime
from shared.topology import REPORTING_EVENTS

from .service import handle_event


def register(runtime: Runtime) -> None:
    runtime.subscriber(REPORTING_EVENTS, handle_event)
