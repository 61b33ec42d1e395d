"""Routing: composition of the inbox API, the outbox relay and the incident subscriber."""

from __future__ import annotations

from pathlib import Path

from shared.runtime import Runtime
from shared.settings import RoutingSettings

from . import api, consumers
from .models import metadata
from .rules import DEFAULT_RULES, load_rules

MIGRATIONS = Path(__file__).parent / "migrations"


def create_runtime(settings: RoutingSettings | None = None) -> Runtime:
    settings = settings or RoutingSettings()
    runtime = Runtime(
        "routing",
        settings,
        metadata,
        MIGRATIONS,
        description="Routes each reported incident to the units that must act and serves one inbox per unit.",
    )
    # Checked here, at start: a rules file the service does not understand stops it before it consumes.
    runtime.api.state.rules = load_rules(settings.rules_file or DEFAULT_RULES)
    runtime.api.include_router(api.router)
    consumers.register(runtime)
    return runtime
