"""Routing's HTTP routes: one inbox per unit, the assignment lifecycle, closing a case, the unit registry."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from shared.deps import AppHierarchy, AppRuntime, Caller, Now, Uow, from_state
from shared.enums import AssignmentStatus, Role, Urgency
from shared.metrics import RoutingMetrics
from shared.workdays import WorkCalendar

from . import assignments, cases, documents, inbox, lifecycle, process, registry, rulesets, subscriptions
from .models import Assignment, Delivery, RoutedIncident, RuleSet, Subscription
from .rules import RuleTable
from .schemas import (
    AssignmentPage,
    AssignmentRead,
    CareDecision,
    CaseBoard,
    CaseConflictBody,
    CaseOnBoard,
    ChildRead,
    ConflictBody,
    ConsentRead,
    DeliveryRead,
    DetailedAssessment,
    EmergencyMeasures,
    HandoffRead,
    IncidentClose,
    IncidentDetails,
    IncidentReopen,
    IncidentStateRead,
    InitialAssessment,
    PlanApproval,
    ProcessRead,
    ProcessRecordRead,
    ReporterRead,
    Review,
    RuleRead,
    RuleSetLoad,
    RuleSetRead,
    SecretRotated,
    StatusChange,
    StatusChanged,
    StepChangeRead,
    StepDeadlineRead,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionRead,
    SupportPlan,
    UnitPage,
    UnitRead,
)

router = APIRouter(prefix="/v1")

Metrics = Annotated[RoutingMetrics, Depends(from_state("metrics"))]
RuleSets = Annotated[rulesets.RuleSets, Depends(from_state("rule_sets"))]
Calendar = Annotated[WorkCalendar, Depends(from_state("calendar"))]
UnitId = Annotated[str, Path(description="the unit's id, e.g. 25349.police or 25349.school.th-minh-tam-a")]
ERRORS = {401: {"description": "missing or bad token"}, 422: {"description": "invalid input; names each bad field"}}
NOT_FOUND = {404: {"description": "no such inbox or assignment for this token (another unit's answers the same)"}}
CONFLICT = {409: {"model": ConflictBody, "description": "not allowed from the current status; names the allowed ones"}}
CASE_CONFLICT = {
    409: {"model": CaseConflictBody, "description": "not allowed now: names the assignments still open, or the allowed move"}
}
CASE_SCOPE = {
    403: {"description": "only the commune's cp_officer and admins"},
    404: {"description": "no such incident in the caller's commune"},
}


def _read(seen: inbox.SeenAssignment, now: datetime) -> AssignmentRead:
    a, incident, case = seen.assignment, seen.incident, seen.case
    return AssignmentRead(
        assignment_id=a.id,
        incident_id=a.incident_id,
        unit_id=a.unit_id,
        role=a.role,
        status=a.status,
        due_at=a.due_at,
        overdue=lifecycle.is_overdue(AssignmentStatus(a.status), a.due_at, now),
        overdue_at=a.overdue_at,
        rule=a.rule,
        reason=a.reason,
        rules_version=a.rules_version,
        origin=a.origin,
        task=a.task,
        assigned_at=a.assigned_at,
        acknowledged_at=a.acknowledged_at,
        updated_at=a.updated_at,
        note=a.note,
        incident=IncidentDetails(
            category=incident.category,
            urgency=incident.urgency,
            channel=incident.channel,
            commune_code=incident.commune_code,
            hamlet=incident.hamlet,
            occurred_at=incident.occurred_at,
            received_at=incident.received_at,
            description=case.get("description"),
            children=[ChildRead(**child) for child in case["children"]],
            reporter=ReporterRead(**case["reporter"]) if case.get("reporter") else None,
            consent=ConsentRead(**case.get("consent", {})),
            view=seen.view,
        ),
    )


@router.get(
    "/agencies/{unit_id}/assignments",
    response_model=AssignmentPage,
    tags=["inbox"],
    responses={**ERRORS, **NOT_FOUND},
)
async def list_assignments(
    uow: Uow,
    runtime: AppRuntime,
    now: Now,
    principal: Caller,
    unit_id: UnitId,
    status: list[AssignmentStatus] = Query([], description="only assignments in these statuses (repeat the parameter for several)"),
    overdue: bool | None = Query(None, description="true: only pending assignments past due_at; false: only the others"),
    urgency: list[Urgency] = Query([], description="only incidents of these urgencies (repeat the parameter for several)"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, description="next_cursor of the previous page (with the same filters)"),
):
    """A unit's inbox: overdue first, then by urgency (emergency first), due time and id; for the unit itself and admins (audited)."""
    page = await inbox.list_assignments(
        uow.session, unit_id, principal, now=now, statuses=status, overdue=overdue, urgencies=urgency, limit=limit, cursor=cursor
    )
    await runtime.audit_reads(principal, "GET /v1/agencies/{unit_id}/assignments", [seen.incident.incident_id for seen in page.rows])
    return AssignmentPage(items=[_read(seen, now) for seen in page.rows], next_cursor=page.next_cursor)


