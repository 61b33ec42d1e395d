"""Routing's use cases: route incidents, serve inboxes, move assignments, close cases, keep rule sets and the registry."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, event, not_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, parse_unit_id
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.db import dialect_insert, new_id
from shared.enums import AssignmentStatus, RiskLevel, Role, UnitType, Urgency
from shared.events import (
    AssignmentAcknowledged,
    AssignmentStatusChanged,
    Envelope,
    Event,
    IncidentCase,
    IncidentClosed,
    IncidentReopened,
    IncidentReported,
    IncidentRouted,
    RoutedAssignment,
)
from shared.metrics import RoutingMetrics
from shared.reference import UnitRecord
from shared.runtime import Runtime
from shared.uow import UnitOfWork

from . import disclosure, lifecycle, rules
from .lifecycle import CaseStatus
from .models import Assignment, AssignmentChange, IncidentChange, RoutedIncident, RuleSet, Unit, dedupe_key
from .rules import Decision, RoutingInput, RuleTable

PRODUCER = "routing"
ORIGIN_ROUTING = "routing"
HANDOFF_RULES_VERSION = "handoff"
REOPEN_RULES_VERSION = "reopen"
URGENCY_RANK = {u.value: rank for rank, u in enumerate(Urgency)}
BAD_CURSOR = [{"loc": ["query", "cursor"], "msg": "cursor is not valid: pass next_cursor unchanged", "type": "value_error"}]

log = logging.getLogger("baove.routing")

Clock = Callable[[], datetime]


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


def may_close(principal: Principal, commune_code: str) -> bool:
    """Closing and reopening are the focal point's (domain.md section 3, step 6) and admins'."""
    return principal.is_admin or principal.is_cp_officer_of(commune_code)


def encode_cursor(values: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, keys: tuple[str, ...]) -> dict:
    """The values of an opaque cursor; Invalid when it is not one of ours."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        values = None
    if not isinstance(values, dict) or set(values) != set(keys):
        raise Invalid(BAD_CURSOR)
    return values


def routed_assignment(a: Assignment) -> RoutedAssignment:
    return RoutedAssignment(
        assignment_id=a.id, unit_id=a.unit_id, unit_type=a.unit_type, role=Role(a.role), rule=a.rule, reason=a.reason, due_at=a.due_at
    )


def to_envelope(event: Event, incident_id: str, now: datetime) -> Envelope:
    """Routing's events carry its clock's time, so the envelope agrees with the payload."""
    return event.envelope(correlation_id=incident_id, producer=PRODUCER, emitted_at=now)


def new_assignment(
    incident: RoutedIncident,
    unit_id: str,
    role: Role,
    *,
    rule: str,
    reason: str,
    rules_version: str,
    origin: str,
    due_at: datetime,
    now: datetime,
) -> Assignment:
    """A pending assignment made after the routing decision (a handoff, an escalation, a reopened case)."""
    return Assignment(
        id=new_id(),
        incident_id=incident.incident_id,
        unit_id=unit_id,
        unit_type=parse_unit_id(unit_id)[1].value,
        commune_code=incident.commune_code,
        role=role.value,
        status=AssignmentStatus.pending.value,
        rule=rule,
        reason=reason,
        rules_version=rules_version,
        origin=origin,
        dedupe_key=dedupe_key(incident.incident_id, unit_id, origin),
        due_at=due_at,
        assigned_at=now,
        updated_at=now,
    )


def routed_event(incident: RoutedIncident, assignments: Sequence[Assignment], rules_version: str, notes: Sequence[str], now: datetime) -> Envelope:
    """`incident.routed` telling of assignments made after the routing decision."""
    return to_envelope(
        IncidentRouted(
            incident_id=incident.incident_id,
            commune_code=incident.commune_code,
            category=incident.category,
            urgency=incident.urgency,
            rules_version=rules_version,
            assignments=tuple(routed_assignment(a) for a in assignments),
            notes=tuple(notes),
        ),
        incident.incident_id,
        now,
    )


