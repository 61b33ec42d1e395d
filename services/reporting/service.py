"""Reporting's use cases: keep the read model from the events, and summarise it per org unit and period."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Table, and_, case, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from shared.auth import Principal, parse_unit_id
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
    IncidentReported,
    IncidentRouted,
)
from shared.reference import Coverage, Hierarchy

from . import aggregates
from .aggregates import AckTime, ChildGroup, EscalationGroup, IncidentGroup, ResponseGroup, Tally
from .models import AssignmentFact, ChildFact, EscalationFact, IncidentClosure, IncidentFact
from .periods import PlanConfig, as_utc, local_date, parse_period

log = logging.getLogger("baove.reporting")


class Rejected(Exception):
    """The request is understood but not allowed, or names nothing that exists."""

    def __init__(self, status: int, detail) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


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


async def _upsert_assignment(session: AsyncSession, values: dict, update: Update) -> None:
    """Insert the assignment, or merge into the row an earlier (or later-sent) event made; `update` sees old and new."""
    table = AssignmentFact.__table__
    stmt = _insert(session, table).values({"overdue": False, **values})
    await session.execute(stmt.on_conflict_do_update(index_elements=["assignment_id"], set_=update(table, stmt.excluded)))


def _assignment_keys(event: AssignmentAcknowledged | AssignmentStatusChanged | AssignmentOverdue) -> dict:
    return {
        "assignment_id": event.assignment_id,
        "incident_id": event.incident_id,
        "unit_type": event.unit_type,
        "role": event.role.value,
    }


async def record_reported(session: AsyncSession, event: IncidentReported) -> None:
    """Keep the incident's facts and its children's codes; `event.case` (the personal part) is never read."""
    facts = event.facts
    effective_at = as_utc(facts.occurred_at or facts.received_at)
    day = local_date(effective_at)
    stmt = (
        _insert(session, IncidentFact.__table__)
        .values(
            incident_id=event.incident_id,
            commune_code=facts.commune_code,
            hamlet=hamlet_of(facts),
            category=facts.category.value,
            urgency=facts.urgency.value,
            channel=facts.channel.value,
            occurred_at=as_utc(facts.occurred_at) if facts.occurred_at else None,
            received_at=as_utc(facts.received_at),
            effective_at=effective_at,
            local_date=day,
        )
        .on_conflict_do_nothing(index_elements=["incident_id"])
    )
    if (await session.execute(stmt)).rowcount == 0:
        # The same incident under another event id (a producer's retry): its facts are already here.
        return
    if facts.children:
        await session.execute(
            ChildFact.__table__.insert(),
            [
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
            ],
        )


async def record_routed(session: AsyncSession, event: IncidentRouted, emitted_at: datetime) -> None:
    assigned_at = as_utc(emitted_at)

    def update(t: Table, new: ReadOnlyColumnCollection) -> dict[str, ColumnElement]:
        # An acknowledgement that came first carries routing's own assigned_at and due_at: keep them.
        return {
            "assigned_at": func.coalesce(t.c.assigned_at, new.assigned_at),
            "due_at": func.coalesce(t.c.due_at, new.due_at),
            **_newest_status(t, new),
        }

    for a in event.assignments:
        values = {
            "assignment_id": a.assignment_id,
            "incident_id": event.incident_id,
            "unit_type": a.unit_type,
            "role": a.role.value,
            "assigned_at": assigned_at,
            "due_at": as_utc(a.due_at),
            "status": AssignmentStatus.pending.value,
            "status_at": assigned_at,
        }
        await _upsert_assignment(session, values, update)


async def record_acknowledged(session: AsyncSession, event: AssignmentAcknowledged) -> None:
    at = as_utc(event.at)

    def update(t: Table, new: ReadOnlyColumnCollection) -> dict[str, ColumnElement]:
        return {
            "assigned_at": new.assigned_at,
            "due_at": new.due_at,
            "acknowledged_at": func.coalesce(t.c.acknowledged_at, new.acknowledged_at),
            **_newest_status(t, new),
        }

    values = {
        **_assignment_keys(event),
        "assigned_at": as_utc(event.assigned_at),
        "due_at": as_utc(event.due_at),
        "acknowledged_at": at,
        "status": AssignmentStatus.acknowledged.value,
        "status_at": at,
    }
    await _upsert_assignment(session, values, update)


async def record_status(session: AsyncSession, event: AssignmentStatusChanged) -> None:
    values = {**_assignment_keys(event), "status": event.to_status.value, "status_at": as_utc(event.at)}
    await _upsert_assignment(session, values, _newest_status)


async def record_overdue(session: AsyncSession, event: AssignmentOverdue) -> None:
    # No status_at: this placeholder status loses to any status routing reports, earlier or later.
    values = {**_assignment_keys(event), "due_at": as_utc(event.due_at), "status": AssignmentStatus.pending.value, "overdue": True}
    await _upsert_assignment(session, values, lambda t, new: {"due_at": func.coalesce(t.c.due_at, new.due_at), "overdue": True})


async def record_escalated(session: AsyncSession, event: IncidentEscalated, event_id: str) -> None:
    stmt = (
        _insert(session, EscalationFact.__table__)
        .values(
            event_id=event_id,
            incident_id=event.incident_id,
            assignment_id=event.overdue_assignment_id,
            escalated_at=as_utc(event.at),
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
    )
    await session.execute(stmt)


async def record_closed(session: AsyncSession, event: IncidentClosed) -> None:
    stmt = (
        _insert(session, IncidentClosure.__table__)
        .values(incident_id=event.incident_id, closed_at=as_utc(event.at))
        .on_conflict_do_nothing(index_elements=["incident_id"])
    )
    await session.execute(stmt)


async def handle_event(session: AsyncSession, event: Event, envelope: Envelope) -> list[Envelope]:
    """Fold one event into the read model (the runtime has deduplicated it and holds the transaction)."""
    if isinstance(event, IncidentReported):
        await record_reported(session, event)
    elif isinstance(event, IncidentRouted):
        await record_routed(session, event, envelope.emitted_at)
    elif isinstance(event, AssignmentAcknowledged):
        await record_acknowledged(session, event)
    elif isinstance(event, AssignmentStatusChanged):
        await record_status(session, event)
    elif isinstance(event, AssignmentOverdue):
        await record_overdue(session, event)
    elif isinstance(event, IncidentEscalated):
        await record_escalated(session, event, str(envelope.event_id))
    elif isinstance(event, IncidentClosed):
        await record_closed(session, event)
    else:
        return []
    log.debug("event folded", extra={"event_type": envelope.event_type, "event_id": str(envelope.event_id)})
    return []


# -- summaries --------------------------------------------------------------------------------


def _window(commune: ColumnElement, day: ColumnElement, coverages: Sequence[Coverage]) -> ColumnElement:
    """Rows of a coverage's communes dated inside that coverage's [start, end)."""
    return or_(*(and_(commune.in_(c.communes), day >= c.start, day < c.end) for c in coverages))


async def tallies(session: AsyncSession, coverages: Sequence[Coverage]) -> dict[str, Tally]:
    """Group the read model by commune for the coverages, then fold the rows into tallies."""
    i, c, a, e, x = IncidentFact, ChildFact, AssignmentFact, EscalationFact, IncidentClosure
    in_window = _window(i.commune_code, i.local_date, coverages)
    closed = x.incident_id.is_not(None)
    incidents = await session.execute(
        select(i.commune_code, i.category, i.urgency, i.channel, i.hamlet, closed, func.count())
        .outerjoin(x, x.incident_id == i.incident_id)
        .where(in_window)
        .group_by(i.commune_code, i.category, i.urgency, i.channel, i.hamlet, closed)
    )
    children = await session.execute(
        select(c.commune_code, c.category, c.sex, c.age_band, c.special_circumstances, func.count())
        .where(_window(c.commune_code, c.local_date, coverages))
        .group_by(c.commune_code, c.category, c.sex, c.age_band, c.special_circumstances)
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
        [ChildGroup(r[0], r[1], r[2], r[3], r[4], int(r[5])) for r in children],
        [ResponseGroup(r[0], r[1], int(r[2]), int(r[3]), int(r[4] or 0), int(r[5] or 0)) for r in responses],
        [AckTime(r[0], r[1], (r[3] - r[2]).total_seconds()) for r in waits],
        [EscalationGroup(r[0], r[1], int(r[2])) for r in escalations],
    )


async def summary(
    session: AsyncSession,
    hierarchy: Hierarchy,
    plans: PlanConfig,
    org_unit: str,
    period_id: str,
    principal: Principal,
) -> dict:
    """The indicators of an org unit for a period, as far as the principal may see them."""
    if not may_read_summaries(principal):
        raise Rejected(403, f"{principal.label} may not read summaries: they are for cp_officer, district offices and admins")
    if hierarchy.unit(org_unit) is None:
        raise Rejected(404, f"org unit {org_unit!r} is not in the administrative hierarchy")
    if not in_scope(principal, hierarchy, org_unit):
        # 404 rather than 403: outside its scope a token learns nothing, not even that data exists.
        raise Rejected(404, f"org unit {org_unit!r} not found among the units this token may see")
    try:
        period = parse_period(period_id, plans)
    except ValueError as exc:
        raise Rejected(422, [{"loc": ["query", "period"], "msg": str(exc), "type": "value_error"}]) from None
    coverages = hierarchy.coverage(org_unit, period.start, period.end)
    if session.bind.dialect.name == "postgresql":
        # One snapshot for all the queries, so the breakdowns agree with each other while events keep arriving.
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    counted = await tallies(session, coverages) if coverages else {}
    return aggregates.build_summary(hierarchy, org_unit, period, coverages, counted, utcnow())
