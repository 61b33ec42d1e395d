"""Summaries: the read model grouped per commune (through the cached commune-month cells), for whoever may see them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from shared.auth import Principal
from shared.db import on_postgresql
from shared.enums import AssignmentStatus, UnitType
from shared.errors import Forbidden, Invalid, NotFound
from shared.plans import COUNT_FIELDS
from shared.reference import Coverage, Hierarchy
from shared.workdays import WorkCalendar, load_calendar

from . import aggregates, cells, periods, reports
from .aggregates import (
    AckTime,
    ActivityGroup,
    CaseSteps,
    ChildGroup,
    ChildPlaceGroup,
    ClosedGroup,
    EscalationGroup,
    IncidentGroup,
    LateStepGroup,
    ProcessTally,
    ResponseGroup,
    Tally,
)
from .models import (
    ActivityFact,
    AssignmentFact,
    CareFact,
    ChildFact,
    EscalationFact,
    GeneratedReport,
    IncidentClosure,
    IncidentFact,
    IncidentLink,
    ReportDocument,
    StepFact,
    StepOverdueFact,
)
from .periods import Period, PlanConfig, as_utc, parse_period
from .reports import ReportStatus


def may_read_summaries(principal: Principal) -> bool:
    """Reports are for admins, district offices and each commune's focal point (cp_officer)."""
    return principal.kind in ("admin", "district") or principal.unit_type == UnitType.cp_officer



def in_scope(principal: Principal, hierarchy: Hierarchy, code: str) -> bool:
    """Admins see every unit; a district office its district and every commune it ever held; a cp_officer its commune."""
    if principal.is_admin:
        return True
    if principal.kind == "district":
        district = principal.district_code
        return code == district or any(code in v.communes_under(district) for v in hierarchy.versions)
    return code == principal.commune_code



def _window(commune: ColumnElement, day: ColumnElement, coverages: Sequence[Coverage]) -> ColumnElement:
    """Rows of a coverage's communes dated inside that coverage's [start, end)."""
    return or_(*(and_(commune.in_(c.communes), day >= c.start, day < c.end) for c in coverages))



def _is_closed() -> ColumnElement:
    """The case is closed: closed, and not reopened since."""
    x = IncidentClosure
    return and_(x.closed_at.is_not(None), or_(x.reopened_at.is_(None), x.closed_at > x.reopened_at))



def _supported(incident_id: ColumnElement) -> ColumnElement:
    """A unit took the case up: some assignment of the incident was acknowledged and is not declined."""
    a = AssignmentFact
    return exists().where(
        a.incident_id == incident_id, a.acknowledged_at.is_not(None), a.status != AssignmentStatus.declined.value
    )



async def tallies(session: AsyncSession, coverages: Sequence[Coverage]) -> dict[str, Tally]:
    """Group the read model by commune for the coverages, then fold the rows into tallies."""
    i, c, a, e, x = IncidentFact, ChildFact, AssignmentFact, EscalationFact, IncidentClosure
    in_window = _window(i.commune_code, i.local_date, coverages)
    closed = func.coalesce(_is_closed(), False)
    incidents = await session.execute(
        select(i.commune_code, i.category, i.urgency, i.channel, i.hamlet, closed, func.count())
        .outerjoin(x, x.incident_id == i.incident_id)
        .where(in_window)
        .group_by(i.commune_code, i.category, i.urgency, i.channel, i.hamlet, closed)
    )
    # A child counts once across reports linked as one (issue 17): a linked later report's children are the earlier one's.
    counted = c.incident_id.not_in(select(IncidentLink.incident_id))
    # Whether each child's case was taken up, worked out per row first: a correlated subquery cannot be grouped on.
    kids = (
        select(c.commune_code, c.category, c.sex, c.age_band, c.special_circumstances, _supported(c.incident_id).label("supported"))
        .where(_window(c.commune_code, c.local_date, coverages), counted)
        .subquery()
    )
    child_keys = (kids.c.commune_code, kids.c.category, kids.c.sex, kids.c.age_band, kids.c.special_circumstances, kids.c.supported)
    children = await session.execute(select(*child_keys[:5], func.count(), child_keys[5]).group_by(*child_keys))
    child_places = await session.execute(
        select(i.commune_code, i.urgency, i.channel, i.hamlet, func.count())
        .select_from(c)
        .join(i, i.incident_id == c.incident_id)
        .where(in_window, counted)
        .group_by(i.commune_code, i.urgency, i.channel, i.hamlet)
    )
    within = and_(a.acknowledged_at.is_not(None), a.due_at.is_not(None), a.acknowledged_at <= a.due_at)
    responses = await session.execute(
        select(
            i.commune_code,
            a.unit_type,
            func.count(),
            func.count(a.acknowledged_at),
            func.sum(case((within, 1), else_=0)),
            func.sum(case((a.overdue, 1), else_=0)),
        )
        .join(i, i.incident_id == a.incident_id)
        .where(in_window)
        .group_by(i.commune_code, a.unit_type)
    )
    # The median needs every wait, not a count: one row per acknowledged assignment.
    waits = await session.execute(
        select(i.commune_code, a.unit_type, a.assigned_at, a.acknowledged_at)
        .join(i, i.incident_id == a.incident_id)
        .where(in_window, a.assigned_at.is_not(None), a.acknowledged_at.is_not(None))
    )
    escalations = await session.execute(
        select(i.commune_code, a.unit_type, func.count())
        .select_from(e)
        .join(a, a.assignment_id == e.assignment_id)
        .join(i, i.incident_id == e.incident_id)
        .where(in_window)
        .group_by(i.commune_code, a.unit_type)
    )
    return aggregates.tally_by_commune(
        [IncidentGroup(r[0], r[1], r[2], r[3], r[4], bool(r[5]), int(r[6])) for r in incidents],
        [ChildGroup(r[0], r[1], r[2], r[3], r[4], int(r[5]), bool(r[6])) for r in children],
        [ResponseGroup(r[0], r[1], int(r[2]), int(r[3]), int(r[4] or 0), int(r[5] or 0)) for r in responses],
        [AckTime(r[0], r[1], (r[3] - r[2]).total_seconds()) for r in waits],
        [EscalationGroup(r[0], r[1], int(r[2])) for r in escalations],
        [ChildPlaceGroup(r[0], r[1], r[2], r[3], int(r[4])) for r in child_places],
    )



