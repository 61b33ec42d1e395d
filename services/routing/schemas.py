"""Routing's HTTP models (contract.md, Routing)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.enums import AssignmentStatus, Category, Channel, RiskLevel, Role, Sex, Urgency

from . import lifecycle


class ChildRead(BaseModel):
    full_name: str | None = None
    sex: Sex
    birth_date: str | None = None
    age_years: int | None = None
    school: str | None = Field(None, description="the school's unit id")
    special_circumstances: list[str] = []


class ReporterRead(BaseModel):
    """The reporter; name and phone are never kept for an anonymous report."""

    name: str | None = None
    phone: str | None = None
    relation: str | None = None
    anonymous: bool = False


class ConsentRead(BaseModel):
    """Consent to disclose the case beyond the units that must act: true, false, or null when not asked."""

    child: bool | None = None
    guardian: bool | None = None


class IncidentDetails(BaseModel):
    """What a unit needs to act on the incident."""

    category: Category
    urgency: Urgency
    channel: Channel
    commune_code: str
    hamlet: str | None
    occurred_at: datetime | None
    received_at: datetime
    description: str | None = Field(description="what happened, in the reporter's words; null in the minimal view")
    children: list[ChildRead]
    reporter: ReporterRead | None
    consent: ConsentRead = Field(description="recorded at intake; disclosing beyond the units that must act needs it")
    view: Literal["full", "minimal"] = Field(
        description="full: the whole case; minimal (a support unit that does not meet the child): each child's sex and age only, no description, no reporter"
    )


class AssignmentRead(BaseModel):
    assignment_id: str
    incident_id: str
    unit_id: str
    role: Role
    status: AssignmentStatus
    due_at: datetime = Field(description="when acknowledgement is due")
    overdue: bool = Field(description="pending and past due_at")
    overdue_at: datetime | None = Field(
        description="when routing found it overdue and escalated; kept after a late acknowledgement"
    )
    rule: str = Field(description="the rule that routed it here, e.g. category.sexual_abuse.lead")
    reason: str = Field(description="why this unit, in words")
    rules_version: str
    origin: str = Field(
        description='"routing"; "decline:<assignment id>" for a lead handed back; "escalation:<assignment id>" for an '
        'escalation of that overdue assignment; "reopen:<n>" for a reopened case; "plan:<approval record id>:<n>" for the '
        "n-th task of an approved support plan (Mẫu 04)"
    )
    task: str | None = Field(None, description="for a plan task: what the approved plan asks of the unit")
    assigned_at: datetime
    acknowledged_at: datetime | None
    updated_at: datetime
    note: str | None = Field(description="the latest note given with a status change")
    incident: IncidentDetails


class AssignmentPage(BaseModel):
    items: list[AssignmentRead]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: Literal["in_progress", "done", "declined"]
    note: str | None = Field(None, max_length=2000, description="required when declining: say why")

    @model_validator(mode="after")
    def _note_when_required(self) -> StatusChange:
        if AssignmentStatus(self.status) in lifecycle.NOTE_REQUIRED and not self.note:
            raise ValueError(f"a note is required to set {self.status}: say why")
        return self


class HandoffRead(BaseModel):
    assignment_id: str
    unit_id: str


class StatusChanged(AssignmentRead):
    handoff: HandoffRead | None = Field(None, description="the new lead assignment when a lead was declined")


class TransitionConflict(BaseModel):
    message: str
    current: AssignmentStatus
    allowed: list[AssignmentStatus]


class ConflictBody(BaseModel):
    detail: TransitionConflict


class UnitRead(BaseModel):
    id: str
    type: str
    name: str
    commune_code: str
    active: bool


class UnitPage(BaseModel):
    items: list[UnitRead]
    next_cursor: str | None


class IncidentClose(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    risk_level: RiskLevel = Field(description="the review's risk level (Mẫu 06 of Decree 56/2017): high, medium or low")
    outcome: str = Field(min_length=1, max_length=2000, description="how the case ended")


class IncidentReopen(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=2000, description="why the case is taken up again (kept in routing)")


class IncidentStateRead(BaseModel):
    incident_id: str
    commune_code: str
    status: Literal["open", "closed"]
    risk_level: RiskLevel | None
    closed_at: datetime | None
    lead: HandoffRead | None = Field(None, description="the new lead assignment of a reopened case")


class OpenAssignment(BaseModel):
    assignment_id: str
    unit_id: str
    status: AssignmentStatus


class CaseConflict(BaseModel):
    message: str
    current: Literal["open", "closed"]
    allowed: list[str] | None = None
    open_assignments: list[OpenAssignment] | None = None


class CaseConflictBody(BaseModel):
    detail: CaseConflict


class RuleRead(BaseModel):
    rule: str = Field(description="the rule's name, as assignments record it, e.g. category.violence.support.police")
    category: Category | None = Field(description="the category it applies to; null: every incident (`always`)")
    role: Role
    unit_type: str
    urgencies: list[Urgency] | None = Field(description="the urgencies it applies at; null: all")
    reason: str | None


class RuleSetRead(BaseModel):
    version: str
    activated_at: datetime
    loaded_by: str
    ack_deadlines: dict[Urgency, int] = Field(description="minutes to acknowledge, per urgency")
    rules: list[RuleRead]
    text: str = Field(description="the rules file as loaded (the YAML `baove rules show` prints)")


class RuleSetLoad(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=200_000, description="a rules file in the format of services/routing/rules.yaml, with a new version")
    filename: str = Field("rules.yaml", min_length=1, max_length=200, description="the file's name, used in the error's place")


HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


class SubscriptionCreate(BaseModel):
    """A unit's subscription: a channel, the events it wants, and quiet hours (local time) that emergencies ignore."""

    model_config = ConfigDict(extra="forbid")

    unit_id: str = Field(max_length=120, description="the unit told, e.g. 25349.police")
    channel: Literal["webhook", "email", "amqp"]
    target: str = Field(
        min_length=3, max_length=500, description="an http(s) URL for a webhook, an address for email, agency.{unit_id} for amqp"
    )
    events: list[Literal["assignment.created", "assignment.overdue", "incident.escalated", "incident.step_overdue", "incident.closed", "report.due"]] = Field(
        min_length=1, description="what the unit is told of"
    )
    quiet_start: str | None = Field(None, pattern=HHMM, description="quiet hours from (HH:MM, Asia/Ho_Chi_Minh)")
    quiet_end: str | None = Field(None, pattern=HHMM, description="quiet hours until (HH:MM)")

    @model_validator(mode="after")
    def _target_fits_channel(self) -> SubscriptionCreate:
        if self.channel == "webhook" and not self.target.startswith(("https://", "http://")):
            raise ValueError("a webhook's target must be an http(s) URL")
        if self.channel == "email" and ("@" not in self.target or any(c in self.target for c in " \r\n,;<>")):
            raise ValueError("an email target must be one address")
        if self.channel == "amqp" and self.target != f"agency.{self.unit_id}":
            raise ValueError("an amqp target is the unit's own queue, agency.{unit_id}")
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("quiet hours need both quiet_start and quiet_end")
        return self


