"""Generated reports: the next revision of a commune's plan-period report when its numbers change, and reading them."""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timedelta

from sqlalchemy import and_, func, or_, select, union_all, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal
from shared.clock import Clock
from shared.cursor import decode_cursor, encode_cursor
from shared.db import dialect_insert, utcnow
from shared.errors import Forbidden, Invalid, NotFound
from shared.events import ReportGenerated
from shared.metrics import ReportingMetrics
from shared.reference import Hierarchy
from shared.runtime import Runtime
from shared.uow import UnitOfWork

from . import reports
from .models import (
    ActivityFact,
    AssignmentFact,
    CareFact,
    EscalationFact,
    GeneratedReport,
    IncidentClosure,
    IncidentFact,
    IncidentLink,
    StepFact,
    StepOverdueFact,
)
from .periods import PlanConfig, local_date
from .reports import DayChange, DueReport, LatestRevision
from .summaries import aware_or_none, check_access, compute_summary, district_share, one_snapshot, period_of

log = logging.getLogger("baove.reporting")

PRODUCER = "reporting"



async def first_fact_day(session: AsyncSession) -> date | None:
    """The earliest day of any incident or activity: reports are due from then on."""
    days = [(await session.execute(select(func.min(m.local_date)))).scalar_one_or_none() for m in (IncidentFact, ActivityFact)]
    return min((d for d in days if d is not None), default=None)



async def latest_revisions(session: AsyncSession) -> dict[tuple[str, str], LatestRevision]:
    report = GeneratedReport
    newest = select(report.org_unit, report.period, func.max(report.revision).label("revision")).group_by(report.org_unit, report.period).subquery()
    rows = await session.execute(
        select(report.org_unit, report.period, report.revision, report.as_of, report.checked_at).join(
            newest, and_(report.org_unit == newest.c.org_unit, report.period == newest.c.period, report.revision == newest.c.revision)
        )
    )
    return {(r[0], r[1]): LatestRevision(r[2], r[3], r[4]) for r in rows}



async def changed_days(session: AsyncSession, since: datetime) -> list[DayChange]:
    """Communes and dates whose facts were written after `since`: incidents, assignments, escalations, closures, links,
    activities, process steps; a temporary care changes the periods of its first and its last day."""
    i, act, care = IncidentFact, ActivityFact, CareFact
    sources = [
        select(i.commune_code, i.local_date, i.ingested_at.label("at")).where(i.ingested_at > since),
        select(act.commune_code, act.local_date, act.ingested_at.label("at")).where(act.ingested_at > since),
        select(care.commune_code, care.starts_on, care.ingested_at.label("at")).where(care.ingested_at > since),
        select(care.commune_code, care.ends_on, care.ingested_at.label("at")).where(care.ingested_at > since),
    ]
    for model in (AssignmentFact, EscalationFact, IncidentClosure, IncidentLink, StepFact, StepOverdueFact):
        sources.append(
            select(i.commune_code, i.local_date, model.ingested_at.label("at"))
            .join(i, i.incident_id == model.incident_id)
            .where(model.ingested_at > since)
        )
    changed = union_all(*sources).subquery()
    rows = await session.execute(
        select(changed.c.commune_code, changed.c.local_date, func.max(changed.c.at)).group_by(
            changed.c.commune_code, changed.c.local_date
        )
    )
    return [DayChange(r[0], r[1], aware_or_none(r[2])) for r in rows]



def _lost_race(exc: DBAPIError) -> bool:
    """PostgreSQL's serialization failure: another replica wrote the same revision first."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code == "40001"



async def generate_report(
    uow: UnitOfWork, hierarchy: Hierarchy, due: DueReport, latest: LatestRevision | None, clock: Clock
) -> GeneratedReport | None:
    """Store the next revision of one report and stage `report.generated`, if its numbers changed; in the caller's unit of work."""
    session = uow.session
    await one_snapshot(session)
    as_of = clock()
    fresh = await compute_summary(session, hierarchy, due.commune, due.period, as_of)
    report = GeneratedReport
    if latest is not None:
        stored = (
            await session.execute(
                select(report.id, report.summary).where(report.org_unit == due.commune, report.period == due.period.id, report.revision == latest.revision)
            )
        ).one()
        if reports.same_numbers(stored.summary, fresh):
            await session.execute(update(report).where(report.id == stored.id, report.checked_at < as_of).values(checked_at=as_of))
            return None
    assert due.period.due is not None
    produced_at = clock()
    indicators = fresh["indicators"] or {}
    values = {
        "org_unit": due.commune,
        "period": due.period.id,
        "revision": latest.revision + 1 if latest else 1,
        "as_of": as_of,
        "due_date": due.period.due,
        "produced_at": produced_at,
        "on_time": reports.on_time(produced_at, due.period.due),
        "checked_at": as_of,
        "incidents_total": indicators.get("incidents_total", 0),
        "children_total": indicators.get("children_total", 0),
        "summary": reports.as_json(fresh),
    }
    stmt = dialect_insert(session)(GeneratedReport.__table__).values(values).on_conflict_do_nothing(index_elements=["org_unit", "period", "revision"])
    if (await session.execute(stmt)).rowcount != 1:
        return None  # another replica stored this revision first
    event = ReportGenerated(org_unit=due.commune, period=due.period.id, revision=values["revision"], as_of=as_of)
    await uow.stage(event.envelope(correlation_id=f"report:{due.commune}:{due.period.id}", producer=PRODUCER, emitted_at=produced_at))
    return GeneratedReport(**values)



