"""Routing's use cases: route a reported incident, serve a unit's inbox, move an assignment, keep the registry."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, parse_unit_id
from shared.db import new_id, utcnow
from shared.enums import AssignmentStatus, Role, Urgency
from shared.events import (
    AssignmentAcknowledged,
    AssignmentStatusChanged,
    Envelope,
    Event,
    IncidentCase,
    IncidentReported,
    IncidentRouted,
    RoutedAssignment,
)
from shared.reference import UnitRecord

from . import lifecycle, rules
from .models import Assignment, AssignmentChange, RoutedIncident, Unit, dedupe_key
from .rules import Decision, RoutingInput, RuleTable

PRODUCER = "routing"
ORIGIN_ROUTING = "routing"
HANDOFF_RULES_VERSION = "handoff"
URGENCY_RANK = {u.value: rank for rank, u in enumerate(Urgency)}
BAD_CURSOR = [{"loc": ["query", "cursor"], "msg": "cursor is not valid: pass next_cursor unchanged", "type": "value_error"}]

log = logging.getLogger("baove.routing")


class Rejected(Exception):
    """The request is understood but not allowed, not found for this principal, or not valid."""

    def __init__(self, status: int, detail) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@lru_cache(maxsize=1)
def default_table() -> RuleTable:
    return rules.load_rules(rules.DEFAULT_RULES)


# -- pure ------------------------------------------------------------------------------


def case_record(case_: IncidentCase) -> dict:
    """The personal part routing keeps; an anonymous reporter's name and phone are never stored."""
    record = case_.model_dump(mode="json")
    reporter = record.get("reporter")
    if reporter and reporter.get("anonymous"):
        record["reporter"] = {"name": None, "phone": None, "relation": reporter.get("relation"), "anonymous": True}
    return record


def may_use_inbox(principal: Principal, unit_id: str) -> bool:
    return principal.is_admin or principal.unit_id == unit_id


def may_list_units(principal: Principal, commune_code: str) -> bool:
    return principal.is_admin or principal.is_cp_officer_of(commune_code)


def encode_cursor(values: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, keys: tuple[str, ...]) -> dict:
    """The values of an opaque cursor; Rejected(422) when it is not one of ours."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        values = None
    if not isinstance(values, dict) or set(values) != set(keys):
        raise Rejected(422, BAD_CURSOR)
    return values


def routed_assignment(a: Assignment) -> RoutedAssignment:
    return RoutedAssignment(
        assignment_id=a.id, unit_id=a.unit_id, unit_type=a.unit_type, role=Role(a.role), rule=a.rule, reason=a.reason, due_at=a.due_at
    )


# -- the incident.reported consumer ------------------------------------------------------


async def active_units(session: AsyncSession, incident: RoutingInput) -> frozenset[str]:
    """The registered, active units that may act: the commune's own and any the report names (a school elsewhere)."""
    stmt = select(Unit.id).where(
        Unit.active.is_(True), or_(Unit.commune_code == incident.commune_code, Unit.id.in_(incident.named_units()))
    )
    return frozenset((await session.execute(stmt)).scalars())


def new_assignments(incident_id: str, incident: RoutingInput, decision: Decision, now: datetime) -> list[Assignment]:
    return [
        Assignment(
            id=new_id(),
            incident_id=incident_id,
            unit_id=planned.unit_id,
            unit_type=planned.unit_type.value,
            commune_code=incident.commune_code,
            role=planned.role.value,
            status=AssignmentStatus.pending.value,
            rule=planned.rule,
            reason=planned.reason,
            rules_version=decision.rules_version,
            origin=ORIGIN_ROUTING,
            dedupe_key=dedupe_key(incident_id, planned.unit_id, ORIGIN_ROUTING),
            due_at=decision.due_at,
            assigned_at=now,
            updated_at=now,
        )
        for planned in decision.assignments
    ]