class SubscriptionRead(BaseModel):
    subscription_id: str
    unit_id: str
    channel: str
    target: str
    events: list[str]
    quiet_start: str | None
    quiet_end: str | None
    active: bool
    disabled_reason: str | None
    created_at: datetime
    created_by: str


class SubscriptionCreated(SubscriptionRead):
    secret: str | None = Field(description="the webhook's whsec_ signing secret; shown only now (null for email)")


class SecretRotated(BaseModel):
    subscription_id: str
    secret: str = Field(description="the new whsec_ secret; messages are signed with it and the previous one until the next rotation")


class DeliveryRead(BaseModel):
    delivery_id: str = Field(description="the webhook-id")
    event_type: str
    assignment_id: str
    status: Literal["pending", "delivered", "failed", "dropped"]
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


# -- the Decree 56/2017 process (process.py) ----------------------------------------------------------------------


class InitialAssessment(BaseModel):
    """Mẫu 02 of Decree 56/2017: the initial assessment, within 12 hours of the report."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    harm: str = Field(min_length=1, max_length=4000, description="the harm the child suffered or risks (kept in routing only)")
    danger_level: RiskLevel = Field(description="how serious the danger to the child is: high, medium or low")
    urgent_protection: bool = Field(description="whether the child needs urgent protection (emergency measures, Art. 26(3))")
    measures_taken: str = Field("", max_length=4000, description="the measures already taken; required when urgent_protection")
    assessed_by: str = Field(min_length=1, max_length=200, description="who assessed (the commune's child-protection worker)")
    assessed_at: datetime = Field(description="when the assessment was made, with its timezone; not before the report, not ahead of now")

    @model_validator(mode="after")
    def _measures_when_urgent(self) -> InitialAssessment:
        if self.assessed_at.tzinfo is None:
            raise ValueError("assessed_at needs a timezone, e.g. 2026-11-30T09:00:00+07:00")
        if self.urgent_protection and not self.measures_taken:
            raise ValueError("measures_taken is required when urgent_protection is true: say what was done")
        return self


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None:
        raise ValueError(f"{name} needs a timezone, e.g. 2026-11-30T09:00:00+07:00")


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Signer = Literal["chairman", "deputy"]


class EmergencyMeasures(_Form):
    """The emergency intervention where the initial assessment found serious danger (Art. 26(3), 31): what was done to
    keep the child safe, by the commune's cp_officer. A separation from the parents needs the chairman's decision."""

    measures: str = Field(min_length=1, max_length=4000, description="what was done to keep the child safe (kept in routing only)")
    separation_proposed: bool = Field(False, description="whether temporary care away from the parents is proposed to the chairman")
    taken_by: str = Field(min_length=1, max_length=200, description="who took the measures")
    taken_at: datetime = Field(description="when, with its timezone; not before the report, not ahead of now")

    @model_validator(mode="after")
    def _tz(self) -> EmergencyMeasures:
        _aware(self.taken_at, "taken_at")
        return self


class CareDecision(_Form):
    """The chairman's decision on temporary care away from the parents (Art. 32): at most 15 days unless extended;
    its end date is watched. A new version extends or corrects it."""

    decision_no: str = Field(min_length=1, max_length=60, description="the decision's number, e.g. 12/QĐ-UBND")
    placement: str = Field(min_length=1, max_length=1000, description="where and with whom the child is cared for (kept in routing only)")
    starts_on: date
    ends_on: date = Field(description="the care's last day: at most 15 days after starts_on, counting both, unless extended")
    extension_reason: str = Field("", max_length=2000, description="required when the care lasts more than 15 days")
    signed_by: str = Field(min_length=1, max_length=200)
    signed_as: Signer = Field(description="chairman, or deputy (KT. CHỦ TỊCH)")


class DetailedAssessment(_Form):
    """Mẫu 03: the detailed assessment and the needs meeting's minutes."""

    meeting_at: datetime = Field(description="when the needs meeting was held, with its timezone")
    participants: str = Field(min_length=1, max_length=2000, description="who took part (the units and the family)")
    needs: str = Field(min_length=1, max_length=4000, description="the child's needs the meeting found")
    findings: str = Field("", max_length=4000, description="what the assessment found besides")
    assessed_by: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _tz(self) -> DetailedAssessment:
        _aware(self.meeting_at, "meeting_at")
        return self


