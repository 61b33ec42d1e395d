"""Erasing an incident's personal data in intake (an admin's request, or the retention job), the event that
tells the other services, the retention job itself, and the audit's retention."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared import audit
from shared.children import anonymous_child
from shared.db import utcnow
from shared.errors import NotFound
from shared.events import IncidentErased
from shared.loops import repeat
from shared.outbox import forget_published
from shared.runtime import Runtime
from shared.uow import UnitOfWork

from .incidents import PRODUCER, vn_date
from .models import DuplicateCandidate, Incident, TimelineEntry
from .retention import ClosedCase, RetentionPolicy, erased_detail, redacted_reported

log = logging.getLogger("baove.intake.erasure")

ERASED = "erased"
Cause = Literal["request", "retention"]
# Where intake keeps personal data: vacuumed on PostgreSQL after an erasure.
PERSONAL_TABLES = ("incident", "timeline_entry", "outbox_message")


@dataclass(frozen=True)
class Erasure:
    incident_id: str
    erased_at: datetime
    new: bool  # False: it was erased before (nothing done again)



async def erase_incident(uow: UnitOfWork, outbox, incident_id: str, *, by: str, cause: Cause, now: datetime) -> Erasure:
    """Blank the incident's personal data in the caller's unit of work and stage `incident.erased`.

    Kept: ids, commune, hamlet code, category, urgency, channel, dates, status history, consent answers and each
    child's sex, age band and special-circumstance codes. Gone: description, names, birth dates, ages, schools,
    the reporter, the review's free-text outcome, the incident.reported event still in the outbox, and its possible
    duplicates."""
    session = uow.session
    incident = await session.get(Incident, incident_id, with_for_update=True)
    if incident is None:
        raise NotFound("incident not found")
    if incident.status == ERASED:
        return Erasure(incident_id, now, False)
    day = vn_date(incident.occurred_at or incident.received_at)
    incident.description = ""
    incident.children = [anonymous_child(c, day) for c in incident.children]
    incident.reporter = None
    incident.status = ERASED
    incident.duplicates_pending = False
    # A possible duplicate would name the other report's child beside this one: the pairing goes too (a link the
    # cp_officer made stays in reporting, by ids, so the child is still counted once).
    pair = or_(DuplicateCandidate.incident_id == incident_id, DuplicateCandidate.other_id == incident_id)
    await session.execute(delete(DuplicateCandidate).where(pair))
    entries = (await session.execute(select(TimelineEntry).where(TimelineEntry.incident_id == incident_id))).scalars()
    for entry in entries:
        kept = erased_detail(entry.detail)
        if kept != entry.detail:
            entry.detail = kept
    session.add(TimelineEntry(incident_id=incident_id, at=now, kind=ERASED, principal=by, detail={"cause": cause}))
    await _forget_outbox(session, outbox, incident_id)
    event = IncidentErased(incident_id=incident_id, commune_code=incident.commune_code, cause=cause, at=now)
    await uow.stage(event.envelope(correlation_id=incident_id, producer=PRODUCER, emitted_at=now))
    return Erasure(incident_id, now, True)



async def _forget_outbox(session: AsyncSession, outbox, incident_id: str) -> None:
    """Published events of the incident go (they were kept a day for nothing else); an unpublished report leaves blanked."""
    await forget_published(session, outbox, incident_id)
    mine = outbox.c.correlation_id == incident_id
    waiting = (await session.execute(select(outbox.c.id, outbox.c.body).where(mine, outbox.c.event_type == "incident.reported"))).all()
    for row in waiting:
        await session.execute(update(outbox).where(outbox.c.id == row.id).values(body=redacted_reported(row.body)))



async def erase(
    runtime: Runtime, incident_id: str, *, principal: str, username: str | None, token_id: str | None, reason: str,
    endpoint: str, cause: Cause = "request",
) -> Erasure:
    """An erasure: blanked and the event staged in one transaction, then audited in the security store. An erasure
    repeated is audited again but changes nothing. The caller then scrubs the files (`runtime.forget`)."""
    async with runtime.unit_of_work() as uow:
        done = await erase_incident(uow, runtime.outbox_table, incident_id, by=principal, cause=cause, now=utcnow())
    async with runtime.auth_sessionmaker() as session, session.begin():
        await audit.record_event(
            session, ERASED if done.new else "erased_again", principal=principal, username=username, token_id=token_id,
            incident_id=incident_id, detail=reason, endpoint=endpoint, service=runtime.name,
        )
    return done



async def closed_cases(session: AsyncSession, cutoff: datetime, limit: int) -> list[ClosedCase]:
    """Closed cases last closed at or before `cutoff`, the longest closed first (at most `limit`)."""
    t = TimelineEntry
    closed = select(t.incident_id, func.max(t.at).label("closed_at")).where(t.kind == "closed").group_by(t.incident_id).subquery()
    stmt = (
        select(Incident.id, Incident.status, closed.c.closed_at)
        .join(closed, closed.c.incident_id == Incident.id)
        .where(Incident.status == "closed", closed.c.closed_at <= cutoff)
        .order_by(closed.c.closed_at, Incident.id)
        .limit(limit)
    )
    return [ClosedCase(*row) for row in (await session.execute(stmt)).all()]



async def apply_retention(runtime: Runtime, policy: RetentionPolicy, *, batch: int, now: datetime | None = None) -> list[str]:
    """One pass of the retention job: erase the cases due (a batch at a time), each audited as done by `retention`."""
    now = now or utcnow()
    erased: list[str] = []
    while True:
        async with runtime.unit_of_work() as uow:
            due = policy.due(await closed_cases(uow.session, policy.cutoff(now), batch), now)
            for incident_id in due:
                await erase_incident(uow, runtime.outbox_table, incident_id, by="retention", cause="retention", now=now)
        if not due:
            break
        async with runtime.auth_sessionmaker() as session, session.begin():
            for incident_id in due:
                await audit.record_event(
                    session, ERASED, principal="retention", username=None, incident_id=incident_id, endpoint="retention",
                    service=runtime.name, detail=f"retention: closed more than {policy.closed_case_days} days ago",
                )
        erased += due
        if len(due) < batch:
            break
    if erased:
        log.info("retention erased closed cases", extra={"erased": len(erased)})
        await runtime.forget(set(erased))
    return erased



def retention_job(runtime: Runtime, policy: RetentionPolicy, *, interval: float, batch: int):
    """The background loop: a retention pass every `interval` seconds (a failed pass is tried again at the next)."""

    def failed(exc: Exception) -> None:
        log.warning("retention pass failed", extra={"error": type(exc).__name__})

    async def run() -> None:
        await repeat(lambda: apply_retention(runtime, policy, batch=batch), pause=interval, failed=failed)

    return run


# For a subject-access answer: where else the incident lives (docs/privacy.md has the whole table).
HELD_ELSEWHERE = {
    "routing": "the case as reported (description, children, reporter, consent), the assignments with their notes and "
    "history, and the closing and reopening notes; the units' inboxes show it (GET /v1/agencies/{unit}/assignments).",
    "reporting": "anonymous facts only: commune, hamlet code, category, dates, each child's sex and age band.",
    "audit": "who read or changed the record (listed under accesses).",
}



async def apply_audit_retention(runtime: Runtime, days: int, *, now: datetime | None = None) -> int:
    """Remove the audit entries older than `days` (the oldest first, a prefix of the chain), recording the pruning
    itself in the audit: `baove audit verify` then starts at the first entry kept."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    async with runtime.auth_sessionmaker() as session, session.begin():
        return await audit.prune(session, cutoff, service=runtime.name)



def audit_retention_job(runtime: Runtime, days: int, *, interval: float):
    """The background loop: an audit retention pass every `interval` seconds.

    On PostgreSQL with a role per service, intake's role may not delete audit entries (shared/auth_roles.py): the
    pass fails, says so, and the operator runs `baove audit prune` as the store's owner (deploy/README.md)."""

    def failed(exc: Exception) -> None:
        log.warning(
            "audit retention pass failed (a service role may not delete audit entries: run `baove audit prune`)",
            extra={"error": type(exc).__name__},
        )

    async def run() -> None:
        await repeat(lambda: apply_audit_retention(runtime, days), pause=interval, failed=failed)

    return run
