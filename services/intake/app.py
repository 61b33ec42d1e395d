"""Intake: composition of the HTTP API, the outbox relay and the timeline subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from pathlib import Path

from shared.db import utcnow
from shared.loops import Backoff, repeat
from shared.metrics import IntakeMetrics
from shared.ratelimit import RateLimiter
from shared.reference import load_hierarchy
from shared.runtime import Runtime
from shared.settings import IntakeSettings

from . import api, consumers, erasure, people_api, service
from .models import metadata
from .retention import RetentionPolicy

MIGRATIONS = Path(__file__).parent / "migrations"


def create_runtime(settings: IntakeSettings | None = None) -> Runtime:
    settings = settings or IntakeSettings()
    description = "Accepts reports of children harmed or at risk and publishes incident.reported."
    runtime = Runtime("intake", settings, metadata, MIGRATIONS, description=description, max_body_bytes=settings.max_body_bytes)
    runtime.api.state.hierarchy = load_hierarchy()
    runtime.api.state.clock = utcnow
    runtime.api.state.metrics = IntakeMetrics.create(runtime.registry)
    runtime.api.state.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    wake = asyncio.Event()
    runtime.api.state.reports = service.report_writer(runtime, stored=wake.set)
    runtime.background["duplicate-check"] = partial(
        check_duplicates, runtime, settings.duplicate_threshold, settings.duplicate_max_candidates, wake, settings.duplicate_settle_seconds
    )
    runtime.api.state.sign_in_limiter = RateLimiter(settings.sign_in_per_minute, settings.sign_in_burst)
    runtime.api.include_router(api.router)
    runtime.api.include_router(api.activity_router)
    runtime.api.include_router(people_api.router)
    runtime.startup.append(people_api.warm_up)
    runtime.personal_tables = erasure.PERSONAL_TABLES
    runtime.background["retention"] = erasure.retention_job(
        runtime, RetentionPolicy(settings.retention_closed_case_days), interval=settings.retention_interval_seconds,
        batch=settings.retention_batch_size,
    )
    # Intake administers the security store (people, sign-ins, GET /v1/audit): the audit's retention runs here alone.
    runtime.background["audit-retention"] = erasure.audit_retention_job(
        runtime, settings.audit_retention_days, interval=settings.retention_interval_seconds
    )
    consumers.register(runtime)
    return runtime


async def check_duplicates(runtime: Runtime, threshold: float, limit: int, wake: asyncio.Event, settle: float = 0.0) -> None:
    """The duplicate check beside intake's requests: woken by each stored batch of reports, else every 30 s.

    Once woken it lets `settle` seconds of reports gather first: each check reads the commune's whole window, so
    under a stream of reports fewer, larger batches cost far less than one small batch after each commit."""

    async def tick() -> None:
        while True:
            async with runtime.unit_of_work() as uow:
                if not await service.check_duplicates(uow, threshold, utcnow(), limit=limit):
                    return

    async def pause() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=30)
            await asyncio.sleep(settle)
        wake.clear()

    def failed(exc: Exception) -> None:
        logging.getLogger("baove.intake.duplicates").warning("duplicate check failed", extra={"error": type(exc).__name__})

    await repeat(tick, pause=pause, failed=failed, backoff=Backoff())