class PlanTask(_Form):
    task: str = Field(
        min_length=1, max_length=500, description="what the unit must do, as its inbox will show it: say it without the child's name"
    )
    unit_id: str = Field(description="the unit responsible, of the case's commune, e.g. 25349.health or 25349.school.th-a")
    due_on: date = Field(description="the day by which it is done")
    cost_vnd: int = Field(0, ge=0, le=10_000_000_000, description="the cost in đồng, 0 if none")
    funding: str = Field("", max_length=200, description="who pays (the commune's budget, a programme, ...)")


class SupportPlan(_Form):
    """Mẫu 04: the support and intervention plan, within 5 working days; the chairman approves it (Mẫu 05)."""

    goals: str = Field(min_length=1, max_length=4000, description="the child's needs the plan answers and its goals")
    tasks: list[PlanTask] = Field(min_length=1, max_length=30, description="each becomes an assignment of its unit when the plan is approved")
    drafted_by: str = Field(min_length=1, max_length=200)


class PlanApproval(_Form):
    """Mẫu 05: the chairman's decision approving the plan's current version; its tasks go to their units at once."""

    decision_no: str = Field(min_length=1, max_length=60, description="the decision's number, e.g. 15/QĐ-UBND")
    approved_on: date
    signed_by: str = Field(min_length=1, max_length=200)
    signed_as: Signer = Field(description="chairman, or deputy (KT. CHỦ TỊCH)")


