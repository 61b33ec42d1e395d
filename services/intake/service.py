"""Intake's use cases: accept a report, read a case, record what happened to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.db import dialect_insert, new_id, utcnow
from shared.enums import AgeBand
from shared.events import (
    AssignmentAcknowledged,
    AssignmentOverdue,
    AssignmentStatusChanged,
    ChildCase,
    ChildFacts,
    Consent,
    Envelope,
    Event,
    IncidentCase,
    IncidentClosed,
    IncidentEscalated,
    IncidentFacts,
    IncidentReopened,
    IncidentReported,
    IncidentRouted,
    Reporter,
)
from shared.groupcommit import GroupCommit
from shared.reference import Hierarchy
from shared.runtime import Runtime
from shared.uow import UnitOfWork

from .models import Incident, TimelineEntry
from .schemas import ChildIn, IncidentCreate

VN = timezone(timedelta(hours=7))
PRODUCER = "intake"
CHILD_CONSENT_AGE = 7  # domain.md 7: disclosure needs the consent of a child of 7 or more


# -- pure ------------------------------------------------------------------------------


def vn_date(moment: datetime) -> date:
    return moment.astimezone(VN).date()


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def age_band(birth_date: date | None, age_years: int | None, on: date) -> AgeBand:
    """The report age band of a child on the day of the incident (Law on Children Art. 1: under 16)."""
    age = age_on(birth_date, on) if birth_date is not None else age_years
    if age is None or age < 0:
        return AgeBand.unknown
    if age <= 5:
        return AgeBand.a0_5
    if age <= 10:
        return AgeBand.a6_10
    if age <= 15:
        return AgeBand.a11_15
    if age <= 17:
        return AgeBand.a16_17
    raise ValueError(f"aged {age} on {on}: 18 or older is not a child")


def child_age(child: ChildIn, on: date) -> int | None:
    return age_on(child.birth_date, on) if child.birth_date is not None else child.age_years


def child_facts(child: ChildIn, on: date) -> ChildFacts:
    return ChildFacts(
        sex=child.sex,
        age_band=age_band(child.birth_date, child.age_years, on),
        special_circumstances=tuple(sorted(c.value for c in child.special_circumstances)),
    )


def check_commune(hierarchy: Hierarchy, body: IncidentCreate, received_at: datetime) -> list[dict]:
    """Errors (FastAPI's shape): no such commune on the incident's date, a child 18+, a child's consent where all are under 7."""
    errors = []
    day = vn_date(body.occurred_at or received_at)
    if hierarchy.commune_on(body.commune_code, day) is None:
        known = hierarchy.unit(body.commune_code)
        msg = (
            f"commune {body.commune_code} is not in the administrative hierarchy"
            if known is None
            else f"commune {body.commune_code} ({known.name}) did not exist on {day.isoformat()}"
        )
        errors.append({"loc": ["body", "commune_code"], "msg": msg, "type": "value_error"})
    for i, child in enumerate(body.children):
        if child.birth_date is not None and age_on(child.birth_date, day) >= 18:
            errors.append(
                {"loc": ["body", "children", i, "birth_date"], "msg": "18 or older on the incident date: not a child", "type": "value_error"}
            )
    ages = [child_age(child, day) for child in body.children]
    if body.consent.child is not None and all(age is not None and age < CHILD_CONSENT_AGE for age in ages):
        errors.append(
            {
                "loc": ["body", "consent", "child"],
                "msg": f"a child's consent is asked only of a child aged {CHILD_CONSENT_AGE} or more: every child here is younger; leave it null",
                "type": "value_error",
            }
        )
    return errors


def build_event(incident_id: str, body: IncidentCreate, principal: Principal, received_at: datetime) -> Envelope:
    day = vn_date(body.occurred_at or received_at)
    facts = IncidentFacts(
        commune_code=body.commune_code,
        hamlet=body.hamlet,
        category=body.category,
        urgency=body.urgency,
        channel=body.channel,
        occurred_at=body.occurred_at,
        received_at=received_at,
        children=tuple(child_facts(c, day) for c in body.children),
    )
    case = IncidentCase(
        description=body.description,
        children=tuple(
            ChildCase(
                full_name=c.full_name,
                sex=c.sex,
                birth_date=c.birth_date.isoformat() if c.birth_date else None,
                age_years=c.age_years,
                school=c.school,
                special_circumstances=tuple(s.value for s in c.special_circumstances),
            )
            for c in body.children
        ),
        reporter=Reporter(**body.reporter.model_dump()) if body.reporter else None,
        consent=Consent(**body.consent.model_dump()),
    )
    event = IncidentReported(incident_id=incident_id, reported_by=principal.label, facts=facts, case=case)
    return event.envelope(correlation_id=incident_id, producer=PRODUCER)


def timeline_order(entry: TimelineEntry) -> tuple[datetime, int, int]:
    """By time; entries of one instant (one transaction in routing) in causal order, whatever order they arrived in:
    the assignment changes, then what they did to the case, then the assignments made because of it."""
    if entry.kind.startswith("assignment."):
        rank = 1
    elif entry.kind == "routed":
        rank = 3
    else:
        rank = 0 if entry.kind == "reported" else 2
    return entry.at, rank, entry.id


def may_report(principal: Principal, commune_code: str) -> bool:
    return principal.is_admin or (principal.kind == "unit" and principal.commune_code == commune_code)


def may_read(principal: Principal, incident: Incident) -> bool:
    return principal.is_admin or principal.label == incident.reported_by or principal.is_cp_officer_of(incident.commune_code)


# -- with the database ----------------------------------------------------------------------


@dataclass
class Accepted:
    incident_id: str
    created: bool


@dataclass(frozen=True)
class Report:
    """A report checked and waiting to be stored (with others that arrived at the same time)."""

    body: IncidentCreate
    principal: Principal
    received_at: datetime


def check_report(hierarchy: Hierarchy, body: IncidentCreate, principal: Principal) -> Report:
    """What can be refused without the database: who reports where, the commune on the day, the children."""
    if not may_report(principal, body.commune_code):
        raise Forbidden(f"{principal.label} may not report incidents in commune {body.commune_code}")
    received_at = utcnow()
    errors = check_commune(hierarchy, body, received_at)
    if errors:
        raise Invalid(errors)
    return Report(body, principal, received_at)


def _incident_row(incident_id: str, report: Report) -> dict:
    body = report.body
    return {
        "id": incident_id,
        "report_id": str(body.report_id) if body.report_id else None,
        "reported_by": report.principal.label,
        "commune_code": body.commune_code,
        "hamlet": body.hamlet,
        "category": body.category.value,
        "urgency": body.urgency.value,
        "channel": body.channel.value,
        "occurred_at": body.occurred_at,
        "received_at": report.received_at,
        "status": "received",
        "description": body.description,
        "children": [c.model_dump(mode="json") for c in body.children],
        "reporter": body.reporter.model_dump(mode="json") if body.reporter else None,
        "consent": body.consent.model_dump(mode="json"),
    }


async def store_reports(uow: UnitOfWork, reports: list[Report]) -> list[Accepted | Conflict]:
    """Store reports with their timeline entries and `incident.reported` events, in the caller's unit of work.

    A report_id seen before answers with its incident (created False); one result per report, in order.
    """
    session = uow.session
    results: list[Accepted | Conflict | None] = [None] * len(reports)
    report_ids = {str(r.body.report_id) for r in reports if r.body.report_id}
    known = {row.report_id: row for row in await _by_report_ids(session, report_ids)} if report_ids else {}
    rows: dict[int, dict] = {}
    for k, report in enumerate(reports):
        report_id = str(report.body.report_id) if report.body.report_id else None
        if report_id in known:
            results[k] = _repeat(known[report_id], report.principal)
        else:
            rows[k] = _incident_row(new_id(), report)
    inserted: set[str] = set()
    if rows:
        # Core statements, one for all the reports: this is the hot path of every report.
        stmt = (
            dialect_insert(session)(Incident.__table__)
            .values(list(rows.values()))
            .on_conflict_do_nothing(index_elements=["report_id"])
            .returning(Incident.__table__.c.id)
        )
        inserted = set((await session.execute(stmt)).scalars())
    # A report_id sent twice at the same moment: the first stored wins, the other answers with it.
    raced = {str(reports[k].body.report_id) for k, row in rows.items() if row["id"] not in inserted}
    winners = {row.report_id: row for row in await _by_report_ids(session, raced)} if raced else {}
    timeline, envelopes = [], []
    for k, row in rows.items():
        report = reports[k]
        if row["id"] not in inserted:
            results[k] = _repeat(winners[row["report_id"]], report.principal)
            continue
        body = report.body
        results[k] = Accepted(row["id"], True)
        timeline.append(
            {
                "incident_id": row["id"],
                "at": report.received_at,
                "kind": "reported",
                "principal": report.principal.label,
                "detail": {"channel": body.channel.value, "category": body.category.value, "urgency": body.urgency.value},
            }
        )
        envelopes.append(build_event(row["id"], body, report.principal, report.received_at))
    if timeline:
        await session.execute(TimelineEntry.__table__.insert(), timeline)
        await uow.stage(*envelopes)
    return results  # type: ignore[return-value]


def report_writer(runtime: Runtime) -> GroupCommit[Report, Accepted]:
    """Reports posted at the same moment are stored in one transaction; each request answers after its commit."""

    async def run_batch(reports: list[Report]) -> list[Accepted | Conflict]:
        async with runtime.unit_of_work() as uow:
            return await store_reports(uow, reports)

    async def run_one(report: Report) -> Accepted:
        async with runtime.unit_of_work() as uow:
            [result] = await store_reports(uow, [report])
        if isinstance(result, Conflict):
            raise result
        return result

    # A database error is every report's answer (503 when it is away): none is stored twice after a commit
    # whose outcome is unknown, and none waits for the others to fail one by one.
    return GroupCommit("intake.reports", run_batch, run_one, max_batch=100, shared_failure=lambda exc: isinstance(exc, DBAPIError))


async def _by_report_ids(session: AsyncSession, report_ids: set[str]):
    stmt = select(Incident.id, Incident.report_id, Incident.reported_by).where(Incident.report_id.in_(sorted(report_ids)))
    return (await session.execute(stmt)).all()


def _repeat(existing, principal: Principal) -> Accepted | Conflict:
    if existing.reported_by != principal.label and not principal.is_admin:
        return Conflict("report_id is already used by another reporter's incident")
    return Accepted(existing.id, False)


async def read_incident(session: AsyncSession, incident_id: str, principal: Principal) -> tuple[Incident, list[TimelineEntry]]:
    incident = await session.get(Incident, incident_id)
    # Not found and not yours answer alike: an id reveals nothing.
    if incident is None or not may_read(principal, incident):
        raise NotFound("incident not found")
    entries = (await session.execute(select(TimelineEntry).where(TimelineEntry.incident_id == incident_id))).scalars().all()
    return incident, sorted(entries, key=timeline_order)


# -- the timeline consumer -------------------------------------------------------------------


def timeline_entry(event: Event) -> tuple[str, datetime | None, str, str, dict] | None:
    """(incident id, at, kind, principal, detail) for an event that belongs on a case's timeline."""
    if isinstance(event, IncidentRouted):
        # The first is the routing decision (rule-table version and the rules matched); later ones tell of a
        # lead handed back, an escalation or a reopened case (rules_version "handoff", "escalation", "reopen").
        return (
            event.incident_id,
            None,
            "routed",
            "routing",
            {
                "rules_version": event.rules_version,
                "rules": list(dict.fromkeys(a.rule for a in event.assignments)),
                "assignments": [
                    {"unit_id": a.unit_id, "role": a.role.value, "rule": a.rule, "reason": a.reason, "due_at": a.due_at.isoformat()}
                    for a in event.assignments
                ],
                "notes": list(event.notes),
            },
        )
    if isinstance(event, AssignmentAcknowledged):
        return event.incident_id, event.at, "assignment.acknowledged", event.by, {"unit_id": event.unit_id, "assignment_id": event.assignment_id}
    if isinstance(event, AssignmentStatusChanged):
        return (
            event.incident_id,
            event.at,
            f"assignment.{event.to_status.value}",
            event.by,
            {"unit_id": event.unit_id, "assignment_id": event.assignment_id, "from": event.from_status.value},
        )
    if isinstance(event, AssignmentOverdue):
        return (
            event.incident_id,
            event.at,
            "assignment.overdue",
            event.by,
            {"unit_id": event.unit_id, "assignment_id": event.assignment_id, "due_at": event.due_at.isoformat()},
        )
    if isinstance(event, IncidentEscalated):
        return (
            event.incident_id,
            event.at,
            "escalated",
            "routing",
            {"to": list(event.escalated_to), "overdue_assignment_id": event.overdue_assignment_id},
        )
    if isinstance(event, IncidentClosed):
        return event.incident_id, event.at, "closed", event.by, {"risk_level": event.risk_level.value, "outcome": event.outcome}
    if isinstance(event, IncidentReopened):
        return event.incident_id, event.at, "reopened", event.by, {}
    return None


async def record_timelines(session: AsyncSession, items: Sequence[tuple[Event, Envelope]]) -> list[Envelope]:
    """Put events on their cases' timelines and follow the case status, a statement per kind of write.

    In delivery order: of two status changes to one case in a batch, the later one stays, as one at a time."""
    entries = [(entry, envelope) for event, envelope in items if (entry := timeline_entry(event)) is not None]
    if not entries:
        return []
    ids = sorted({entry[0] for entry, _ in entries})
    status = dict((await session.execute(select(Incident.id, Incident.status).where(Incident.id.in_(ids)))).all())
    rows, changed = [], {}
    for (incident_id, at, kind, principal, detail), envelope in entries:
        if incident_id not in status:
            continue  # not ours (e.g. an incident from another intake store): nothing to record
        rows.append({"incident_id": incident_id, "at": at or envelope.emitted_at, "kind": kind, "principal": principal, "detail": detail})
        if kind == "routed" and status[incident_id] == "received":
            status[incident_id] = changed[incident_id] = "routed"
        elif kind in ("closed", "reopened"):
            status[incident_id] = changed[incident_id] = kind
    if rows:
        await session.execute(TimelineEntry.__table__.insert(), rows)
    by_status: dict[str, list[str]] = {}
    for incident_id, new in changed.items():
        by_status.setdefault(new, []).append(incident_id)
    for new, incident_ids in sorted(by_status.items()):
        await session.execute(update(Incident).where(Incident.id.in_(sorted(incident_ids))).values(status=new))
    return []


async def record_timeline(session: AsyncSession, event: Event, envelope: Envelope) -> list[Envelope]:
    """One event on its case's timeline (a batch of one)."""
    return await record_timelines(session, [(event, envelope)])