@router.post(
    "/agencies/{unit_id}/assignments/{assignment_id}/acknowledge",
    response_model=AssignmentRead,
    tags=["inbox"],
    responses={**ERRORS, **NOT_FOUND, **CONFLICT},
)
async def acknowledge(
    uow: Uow, runtime: AppRuntime, metrics: Metrics, now: Now, unit_id: UnitId, assignment_id: str, principal: Caller
):
    """The unit has taken note of the assignment (pending -> acknowledged); publishes assignment.acknowledged."""
    seen = await assignments.acknowledge(uow, unit_id, assignment_id, principal, now)
    a = seen.assignment
    metrics.ack_seconds.labels(a.unit_type).observe((now - a.assigned_at).total_seconds())
    await runtime.audit_reads(principal, "POST /v1/agencies/{unit_id}/assignments/{assignment_id}/acknowledge", [a.incident_id])
    return _read(seen, now)


@router.post(
    "/agencies/{unit_id}/assignments/{assignment_id}/status",
    response_model=StatusChanged,
    tags=["inbox"],
    responses={**ERRORS, **NOT_FOUND, **CONFLICT},
)
async def change_status(
    body: StatusChange,
    uow: Uow,
    runtime: AppRuntime,
    rule_sets: RuleSets,
    metrics: Metrics,
    now: Now,
    unit_id: UnitId,
    assignment_id: str,
    principal: Caller,
):
    """acknowledged -> in_progress -> done, or declined with a note; a declined lead goes to the cp_officer (`handoff`)."""
    seen, handoff = await assignments.change_status(
        uow, rule_sets, unit_id, assignment_id, AssignmentStatus(body.status), body.note, principal, now
    )
    if handoff:
        assignments.count_created(metrics, [handoff])
    await runtime.audit_reads(principal, "POST /v1/agencies/{unit_id}/assignments/{assignment_id}/status", [seen.incident.incident_id])
    read = _read(seen, now)
    return StatusChanged(
        **read.model_dump(),
        handoff=HandoffRead(assignment_id=handoff.id, unit_id=handoff.unit_id) if handoff else None,
    )


def _state(incident: RoutedIncident, lead: Assignment | None = None) -> IncidentStateRead:
    return IncidentStateRead(
        incident_id=incident.incident_id,
        commune_code=incident.commune_code,
        status=incident.status,
        risk_level=incident.risk_level,
        closed_at=incident.closed_at,
        lead=HandoffRead(assignment_id=lead.id, unit_id=lead.unit_id) if lead else None,
    )


@router.post(
    "/incidents/{incident_id}/close",
    response_model=IncidentStateRead,
    tags=["cases"],
    responses={**ERRORS, **CASE_SCOPE, **CASE_CONFLICT},
)
async def close_incident(body: IncidentClose, uow: Uow, now: Now, incident_id: str, principal: Caller):
    """Record the review's risk level and close the case once every assignment is done or declined; publishes incident.closed
    (with the outcome) and incident.closure_recorded (without it, for reporting)."""
    return _state(await cases.close_incident(uow, incident_id, body.risk_level, body.outcome, principal, now))