async def store_assignments(session: AsyncSession, assignments: Sequence[Assignment], now: datetime) -> None:
    """Insert assignments and the first line of their history."""
    session.add_all(assignments)
    await session.flush()
    session.add_all(
        AssignmentChange(assignment_id=a.id, at=now, from_status=None, to_status=a.status, principal=PRODUCER) for a in assignments
    )
    await session.flush()


ASSIGNMENT_COLUMNS = tuple(c.key for c in Assignment.__table__.columns)


async def insert_assignments(session: AsyncSession, assignments: Sequence[Assignment], now: datetime) -> None:
    """`store_assignments` in two Core statements, for new assignments nobody else holds yet (routing a report)."""
    if not assignments:
        return
    await session.execute(
        Assignment.__table__.insert(), [{key: getattr(a, key) for key in ASSIGNMENT_COLUMNS} for a in assignments]
    )
    await session.execute(
        AssignmentChange.__table__.insert(),
        [{"assignment_id": a.id, "at": now, "from_status": None, "to_status": a.status, "principal": PRODUCER, "note": None} for a in assignments],
    )


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's transaction commits: metrics count only what was stored."""
    fired = False

    def run(sync_session) -> None:
        nonlocal fired
        # The hook also fires when a savepoint is released; only the outer commit counts.
        if fired or sync_session.in_nested_transaction():
            return
        fired = True
        callback()

    event.listen(session.sync_session, "after_commit", run)


def count_created(metrics: RoutingMetrics, assignments: Sequence[Assignment]) -> None:
    for a in assignments:
        metrics.assignments.labels(a.unit_type, a.role).inc()


# -- rule sets: the routing table as data an officer changes ------------------------------------


class NoActiveRules(RuntimeError):
    """No rule set is active: routing loads its rules file at start, or an officer runs `baove rules load`."""


class RuleSetExists(ValueError):
    """A rule set with this version was loaded before: a changed table needs a new version."""


class RuleSets:
    """The active routing table. Its version is read on each use (one indexed row), the parsed table cached per version."""

    def __init__(self) -> None:
        self._tables: dict[str, RuleTable] = {}

    async def active(self, session: AsyncSession) -> RuleTable:
        cached = session.info.get("rule_table")
        if cached is not None:  # read once per transaction: a batch of reports shares it
            return cached
        version = (await session.execute(select(RuleSet.version).where(RuleSet.active.is_(True)))).scalar_one_or_none()
        if version is None:
            raise NoActiveRules("no active rule set: start routing once, or run `baove rules load FILE`")
        table = self._tables.get(version)
        if table is None:
            source = (await session.execute(select(RuleSet.source).where(RuleSet.version == version))).scalar_one()
            table = self._tables[version] = rules.parse_rules(source, f"rule set {version}")
        session.info["rule_table"] = table
        return table


async def active_rule_set(session: AsyncSession) -> RuleSet | None:
    return (await session.execute(select(RuleSet).where(RuleSet.active.is_(True)))).scalar_one_or_none()


async def activate_rule_set(session: AsyncSession, text: str, source: str, by: str, now: datetime) -> tuple[RuleTable, str | None]:
    """Make a rules document the active table, returning it and the version it replaces; RulesError, RuleSetExists."""
    table = rules.parse_rules(text, source)
    session.info.pop("rule_table", None)
    known = (await session.execute(select(RuleSet).where(RuleSet.version == table.version))).scalar_one_or_none()
    if known is not None:
        raise RuleSetExists(
            f"rule set version {table.version!r} was loaded on {known.loaded_at.isoformat()} by {known.loaded_by}: "
            "give the changed table a new version"
        )
    previous = await active_rule_set(session)
    if previous is not None:
        previous.active = False
        # The partial unique index allows one active row: retire the old one before the new one is written.
        await session.flush()
    session.add(RuleSet(version=table.version, source=text, loaded_at=now, loaded_by=by, active=True))
    await session.flush()
    log.info("rule set activated", extra={"rules_version": table.version, "previous": previous.version if previous else None, "by": by})
    return table, previous.version if previous else None


