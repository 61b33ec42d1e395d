"""The report scheduler: each pass generates the due reports, then warms the cells no report needed."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date

from sqlalchemy import and_, or_, select

from shared.loops import repeat
from shared.reference import Coverage, Hierarchy
from shared.uow import UnitOfWork

from . import periods
from .models import TallyCache, TallyCell
from .summaries import cached_tallies, one_snapshot

log = logging.getLogger("baove.reporting")


async def run_scheduler(
    generate: Callable[[], Awaitable[object]],
    unit_of_work: Callable[[], UnitOfWork],
    hierarchy: Hierarchy,
    *,
    interval: float,
    remind: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Every `interval` seconds until cancelled: `remind` of the reports due soon (reminders.remind_due_reports), `generate`
    the due reports (revisions.generate_due_reports), then warm the cells; a failed pass is retried on the next."""

    async def one_pass() -> None:
        if remind is not None:
            await remind()  # first: cheap, and a reminder is not held up by a slow generation
        await generate()
        # Then the cells no report needed: so that a district's or a province's first read is not the one
        # that groups the facts (a cold province-year over a million incidents takes seconds).
        await warm_cells(unit_of_work, hierarchy)

    def failed(exc: Exception) -> None:  # database away or a bug: say so, keep the loop alive
        log.warning("report generation failed; retrying next pass", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})

    await repeat(one_pass, pause=interval, failed=failed)



async def warm_cells(unit_of_work: Callable[[], UnitOfWork], hierarchy: Hierarchy, *, chunk: int = 10) -> int:
    """Compute and cache every stale cell, newest months first, a few communes per transaction (on SQLite the
    events wait for the one connection meanwhile). Returns how many cells were computed."""
    cell, cache = TallyCell, TallyCache
    async with unit_of_work() as uow:
        stale = (
            await uow.session.execute(
                select(cell.commune_code, cell.month)
                .outerjoin(cache, and_(cache.commune_code == cell.commune_code, cache.month == cell.month))
                .where(or_(cache.version.is_(None), cache.version != cell.version))
                .order_by(cell.month.desc(), cell.commune_code)
            )
        ).all()
    by_month: dict[date, list[str]] = {}
    for commune, month in stale:
        by_month.setdefault(month, []).append(commune)
    done = 0
    for month, communes in by_month.items():
        version = hierarchy.version_on(month) or hierarchy.versions[-1]
        for i in range(0, len(communes), chunk):
            part = tuple(communes[i : i + chunk])
            async with unit_of_work() as uow:
                await one_snapshot(uow.session)
                await cached_tallies(uow.session, [Coverage(version, month, periods.add_months(month, 1), part)])
            done += len(part)
    if done:
        log.info("cells warmed", extra={"cells": done})
    return done
