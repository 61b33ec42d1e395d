"""Reminders of the plan's reports (issue 18): `report.due` a set number of days before each due date, while the
commune's document for the period is not sent.

Once per commune, period and reminder: the marker row (report_reminder, unique on the three) is inserted in the
transaction that stages the event, so a restart or a second scheduler finds it and publishes nothing more. A
reminder whose day passed while the scheduler was down is not sent late once a nearer one is due: only the nearest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from shared.clock import Clock
from shared.db import dialect_insert
from shared.events import ReportDue
from shared.reference import Hierarchy
from shared.uow import UnitOfWork

from .models import ReportDocument, ReportReminder
from .periods import Period, PlanConfig, local_date, plan_period
from .reports import communes_existing
from .revisions import _lost_race, first_fact_day

log = logging.getLogger("baove.reporting")

PRODUCER = "reporting"


# -- pure rules --------------------------------------------------------------------------------


def reminders_due(plans: PlanConfig, today: date, days: Iterable[int]) -> list[tuple[Period, int]]:
    """(plan period, days before its due date) of the reminders due on `today`: the nearest reminder whose day has
    come, up to the due date itself; nothing once the due date is past."""
    days = sorted(set(days))
    found = []
    for year in (today.year, today.year + 1):
        for report in plans.reports:
            period = plan_period(year, report)
            assert period.due is not None
            come = [d for d in days if period.due - timedelta(days=d) <= today <= period.due]
            if come:
                found.append((period, min(come)))
    return sorted(found, key=lambda item: (item[0].due, item[0].id))


def document_status(rows: Iterable[tuple[int, str]]) -> str | None:
    """The status a reminder reports from the period's versions (version, status): none when nothing is drafted,
    None when a version was sent (no reminder then), else the current version's."""
    rows = sorted(rows)
    if any(status == "sent" for _, status in rows):
        return None
    return rows[-1][1] if rows else "none"


# -- the scheduler's pass -----------------------------------------------------------------------


async def remind_due_reports(
    unit_of_work: Callable[[], UnitOfWork], hierarchy: Hierarchy, plans: PlanConfig, days: Iterable[int], *, clock: Clock
) -> list[tuple[str, str, int]]:
    """Stage `report.due` for each commune whose reminder is due and not yet published; (commune, period, days before)."""
    now = clock()
    today = local_date(now)
    due = reminders_due(plans, today, days)
    made: list[tuple[str, str, int]] = []
    for period, days_before in due:
        assert period.due is not None
        try:
            async with unit_of_work() as uow:
                made += await _remind(uow, hierarchy, period, days_before, today, now)
        except DBAPIError as exc:
            if not _lost_race(exc):
                raise
            # Another scheduler published this batch first: its markers are there on the next pass.
    return made


async def _remind(uow: UnitOfWork, hierarchy: Hierarchy, period: Period, days_before: int, today: date, now) -> list[tuple[str, str, int]]:
    session = uow.session
    if await first_fact_day(session) is None:
        return []  # as the reports themselves: nothing before the read model holds any data
    d = ReportDocument
    versions: dict[str, list[tuple[int, str]]] = {}
    for commune, version, status in await session.execute(select(d.org_unit, d.version, d.status).where(d.period == period.id)):
        versions.setdefault(commune, []).append((version, status))
    statuses = {c: document_status(versions.get(c, ())) for c in communes_existing(hierarchy, period.start, period.end)}
    rows = [
        {"org_unit": c, "period": period.id, "days_before": days_before, "due": period.due, "status": s, "sent_at": now}
        for c, s in statuses.items()
        if s is not None
    ]
    if not rows:
        return []
    r = ReportReminder
    stmt = (
        dialect_insert(session)(r)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["org_unit", "period", "days_before"])
        .returning(r.org_unit, r.status)
    )
    inserted = sorted((await session.execute(stmt)).all())
    assert period.due is not None
    for commune, status in inserted:
        event = ReportDue(
            org_unit=commune, period=period.id, due=period.due, days_before=days_before,
            days_left=(period.due - today).days, status=status,
        )
        await uow.stage(event.envelope(correlation_id=f"report:{commune}:{period.id}", producer=PRODUCER, emitted_at=now))
    if inserted:
        log.info("report reminders published", extra={"period": period.id, "days_before": days_before, "communes": len(inserted)})
    return [(commune, period.id, days_before) for commune, _ in inserted]
