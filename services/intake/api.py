"""Intake's HTTP routes: parse, call the use case in one transaction, answer."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from shared import audit
from shared.auth import Principal
from shared.deps import AppHierarchy, AppRuntime, AuthSession, AuthUow, Caller, Now, Uow, from_state
from shared.errors import Forbidden, NotFound, TooMany
from shared.groupcommit import GroupCommit
from shared.metrics import IntakeMetrics
from shared.ratelimit import RateLimiter

from . import erasure, service
from .models import Activity
from .schemas import (
    ActivityChange,
    ActivityCreate,
    ActivityPage,
    ActivityRead,
    AuditPage,
    ErasureCreate,
    ErasureRead,
    IncidentAccepted,
    IncidentCreate,
    IncidentRead,
    SubjectAccess,
    TimelineEntryRead,
)

router = APIRouter(prefix="/v1", tags=["incidents"])

Metrics = Annotated[IntakeMetrics, Depends(from_state("metrics"))]
Limiter = Annotated[RateLimiter, Depends(from_state("limiter"))]
ReportWriter = Annotated[GroupCommit[service.Report, service.Accepted], Depends(from_state("reports"))]
ERRORS = {401: {"description": "missing or bad token"}, 403: {"description": "outside the token's scope"}}


@router.post(
    "/incidents",
    status_code=202,
    response_model=IncidentAccepted,
    responses={
        **ERRORS,
        409: {"description": "report_id used by another reporter"},
        429: {"description": "too many reports from this principal; retry after Retry-After seconds"},
        503: {"description": "database unavailable"},
    },
)
async def report_incident(
    body: IncidentCreate, hierarchy: AppHierarchy, limiter: Limiter, reports: ReportWriter, metrics: Metrics, principal: Caller
):
    """Report an incident: it is stored durably before this answers, then routed to the units that must act."""
    wait = limiter.retry_after(principal.label)
    if wait is not None:
        raise TooMany(f"too many reports from {principal.label}; retry after {math.ceil(wait)} s", math.ceil(wait))
    accepted = await reports.submit(service.check_report(hierarchy, body, principal))
    if accepted.created:
        metrics.reported.labels(body.category.value, body.urgency.value, body.channel.value).inc()
    return IncidentAccepted(incident_id=accepted.incident_id, status="received")


@router.get("/incidents/{incident_id}", response_model=IncidentRead, responses={**ERRORS, 404: {"description": "no such incident for this principal"}})
async def read_incident(incident_id: str, uow: Uow, runtime: AppRuntime, principal: Caller):
    """The case and its timeline: for the reporter, the commune's cp_officer and admins."""
    incident, entries = await service.read_incident(uow.session, incident_id, principal)
    await runtime.audit_reads(principal, "GET /v1/incidents/{incident_id}", [incident.id])
    return incident_read(incident, entries)


def incident_read(incident, entries) -> IncidentRead:
    return IncidentRead(
        incident_id=incident.id,
        report_id=incident.report_id,
        commune_code=incident.commune_code,
        hamlet=incident.hamlet,
        category=incident.category,
        urgency=incident.urgency,
        channel=incident.channel,
        occurred_at=incident.occurred_at,
        received_at=incident.received_at,
        status=incident.status,
        reported_by=incident.reported_by,
        description=incident.description,
        children=incident.children,
        reporter=incident.reporter,
        consent=incident.consent or {},
        timeline=[TimelineEntryRead(at=e.at, kind=e.kind, principal=e.principal, detail=e.detail) for e in entries],
    )


@router.get(
    "/incidents/{incident_id}/subject-access",
    response_model=SubjectAccess,
    tags=["privacy"],
    responses={**ERRORS, 404: {"description": "no such incident for this principal"}},
)
async def subject_access(incident_id: str, uow: Uow, session: AuthSession, runtime: AppRuntime, principal: Caller):
    """Everything intake holds about one incident and its children, and who read it: for the commune's cp_officer
    (and admins), to answer a child's or guardian's request (Decree 13/2023 Art. 14). Audited as a read."""
    incident, entries = await service.read_incident(uow.session, incident_id, principal)
    if not (principal.is_admin or principal.is_cp_officer_of(incident.commune_code)):
        raise NotFound("incident not found")
    await runtime.audit_reads(principal, "GET /v1/incidents/{incident_id}/subject-access", [incident.id])
    reads, _ = await audit.query(session, incident_id=incident.id, limit=500)
    return SubjectAccess(incident=incident_read(incident, entries), accesses=reads, held_elsewhere=erasure.HELD_ELSEWHERE)


@router.post(
    "/incidents/{incident_id}/erasure",
    response_model=ErasureRead,
    tags=["privacy"],
    responses={**ERRORS, 404: {"description": "no such incident"}},
)
async def erase_incident(incident_id: str, body: ErasureCreate, runtime: AppRuntime, principal: Caller):
    """Erase the incident's personal data in every service (admins only; audited with the reason): intake blanks it
    at once and publishes incident.erased, on which routing blanks its case. The anonymous facts stay."""
    if not principal.is_admin:
        raise Forbidden("erasure is for admins")
    done = await erasure.erase(
        runtime, incident_id, principal=principal.label, username=principal.username, token_id=principal.token_id,
        reason=body.reason, endpoint="POST /v1/incidents/{incident_id}/erasure",
    )
    runtime.forget_later({incident_id})  # a VACUUM may take a while: the answer does not wait for it
    return ErasureRead(incident_id=incident_id, status=erasure.ERASED, erased_at=done.erased_at, already_erased=not done.new)