async def handle_reported(
    session: AsyncSession, event: Event, envelope: Envelope, *, table: RuleTable | None = None
) -> list[Envelope]:
    """Route one reported incident: store it and its assignments, and tell of them in `incident.routed`."""
    if not isinstance(event, IncidentReported):
        return []
    if await session.get(RoutedIncident, event.incident_id) is not None:
        # Same incident under another event id (a re-publish): the business key says it is done.
        log.info("incident already routed", extra={"incident_id": event.incident_id})
        return []
    table = table or default_table()
    incident = RoutingInput.from_event(event)
    decision = rules.decide(incident, await active_units(session, incident), table)
    now = utcnow()
    facts = event.facts
    assignments = new_assignments(event.incident_id, incident, decision, now)
    try:
        async with session.begin_nested():
            session.add(
                RoutedIncident(
                    incident_id=event.incident_id,
                    commune_code=facts.commune_code,
                    hamlet=facts.hamlet,
                    category=facts.category.value,
                    urgency=facts.urgency.value,
                    channel=facts.channel.value,
                    occurred_at=facts.occurred_at,
                    received_at=facts.received_at,
                    routed_at=now,
                    rules_version=decision.rules_version,
                    case=case_record(event.case),
                )
            )
            await session.flush()
            session.add_all(assignments)
            await session.flush()
            session.add_all(
                AssignmentChange(assignment_id=a.id, at=now, from_status=None, to_status=a.status, principal=PRODUCER)
                for a in assignments
            )
            await session.flush()
    except IntegrityError:
        # A concurrent delivery of the same incident stored it first.
        log.info("incident already routed", extra={"incident_id": event.incident_id})
        return []
    log.info(
        "incident routed",
        extra={
            "incident_id": event.incident_id,
            "category": facts.category.value,
            "urgency": facts.urgency.value,
            "assignments": len(assignments),
            "lead": ",".join(a.unit_id for a in decision.lead),
            "rules_version": decision.rules_version,
        },
    )
    routed = IncidentRouted(
        incident_id=event.incident_id,
        commune_code=facts.commune_code,
        category=facts.category,
        urgency=facts.urgency,
        rules_version=decision.rules_version,
        assignments=tuple(routed_assignment(a) for a in assignments),
        notes=decision.notes,
    )
    return [routed.envelope(correlation_id=event.incident_id, producer=PRODUCER)]


# -- the inbox -----------------------------------------------------------------------------------

INBOX_CURSOR = ("as_of", "overdue", "urgency", "due_at", "id")


@dataclass(frozen=True)
class InboxPosition:
    """Where a page ended, in the inbox order, and the clock the listing started with."""

    as_of: datetime
    overdue: int
    urgency: int
    due_at: datetime
    id: str


def _inbox_position(values: dict) -> InboxPosition:
    try:
        position = InboxPosition(
            as_of=datetime.fromisoformat(values["as_of"]),
            overdue=int(values["overdue"]),
            urgency=int(values["urgency"]),
            due_at=datetime.fromisoformat(values["due_at"]),
            id=str(values["id"]),
        )
    except (TypeError, ValueError):
        position = None
    if position is None or position.as_of.tzinfo is None or position.due_at.tzinfo is None:
        raise Rejected(422, BAD_CURSOR)
    return position


@dataclass
class InboxPage:
    rows: list[tuple[Assignment, RoutedIncident]]
    next_cursor: str | None