@router.post(
    "/incidents/{incident_id}/reopen",
    response_model=IncidentStateRead,
    tags=["cases"],
    responses={**ERRORS, **CASE_SCOPE, **CASE_CONFLICT},
)
async def reopen_incident(
    body: IncidentReopen, uow: Uow, rule_sets: RuleSets, metrics: Metrics, now: Now, incident_id: str, principal: Caller
):
    """Take a closed case up again: the commune's cp_officer gets a new lead assignment; publishes incident.reopened."""
    incident, lead = await cases.reopen_incident(uow, rule_sets, incident_id, body.reason, principal, now)
    assignments.count_created(metrics, [lead])
    return _state(incident, lead)


PROCESS_SCOPE = {
    403: {"description": "the commune's cp_officer records the steps' forms, its chairman the decisions (care, plan approval); its cp_officer, chairman and admins read"},
    404: {"description": "no such incident in the caller's commune"},
}
PROCESS_CONFLICT = {409: {"model": ConflictBody, "description": "not allowed at the case's current step; names the allowed steps"}}


def _deadline(incident: RoutedIncident, calendar, now: datetime) -> StepDeadlineRead | None:
    due = process.deadline(process.Step(incident.step), incident.received_at, calendar) if incident.linked_to is None else None
    if due is None:
        return None
    watched = due.step in process.WATCHED and incident.step_due_at is not None
    due_at = incident.step_due_at if watched else due.due_at
    return StepDeadlineRead(
        step=due.step.value,
        due_at=due_at,
        overdue=due_at is not None and due_at < now,
        escalated_at=incident.step_overdue_at if watched else None,
        watched=watched,
        note=due.note,
    )


def _process(incident: RoutedIncident, records: list, history: list, calendar, now: datetime) -> ProcessRead:
    step = process.Step(incident.step)
    deadline = _deadline(incident, calendar, now)
    latest = {r.form: r.version for r in records}
    return ProcessRead(
        incident_id=incident.incident_id,
        commune_code=incident.commune_code,
        step=step.value,
        allowed=[s.value for s in process.allowed(step)] if incident.linked_to is None else [],
        received_at=incident.received_at,
        deadline=deadline,
        records=[
            ProcessRecordRead(
                record_id=r.id, form=r.form, version=r.version, current=latest[r.form] == r.version, data=r.data,
                recorded_by=r.recorded_by, recorded_at=r.recorded_at,
            )
            for r in records
        ],
        history=[StepChangeRead(from_step=h.from_step, to_step=h.to_step, at=h.at, by=h.principal, record_id=h.record_id) for h in history],
        care_ends_at=incident.care_ends_at,
        care_escalated_at=incident.care_overdue_at,
        linked_to=incident.linked_to,
    )


async def _record(form: process.Form, body, uow, now: datetime, calendar, incident_id: str, principal) -> ProcessRead:
    await cases.record_form(uow, incident_id, form, body.model_dump(mode="json"), principal, now, calendar)
    return _process(*await cases.read_process(uow.session, incident_id, principal), calendar, now)


PROCESS_POST = {"response_model": ProcessRead, "tags": ["process"], "responses": {**ERRORS, **PROCESS_SCOPE, **PROCESS_CONFLICT}}


@router.post("/incidents/{incident_id}/assessment", **PROCESS_POST)
async def record_assessment(body: InitialAssessment, uow: Uow, now: Now, calendar: Calendar, incident_id: str, principal: Caller):
    """The initial assessment (Mẫu 02 of Decree 56/2017) by the commune's cp_officer: the first moves the case to
    initial_assessment and ends its 12-hour deadline; another is an amendment (a new version, the old one kept)."""
    return await _record(process.Form.initial_assessment, body, uow, now, calendar, incident_id, principal)


@router.post("/incidents/{incident_id}/emergency-measures", **PROCESS_POST)
async def record_emergency_measures(body: EmergencyMeasures, uow: Uow, now: Now, calendar: Calendar, incident_id: str, principal: Caller):
    """The emergency measures taken after the initial assessment (Art. 26(3), 31), by the commune's cp_officer."""
    return await _record(process.Form.emergency_measures, body, uow, now, calendar, incident_id, principal)


