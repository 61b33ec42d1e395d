"""Routing's subscribers: each reported incident is routed to the units that must act."""

from __future__ import annotations

from functools import partial

from shared.runtime import Runtime
from shared.topology import ROUTING_INCIDENTS

from .service import handle_reported


def register(runtime: Runtime) -> None:
    runtime.subscriber(ROUTING_INCIDENTS, partial(handle_reported, table=runtime.api.state.rules))
