"""Intake's use cases: accept a report, read a case, record what happened to it."""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, parse_unit_id
from shared.cursor import InvalidCursor, decode_cursor, encode_cursor
from shared.db import dialect_insert, new_id, on_postgresql, utcnow
from shared.enums import UnitType
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.events import Envelope, Event, IncidentLinked, IncidentPossibleDuplicate
from shared.groupcommit import GroupCommit
from shared.plans import load_plan
from shared.reference import Hierarchy
from shared.runtime import Runtime
from shared.uow import UnitOfWork

from . import activities, duplicates
from .erasure import ERASED
from .incidents import PRODUCER, build_event, check_commune, facts_event, may_read, may_report
from .models import Activity, DuplicateCandidate, Incident, TimelineEntry
from .retention import erased_detail
from .schemas import ActivityChange, ActivityCreate, IncidentCreate
from .timeline import in_order, timeline_entry

log = logging.getLogger("baove.intake.duplicates")


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
        "duplicates_pending": True,
    }



async def store_reports(uow: UnitOfWork, reports: list[Report]) -> list[Accepted | Conflict]:
    """Store reports with their timeline entries, `incident.reported` and `incident.recorded` events, in the caller's unit of work.

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
        reported = build_event(row["id"], body, report.principal, report.received_at)
        envelopes += [reported, facts_event(reported)]
    if timeline:
        await session.execute(TimelineEntry.__table__.insert(), timeline)
        await uow.stage(*envelopes)
    return results  # type: ignore[return-value]



def report_writer(runtime: Runtime, stored: Callable[[], None] = lambda: None) -> GroupCommit[Report, Accepted]:
    """Reports posted at the same moment are stored in one transaction; each request answers after its commit.

    `stored` is called after each commit (it wakes the duplicate check, which runs beside, never in, the request)."""

    async def run_batch(reports: list[Report]) -> list[Accepted | Conflict]:
        async with runtime.unit_of_work() as uow:
            results = await store_reports(uow, reports)
        stored()
        return results

    async def run_one(report: Report) -> Accepted:
        async with runtime.unit_of_work() as uow:
            [result] = await store_reports(uow, [report])
        stored()
        if isinstance(result, Conflict):
            raise result
        return result

    # A database error is every report's answer (503 when it is away): none is stored twice after a commit
    # whose outcome is unknown, and none waits for the others to fail one by one.
    return GroupCommit("intake.reports", run_batch, run_one, max_batch=100, shared_failure=lambda exc: isinstance(exc, DBAPIError))



# -- possible duplicates (issue 17) ------------------------------------------------------------------


async def check_duplicates(
    uow: UnitOfWork, threshold: float, now: datetime, batch: int = 200, limit: int = duplicates.MAX_CANDIDATES
) -> int:
    """Compare accepted reports not yet checked with their commune's last 30 days; store and announce candidates.

    Runs after the report's own commit (its answer never waits for it), a batch at a time: each commune's window
    read once, every match worked out, then all the writes at the end (a short write, so that on SQLite the
    report writer is not kept waiting). At most `limit` candidates per report, the best ones. A report whose match
    fails is marked checked all the same, the error's type logged (never its data): an accepted report is never
    held back by the matching. Database errors propagate (the batch is tried again later). Returns how many
    reports were checked."""
    session = uow.session
    i = Incident
    pending = (
        await session.execute(
            select(i.id, i.commune_code, i.hamlet, i.children, i.received_at).where(i.duplicates_pending).order_by(i.received_at, i.id).limit(batch)
        )
    ).all()
    by_commune: dict[str, list] = {}
    for row in pending:
        by_commune.setdefault(row.commune_code, []).append(row)
    rows, envelopes = [], []
    for commune, incidents in sorted(by_commune.items()):
        window = await _window(session, commune, incidents[0].received_at - duplicates.WINDOW, incidents[-1].received_at)
        for incident in incidents:
            try:
                found = _match(incident, window, threshold, limit)
            except Exception as exc:
                log.warning("duplicate check failed", extra={"error": type(exc).__name__, "incident_id": incident.id})
                continue
            for c in found:
                rows.append({"incident_id": incident.id, "other_id": c.incident_id, "commune_code": commune, "score": c.score, "status": "open", "found_at": now})
                event = IncidentPossibleDuplicate(incident_id=incident.id, duplicate_of=c.incident_id, commune_code=commune, score=c.score, at=now)
                envelopes.append(event.envelope(correlation_id=incident.id, producer=PRODUCER, emitted_at=now))
    if rows:
        await session.execute(dialect_insert(session)(DuplicateCandidate.__table__).on_conflict_do_nothing(), rows)
        await uow.stage(*envelopes)
    if pending:
        await session.execute(update(Incident).where(Incident.id.in_([row.id for row in pending])).values(duplicates_pending=False))
    return len(pending)


@dataclass(frozen=True)
class _Window:
    """A commune's children reported between two moments, in the order received: each key's report's place."""

    places: list[tuple[datetime, str]]
    keys: list[duplicates.ChildKey]