@router.post("/incidents/{incident_id}/care-decision", **PROCESS_POST)
async def record_care_decision(body: CareDecision, uow: Uow, now: Now, calendar: Calendar, incident_id: str, principal: Caller):
    """The chairman's decision on temporary care away from the parents (Art. 32), at most 15 days unless extended
    (a new version); its end is watched and told to the chairman once (incident.step_overdue, step temporary_care)."""
    return await _record(process.Form.care_decision, body, uow, now, calendar, incident_id, principal)


@router.post("/incidents/{incident_id}/detailed-assessment", **PROCESS_POST)
async def record_detailed_assessment(body: DetailedAssessment, uow: Uow, now: Now, calendar: Calendar, incident_id: str, principal: Caller):
    """The detailed assessment and the needs meeting's minutes (Mẫu 03), by the commune's cp_officer."""
    return await _record(process.Form.detailed_assessment, body, uow, now, calendar, incident_id, principal)


@router.post("/incidents/{incident_id}/plan", **PROCESS_POST)
async def record_plan(body: SupportPlan, uow: Uow, now: Now, calendar: Calendar, incident_id: str, principal: Caller):
    """The support and intervention plan (Mẫu 04), due 5 working days after the report; after a review at medium or
    high risk, a new version takes the case back to planning. Amendable until approved."""
    return await _record(process.Form.plan, body, uow, now, calendar, incident_id, principal)


@router.post("/incidents/{incident_id}/plan-approval", **PROCESS_POST)
async def record_plan_approval(body: PlanApproval, uow: Uow, now: Now, calendar: Calendar, incident_id: str, principal: Caller):
    """The chairman's approval of the plan's current version (Mẫu 05): each task becomes an assignment of its unit,
    due at the end of its day (incident.routed), and the case goes to implementation."""
    return await _record(process.Form.plan_approval, body, uow, now, calendar, incident_id, principal)


@router.post("/incidents/{incident_id}/review", **PROCESS_POST)
async def record_review(body: Review, uow: Uow, now: Now, calendar: Calendar, incident_id: str, principal: Caller):
    """The review (Mẫu 06): at low overall risk the case may be closed; at medium or high, a new plan follows."""
    return await _record(process.Form.review, body, uow, now, calendar, incident_id, principal)


@router.get(
    "/communes/{commune_code}/cases",
    response_model=CaseBoard,
    tags=["process"],
    responses={**ERRORS, 403: {"description": "only the commune's cp_officer and chairman, and admins"}},
)
async def list_commune_cases(
    uow: Uow,
    now: Now,
    calendar: Calendar,
    principal: Caller,
    commune_code: str = Path(pattern=r"^\d{5}$"),
    step: list[process.Step] = Query([], description="only cases at these steps (repeat the parameter), e.g. plan: waiting for approval"),
    limit: int = Query(200, ge=1, le=500),
):
    """The commune's open cases in the Decree 56/2017 process, soonest watched deadline first, with what is due next
    (no personal data: ids, category, urgency, hamlet, times)."""
    rows = await cases.commune_cases(uow.session, commune_code, principal, step, limit + 1)
    items = [
        CaseOnBoard(
            incident_id=r.incident_id, category=r.category, urgency=r.urgency, hamlet=r.hamlet, received_at=r.received_at, step=r.step,
            allowed=[s.value for s in process.allowed(process.Step(r.step))], deadline=_deadline(r, calendar, now), care_ends_at=r.care_ends_at,
        )
        for r in rows[:limit]
    ]
    return CaseBoard(items=items, truncated=len(rows) > limit)


@router.get(
    "/incidents/{incident_id}/process",
    response_model=ProcessRead,
    tags=["process"],
    responses={**ERRORS, **PROCESS_SCOPE},
)
async def read_process(uow: Uow, runtime: AppRuntime, now: Now, calendar: Calendar, incident_id: str, principal: Caller):
    """The case's step of the Decree 56/2017 process, the deadline it is under, every version of its records and its history (audited)."""
    read = await cases.read_process(uow.session, incident_id, principal)
    await runtime.audit_reads(principal, "GET /v1/incidents/{incident_id}/process", [incident_id])
    return _process(*read, calendar, now)