async def generate_due_reports(
    runtime: Runtime,
    hierarchy: Hierarchy,
    plans: PlanConfig,
    *,
    clock: Clock = utcnow,
    settle: timedelta = timedelta(minutes=2),
    metrics: ReportingMetrics | None = None,
) -> list[GeneratedReport]:
    """One pass of the scheduler: every closed plan period's report per commune, first revision or a newer one."""
    now = clock()
    async with runtime.unit_of_work() as uow:
        session = uow.session
        due = reports.due_reports(hierarchy, plans, local_date(now), await first_fact_day(session))
        latest = await latest_revisions(session) if due else {}
        checked = [r.checked_at for r in latest.values()]
        changes = await changed_days(session, min(checked) - settle) if checked else []
    made: list[GeneratedReport] = []
    for item in due:
        key = (item.commune, item.period.id)
        step = reports.next_step(latest.get(key), reports.last_change(changes, item.commune, item.period), settle)
        if step == "none":
            continue
        started = time.perf_counter()
        try:
            async with runtime.unit_of_work() as uow:
                row = await generate_report(uow, hierarchy, item, latest.get(key), clock)
        except DBAPIError as exc:
            if not _lost_race(exc):
                raise
            continue
        if metrics is not None:
            metrics.generation_seconds.labels("report").observe(time.perf_counter() - started)
        if row is not None:
            made.append(row)
            log.info(
                "report generated",
                extra={"org_unit": row.org_unit, "period": row.period, "revision": row.revision, "on_time": row.on_time},
            )
    return made



def communes_in_scope(hierarchy: Hierarchy, org_unit: str) -> list[str]:
    """The communes a unit held in any hierarchy version."""
    return sorted({c for version in hierarchy.versions for c in version.communes_under(org_unit)})



async def list_reports(
    session: AsyncSession,
    hierarchy: Hierarchy,
    plans: PlanConfig,
    org_unit: str,
    principal: Principal,
    *,
    period_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[GeneratedReport], str | None]:
    """The generated revisions of a commune, or of every commune a district or province held; newest first."""
    check_access(hierarchy, org_unit, principal)
    report = GeneratedReport
    before = decode_cursor(cursor, id=int)["id"] if cursor is not None else None
    communes = communes_in_scope(hierarchy, org_unit)
    stmt = select(report).where(report.org_unit.in_(communes))
    if period_id is not None:
        period = period_of(period_id, plans)
        district_share(hierarchy, org_unit, period, principal)
        stmt = stmt.where(report.period == period.id)
    if principal.kind == "district":
        # Like the single-period read: a district office sees a commune's reports only of periods with a day on which
        # the commune was the district's (694 does not list 25349's 2026 reports, made after districts were abolished).
        pairs = (await session.execute(select(report.org_unit, report.period).where(report.org_unit.in_(communes)).distinct())).all()
        readable = [and_(report.org_unit == c, report.period == p) for c, p in pairs if _district_reads(hierarchy, plans, c, p, principal)]
        if not readable:
            return [], None
        stmt = stmt.where(or_(*readable))
    if before is not None:
        stmt = stmt.where(report.id < before)
    rows = list((await session.execute(stmt.order_by(report.id.desc()).limit(limit + 1))).scalars())
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor({"id": rows[-1].id})
    return rows, None



def _district_reads(hierarchy: Hierarchy, plans: PlanConfig, commune: str, period_id: str, principal: Principal) -> bool:
    """Whether a district office may read this commune's report of this period (district_share allows it)."""
    try:
        district_share(hierarchy, commune, period_of(period_id, plans), principal)
    except (Forbidden, Invalid):  # a period the plan no longer names is not shown to a district either
        return False
    return True



async def read_report(
    session: AsyncSession,
    hierarchy: Hierarchy,
    plans: PlanConfig,
    org_unit: str,
    period_id: str,
    revision: int | None,
    principal: Principal,
) -> GeneratedReport:
    """One stored revision (the latest when `revision` is None) of a commune's report."""
    check_access(hierarchy, org_unit, principal)
    period = period_of(period_id, plans)
    district_share(hierarchy, org_unit, period, principal)
    report = GeneratedReport
    stmt = select(report).where(report.org_unit == org_unit, report.period == period.id)
    stmt = stmt.where(report.revision == revision) if revision is not None else stmt.order_by(report.revision.desc()).limit(1)
    row = (await session.execute(stmt)).scalars().first()
    if row is None:
        which = f"revision {revision}" if revision is not None else "any revision"
        raise NotFound(f"no generated report of {org_unit} for {period.id} ({which})")
    return row



def report_read(row: GeneratedReport, *, with_summary: bool) -> dict:
    """A stored revision: when and how it was produced, and (when asked) the summary of its moment."""
    out = {
        "org_unit": row.org_unit,
        "period": row.period,
        "revision": row.revision,
        "as_of": row.as_of,
        "due": row.due_date,
        "produced_at": row.produced_at,
        "on_time": row.on_time,
        "incidents_total": row.incidents_total,
        "children_total": row.children_total,
    }
    if with_summary:
        out["summary"] = {**row.summary, "revision": row.revision}
    return out