async def cached_tallies(session: AsyncSession, coverages: Sequence[Coverage]) -> dict[str, Tally]:
    """`tallies` by way of the commune-month cells: cached ones whose version still matches, the rest recomputed and cached."""
    parts = cells.split(coverages)
    sums: dict[str, cells.Sum] = {}

    def add(commune: str, stored: cells.Stored) -> None:
        sums.setdefault(commune, cells.Sum()).add(stored)

    if parts.partial:
        for commune, tally in (await tallies(session, parts.partial)).items():
            add(commune, cells.encode(tally))
    current = await cells.versions(session, parts.cells)  # a cell without a version has no facts
    stored = await cells.cached(session, [cell for cell in parts.cells if cell in current])
    stale: dict[date, list[str]] = {}
    for commune, month in parts.cells:
        version = current.get((commune, month))
        if version is None:
            continue
        hit = stored.get((commune, month))
        if hit is not None and hit[0] == version and cells.readable(hit[1]):
            add(commune, hit[1])
        else:
            stale.setdefault(month, []).append(commune)
    fresh = []
    for month, communes in stale.items():
        window = Coverage(coverages[0].version, month, periods.add_months(month, 1), tuple(communes))
        counted = await tallies(session, [window])
        for commune in communes:
            stored = cells.encode(counted.get(commune, Tally()))
            fresh.append((commune, month, current[(commune, month)], stored))
            add(commune, stored)
    await cells.store(session, fresh)
    return {commune: total.tally() for commune, total in sums.items()}



async def activity_groups(session: AsyncSession, coverages: Sequence[Coverage]) -> list[ActivityGroup]:
    """Activities not withdrawn, held inside the coverages, summed per commune, unit, task and kind."""
    a = ActivityFact
    keys = (a.commune_code, a.unit_id, a.unit_type, a.task_id, a.kind)
    rows = await session.execute(
        select(*keys, func.count(), *(func.sum(getattr(a, f)) for f in COUNT_FIELDS))
        .where(_window(a.commune_code, a.local_date, coverages), a.withdrawn.is_(False))
        .group_by(*keys)
    )
    return [ActivityGroup(*r[:5], int(r[5]), tuple(int(v or 0) for v in r[6:])) for r in rows]



# The working days the plan's deadline counts: the holidays file routing counts them with (BAOVE_HOLIDAYS_FILE);
# app.py sets it from the settings, the default is the file shipped.
_calendar: WorkCalendar | None = None


def use_calendar(calendar: WorkCalendar) -> None:
    global _calendar
    _calendar = calendar


def calendar() -> WorkCalendar:
    return _calendar or load_calendar()