async def list_assignments(
    session: AsyncSession,
    unit_id: str,
    principal: Principal,
    *,
    status: AssignmentStatus | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> InboxPage:
    """One unit's assignments: overdue first, then by urgency, due time and id (keyset pages)."""
    if not may_use_inbox(principal, unit_id):
        # Another unit's inbox answers as if it did not exist: a 404 reveals nothing.
        raise Rejected(404, f"no inbox {unit_id} for this token")
    after = _inbox_position(decode_cursor(cursor, INBOX_CURSOR)) if cursor else None
    # Later pages order by the first page's clock, so nothing moves between pages.
    as_of = after.as_of if after else utcnow()
    overdue = case((and_(Assignment.status == AssignmentStatus.pending.value, Assignment.due_at < as_of), 0), else_=1)
    urgency = case(URGENCY_RANK, value=RoutedIncident.urgency, else_=len(URGENCY_RANK))
    stmt = (
        select(Assignment, RoutedIncident, overdue, urgency)
        .join(RoutedIncident, RoutedIncident.incident_id == Assignment.incident_id)
        .where(Assignment.unit_id == unit_id)
    )
    if status is not None:
        stmt = stmt.where(Assignment.status == status.value)
    if after:
        o, u, due, i = after.overdue, after.urgency, after.due_at, after.id
        stmt = stmt.where(
            or_(
                overdue > o,
                and_(overdue == o, urgency > u),
                and_(overdue == o, urgency == u, Assignment.due_at > due),
                and_(overdue == o, urgency == u, Assignment.due_at == due, Assignment.id > i),
            )
        )
    stmt = stmt.order_by(overdue, urgency, Assignment.due_at, Assignment.id).limit(limit + 1)
    rows = (await session.execute(stmt)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(
            {"as_of": as_of.isoformat(), "overdue": last[2], "urgency": last[3], "due_at": last[0].due_at.isoformat(), "id": last[0].id}
        )
    page = [(a, incident) for a, incident, _, _ in rows]
    # Every read of a case is logged: who, and which incidents (domain.md section 7).
    log.info(
        "inbox read",
        extra={"by": principal.label, "unit_id": unit_id, "incident_ids": ",".join(sorted({a.incident_id for a, _ in page}))},
    )
    return InboxPage(page, next_cursor)


async def _owned(session: AsyncSession, unit_id: str, assignment_id: str, principal: Principal) -> tuple[Assignment, RoutedIncident]:
    if may_use_inbox(principal, unit_id):
        row = (
            await session.execute(
                select(Assignment, RoutedIncident)
                .join(RoutedIncident, RoutedIncident.incident_id == Assignment.incident_id)
                .where(Assignment.id == assignment_id, Assignment.unit_id == unit_id)
            )
        ).first()
        if row is not None:
            return row[0], row[1]
    raise Rejected(404, "assignment not found")


async def _move(
    session: AsyncSession, a: Assignment, target: AssignmentStatus, now: datetime, principal: Principal, note: str | None
) -> AssignmentStatus:
    """Compare-and-set the status, so two concurrent changes cannot both win; records the history."""
    current = AssignmentStatus(a.status)
    values: dict = {"status": target.value, "updated_at": now}
    if target is AssignmentStatus.acknowledged:
        values["acknowledged_at"] = now
    if note:
        values["note"] = note
    result = await session.execute(
        update(Assignment)
        .where(Assignment.id == a.id, Assignment.status == current.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        await session.refresh(a)
        now_status = AssignmentStatus(a.status)
        raise Rejected(
            409,
            {
                "message": f"the assignment was changed at the same time and is now {now_status.value}; read it again",
                "current": now_status.value,
                "allowed": [s.value for s in lifecycle.allowed(now_status)],
            },
        )
    session.add(AssignmentChange(assignment_id=a.id, at=now, from_status=current.value, to_status=target.value, principal=principal.label, note=note))
    await session.flush()
    await session.refresh(a)
    return current


def _assignment_event(cls, a: Assignment, principal: Principal, now: datetime, **extra) -> Envelope:
    event = cls(
        incident_id=a.incident_id,
        assignment_id=a.id,
        unit_id=a.unit_id,
        unit_type=a.unit_type,
        role=Role(a.role),
        commune_code=a.commune_code,
        by=principal.label,
        at=now,
        **extra,
    )
    return event.envelope(correlation_id=a.incident_id, producer=PRODUCER)


async def acknowledge(
    session: AsyncSession, runtime, unit_id: str, assignment_id: str, principal: Principal
) -> tuple[Assignment, RoutedIncident]:
    """pending -> acknowledged, and `assignment.acknowledged` in the same transaction."""
    a, incident = await _owned(session, unit_id, assignment_id, principal)
    target = lifecycle.transition(AssignmentStatus(a.status), AssignmentStatus.acknowledged)
    now = utcnow()
    await _move(session, a, target, now, principal, None)
    await runtime.stage(session, _assignment_event(AssignmentAcknowledged, a, principal, now, due_at=a.due_at, assigned_at=a.assigned_at))
    log.info("assignment acknowledged", extra={"incident_id": a.incident_id, "assignment_id": a.id, "by": principal.label})
    return a, incident


async def change_status(
    session: AsyncSession,
    runtime,
    table: RuleTable,
    unit_id: str,
    assignment_id: str,
    target: AssignmentStatus,
    note: str | None,
    principal: Principal,
) -> tuple[Assignment, RoutedIncident, Assignment | None]:
    """Move an assignment; a declined lead is handed to the cp_officer as a new lead assignment."""
    a, incident = await _owned(session, unit_id, assignment_id, principal)
    lifecycle.transition(AssignmentStatus(a.status), target, note)
    now = utcnow()
    previous = await _move(session, a, target, now, principal, note)
    events = [_assignment_event(AssignmentStatusChanged, a, principal, now, from_status=previous, to_status=target, has_note=bool(note))]
    handoff = None
    if target is AssignmentStatus.declined and a.role == Role.lead.value:
        handoff = await _hand_off(session, table, a, incident, now)
        events.append(
            IncidentRouted(
                incident_id=incident.incident_id,
                commune_code=incident.commune_code,
                category=incident.category,
                urgency=incident.urgency,
                rules_version=HANDOFF_RULES_VERSION,
                assignments=(routed_assignment(handoff),),
                notes=(f"lead declined by {a.unit_id}: handed to {handoff.unit_id}",),
            ).envelope(correlation_id=incident.incident_id, producer=PRODUCER)
        )
    await runtime.stage(session, *events)
    log.info(
        "assignment status changed",
        extra={"incident_id": a.incident_id, "assignment_id": a.id, "from": previous.value, "to": target.value, "by": principal.label},
    )
    return a, incident, handoff


async def _hand_off(session: AsyncSession, table: RuleTable, declined: Assignment, incident: RoutedIncident, now: datetime) -> Assignment:
    unit_id = lifecycle.handoff_unit(declined.commune_code, declined.unit_id)
    origin = lifecycle.handoff_origin(declined.id)
    handoff = Assignment(
        id=new_id(),
        incident_id=declined.incident_id,
        unit_id=unit_id,
        unit_type=parse_unit_id(unit_id)[1].value,
        commune_code=declined.commune_code,
        role=Role.lead.value,
        status=AssignmentStatus.pending.value,
        rule="handoff.decline",
        # The decline note stays out: it is free text and this reason travels in events.
        reason=f"Nhận lại vai trò chủ trì: {declined.unit_id} từ chối (lead handed back: {declined.unit_id} declined)",
        rules_version=HANDOFF_RULES_VERSION,
        origin=origin,
        dedupe_key=dedupe_key(declined.incident_id, unit_id, origin),
        # A new deadline from now: the new lead needs its own time to take the case up.
        due_at=rules.due_at(now, Urgency(incident.urgency), table),
        assigned_at=now,
        updated_at=now,
    )
    session.add(handoff)
    await session.flush()
    session.add(AssignmentChange(assignment_id=handoff.id, at=now, from_status=None, to_status=handoff.status, principal=PRODUCER))
    await session.flush()
    log.info("lead handed off", extra={"incident_id": declined.incident_id, "declined": declined.id, "assignment_id": handoff.id, "unit_id": unit_id})
    return handoff


# -- the unit registry ---------------------------------------------------------------------------


async def list_units(
    session: AsyncSession, commune_code: str, principal: Principal, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[Unit], str | None]:
    """The commune's units by id (keyset pages): for admins and the commune's cp_officer."""
    if not may_list_units(principal, commune_code):
        raise Rejected(403, f"only admins and {commune_code}.cp_officer may list the units of commune {commune_code}")
    stmt = select(Unit).where(Unit.commune_code == commune_code)
    if cursor:
        stmt = stmt.where(Unit.id > str(decode_cursor(cursor, ("id",))["id"]))
    units = list((await session.execute(stmt.order_by(Unit.id).limit(limit + 1))).scalars())
    if len(units) > limit:
        units = units[:limit]
        return units, encode_cursor({"id": units[-1].id})
    return units, None


def unit_row(record: UnitRecord) -> dict:
    """A registry row; ValueError when the id does not agree with the commune or type given."""
    commune, unit_type, local_id = parse_unit_id(record.id)
    if commune != record.commune_code or unit_type.value != record.unit_type:
        raise ValueError(f"unit {record.id!r} does not match commune {record.commune_code} and type {record.unit_type}")
    return {"id": record.id, "commune_code": commune, "unit_type": unit_type.value, "local_id": local_id, "name": record.name, "active": True}


async def load_units_into(runtime, units: list[UnitRecord]) -> int:
    """Insert or update units in the registry in one transaction; returns how many."""
    rows = [unit_row(u) for u in units]
    if rows:
        async with runtime.sessionmaker() as session, session.begin():
            insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
            stmt = insert(Unit).values(rows)
            stmt = stmt.on_conflict_do_update(
                index_elements=[Unit.id],
                set_={c: stmt.excluded[c] for c in ("commune_code", "unit_type", "local_id", "name", "active")},
            )
            await session.execute(stmt)
    # The caller runs this under its own asyncio.run: leave no connection bound to that loop.
    await runtime.engine.dispose()
    return len(rows)