async def seed_rule_set(runtime: Runtime, text: str, source: str, now: datetime) -> None:
    """At start: the rules file becomes the first rule set when none is active; later ones come from `baove rules load`."""
    async with runtime.unit_of_work() as uow:
        if await active_rule_set(uow.session) is not None:
            return
    try:
        async with runtime.unit_of_work() as uow:
            await activate_rule_set(uow.session, text, source, f"{PRODUCER}:start", now)
    except IntegrityError:
        # Another replica starting at the same moment seeded it.
        log.info("rule set seeded by another instance")


# -- the incident.reported consumer ------------------------------------------------------


async def active_units(session: AsyncSession, incident: RoutingInput) -> frozenset[str]:
    """The registered, active units that may act: the commune's own and any the report names (a school elsewhere)."""
    key = (incident.commune_code, incident.named_units())
    cache = session.info.setdefault("active_units", {})  # per transaction: the registry cannot change under it
    if key not in cache:
        stmt = select(Unit.id).where(
            Unit.active.is_(True), or_(Unit.commune_code == incident.commune_code, Unit.id.in_(incident.named_units()))
        )
        cache[key] = frozenset((await session.execute(stmt)).scalars())
    return cache[key]


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
    session: AsyncSession, event: Event, envelope: Envelope, *, rule_sets: RuleSets, clock: Clock, metrics: RoutingMetrics
) -> list[Envelope]:
    """Route one reported incident with the active rule set: store it and its assignments, and tell of them in `incident.routed`."""
    if not isinstance(event, IncidentReported):
        return []
    started = time.perf_counter()
    table = await rule_sets.active(session)
    incident = RoutingInput.from_event(event)
    decision = rules.decide(incident, await active_units(session, incident), table)
    now = clock()
    facts = event.facts
    # Core statements: this runs for every report. The incident row claims the business key: a
    # re-publish (same incident, another event id) or a concurrent delivery finds it taken.
    stored = await session.execute(
        dialect_insert(session)(RoutedIncident.__table__)
        .values(
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
            status=CaseStatus.open.value,
        )
        .on_conflict_do_nothing(index_elements=["incident_id"])
    )
    if stored.rowcount == 0:
        log.info("incident already routed", extra={"incident_id": event.incident_id})
        return []
    assignments = new_assignments(event.incident_id, incident, decision, now)
    await insert_assignments(session, assignments, now)
    metrics.decision_seconds.observe(time.perf_counter() - started)
    after_commit(session, lambda: count_created(metrics, assignments))
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
    return [to_envelope(routed, event.incident_id, now)]


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
        raise Invalid(BAD_CURSOR)
    return position


@dataclass(frozen=True)
class SeenAssignment:
    """An assignment and its case as the assignment's unit may see them (domain.md 7: only what it needs)."""

    assignment: Assignment
    incident: RoutedIncident
    view: disclosure.View
    case: dict


def seen_by_unit(a: Assignment, incident: RoutedIncident) -> SeenAssignment:
    """The disclosure rule, applied to every assignment a unit is shown, whatever the entry point."""
    view = disclosure.view_of(a.role, a.unit_type)
    return SeenAssignment(a, incident, view, disclosure.disclosed(incident.case, view, incident.occurred_at or incident.received_at))


@dataclass
class InboxPage:
    rows: list[SeenAssignment]
    next_cursor: str | None