@router.get("/audit", response_model=AuditPage, tags=["audit"], responses={**ERRORS, 422: {"description": "bad cursor"}})
async def read_audit(
    session: AuthUow,
    principal: Caller,
    runtime: AppRuntime,
    incident_id: str | None = None,
    principal_id: str | None = Query(None, alias="principal", description="e.g. 25349.police, district:694, admin"),
    since: datetime | None = Query(None, description="only entries at or after this time; without an offset, Vietnam time (UTC+7)"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
):
    """Who read which incident's details, who was refused, who signed in, newest first: for admins only.

    Each page read is itself audited (`audit_read`), in the next page rather than its own.
    """
    if not principal.is_admin:
        raise Forbidden("the read audit is for admins")
    items, next_cursor = await audit.query(
        session, incident_id=incident_id, principal=principal_id, since=since, limit=limit, cursor=cursor
    )
    # Committed before the page is answered (no page without its entry); the reader's own page does not show it.
    filters = {"incident_id": incident_id, "principal": principal_id, "since": since and since.isoformat(), "cursor": cursor and "yes"}
    await audit.record_event(
        session, "audit_read", principal=principal.label, username=principal.username, token_id=principal.token_id,
        detail=", ".join(f"{k}={v}" for k, v in filters.items() if v) or "newest", endpoint="GET /v1/audit", service=runtime.name,
    )
    return AuditPage(items=items, next_cursor=next_cursor)


# -- activities under the commune's plan (issue 16) ------------------------------------------------

activity_router = APIRouter(prefix="/v1", tags=["activities"])
NOT_YOURS = {404: {"description": "no such activity for this principal"}, 403: {"description": "not its author"}}


def activity_read(activity: Activity, principal: Principal) -> ActivityRead:
    row = service.activity_row(activity)
    return ActivityRead.model_validate({**row, "activity_id": activity.id, "yours": activity.author == service.activities.author_of(principal)})


@activity_router.post("/activities", status_code=201, response_model=ActivityRead, responses={**ERRORS, 422: {"description": "not allowed by the commune's plan, or inconsistent counts"}})
async def record_activity(body: ActivityCreate, uow: Uow, hierarchy: AppHierarchy, principal: Caller, now: Now):
    """Record what a unit did under a task of its commune's plan; published as activity.recorded (codes and counts only)."""
    return activity_read(await service.record_activity(uow, hierarchy, body, principal, now), principal)


@activity_router.get("/activities", response_model=ActivityPage, responses={**ERRORS, 404: {"description": "commune outside the token's scope"}})
async def list_activities(
    uow: Uow,
    principal: Caller,
    commune: str = Query(pattern=r"^\d{5}$"),
    unit: str | None = Query(None, description="only this unit's activities"),
    task: str | None = Query(None, description="only this task's, e.g. IV.7"),
    since: date | None = Query(None, alias="from", description="held on or after this day"),
    until: date | None = Query(None, alias="to", description="held on or before this day"),
    include_withdrawn: bool = False,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
):
    """A commune's activities, newest first: every unit's for its cp_officer and admins, a unit's own for the unit."""
    items, next_cursor = await service.list_activities(
        uow.session, principal, commune=commune, unit_id=unit, task_id=task, since=since, until=until,
        include_withdrawn=include_withdrawn, limit=limit, cursor=cursor,
    )
    return ActivityPage(items=[activity_read(a, principal) for a in items], next_cursor=next_cursor)


@activity_router.get("/activities/{activity_id}", response_model=ActivityRead, responses={**ERRORS, **NOT_YOURS})
async def read_activity(activity_id: str, uow: Uow, principal: Caller):
    return activity_read(await service.read_activity(uow.session, activity_id, principal), principal)


@activity_router.put("/activities/{activity_id}", response_model=ActivityRead, responses={**ERRORS, **NOT_YOURS, 409: {"description": "withdrawn"}})
async def correct_activity(activity_id: str, body: ActivityChange, uow: Uow, hierarchy: AppHierarchy, principal: Caller, now: Now):
    """Correct an activity (by its author only): the whole of it again; published as activity.corrected."""
    return activity_read(await service.correct_activity(uow, hierarchy, activity_id, body, principal, now), principal)


@activity_router.delete("/activities/{activity_id}", response_model=ActivityRead, responses={**ERRORS, **NOT_YOURS})
async def withdraw_activity(activity_id: str, uow: Uow, principal: Caller, now: Now):
    """Withdraw an activity (by its author only): it counts no more; published as activity.withdrawn."""
    return activity_read(await service.withdraw_activity(uow, activity_id, principal, now), principal)