class Review(_Form):
    """Mẫu 06: the review of the child's situation, each factor high / medium / low and the overall level. Low: the
    case may close; medium or high: back to planning."""

    harm_severity: RiskLevel = Field(description="how severe the harm is")
    abuser_access: RiskLevel = Field(description="the risk from the abuser's access to the child")
    care_obstacles: RiskLevel = Field(description="the obstacles in the child's care environment")
    child_capacity: RiskLevel = Field(description="the risk from the child's (lack of) capacity to protect itself and recover")
    overall: RiskLevel = Field(description="the overall level of risk")
    notes: str = Field("", max_length=4000)
    reviewed_by: str = Field(min_length=1, max_length=200)
    reviewed_at: datetime

    @model_validator(mode="after")
    def _tz(self) -> Review:
        _aware(self.reviewed_at, "reviewed_at")
        return self


class StepDeadlineRead(BaseModel):
    step: str = Field(description="the step due next")
    due_at: datetime | None = Field(description="when it is missed; null when the holidays calendar does not cover the period")
    overdue: bool
    escalated_at: datetime | None = Field(None, description="when the watcher found it missed and told the chairman (once)")
    watched: bool = Field(description="whether this deadline escalates (the initial assessment's and the plan's)")
    note: str | None = None


class ProcessRecordRead(BaseModel):
    record_id: str
    form: str = Field(
        description="initial_assessment (Mẫu 02), emergency_measures, care_decision, detailed_assessment (Mẫu 03), plan (Mẫu 04), "
        "plan_approval (Mẫu 05) or review (Mẫu 06)"
    )
    version: int = Field(description="1, then one more for each amendment; every version is kept")
    current: bool
    data: dict
    recorded_by: str
    recorded_at: datetime


class StepChangeRead(BaseModel):
    from_step: str
    to_step: str
    at: datetime
    by: str
    record_id: str | None


class ProcessRead(BaseModel):
    incident_id: str
    commune_code: str
    step: str = Field(description="the last step done: received, initial_assessment, ... closed")
    allowed: list[str] = Field(description="the steps the case may go to next")
    received_at: datetime
    deadline: StepDeadlineRead | None
    records: list[ProcessRecordRead] = Field(description="every version of every record, oldest first")
    history: list[StepChangeRead]
    care_ends_at: datetime | None = Field(None, description="the end of the temporary care decided by the chairman (24:00 of its last day)")
    care_escalated_at: datetime | None = Field(None, description="when the watcher told the chairman the care had reached its end (once)")
    linked_to: str | None = Field(None, description="the earlier report of the same child whose case this report joined: its process is there")


class CaseOnBoard(BaseModel):
    """An open case of the commune in the process, without personal data: what is due, and by when."""

    incident_id: str
    category: Category
    urgency: Urgency
    hamlet: str | None
    received_at: datetime
    step: str = Field(description="the last step done")
    allowed: list[str] = Field(description="the steps it may go to next (plan: waiting for the chairman's approval)")
    deadline: StepDeadlineRead | None
    care_ends_at: datetime | None = None


class CaseBoard(BaseModel):
    items: list[CaseOnBoard]
    truncated: bool = Field(description="true when more cases match than `limit`")