def _overlaps(commune: ColumnElement, first: ColumnElement, last: ColumnElement, coverages: Sequence[Coverage]) -> ColumnElement:
    """Rows of a coverage's communes whose days [first, last] (inclusive) meet that coverage's [start, end)."""
    return or_(*(and_(commune.in_(c.communes), first < c.end, last >= c.start) for c in coverages))


async def process_tallies(session: AsyncSession, coverages: Sequence[Coverage]) -> dict[str, ProcessTally]:
    """The case process's counts per commune (issue 17), read from the facts directly (they are few: one row per case
    that reached a step), not through the cells."""
    i, st, late, x = IncidentFact, StepFact, StepOverdueFact, IncidentClosure
    in_window = _window(i.commune_code, i.local_date, coverages)
    assessed = st.__table__.alias("assessed")
    planned = st.__table__.alias("planned")
    cases = await session.execute(
        select(i.commune_code, i.received_at, assessed.c.first_at, planned.c.first_at)
        .outerjoin(assessed, and_(assessed.c.incident_id == i.incident_id, assessed.c.step == "initial_assessment"))
        .outerjoin(planned, and_(planned.c.incident_id == i.incident_id, planned.c.step == "plan"))
        .where(in_window, or_(assessed.c.first_at.is_not(None), planned.c.first_at.is_not(None)))
    )
    closed = await session.execute(
        select(i.commune_code, x.risk_level, func.count())
        .join(x, x.incident_id == i.incident_id)
        .where(in_window, _is_closed())
        .group_by(i.commune_code, x.risk_level)
    )
    late_steps = await session.execute(
        select(i.commune_code, late.step, func.count())
        .join(late, late.incident_id == i.incident_id)
        .where(in_window)
        .group_by(i.commune_code, late.step)
    )
    # Temporary care: a case whose care days meet the period. Linked reports are one case (the earliest report's),
    # whose children are counted once: the earlier report's.
    cf, link = CareFact, IncidentLink
    care = await session.execute(
        select(cf.commune_code, func.coalesce(link.linked_to, cf.incident_id))
        .outerjoin(link, link.incident_id == cf.incident_id)
        .where(_overlaps(cf.commune_code, cf.starts_on, cf.ends_on, coverages))
    )
    roots: dict[str, set[str]] = {}
    for commune, root in care:
        roots.setdefault(commune, set()).add(root)
    children: dict[str, int] = {}
    every_root = sorted(set().union(*roots.values())) if roots else []
    if every_root:
        c = ChildFact
        found = await session.execute(select(c.incident_id, func.count()).where(c.incident_id.in_(every_root)).group_by(c.incident_id))
        children = {incident_id: int(n) for incident_id, n in found}
    return aggregates.process_by_commune(
        [CaseSteps(r[0], as_utc(r[1]), as_utc(r[2]) if r[2] else None, as_utc(r[3]) if r[3] else None) for r in cases],
        calendar(),
        [ClosedGroup(r[0], r[1], int(r[2])) for r in closed],
        [LateStepGroup(r[0], r[1], int(r[2])) for r in late_steps],
        [(commune, len(ids), sum(children.get(r, 0) for r in ids)) for commune, ids in roots.items()],
    )



async def one_snapshot(session: AsyncSession) -> None:
    if on_postgresql(session):
        # One snapshot for all the queries, so the breakdowns agree with each other while events keep arriving.
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})



async def compute_summary(
    session: AsyncSession,
    hierarchy: Hierarchy,
    org_unit: str,
    period: Period,
    as_of: datetime,
    coverages: Sequence[Coverage] | None = None,
) -> dict:
    """The indicators of an org unit for a period (or the parts of it in `coverages`) as the read model holds them now
    (no access check)."""
    if coverages is None:
        coverages = hierarchy.coverage(org_unit, period.start, period.end)
    counted = await cached_tallies(session, coverages) if coverages else {}
    activities = await activity_groups(session, coverages) if coverages else []
    process = await process_tallies(session, coverages) if coverages else {}
    return aggregates.build_summary(hierarchy, org_unit, period, coverages, counted, as_of, activities, process)



def check_access(hierarchy: Hierarchy, org_unit: str, principal: Principal) -> None:
    if not may_read_summaries(principal):
        raise Forbidden(f"{principal.label} may not read summaries: they are for cp_officer, district offices and admins")
    if hierarchy.unit(org_unit) is None:
        raise NotFound(f"org unit {org_unit!r} is not in the administrative hierarchy")
    if not in_scope(principal, hierarchy, org_unit):
        # NotFound rather than Forbidden: outside its scope a token learns nothing, not even that data exists.
        raise NotFound(f"org unit {org_unit!r} not found among the units this token may see")