async def _window(session: AsyncSession, commune: str, since: datetime, until: datetime) -> _Window:
    """The window read as plain rows (no ORM objects: it is the check's cost), a range of ix_incident_commune_received."""
    i = Incident
    stmt = (
        select(i.id, i.hamlet, i.children, i.received_at)
        .where(i.commune_code == commune, i.received_at >= since, i.received_at <= until)
        .order_by(i.received_at, i.id)
    )
    rows = [
        ((row.received_at, row.id), key)
        for row in await (await session.connection()).execute(stmt)
        for key in duplicates.child_keys(row.id, row.children, row.hamlet, row.received_at)
    ]
    rows.sort(key=itemgetter(0))  # the order bisection uses (a database collation may order ids otherwise); near-free: sorted
    return _Window([place for place, _ in rows], [key for _, key in rows])


def _match(incident, window: _Window, threshold: float, limit: int) -> list[duplicates.Candidate]:
    """The earlier reports of the window that may be about a child of this one (a pair is found once, by its later report)."""
    new = duplicates.child_keys(incident.id, incident.children, incident.hamlet, incident.received_at)
    if not new:
        return []
    first = bisect_left(window.places, (incident.received_at - duplicates.WINDOW, ""))
    end = bisect_left(window.places, (incident.received_at, incident.id))
    return duplicates.candidates(new, window.keys[first:end], threshold, limit)


async def _pair(session: AsyncSession, incident_id: str, other_id: str, principal: Principal, *, lock: bool = False) -> DuplicateCandidate:
    """The candidate pair of two reports (either order), for the cp_officer of their commune."""
    d = DuplicateCandidate
    stmt = select(d).where(((d.incident_id == incident_id) & (d.other_id == other_id)) | ((d.incident_id == other_id) & (d.other_id == incident_id)))
    if lock and on_postgresql(session):
        stmt = stmt.with_for_update()
    pair = (await session.execute(stmt)).scalars().first()
    if pair is None or not (principal.is_admin or principal.is_cp_officer_of(pair.commune_code)):
        raise NotFound("no such possible duplicate")
    return pair


async def list_duplicates(session: AsyncSession, incident_id: str, principal: Principal) -> list[tuple[DuplicateCandidate, str]]:
    """The possible duplicates of a report, best first, each with the other report's id: for its commune's cp_officer."""
    incident = await session.get(Incident, incident_id)
    if incident is None or not may_read(principal, incident):
        raise NotFound("incident not found")
    if not (principal.is_admin or principal.is_cp_officer_of(incident.commune_code)):
        raise Forbidden("possible duplicates are for the commune's cp_officer")
    d = DuplicateCandidate
    pairs = (await session.execute(select(d).where((d.incident_id == incident_id) | (d.other_id == incident_id)))).scalars().all()
    return [(p, p.other_id if p.incident_id == incident_id else p.incident_id) for p in sorted(pairs, key=lambda p: (-p.score, p.id))]