async def list_assignments(
    session: AsyncSession,
    unit_id: str,
    principal: Principal,
    *,
    now: datetime,
    statuses: Sequence[AssignmentStatus] = (),
    overdue: bool | None = None,
    urgencies: Sequence[Urgency] = (),
    limit: int = 50,
    cursor: str | None = None,
) -> InboxPage:
    """One unit's assignments, filtered: overdue first, then by urgency, due time and id (keyset pages)."""
    if not may_use_inbox(principal, unit_id):
        # Another unit's inbox answers as if it did not exist: a 404 reveals nothing.
        raise NotFound(f"no inbox {unit_id} for this token")
    after = _inbox_position(decode_cursor(cursor, INBOX_CURSOR)) if cursor else None
    # Later pages order and filter by the first page's clock, so nothing moves between pages.
    as_of = after.as_of if after else now
    is_overdue = and_(Assignment.status == AssignmentStatus.pending.value, Assignment.due_at < as_of)
    overdue_rank = case((is_overdue, 0), else_=1)
    urgency = case(URGENCY_RANK, value=RoutedIncident.urgency, else_=len(URGENCY_RANK))
    stmt = (
        select(Assignment, RoutedIncident, overdue_rank, urgency)
        .join(RoutedIncident, RoutedIncident.incident_id == Assignment.incident_id)
        .where(Assignment.unit_id == unit_id)
    )
    if statuses:
        stmt = stmt.where(Assignment.status.in_([s.value for s in statuses]))
    if overdue is not None:
        stmt = stmt.where(is_overdue if overdue else not_(is_overdue))
    if urgencies:
        stmt = stmt.where(RoutedIncident.urgency.in_([u.value for u in urgencies]))
    if after:
        o, u, due, i = after.overdue, after.urgency, after.due_at, after.id
        stmt = stmt.where(
            or_(
                overdue_rank > o,
                and_(overdue_rank == o, urgency > u),
                and_(overdue_rank == o, urgency == u, Assignment.due_at > due),
                and_(overdue_rank == o, urgency == u, Assignment.due_at == due, Assignment.id > i),
            )
        )
    stmt = stmt.order_by(overdue_rank, urgency, Assignment.due_at, Assignment.id).limit(limit + 1)
    rows = (await session.execute(stmt)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(
            {"as_of": as_of.isoformat(), "overdue": last[2], "urgency": last[3], "due_at": last[0].due_at.isoformat(), "id": last[0].id}
        )
    page = [seen_by_unit(a, incident) for a, incident, _, _ in rows]
    # Every read of a case is logged: who, and which incidents (domain.md section 7).
    log.info(
        "inbox read",
        extra={"by": principal.label, "unit_id": unit_id, "incident_ids": ",".join(sorted({seen.incident.incident_id for seen in page}))},
    )
    return InboxPage(page, next_cursor)


# -- the assignment lifecycle ----------------------------------------------------------------------


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
    raise NotFound("assignment not found")


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
        raise Conflict(
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


def assignment_event(cls, a: Assignment, by: str, now: datetime, **extra) -> Envelope:
    event = cls(
        incident_id=a.incident_id,
        assignment_id=a.id,
        unit_id=a.unit_id,
        unit_type=a.unit_type,
        role=Role(a.role),
        commune_code=a.commune_code,
        by=by,
        at=now,
        **extra,
    )
    return to_envelope(event, a.incident_id, now)


async def acknowledge(uow: UnitOfWork, unit_id: str, assignment_id: str, principal: Principal, now: datetime) -> SeenAssignment:
    """pending -> acknowledged, and `assignment.acknowledged` in the same transaction."""
    session = uow.session
    a, incident = await _owned(session, unit_id, assignment_id, principal)
    target = lifecycle.transition(AssignmentStatus(a.status), AssignmentStatus.acknowledged)
    await _move(session, a, target, now, principal, None)
    await uow.stage(assignment_event(AssignmentAcknowledged, a, principal.label, now, due_at=a.due_at, assigned_at=a.assigned_at))
    log.info("assignment acknowledged", extra={"incident_id": a.incident_id, "assignment_id": a.id, "by": principal.label})
    return seen_by_unit(a, incident)


async def change_status(
    uow: UnitOfWork,
    rule_sets: RuleSets,
    unit_id: str,
    assignment_id: str,
    target: AssignmentStatus,
    note: str | None,
    principal: Principal,
    now: datetime,
) -> tuple[SeenAssignment, Assignment | None]:
    """Move an assignment; a declined lead is handed to the cp_officer as a new lead assignment."""
    session = uow.session
    a, incident = await _owned(session, unit_id, assignment_id, principal)
    lifecycle.transition(AssignmentStatus(a.status), target, note)
    previous = await _move(session, a, target, now, principal, note)
    events = [assignment_event(AssignmentStatusChanged, a, principal.label, now, from_status=previous, to_status=target, has_note=bool(note))]
    handoff = None
    if target is AssignmentStatus.declined and a.role == Role.lead.value:
        handoff = await _hand_off(session, await rule_sets.active(session), a, incident, now)
        events.append(routed_event(incident, [handoff], HANDOFF_RULES_VERSION, [f"lead declined by {a.unit_id}: handed to {handoff.unit_id}"], now))
    await uow.stage(*events)
    log.info(
        "assignment status changed",
        extra={"incident_id": a.incident_id, "assignment_id": a.id, "from": previous.value, "to": target.value, "by": principal.label},
    )
    return seen_by_unit(a, incident), handoff


async def _hand_off(session: AsyncSession, table: RuleTable, declined: Assignment, incident: RoutedIncident, now: datetime) -> Assignment:
    unit_id = lifecycle.handoff_unit(declined.commune_code, declined.unit_id)
    handoff = new_assignment(
        incident,
        unit_id,
        Role.lead,
        rule="handoff.decline",
        # The decline note stays out: it is free text and this reason travels in events.
        reason=f"Nhận lại vai trò chủ trì: {declined.unit_id} từ chối (lead handed back: {declined.unit_id} declined)",
        rules_version=HANDOFF_RULES_VERSION,
        origin=lifecycle.handoff_origin(declined.id),
        # A new deadline from now: the new lead needs its own time to take the case up.
        due_at=rules.due_at(now, Urgency(incident.urgency), table),
        now=now,
    )
    await store_assignments(session, [handoff], now)
    log.info("lead handed off", extra={"incident_id": declined.incident_id, "declined": declined.id, "assignment_id": handoff.id, "unit_id": unit_id})
    return handoff


# -- closing and reopening a case ------------------------------------------------------------------


async def _case(session: AsyncSession, incident_id: str, principal: Principal) -> RoutedIncident:
    incident = await session.get(RoutedIncident, incident_id)
    # Outside the commune the incident does not exist for the caller; inside it, only the focal point may act.
    if incident is None or not (principal.is_admin or principal.commune_code == incident.commune_code):
        raise NotFound("incident not found")
    if not may_close(principal, incident.commune_code):
        raise Forbidden(f"only {incident.commune_code}.cp_officer and admins may close or reopen an incident")
    return incident


async def _set_case_status(session: AsyncSession, incident: RoutedIncident, current: CaseStatus, **values) -> bool:
    """Compare-and-set the case's status; True when this transaction moved it."""
    # Over PostgreSQL this also locks the row the deadline watcher claims, so no escalation slips in
    # between the check of the assignments and the commit.
    result = await session.execute(
        update(RoutedIncident)
        .where(RoutedIncident.incident_id == incident.incident_id, RoutedIncident.status == current.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(incident)
    return result.rowcount == 1


async def close_incident(
    uow: UnitOfWork, incident_id: str, risk_level: RiskLevel, outcome: str, principal: Principal, now: datetime
) -> RoutedIncident:
    """Record the review's risk level and close the case once every assignment is done or declined; publishes incident.closed."""
    session = uow.session
    incident = await _case(session, incident_id, principal)
    closed = CaseStatus.closed.value
    if not await _set_case_status(session, incident, CaseStatus.open, status=closed, risk_level=risk_level.value, closed_at=now):
        lifecycle.check_close(CaseStatus(incident.status), ())
    assignments = (
        await session.execute(
            select(Assignment.id, Assignment.unit_id, Assignment.status)
            .where(Assignment.incident_id == incident_id)
            .order_by(Assignment.assigned_at, Assignment.id)
        )
    ).all()
    # Raising here rolls the status back with the rest of the transaction.
    lifecycle.check_close(CaseStatus.open, [(a, u, AssignmentStatus(s)) for a, u, s in assignments])
    session.add(IncidentChange(incident_id=incident_id, at=now, action="closed", principal=principal.label, risk_level=risk_level.value, note=outcome))
    event = IncidentClosed(
        incident_id=incident_id, commune_code=incident.commune_code, risk_level=risk_level, outcome=outcome, by=principal.label, at=now
    )
    await uow.stage(to_envelope(event, incident_id, now))
    log.info("incident closed", extra={"incident_id": incident_id, "risk_level": risk_level.value, "by": principal.label})
    return incident


async def reopen_incident(
    uow: UnitOfWork, rule_sets: RuleSets, incident_id: str, reason: str, principal: Principal, now: datetime
) -> tuple[RoutedIncident, Assignment]:
    """Take a closed case up again: back to planning, led by the commune's cp_officer; publishes incident.reopened."""
    session = uow.session
    incident = await _case(session, incident_id, principal)
    if not await _set_case_status(session, incident, CaseStatus.closed, status=CaseStatus.open.value, closed_at=None):
        lifecycle.check_reopen(CaseStatus(incident.status))
    change = IncidentChange(incident_id=incident_id, at=now, action="reopened", principal=principal.label, note=reason)
    session.add(change)
    await session.flush()
    # Someone must hold the reopened case, or nothing would show it in an inbox (domain.md section 3, step 6).
    cp_officer = f"{incident.commune_code}.{UnitType.cp_officer.value}"
    lead = new_assignment(
        incident,
        cp_officer,
        Role.lead,
        rule="reopen",
        # The reason stays in routing: it is free text and this one travels in events.
        reason=f"Mở lại vụ việc: lập lại kế hoạch hỗ trợ (case reopened by {principal.label}: back to planning)",
        rules_version=REOPEN_RULES_VERSION,
        origin=lifecycle.reopen_origin(change.id),
        due_at=rules.due_at(now, Urgency(incident.urgency), await rule_sets.active(session)),
        now=now,
    )
    await store_assignments(session, [lead], now)
    reopened = IncidentReopened(incident_id=incident_id, commune_code=incident.commune_code, by=principal.label, at=now)
    await uow.stage(
        to_envelope(reopened, incident_id, now),
        routed_event(incident, [lead], REOPEN_RULES_VERSION, [f"reopened by {principal.label}: {cp_officer} leads"], now),
    )
    log.info("incident reopened", extra={"incident_id": incident_id, "by": principal.label, "assignment_id": lead.id})
    return incident, lead


# -- the unit registry ---------------------------------------------------------------------------


async def list_units(
    session: AsyncSession, commune_code: str, principal: Principal, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[Unit], str | None]:
    """The commune's units by id (keyset pages): for admins and the commune's cp_officer."""
    if not may_list_units(principal, commune_code):
        raise Forbidden(f"only admins and {commune_code}.cp_officer may list the units of commune {commune_code}")
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


async def load_units_into(runtime: Runtime, units: list[UnitRecord]) -> int:
    """Insert or update units in the registry in one transaction; returns how many."""
    rows = [unit_row(u) for u in units]
    if rows:
        async with runtime.unit_of_work() as uow:
            stmt = dialect_insert(uow.session)(Unit).values(rows)
            stmt = stmt.on_conflict_do_update(
                index_elements=[Unit.id],
                set_={c: stmt.excluded[c] for c in ("commune_code", "unit_type", "local_id", "name", "active")},
            )
            await uow.session.execute(stmt)
    # The caller runs this under its own asyncio.run: leave no connection bound to that loop.
    await runtime.engine.dispose()
    return len(rows)
