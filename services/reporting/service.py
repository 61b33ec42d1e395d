"""Reporting's use cases: keep the read model from the events, summarise it per org unit and period,
and generate each commune's plan-period reports (with a new revision when late events change them)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import Table, and_, case, exists, func, or_, select, union_all, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from shared.auth import Principal, parse_unit_id
from shared.errors import Forbidden, Invalid, NotFound
from shared.db import utcnow
from shared.enums import AssignmentStatus, UnitType
from shared.events import (
    AssignmentAcknowledged,
    AssignmentOverdue,
    AssignmentStatusChanged,
    Envelope,
    Event,
    IncidentClosed,
    IncidentEscalated,
    IncidentFacts,
    IncidentReopened,
    IncidentReported,
    IncidentRouted,
    ReportGenerated,
)
from shared.metrics import ReportingMetrics
from shared.reference import Coverage, Hierarchy
from shared.runtime import Runtime
from shared.uow import UnitOfWork

from . import aggregates, cells, periods, reports
from .aggregates import AckTime, ChildGroup, ChildPlaceGroup, EscalationGroup, IncidentGroup, ResponseGroup, Tally
from .models import AssignmentFact, ChildFact, EscalationFact, GeneratedReport, IncidentClosure, IncidentFact, TallyCache, TallyCell
from .periods import Period, PlanConfig, as_utc, local_date, parse_period
from .reports import DayChange, DueReport, LatestRevision, ReportStatus

log = logging.getLogger("baove.reporting")

PRODUCER = "reporting"
ADVISORY_NAMESPACE = 0x62617276  # pg_advisory_xact_lock(namespace, hash of the incident id)
Clock = Callable[[], datetime]


# -- pure ------------------------------------------------------------------------------


def hamlet_of(facts: IncidentFacts) -> str | None:
    """The hamlet's unit id if it is one of this commune's; anything else could be an address, and is dropped."""
    if facts.hamlet is None:
        return None
    try:
        commune, unit_type, _ = parse_unit_id(facts.hamlet)
    except ValueError:
        return None
    return facts.hamlet if unit_type == UnitType.hamlet and commune == facts.commune_code else None


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


# -- the read model consumer -------------------------------------------------------------


def _insert(session: AsyncSession, table):
    return (pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert)(table)


def _newest_status(table: Table, new: ReadOnlyColumnCollection) -> dict[str, ColumnElement]:
    """Keep whichever status is newer, so a late `incident.routed` cannot undo an acknowledgement."""
    newer = or_(table.c.status_at.is_(None), and_(new.status_at.is_not(None), new.status_at >= table.c.status_at))
    return {
        "status": case((newer, new.status), else_=table.c.status),
        "status_at": case((newer, new.status_at), else_=table.c.status_at),
    }


Update = Callable[[Table, ReadOnlyColumnCollection], dict[str, ColumnElement]]


def _routed_update(t: Table, new: ReadOnlyColumnCollection) -> dict[str, ColumnElement]:
    # An acknowledgement that came first carries routing's own assigned_at and due_at: keep them.
    return {
        "assigned_at": func.coalesce(t.c.assigned_at, new.assigned_at),
        "due_at": func.coalesce(t.c.due_at, new.due_at),
        **_newest_status(t, new),
    }


def _acknowledged_update(t: Table, new: ReadOnlyColumnCollection) -> dict[str, ColumnElement]:
    return {
        "assigned_at": new.assigned_at,
        "due_at": new.due_at,
        "acknowledged_at": func.coalesce(t.c.acknowledged_at, new.acknowledged_at),
        **_newest_status(t, new),
    }


def _overdue_update(t: Table, new: ReadOnlyColumnCollection) -> dict[str, ColumnElement]:
    return {"due_at": func.coalesce(t.c.due_at, new.due_at), "overdue": True}


# Built once per dialect, update rule and column set: the hot path only binds values.
_UPSERTS: dict[tuple[str, str, tuple[str, ...]], object] = {}


async def _upsert_assignments(session: AsyncSession, rows: list[dict], update: Update, now: datetime) -> None:
    """Insert assignments, or merge each into the row an earlier (or later-sent) event made; `update` sees old and new."""
    rows = [{"overdue": False, **row, "ingested_at": now} for row in rows]
    dialect = session.bind.dialect.name
    key = (dialect, update.__qualname__, tuple(sorted(rows[0])))
    stmt = _UPSERTS.get(key)
    if stmt is None:
        table = AssignmentFact.__table__
        insert = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
        merged = {**update(table, insert.excluded), "ingested_at": insert.excluded.ingested_at}
        stmt = _UPSERTS[key] = insert.on_conflict_do_update(index_elements=["assignment_id"], set_=merged)
    await session.execute(stmt, rows)


def _assignment_keys(event: AssignmentAcknowledged | AssignmentStatusChanged | AssignmentOverdue) -> dict:
    return {
        "assignment_id": event.assignment_id,
        "incident_id": event.incident_id,
        "unit_type": event.unit_type,
        "role": event.role.value,
    }


def _reported_rows(event: IncidentReported, now: datetime) -> tuple[dict, list[dict]]:
    """The incident's facts and its children's codes; `event.case` (the personal part) is never read."""
    facts = event.facts
    effective_at = as_utc(facts.occurred_at or facts.received_at)
    day = local_date(effective_at)
    incident = {
        "incident_id": event.incident_id,
        "commune_code": facts.commune_code,
        "hamlet": hamlet_of(facts),
        "category": facts.category.value,
        "urgency": facts.urgency.value,
        "channel": facts.channel.value,
        "occurred_at": as_utc(facts.occurred_at) if facts.occurred_at else None,
        "received_at": as_utc(facts.received_at),
        "effective_at": effective_at,
        "local_date": day,
        "ingested_at": now,
    }
    children = [
        {
            "incident_id": event.incident_id,
            "ordinal": i,
            "commune_code": facts.commune_code,
            "local_date": day,
            "category": facts.category.value,
            "sex": child.sex.value,
            "age_band": child.age_band.value,
            "special_circumstances": aggregates.join_circumstances(child.special_circumstances),
        }
        for i, child in enumerate(facts.children)
    ]
    return incident, children


async def _record_reported(session: AsyncSession, events: list[IncidentReported], now: datetime) -> dict[str, tuple[str, date]]:
    """Insert new incidents with their children; an incident already here (a producer's retry) is left alone.

    Returns the incidents inserted, with their cell (commune, day)."""
    rows = {e.incident_id: _reported_rows(e, now) for e in events}
    stmt = (
        _insert(session, IncidentFact.__table__)
        .values([incident for incident, _ in rows.values()])
        .on_conflict_do_nothing(index_elements=["incident_id"])
        .returning(IncidentFact.__table__.c.incident_id)
    )
    inserted = set((await session.execute(stmt)).scalars())
    children = [child for incident_id in inserted for child in rows[incident_id][1]]
    if children:
        await session.execute(ChildFact.__table__.insert(), children)
    return {i: (rows[i][0]["commune_code"], rows[i][0]["local_date"]) for i in inserted}


def _routed_rows(event: IncidentRouted, emitted_at: datetime) -> list[dict]:
    assigned_at = as_utc(emitted_at)
    return [
        {
            "assignment_id": a.assignment_id,
            "incident_id": event.incident_id,
            "unit_type": a.unit_type,
            "role": a.role.value,
            "assigned_at": assigned_at,
            "due_at": as_utc(a.due_at),
            "status": AssignmentStatus.pending.value,
            "status_at": assigned_at,
        }
        for a in event.assignments
    ]


def _acknowledged_row(event: AssignmentAcknowledged) -> dict:
    at = as_utc(event.at)
    return {
        **_assignment_keys(event),
        "assigned_at": as_utc(event.assigned_at),
        "due_at": as_utc(event.due_at),
        "acknowledged_at": at,
        "status": AssignmentStatus.acknowledged.value,
        "status_at": at,
    }


def _status_row(event: AssignmentStatusChanged) -> dict:
    return {**_assignment_keys(event), "status": event.to_status.value, "status_at": as_utc(event.at)}


def _overdue_row(event: AssignmentOverdue) -> dict:
    # No status_at: this placeholder status loses to any status routing reports, earlier or later.
    return {**_assignment_keys(event), "due_at": as_utc(event.due_at), "status": AssignmentStatus.pending.value, "overdue": True}


async def _record_escalations(session: AsyncSession, rows: list[dict]) -> None:
    stmt = _insert(session, EscalationFact.__table__).on_conflict_do_nothing(index_elements=["event_id"])
    await session.execute(stmt, rows)


async def _record_closures(session: AsyncSession, column: str, rows: list[dict]) -> None:
    """Keep the latest closing and the latest reopening; which is later decides, whatever the arrival order."""
    table = IncidentClosure.__table__
    stmt = _insert(session, table)
    old, new = table.c[column], stmt.excluded[column]
    latest = case((or_(old.is_(None), new > old), new), else_=old)
    stmt = stmt.on_conflict_do_update(index_elements=["incident_id"], set_={column: latest, "ingested_at": stmt.excluded.ingested_at})
    await session.execute(stmt, rows)


async def _lock_incidents(session: AsyncSession, incident_ids: set[str]) -> None:
    """PostgreSQL: the events of one incident fold one transaction at a time across replicas, so that a fact
    arriving before its incident.reported cannot slip past the cell versions (see cells.py). Sorted: no deadlock."""
    for incident_id in sorted(incident_ids):
        await session.execute(select(func.pg_advisory_xact_lock(ADVISORY_NAMESPACE, func.hashtext(incident_id))))


async def handle_events(session: AsyncSession, items: Sequence[tuple[Event, Envelope]], *, clock: Clock = utcnow) -> list[Envelope]:
    """Fold events into the read model, a statement per kind of fact rather than per event.

    The runtime has deduplicated them and holds the transaction. Any order of events gives the same
    read model (each upsert keeps the newest status, the first acknowledgement, the latest closing), so
    a batch is folded kind by kind.
    """
    now = clock()
    reported: list[IncidentReported] = []
    assignments: dict[str, list[dict]] = {"routed": [], "acknowledged": [], "status": [], "overdue": []}
    escalations: list[dict] = []
    closures: dict[str, list[dict]] = {"closed_at": [], "reopened_at": []}
    touched: set[str] = set()
    for event, envelope in items:
        if isinstance(event, IncidentReported):
            reported.append(event)
        elif isinstance(event, IncidentRouted):
            assignments["routed"].extend(_routed_rows(event, envelope.emitted_at))
        elif isinstance(event, AssignmentAcknowledged):
            assignments["acknowledged"].append(_acknowledged_row(event))
        elif isinstance(event, AssignmentStatusChanged):
            assignments["status"].append(_status_row(event))
        elif isinstance(event, AssignmentOverdue):
            assignments["overdue"].append(_overdue_row(event))
        elif isinstance(event, IncidentEscalated):
            escalations.append(
                {
                    "event_id": str(envelope.event_id),
                    "incident_id": event.incident_id,
                    "assignment_id": event.overdue_assignment_id,
                    "escalated_at": as_utc(event.at),
                    "ingested_at": now,
                }
            )
        elif isinstance(event, (IncidentClosed, IncidentReopened)):
            column = "closed_at" if isinstance(event, IncidentClosed) else "reopened_at"
            closures[column].append({"incident_id": event.incident_id, column: as_utc(event.at), "ingested_at": now})
        else:
            continue  # report.generated and anything newer: not a fact of the read model
        touched.add(event.incident_id)
        log.debug("event folded", extra={"event_type": envelope.event_type, "event_id": str(envelope.event_id)})
    if not touched:
        return []
    if session.bind.dialect.name == "postgresql":
        await _lock_incidents(session, touched)
    changed: set[tuple[str, date]] = set()
    inserted: dict[str, tuple[str, date]] = {}
    if reported:
        inserted = await _record_reported(session, reported, now)
        changed |= set(inserted.values())
    for kind, update in (
        ("routed", _routed_update),
        ("acknowledged", _acknowledged_update),
        ("status", _newest_status),
        ("overdue", _overdue_update),
    ):
        if assignments[kind]:
            await _upsert_assignments(session, assignments[kind], update, now)
    if escalations:
        await _record_escalations(session, escalations)
    for column, rows in closures.items():
        if rows:
            await _record_closures(session, column, rows)
    # Every cell holding a touched incident changed (an incident not here yet counts nowhere yet).
    # (An incident.reported that found its incident already here is a retry: its other facts still count.)
    others = touched - set(inserted)
    if others:
        i = IncidentFact
        found = await session.execute(select(i.commune_code, i.local_date).where(i.incident_id.in_(sorted(others))))
        changed |= {(commune, day) for commune, day in found}
    await cells.bump_many(session, changed)
    return []


async def handle_event(session: AsyncSession, event: Event, envelope: Envelope, *, clock: Clock = utcnow) -> list[Envelope]:
    """Fold one event (a batch of one)."""
    return await handle_events(session, [(event, envelope)], clock=clock)


# -- summaries --------------------------------------------------------------------------------


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
    # Whether each child's case was taken up, worked out per row first: a correlated subquery cannot be grouped on.
    kids = (
        select(c.commune_code, c.category, c.sex, c.age_band, c.special_circumstances, _supported(c.incident_id).label("supported"))
        .where(_window(c.commune_code, c.local_date, coverages))
        .subquery()
    )
    child_keys = (kids.c.commune_code, kids.c.category, kids.c.sex, kids.c.age_band, kids.c.special_circumstances, kids.c.supported)
    children = await session.execute(select(*child_keys[:5], func.count(), child_keys[5]).group_by(*child_keys))
    child_places = await session.execute(
        select(i.commune_code, i.urgency, i.channel, i.hamlet, func.count())
        .select_from(c)
        .join(i, i.incident_id == c.incident_id)
        .where(in_window)
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


async def _one_snapshot(session: AsyncSession) -> None:
    if session.bind.dialect.name == "postgresql":
        # One snapshot for all the queries, so the breakdowns agree with each other while events keep arriving.
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


async def compute_summary(session: AsyncSession, hierarchy: Hierarchy, org_unit: str, period: Period, as_of: datetime) -> dict:
    """The indicators of an org unit for a period as the read model holds them now (no access check)."""
    coverages = hierarchy.coverage(org_unit, period.start, period.end)
    counted = await cached_tallies(session, coverages) if coverages else {}
    return aggregates.build_summary(hierarchy, org_unit, period, coverages, counted, as_of)


def check_access(hierarchy: Hierarchy, org_unit: str, principal: Principal) -> None:
    if not may_read_summaries(principal):
        raise Forbidden(f"{principal.label} may not read summaries: they are for cp_officer, district offices and admins")
    if hierarchy.unit(org_unit) is None:
        raise NotFound(f"org unit {org_unit!r} is not in the administrative hierarchy")
    if not in_scope(principal, hierarchy, org_unit):
        # 404 rather than 403: outside its scope a token learns nothing, not even that data exists.
        raise NotFound(f"org unit {org_unit!r} not found among the units this token may see")


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
    await _one_snapshot(session)
    result = await compute_summary(session, hierarchy, org_unit, period, as_of)
    if period.kind == "plan":
        communes = aggregates.communes_of(hierarchy.coverage(org_unit, period.start, period.end))
        reports.attach(result, await report_statuses(session, communes, period))
    return result  # the cells cached on the way are committed with the caller's unit of work


# -- generated reports ----------------------------------------------------------------------------


async def report_statuses(session: AsyncSession, communes: Sequence[str], period: Period) -> dict[str, ReportStatus]:
    """Each commune's report for a plan period: how many revisions, when first and last produced."""
    g = GeneratedReport
    rows = (
        await session.execute(
            select(g.org_unit, func.count(), func.min(g.produced_at), func.max(g.produced_at), func.max(g.as_of))
            .where(g.org_unit.in_(communes), g.period == period.id)
            .group_by(g.org_unit)
        )
    ).all()
    found = {r[0]: r for r in rows}
    assert period.due is not None
    statuses = {}
    for commune in communes:
        r = found.get(commune)
        statuses[commune] = ReportStatus(
            commune,
            int(r[1]) if r else 0,
            _aware(r[2]) if r else None,
            _aware(r[3]) if r else None,
            _aware(r[4]) if r else None,
            period.due,
        )
    return statuses


def _aware(value: datetime | None) -> datetime | None:
    # Aggregates (min, max) bypass the column type on SQLite and come back naive: they are UTC.
    return None if value is None else as_utc(value)


async def first_fact_day(session: AsyncSession) -> date | None:
    return (await session.execute(select(func.min(IncidentFact.local_date)))).scalar_one_or_none()


async def latest_revisions(session: AsyncSession) -> dict[tuple[str, str], LatestRevision]:
    g = GeneratedReport
    newest = select(g.org_unit, g.period, func.max(g.revision).label("revision")).group_by(g.org_unit, g.period).subquery()
    rows = await session.execute(
        select(g.org_unit, g.period, g.revision, g.as_of, g.checked_at).join(
            newest, and_(g.org_unit == newest.c.org_unit, g.period == newest.c.period, g.revision == newest.c.revision)
        )
    )
    return {(r[0], r[1]): LatestRevision(r[2], r[3], r[4]) for r in rows}


async def changed_days(session: AsyncSession, since: datetime) -> list[DayChange]:
    """Communes and dates whose facts were written after `since`: incidents, assignments, escalations, closures."""
    i = IncidentFact
    sources = [select(i.commune_code, i.local_date, i.ingested_at.label("at")).where(i.ingested_at > since)]
    for model in (AssignmentFact, EscalationFact, IncidentClosure):
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
    return [DayChange(r[0], r[1], _aware(r[2])) for r in rows]


def _lost_race(exc: DBAPIError) -> bool:
    """PostgreSQL's serialization failure: another replica wrote the same revision first."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code == "40001"


async def generate_report(
    uow: UnitOfWork, hierarchy: Hierarchy, due: DueReport, latest: LatestRevision | None, clock: Clock
) -> GeneratedReport | None:
    """Store the next revision of one report and stage `report.generated`, if its numbers changed; in the caller's unit of work."""
    session = uow.session
    await _one_snapshot(session)
    as_of = clock()
    fresh = await compute_summary(session, hierarchy, due.commune, due.period, as_of)
    g = GeneratedReport
    if latest is not None:
        stored = (
            await session.execute(
                select(g.id, g.summary).where(g.org_unit == due.commune, g.period == due.period.id, g.revision == latest.revision)
            )
        ).one()
        if reports.same_numbers(stored.summary, fresh):
            await session.execute(update(g).where(g.id == stored.id, g.checked_at < as_of).values(checked_at=as_of))
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
    stmt = _insert(session, g.__table__).values(values).on_conflict_do_nothing(index_elements=["org_unit", "period", "revision"])
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


async def run_scheduler(
    runtime: Runtime,
    hierarchy: Hierarchy,
    plans: PlanConfig,
    *,
    interval: float,
    clock: Clock = utcnow,
    settle: timedelta = timedelta(minutes=2),
    metrics: ReportingMetrics | None = None,
) -> None:
    """Generate due reports every `interval` seconds until cancelled; a failed pass is retried on the next."""
    while True:
        try:
            await generate_due_reports(runtime, hierarchy, plans, clock=clock, settle=settle, metrics=metrics)
            # Then the cells no report needed: so that a district's or a province's first read is not the one
            # that groups the facts (a cold province-year over a million incidents takes seconds).
            await warm_cells(runtime.unit_of_work, hierarchy)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database away or a bug: say so, keep the loop alive
            log.warning("report generation failed; retrying next pass", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
        await asyncio.sleep(interval)


async def warm_cells(unit_of_work: Callable[[], UnitOfWork], hierarchy: Hierarchy, *, chunk: int = 10) -> int:
    """Compute and cache every stale cell, newest months first, a few communes per transaction (on SQLite the
    events wait for the one connection meanwhile). Returns how many cells were computed."""
    t, k = TallyCell, TallyCache
    async with unit_of_work() as uow:
        stale = (
            await uow.session.execute(
                select(t.commune_code, t.month)
                .outerjoin(k, and_(k.commune_code == t.commune_code, k.month == t.month))
                .where(or_(k.version.is_(None), k.version != t.version))
                .order_by(t.month.desc(), t.commune_code)
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
                await _one_snapshot(uow.session)
                await cached_tallies(uow.session, [Coverage(version, month, periods.add_months(month, 1), part)])
            done += len(part)
    if done:
        log.info("cells warmed", extra={"cells": done})
    return done


# -- reading generated reports ---------------------------------------------------------------------


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
    cursor: int | None = None,
) -> tuple[list[GeneratedReport], int | None]:
    """The generated revisions of a commune, or of every commune a district or province held; newest first."""
    check_access(hierarchy, org_unit, principal)
    g = GeneratedReport
    stmt = select(g).where(g.org_unit.in_(communes_in_scope(hierarchy, org_unit)))
    if period_id is not None:
        stmt = stmt.where(g.period == period_of(period_id, plans).id)
    if cursor is not None:
        stmt = stmt.where(g.id < cursor)
    rows = list((await session.execute(stmt.order_by(g.id.desc()).limit(limit + 1))).scalars())
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, rows[-1].id
    return rows, None


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
    g = GeneratedReport
    stmt = select(g).where(g.org_unit == org_unit, g.period == period.id)
    stmt = stmt.where(g.revision == revision) if revision is not None else stmt.order_by(g.revision.desc()).limit(1)
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