async def decide_duplicate(uow: UnitOfWork, incident_id: str, other_id: str, decision: str, principal: Principal, now: datetime) -> DuplicateCandidate:
    """The cp_officer links two reports (one case; `incident.linked`) or dismisses the candidate. Never merged.

    A repeat changes nothing; a dismissed pair may still be linked; a link is not undone here."""
    pair = await _pair(uow.session, incident_id, other_id, principal, lock=True)
    if not principal.is_cp_officer_of(pair.commune_code):
        raise Forbidden("only the commune's cp_officer links or dismisses possible duplicates")
    status = {"link": "linked", "dismiss": "dismissed"}[decision]
    if pair.status == status:
        return pair
    if pair.status == "linked":
        raise Conflict({"message": "these reports are linked: a link is not dismissed", "current": "linked", "allowed": []})
    pair.status, pair.decided_by, pair.decided_at = status, principal.label, now
    kind = "linked" if status == "linked" else "duplicate_dismissed"
    await uow.session.execute(
        TimelineEntry.__table__.insert(),
        [
            {"incident_id": a, "at": now, "kind": kind, "principal": principal.label, "detail": {"other_incident_id": b}}
            for a, b in ((pair.incident_id, pair.other_id), (pair.other_id, pair.incident_id))
        ],
    )
    if status == "linked":
        event = IncidentLinked(incident_id=pair.incident_id, linked_to=pair.other_id, commune_code=pair.commune_code, by=principal.label, at=now)
        await uow.stage(event.envelope(correlation_id=pair.incident_id, producer=PRODUCER, emitted_at=now))
    return pair


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
    return incident, in_order(entries)



async def record_timelines(session: AsyncSession, items: Sequence[tuple[Event, Envelope]]) -> list[Envelope]:
    """Put events on their cases' timelines and follow the case status, a statement per kind of write.

    In delivery order: of two status changes to one case in a batch, the later one stays, as one at a time."""
    entries = [(entry, envelope) for event, envelope in items if (entry := timeline_entry(event)) is not None]
    if not entries:
        return []
    ids = sorted({entry.incident_id for entry, _ in entries})
    status = dict((await session.execute(select(Incident.id, Incident.status).where(Incident.id.in_(ids)))).all())
    rows, changed = [], {}
    for (incident_id, at, kind, principal, detail), envelope in entries:
        if incident_id not in status:
            continue  # not ours (e.g. an incident from another intake store): nothing to record
        if status[incident_id] == ERASED:
            # Late news of an erased case: recorded without free text, and it stays erased.
            rows.append({"incident_id": incident_id, "at": at or envelope.emitted_at, "kind": kind, "principal": principal, "detail": erased_detail(detail)})
            continue
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



# -- activities under the commune's plan (issue 16) ------------------------------------------------


def _checked(hierarchy: Hierarchy, unit_id: str, change: ActivityChange, plans=load_plan) -> tuple[dict, list[dict]]:
    """The activity's fields as stored, and what is wrong with them against the commune and its plan."""
    commune, unit_type, _ = parse_unit_id(unit_id)
    errors = activities.unit_errors(unit_id)
    if hierarchy.commune_on(commune, change.held_on) is None:
        errors.append(activities.error("unit_id", f"commune {commune} is not in the administrative hierarchy on {change.held_on}"))
    if unit_type == UnitType.hamlet and unit_id not in hierarchy.hamlet_unit_ids(commune):
        errors.append(activities.error("unit_id", f"{unit_id} is not a hamlet of commune {commune}"))
    plan = activities.plan_for(plans, commune, change.held_on)
    errors += activities.check_activity(plan, commune, unit_id, change.task_id, change.kind, change.counts, change.note, change.held_on.year)
    fields = {
        "commune_code": commune,
        "unit_id": unit_id,
        "unit_type": unit_type.value,
        "task_id": change.task_id,
        "plan_version": plan.version if plan else "",
        "kind": change.kind,
        "held_on": change.held_on,
        "counts": change.counts.model_dump(),
        "note": change.note or None,
    }
    return fields, errors


def activity_row(activity: Activity) -> dict:
    return {c.name: getattr(activity, c.name) for c in Activity.__table__.columns}


async def record_activity(uow: UnitOfWork, hierarchy: Hierarchy, body: ActivityCreate, principal: Principal, now: datetime) -> Activity:
    """Store a unit's activity and stage `activity.recorded`, in the caller's unit of work."""
    if not activities.may_record(principal, body.unit_id):
        raise Forbidden(f"{principal.label} may record activities only for its own unit (a cp_officer: for the units of its commune)")
    fields, errors = _checked(hierarchy, body.unit_id, body)
    if errors:
        raise Invalid(errors)
    activity = Activity(
        id=new_id(), **fields, status="recorded", revision=1, recorded_by=principal.label, author=activities.author_of(principal),
        recorded_at=now, changed_at=now,
    )
    uow.session.add(activity)
    await uow.stage(activities.build_event("recorded", activity_row(activity), principal.label, now))
    return activity