@router.get(
    "/incidents/{incident_id}/process/records/{record_id}.{fmt}",
    response_class=Response,
    tags=["process"],
    responses={
        **ERRORS, **PROCESS_SCOPE,
        200: {"description": "the record's version as the printed form (Mẫu 02-06, the chairman's decisions)",
              "content": {documents.MEDIA_TYPES["docx"]: {}, documents.MEDIA_TYPES["pdf"]: {}}},
    },
)
async def print_record(
    uow: Uow, runtime: AppRuntime, hierarchy: AppHierarchy, incident_id: str, record_id: str, fmt: Literal["docx", "pdf"], principal: Caller
):
    """One version of a process record as its printed form, DOCX or PDF (Decree 30/2020 layout: the commune's People's
    Committee, its number, place and date, the version it replaces, the signer); for the same people as the process
    (the commune's cp_officer and chairman, admins), and audited as a read of the case."""
    incident, records, record, names = await cases.read_record(uow.session, incident_id, record_id, principal)
    await runtime.audit_reads(principal, "GET /v1/incidents/{incident_id}/process/records/{record_id}", [incident_id])
    commune = hierarchy.commune_on(incident.commune_code, record.recorded_at.astimezone(documents.VN).date())
    case = documents.Case(
        incident_id=incident.incident_id, commune_code=incident.commune_code,
        commune_name=commune.name if commune else incident.commune_code, received_at=incident.received_at,
        hamlet=names.get(incident.hamlet or "") or None, children=(incident.case or {}).get("children") or (), unit_names=names,
    )
    as_printed = [documents.Record(r.id, r.form, r.version, r.data, r.recorded_at) for r in records]
    mine = next(r for r in as_printed if r.id == record.id)
    content = await asyncio.to_thread(documents.to_docx if fmt == "docx" else documents.to_pdf, documents.form_context(mine, as_printed, case))
    filename = documents.file_name(mine, fmt)
    return Response(content, media_type=documents.MEDIA_TYPES[fmt], headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get(
    "/units",
    response_model=UnitPage,
    tags=["units"],
    responses={**ERRORS, 403: {"description": "only admins and the commune's cp_officer"}},
)
async def list_units(
    uow: Uow,
    principal: Caller,
    commune: str = Query(pattern=r"^\d{5}$", description="the commune's 5-digit code"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
):
    """The unit registry of a commune (id, type, name): for admins and the commune's cp_officer."""
    units, next_cursor = await registry.list_units(uow.session, commune, principal, limit=limit, cursor=cursor)
    return UnitPage(
        items=[UnitRead(id=u.id, type=u.unit_type, name=u.name, commune_code=u.commune_code, active=u.active) for u in units],
        next_cursor=next_cursor,
    )



def _rule_set(row: RuleSet, table: RuleTable) -> RuleSetRead:
    def read(entry, category, role) -> RuleRead:
        urgencies = sorted(entry.urgencies, key=list(Urgency).index) if entry.urgencies is not None else None
        return RuleRead(rule=entry.rule, category=category, role=role, unit_type=entry.unit_type.value, urgencies=urgencies, reason=entry.reason)

    rows = [read(e, None, Role.support) for e in table.always]
    for category, cat in table.categories.items():
        rows += [read(cat.lead, category, Role.lead), *(read(e, category, Role.support) for e in cat.support)]
    return RuleSetRead(
        version=row.version,
        activated_at=row.loaded_at,
        loaded_by=row.loaded_by,
        ack_deadlines={u: int(d.total_seconds() // 60) for u, d in table.ack_deadlines.items()},
        rules=rows,
        text=row.source,
    )


@router.get(
    "/rules",
    response_model=RuleSetRead,
    tags=["rules"],
    responses={**ERRORS, 403: {"description": "only admins and a commune's cp_officer"}, 404: {"description": "no active rule set yet"}},
)
async def read_rules(uow: Uow, principal: Caller):
    """The active routing table: its version, when and by whom it was loaded, its rules and the YAML text."""
    return _rule_set(*await rulesets.read_active(uow.session, principal))


@router.post(
    "/rules",
    response_model=RuleSetRead,
    status_code=201,
    tags=["rules"],
    responses={
        401: ERRORS[401],
        403: {"description": "only admins"},
        409: {"description": "this version was loaded before (or another load won the race): give the table a new version"},
        422: {"description": "the file is not understood: the detail names the file, line, key and reason as `baove rules load` does"},
    },
)
async def load_rules(body: RuleSetLoad, uow: Uow, now: Now, principal: Caller):
    """Check a rules file and make it the active rule set; new incidents are routed by it."""
    return _rule_set(*await rulesets.load(uow.session, body.text, body.filename, principal, now))


SUBSCRIPTION_SCOPE = {
    403: {"description": "only the commune's cp_officer and admins"},
    404: {"description": "no such unit or subscription in the caller's commune"},
}


def _subscription(row: Subscription) -> SubscriptionRead:
    return SubscriptionRead(
        subscription_id=row.id, unit_id=row.unit_id, channel=row.channel, target=row.target, events=list(row.events),
        quiet_start=row.quiet_start, quiet_end=row.quiet_end, active=row.active, disabled_reason=row.disabled_reason,
        created_at=row.created_at, created_by=row.created_by,
    )


def _delivery(row: Delivery) -> DeliveryRead:
    return DeliveryRead(
        delivery_id=row.id, event_type=row.event_type, assignment_id=row.assignment_id, status=row.status, attempts=row.attempts,
        next_attempt_at=row.next_attempt_at, last_error=row.last_error, created_at=row.created_at, delivered_at=row.delivered_at,
    )


@router.post(
    "/subscriptions", status_code=201, response_model=SubscriptionCreated, responses=ERRORS | SUBSCRIPTION_SCOPE, tags=["notifications"]
)
async def create_subscription(body: SubscriptionCreate, uow: Uow, now: Now, principal: Caller):
    """Tell a unit of events by signed webhook or email; the webhook's secret is in this answer only."""
    row, secret = await subscriptions.create(uow.session, body, principal, now)
    return SubscriptionCreated(**_subscription(row).model_dump(), secret=secret)


@router.get("/subscriptions", response_model=list[SubscriptionRead], responses=ERRORS | SUBSCRIPTION_SCOPE, tags=["notifications"])
async def list_subscriptions(
    uow: Uow, principal: Caller, unit_id: str | None = Query(None, max_length=120, description="only this unit's")
):
    """The commune's subscriptions (all of them for admins), the disabled ones with the reason."""
    return [_subscription(r) for r in await subscriptions.listed(uow.session, principal, unit_id)]


@router.delete("/subscriptions/{subscription_id}", status_code=204, responses=ERRORS | SUBSCRIPTION_SCOPE, tags=["notifications"])
async def delete_subscription(subscription_id: str, uow: Uow, principal: Caller) -> None:
    """Stop a subscription; its pending deliveries are dropped, its log kept."""
    await subscriptions.delete(uow.session, principal, subscription_id)


@router.post(
    "/subscriptions/{subscription_id}/rotate", response_model=SecretRotated, responses=ERRORS | SUBSCRIPTION_SCOPE, tags=["notifications"]
)
async def rotate_secret(subscription_id: str, uow: Uow, principal: Caller):
    """A new signing secret: until the next rotation each message carries a signature with the new and the previous one."""
    return SecretRotated(subscription_id=subscription_id, secret=await subscriptions.rotate(uow.session, principal, subscription_id))


@router.get(
    "/subscriptions/{subscription_id}/deliveries", response_model=list[DeliveryRead], responses=ERRORS | SUBSCRIPTION_SCOPE,
    tags=["notifications"],
)
async def list_deliveries(subscription_id: str, uow: Uow, principal: Caller, limit: int = Query(50, ge=1, le=500)):
    """The subscription's delivery log, newest first: attempts, status and the last error (no message bodies)."""
    return [_delivery(r) for r in await subscriptions.deliveries(uow.session, principal, subscription_id, limit)]
