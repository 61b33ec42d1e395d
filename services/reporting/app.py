"""Reporting: composition of the read-model subscriber and the summaries API."""

from __future__ import annotations

from pathlib import Path

from shared.reference import load_hierarchy
from shared.runtime import Runtime
from shared.settings import ReportingSettings

from . import api, consumers
from .models import metadata
from .periods import DEFAULT_PLANS, PlanConfig

MIGRATIONS = Path(__file__).parent / "migrations"


def create_runtime(settings: ReportingSettings | None = None, *, plans: PlanConfig = DEFAULT_PLANS) -> Runtime:
    settings = settings or ReportingSettings()
    runtime = Runtime(
        "reporting",
        settings,
        metadata,
        MIGRATIONS,
        description="Keeps a read model without personal data and serves summaries per commune, district, province and period.",
    )
    runtime.api.state.hierarchy = load_hierarchy()
    runtime.api.state.plans = plans
    runtime.api.include_router(api.router)
    consumers.register(runtime)
    return runtime