async def _own(session: AsyncSession, activity_id: str, principal: Principal) -> Activity:
    """The caller's own activity, locked for the change; 404 if it may not see it, 403 if it is someone else's."""
    stmt = select(Activity).where(Activity.id == activity_id)
    if on_postgresql(session):
        stmt = stmt.with_for_update()
    activity = (await session.execute(stmt)).scalars().first()
    if activity is None or not activities.may_see(principal, activity.unit_id, activity.commune_code):
        raise NotFound("activity not found")
    if activity.author != activities.author_of(principal):
        raise Forbidden("only the person who recorded an activity may correct or withdraw it")
    return activity


async def correct_activity(
    uow: UnitOfWork, hierarchy: Hierarchy, activity_id: str, body: ActivityChange, principal: Principal, now: datetime
) -> Activity:
    """Replace what an activity says (its unit stays) and stage `activity.corrected` with the next revision."""
    activity = await _own(uow.session, activity_id, principal)
    if activity.status == "withdrawn":
        raise Conflict({"message": "a withdrawn activity cannot be corrected: record a new one", "current": "withdrawn", "allowed": []})
    fields, errors = _checked(hierarchy, activity.unit_id, body)
    if errors:
        raise Invalid(errors)
    for name, value in fields.items():
        setattr(activity, name, value)
    activity.revision += 1
    activity.changed_at = now
    await uow.stage(activities.build_event("corrected", activity_row(activity), principal.label, now))
    return activity


async def withdraw_activity(uow: UnitOfWork, activity_id: str, principal: Principal, now: datetime) -> Activity:
    """The activity counts no more; `activity.withdrawn` with the next revision. A repeat changes nothing."""
    activity = await _own(uow.session, activity_id, principal)
    if activity.status == "withdrawn":
        return activity
    activity.status = "withdrawn"
    activity.revision += 1
    activity.changed_at = now
    await uow.stage(activities.build_event("withdrawn", activity_row(activity), principal.label, now))
    return activity


async def read_activity(session: AsyncSession, activity_id: str, principal: Principal) -> Activity:
    activity = await session.get(Activity, activity_id)
    if activity is None or not activities.may_see(principal, activity.unit_id, activity.commune_code):
        raise NotFound("activity not found")
    return activity


async def list_activities(
    session: AsyncSession,
    principal: Principal,
    *,
    commune: str,
    unit_id: str | None = None,
    task_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
    include_withdrawn: bool = False,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Activity], str | None]:
    """A commune's activities, newest held first: all of them for its cp_officer and admins, a unit's own for the unit."""
    a = Activity
    if not (principal.is_admin or principal.is_cp_officer_of(commune) or principal.commune_code == commune):
        raise NotFound(f"commune {commune} not found among the communes this token may see")
    stmt = select(a).where(a.commune_code == commune)
    if not (principal.is_admin or principal.is_cp_officer_of(commune)):
        stmt = stmt.where(a.unit_id == principal.unit_id)
    if unit_id is not None:
        stmt = stmt.where(a.unit_id == unit_id)
    if task_id is not None:
        stmt = stmt.where(a.task_id == task_id)
    if since is not None:
        stmt = stmt.where(a.held_on >= since)
    if until is not None:
        stmt = stmt.where(a.held_on <= until)
    if not include_withdrawn:
        stmt = stmt.where(a.status != "withdrawn")
    if cursor is not None:
        at = decode_cursor(cursor, held_on=str, id=str)
        try:
            day = date.fromisoformat(at["held_on"])
        except ValueError:
            raise InvalidCursor() from None
        stmt = stmt.where((a.held_on < day) | ((a.held_on == day) & (a.id < at["id"])))
    rows = list((await session.execute(stmt.order_by(a.held_on.desc(), a.id.desc()).limit(limit + 1))).scalars())
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor({"held_on": rows[-1].held_on.isoformat(), "id": rows[-1].id})
    return rows, None
