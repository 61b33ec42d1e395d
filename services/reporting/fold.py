"""The read model kept from the events: each batch folded kind by kind, in any order to the same result, no personal data read."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime

from sqlalchemy import Table, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from shared.auth import parse_unit_id
from shared.clock import Clock
from shared.db import dialect_insert, on_postgresql, utcnow
from shared.enums import AssignmentStatus, UnitType
from shared.events import (
    ActivityEvent,
    ActivityWithdrawn,
    AssignmentAcknowledged,
    AssignmentOverdue,
    AssignmentStatusChanged,
    Envelope,
    Event,
    IncidentCareDecided,
    IncidentClosed,
    IncidentClosureRecorded,
    IncidentEscalated,
    IncidentFacts,
    IncidentLinked,
    IncidentRecorded,
    IncidentReopened,
    IncidentReported,
    IncidentRouted,
    IncidentStepChanged,
    IncidentStepOverdue,
)

from . import aggregates, cells
from .models import (
    ActivityFact,
    AssignmentFact,
    CareFact,
    ChildFact,
    EscalationFact,
    IncidentClosure,
    IncidentFact,
    IncidentLink,
    StepFact,
    StepOverdueFact,
)
from .periods import as_utc, local_date

log = logging.getLogger("baove.reporting")

ADVISORY_NAMESPACE = 0x62617276  # pg_advisory_xact_lock(namespace, hash of the incident id)



def hamlet_of(facts: IncidentFacts) -> str | None:
    """The hamlet's unit id if it is one of this commune's; anything else could be an address, and is dropped."""
    if facts.hamlet is None:
        return None
    try:
        commune, unit_type, _ = parse_unit_id(facts.hamlet)
    except ValueError:
        return None
    return facts.hamlet if unit_type == UnitType.hamlet and commune == facts.commune_code else None



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
    key = (session.bind.dialect.name, update.__qualname__, tuple(sorted(rows[0])))
    stmt = _UPSERTS.get(key)
    if stmt is None:
        table = AssignmentFact.__table__
        insert = dialect_insert(session)(table)
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



# incident.recorded is what reporting's queue is bound to; an incident.reported (queued before the upgrade
# removed that binding) gives the same facts, its case never read.
Reported = IncidentRecorded | IncidentReported


def _reported_rows(event: Reported, now: datetime) -> tuple[dict, list[dict]]:
    """The incident's facts and its children's codes."""
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



async def _record_reported(session: AsyncSession, events: list[Reported], now: datetime) -> dict[str, tuple[str, date]]:
    """Insert new incidents with their children; an incident already here (a producer's retry) is left alone.

    Returns the incidents inserted, with their cell (commune, day)."""
    rows = {e.incident_id: _reported_rows(e, now) for e in events}
    stmt = (
        dialect_insert(session)(IncidentFact.__table__)
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
    stmt = dialect_insert(session)(EscalationFact.__table__).on_conflict_do_nothing(index_elements=["event_id"])
    await session.execute(stmt, rows)



async def _record_closures(session: AsyncSession, column: str, rows: list[dict]) -> None:
    """Keep the latest closing and the latest reopening; which is later decides, whatever the arrival order."""
    table = IncidentClosure.__table__
    stmt = dialect_insert(session)(table)
    old, new = table.c[column], stmt.excluded[column]
    later = or_(old.is_(None), new > old)
    merged = {column: case((later, new), else_=old), "ingested_at": stmt.excluded.ingested_at}
    if column == "closed_at":
        # The final risk level is the latest closing's (a case reopened and closed again keeps the second one's).
        merged["risk_level"] = case((later, stmt.excluded.risk_level), else_=table.c.risk_level)
    stmt = stmt.on_conflict_do_update(index_elements=["incident_id"], set_=merged)
    await session.execute(stmt, rows)



def _earliest(rows: list[dict], key: tuple[str, ...], column: str) -> list[dict]:
    """One row per key, the one with the smallest `column` (a batch may hold an event twice: one statement, one row)."""
    kept: dict[tuple, dict] = {}
    for row in rows:
        k = tuple(row[c] for c in key)
        if k not in kept or row[column] < kept[k][column]:
            kept[k] = row
    return list(kept.values())



async def _record_process(session: AsyncSession, steps: list[dict], overdue: list[dict], care: list[dict]) -> None:
    """The case process's facts (issue 17): each step's first time, each late step once, each care decision at its
    highest version. Any order and any redelivery give the same rows."""
    if steps:
        table = StepFact.__table__
        stmt = dialect_insert(session)(table)
        first = case((stmt.excluded.first_at < table.c.first_at, stmt.excluded.first_at), else_=table.c.first_at)
        stmt = stmt.on_conflict_do_update(
            index_elements=["incident_id", "step"], set_={"first_at": first, "ingested_at": stmt.excluded.ingested_at},
            where=stmt.excluded.first_at < table.c.first_at,
        )
        await session.execute(stmt, _earliest(steps, ("incident_id", "step"), "first_at"))
    if overdue:
        stmt = dialect_insert(session)(StepOverdueFact.__table__).on_conflict_do_nothing(index_elements=["incident_id", "step"])
        await session.execute(stmt, _earliest(overdue, ("incident_id", "step"), "at"))
    if care:
        newest = _earliest([{**row, "_order": -row["version"]} for row in care], ("incident_id",), "_order")
        table = CareFact.__table__
        stmt = dialect_insert(session)(table)
        columns = ("commune_code", "starts_on", "ends_on", "version", "ingested_at")
        stmt = stmt.on_conflict_do_update(
            index_elements=["incident_id"], set_={c: stmt.excluded[c] for c in columns}, where=table.c.version < stmt.excluded.version
        )
        await session.execute(stmt, [{k: v for k, v in row.items() if k != "_order"} for row in newest])



def _activity_row(event: ActivityEvent, now: datetime) -> dict:
    """The activity's codes and counts at its revision; a withdrawal keeps them but counts no more."""
    return {
        "activity_id": event.activity_id,
        "revision": event.revision,
        "commune_code": event.commune_code,
        "local_date": event.held_on,
        "unit_id": event.unit_id,
        "unit_type": event.unit_type,
        "task_id": event.task_id,
        "plan_version": event.plan_version,
        "kind": event.kind,
        "withdrawn": isinstance(event, ActivityWithdrawn),
        **event.counts.model_dump(),
        "ingested_at": now,
    }



async def _record_activities(session: AsyncSession, rows: list[dict]) -> None:
    """Keep each activity at its highest revision, whatever order its events come in (redelivery changes nothing)."""
    newest: dict[str, dict] = {}
    for row in rows:
        if row["activity_id"] not in newest or row["revision"] > newest[row["activity_id"]]["revision"]:
            newest[row["activity_id"]] = row
    table = ActivityFact.__table__
    stmt = dialect_insert(session)(table)
    columns = [c for c in next(iter(newest.values())) if c != "activity_id"]
    stmt = stmt.on_conflict_do_update(
        index_elements=["activity_id"],
        set_={c: stmt.excluded[c] for c in columns},
        where=table.c.revision < stmt.excluded.revision,
    )
    await session.execute(stmt, list(newest.values()))



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
    reported: list[Reported] = []
    assignments: dict[str, list[dict]] = {"routed": [], "acknowledged": [], "status": [], "overdue": []}
    escalations: list[dict] = []
    closures: dict[str, list[dict]] = {"closed_at": [], "reopened_at": []}
    touched: set[str] = set()
    activities: list[dict] = []
    links: list[dict] = []
    steps: list[dict] = []
    late_steps: list[dict] = []
    care: list[dict] = []
    for event, envelope in items:
        if isinstance(event, ActivityEvent):
            activities.append(_activity_row(event, now))
            continue
        # The case process (issue 17): ids, step names, times and dates. `by` (who) is never read.
        if isinstance(event, IncidentStepChanged):
            steps.append({"incident_id": event.incident_id, "step": event.to_step, "first_at": as_utc(event.at), "ingested_at": now})
            continue
        if isinstance(event, IncidentStepOverdue):
            late_steps.append(
                {"incident_id": event.incident_id, "step": event.step, "due_at": as_utc(event.due_at), "at": as_utc(event.at), "ingested_at": now}
            )
            continue
        if isinstance(event, IncidentCareDecided):
            care.append(
                {
                    "incident_id": event.incident_id,
                    "commune_code": event.commune_code,
                    "starts_on": event.starts_on,
                    "ends_on": event.ends_on,
                    "version": event.version,
                    "ingested_at": now,
                }
            )
            continue
        if isinstance(event, (IncidentRecorded, IncidentReported)):
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
        elif isinstance(event, (IncidentClosureRecorded, IncidentClosed, IncidentReopened)):
            # incident.closure_recorded is what reporting's queue is bound to; an incident.closed (queued before the
            # upgrade removed that binding) gives the same closing, its outcome never read.
            column = "reopened_at" if isinstance(event, IncidentReopened) else "closed_at"
            row = {"incident_id": event.incident_id, column: as_utc(event.at), "ingested_at": now}
            if column == "closed_at":
                row["risk_level"] = event.risk_level.value
            closures[column].append(row)
        elif isinstance(event, IncidentLinked):
            links.append({"incident_id": event.incident_id, "linked_to": event.linked_to, "ingested_at": now})
        else:
            # report.generated and anything newer: not a fact of the read model. incident.erased too: the facts
            # hold nothing personal and stay, so the summaries keep their numbers (docs/privacy.md).
            continue
        touched.add(event.incident_id)
        log.debug("event folded", extra={"event_type": envelope.event_type, "event_id": str(envelope.event_id)})
    if activities:
        # Activities count in no tally cell (summaries read them directly): only the scheduler's change log sees them.
        await _record_activities(session, activities)
    if steps or late_steps or care:
        # Process facts count in no tally cell either: summaries read them directly (summaries.process_tallies).
        await _record_process(session, steps, late_steps, care)
    if not touched:
        return []
    if on_postgresql(session):
        await _lock_incidents(session, touched)
    changed: set[tuple[str, date]] = set()
    inserted: dict[str, tuple[str, date]] = {}
    if reported:
        inserted = await _record_reported(session, reported, now)
        changed |= set(inserted.values())
    for kind, merge in (
        ("routed", _routed_update),
        ("acknowledged", _acknowledged_update),
        ("status", _newest_status),
        ("overdue", _overdue_update),
    ):
        if assignments[kind]:
            await _upsert_assignments(session, assignments[kind], merge, now)
    if escalations:
        await _record_escalations(session, escalations)
    for column, rows in closures.items():
        if rows:
            await _record_closures(session, column, rows)
    if links:
        # A link is never undone: the first one of a report stays.
        await session.execute(dialect_insert(session)(IncidentLink.__table__).on_conflict_do_nothing(index_elements=["incident_id"]), links)
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