def district_share(hierarchy: Hierarchy, org_unit: str, period: Period, principal: Principal) -> list[Coverage] | None:
    """The parts of the period a district office may read of a commune: the days the commune belonged to it.

    None when the principal is not a district office reading another unit (then the whole period counts). A period with
    no such day is refused; a period straddling the change is cut to the days the commune was the district's, and the
    summary's `hierarchy_version` says which.
    """
    district = principal.district_code if principal.kind == "district" else None
    if district is None or org_unit == district:
        return None
    share = [c for c in hierarchy.coverage(org_unit, period.start, period.end) if org_unit in c.version.communes_under(district)]
    if not share:
        held = [v for v in hierarchy.versions if org_unit in v.communes_under(district)]
        days = "; ".join(f"{v.valid_from} to {v.valid_to or 'today'}" for v in held) or "no day"
        raise Forbidden(
            f"district {district} may read {org_unit} only for the days it belonged to the district ({days}); "
            f"period {period.id} ({period.start} to {period.last_day}) has none of them"
        )
    return share


def period_of(period_id: str, plans: PlanConfig) -> Period:
    try:
        return parse_period(period_id, plans)
    except ValueError as exc:
        raise Invalid([{"loc": ["query", "period"], "msg": str(exc), "type": "value_error"}]) from None



async def summary(
    session: AsyncSession,
    hierarchy: Hierarchy,
    plans: PlanConfig,
    org_unit: str,
    period_id: str,
    principal: Principal,
    as_of: datetime,
) -> dict:
    """The indicators of an org unit for a period, as far as the principal may see them.

    For a plan period it also says which revision of each commune's generated report exists, and when it was produced.
    """
    check_access(hierarchy, org_unit, principal)
    period = period_of(period_id, plans)
    share = district_share(hierarchy, org_unit, period, principal)
    await one_snapshot(session)
    result = await compute_summary(session, hierarchy, org_unit, period, as_of, share)
    if period.kind == "plan":
        communes = aggregates.communes_of(share or hierarchy.coverage(org_unit, period.start, period.end))
        reports.attach(result, await report_statuses(session, communes, period, periods.local_date(as_of)))
    return result  # the cells cached on the way are committed with the caller's unit of work



async def document_states(session: AsyncSession, communes: Sequence[str], period_id: str) -> dict[str, tuple[str, int, datetime | None]]:
    """Per commune: its report document's latest version (status, number), and when a version was first sent."""
    d = ReportDocument
    latest = (
        select(d.org_unit, func.max(d.version).label("version"), func.min(d.sent_at).label("first_sent"))
        .where(d.org_unit.in_(communes), d.period == period_id)
        .group_by(d.org_unit)
        .subquery()
    )
    rows = await session.execute(
        select(d.org_unit, d.status, d.version, latest.c.first_sent)
        .join(latest, and_(d.org_unit == latest.c.org_unit, d.version == latest.c.version))
        .where(d.period == period_id)
    )
    return {r[0]: (r[1], r[2], aware_or_none(r[3])) for r in rows}


async def report_statuses(
    session: AsyncSession, communes: Sequence[str], period: Period, today: date | None = None
) -> dict[str, ReportStatus]:
    """Each commune's report for a plan period: how many revisions, when first and last produced; its document's
    status and when it was first sent."""
    report = GeneratedReport
    rows = (
        await session.execute(
            select(report.org_unit, func.count(), func.min(report.produced_at), func.max(report.produced_at), func.max(report.as_of))
            .where(report.org_unit.in_(communes), report.period == period.id)
            .group_by(report.org_unit)
        )
    ).all()
    found = {r[0]: r for r in rows}
    documents = await document_states(session, communes, period.id)
    assert period.due is not None
    statuses = {}
    for commune in communes:
        r = found.get(commune)
        doc = documents.get(commune)
        statuses[commune] = ReportStatus(
            commune,
            int(r[1]) if r else 0,
            aware_or_none(r[2]) if r else None,
            aware_or_none(r[3]) if r else None,
            aware_or_none(r[4]) if r else None,
            period.due,
            document_status=doc[0] if doc else None,
            document_version=doc[1] if doc else None,
            first_sent_at=doc[2] if doc else None,
            today=today,
        )
    return statuses



def aware_or_none(value: datetime | None) -> datetime | None:
    # Aggregates (min, max) bypass the column type on SQLite and come back naive: they are UTC.
    return None if value is None else as_utc(value)
