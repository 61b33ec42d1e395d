"""Bus contracts: the envelope and one frozen payload model per event (contract.md, Events).

Personal data travels only in `IncidentReported.case`, which routing needs for the
agency inboxes; `IncidentRecorded` carries the same incident's facts alone, for every other consumer
(reporting's queue is bound to it, never to `incident.reported`). Likewise a closing's free-text
`IncidentClosed.outcome` goes to intake's timeline only: reporting gets `IncidentClosureRecorded`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.enums import AgeBand, AssignmentStatus, Category, Channel, RiskLevel, Role, Sex, Urgency
from shared.plans import ActivityCounts


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Envelope(Frozen):
    """What every message on `baove.events` carries; `event_id` is also the AMQP message id."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    emitted_at: datetime
    correlation_id: str
    producer: str
    payload: dict[str, Any]


class Event(Frozen):
    """A payload; subclasses name their routing key."""

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    def envelope(
        self, *, correlation_id: str, producer: str, event_id: uuid.UUID | None = None, emitted_at: datetime | None = None
    ) -> Envelope:
        # A producer with its own clock (routing's, which tests can move) passes `emitted_at`,
        # so the envelope agrees with the times in the payload.
        return Envelope(
            event_id=event_id or uuid.uuid4(),
            event_type=self.event_type,
            schema_version=self.schema_version,
            emitted_at=emitted_at or datetime.now(UTC),
            correlation_id=correlation_id,
            producer=producer,
            payload=self.model_dump(mode="json"),
        )


# -- incident.reported -------------------------------------------------------------


class ChildFacts(Frozen):
    """What reports may know of a child: no name, no birth date, no school."""

    sex: Sex
    age_band: AgeBand
    special_circumstances: tuple[str, ...] = ()


class IncidentFacts(Frozen):
    """The non-personal facts of an incident: what reporting keeps."""

    commune_code: str
    hamlet: str | None
    category: Category
    urgency: Urgency
    channel: Channel
    occurred_at: datetime | None
    received_at: datetime
    children: tuple[ChildFacts, ...]


class ChildCase(Frozen):
    full_name: str | None = None
    sex: Sex
    birth_date: str | None = None
    age_years: int | None = None
    school: str | None = None
    special_circumstances: tuple[str, ...] = ()


class Reporter(Frozen):
    name: str | None = None
    phone: str | None = None
    relation: str | None = None
    anonymous: bool = False


class Consent(Frozen):
    """Consent to disclose the case beyond the units that must act: true, false, or null when not asked."""

    child: bool | None = None
    guardian: bool | None = None


class IncidentCase(Frozen):
    """The personal part, needed by the units that must act."""

    description: str
    children: tuple[ChildCase, ...]
    reporter: Reporter | None = None
    consent: Consent = Consent()


class IncidentReported(Event):
    event_type: ClassVar[str] = "incident.reported"

    incident_id: str
    reported_by: str
    facts: IncidentFacts
    case: IncidentCase


class IncidentRecorded(Event):
    """The facts of a reported incident and nothing personal: no case, no reporter, no principal."""

    event_type: ClassVar[str] = "incident.recorded"

    incident_id: str
    facts: IncidentFacts


# -- routing and the assignment lifecycle ------------------------------------------------


class RoutedAssignment(Frozen):
    assignment_id: str
    unit_id: str
    unit_type: str
    role: Role
    rule: str
    reason: str
    due_at: datetime


class IncidentRouted(Event):
    event_type: ClassVar[str] = "incident.routed"

    incident_id: str
    commune_code: str
    category: Category
    urgency: Urgency
    rules_version: str
    assignments: tuple[RoutedAssignment, ...]
    notes: tuple[str, ...] = ()


class AssignmentEvent(Event):
    incident_id: str
    assignment_id: str
    unit_id: str
    unit_type: str
    role: Role
    commune_code: str
    by: str = Field(description="the principal who made the change")
    at: datetime


class AssignmentAcknowledged(AssignmentEvent):
    event_type: ClassVar[str] = "assignment.acknowledged"

    due_at: datetime
    assigned_at: datetime


class AssignmentStatusChanged(AssignmentEvent):
    event_type: ClassVar[str] = "assignment.status_changed"

    from_status: AssignmentStatus
    to_status: AssignmentStatus
    has_note: bool = False


class AssignmentOverdue(AssignmentEvent):
    event_type: ClassVar[str] = "assignment.overdue"

    due_at: datetime


class IncidentEscalated(Event):
    event_type: ClassVar[str] = "incident.escalated"

    incident_id: str
    commune_code: str
    overdue_assignment_id: str
    escalated_to: tuple[str, ...]
    at: datetime


class IncidentStepOverdue(Event):
    """A step of the Decree 56/2017 process not done by its deadline: told once, to the commune's chairman."""

    event_type: ClassVar[str] = "incident.step_overdue"

    incident_id: str
    commune_code: str
    step: str = Field(
        description="the step not done in time: initial_assessment (12 hours after the report), plan (5 working days), "
        "or temporary_care (the chairman's temporary care decision reached its last day, not extended)"
    )
    due_at: datetime
    escalated_to: tuple[str, ...]
    at: datetime


class IncidentCareDecided(Event):
    """The chairman decided (or extended) a child's temporary care away from the parents (Decree 56/2017, Art. 32).
    Dates and ids only: where the child is cared for stays in routing."""

    event_type: ClassVar[str] = "incident.care_decided"

    incident_id: str
    commune_code: str
    starts_on: date
    ends_on: date
    version: int = Field(description="1 for the decision, one more for each extension or correction")
    by: str = Field(description="who recorded the decision (the chairman's unit or user)")
    at: datetime


class IncidentStepChanged(Event):
    """A case moved to another step of the Decree 56/2017 process (e.g. received -> initial_assessment). Ids and step
    names only: the step's record (Mẫu 02...) stays in routing."""

    event_type: ClassVar[str] = "incident.step_changed"

    incident_id: str
    commune_code: str
    from_step: str
    to_step: str
    record_id: str | None = Field(None, description="the record (form) that completed the step, in routing")
    by: str
    at: datetime


class IncidentClosed(Event):
    event_type: ClassVar[str] = "incident.closed"

    incident_id: str
    commune_code: str
    risk_level: RiskLevel = Field(description="the review's risk level (Mẫu 06 of Decree 56/2017)")
    outcome: str
    by: str
    at: datetime


class IncidentClosureRecorded(Event):
    """The facts of an incident.closed and nothing personal: no outcome (free text), no principal.

    Routing stages it in the same transaction as the incident.closed it summarizes (same correlation id and time)."""

    event_type: ClassVar[str] = "incident.closure_recorded"

    incident_id: str
    commune_code: str
    risk_level: RiskLevel = Field(description="the review's risk level (Mẫu 06 of Decree 56/2017)")
    at: datetime = Field(description="when the case was closed")


class IncidentReopened(Event):
    """A closed incident taken up again; the reason stays in routing (free text)."""

    event_type: ClassVar[str] = "incident.reopened"

    incident_id: str
    commune_code: str
    by: str
    at: datetime


class IncidentErased(Event):
    """The personal data of an incident was erased in intake (on request, or at the end of its retention period):
    every service that holds any blanks it. Ids and codes only; the reason stays in the audit."""

    event_type: ClassVar[str] = "incident.erased"

    incident_id: str
    commune_code: str
    cause: Literal["request", "retention"]
    at: datetime


class ReportGenerated(Event):
    event_type: ClassVar[str] = "report.generated"

    org_unit: str
    period: str
    revision: int
    as_of: datetime


class ReportSubmitted(Event):
    """A commune's report document, approved and signed, sent to the district: which version, pinning which figures."""

    event_type: ClassVar[str] = "report.submitted"

    org_unit: str
    period: str
    version: int = Field(description="the document's version (2, 3, ...: a replacement of the one before)")
    revision: int = Field(description="the generated revision whose figures the document prints")
    replaces: int | None = Field(None, description="the version this one replaces; null for the first")
    signed_as: str = Field(description="chairman, or deputy (KT. CHỦ TỊCH / PHÓ CHỦ TỊCH)")
    sent_at: datetime
    due: date
    on_time: bool = Field(description="sent by the due date, in Vietnam's time")


class ReportDue(Event):
    """A reminder: the commune's report for a plan period is due soon and its document is not sent yet. Ids only.

    Published once per commune, period and reminder (`days_before`, BAOVE_REPORTING_REPORT_DUE_DAYS), for routing's
    notifier, which tells the commune's cp_officer and chairman units that subscribed to it."""

    event_type: ClassVar[str] = "report.due"

    org_unit: str = Field(description="the commune's code")
    period: str = Field(description="the plan period, e.g. 2025-6M")
    due: date = Field(description="the last day to send it, in Vietnam's time")
    days_before: int = Field(description="the reminder: this many days before the due date (7, 1)")
    days_left: int = Field(description="days from the day it was published to the due date")
    status: Literal["none", "draft", "submitted", "approved"] = Field(
        description="the document's current version: none (not drafted yet), draft, submitted or approved"
    )


# -- activities: what each unit did under the commune's plan (issue 16) ---------------------------


class ActivityEvent(Event):
    """One activity of a unit under a task of the commune's plan, as it stands at `revision`.

    Codes and counts only: the author's free-text note stays in intake. Every event of an activity carries all
    of it, so a consumer keeps the highest revision whatever order they arrive in (a withdrawal is the last one).
    """

    activity_id: str
    revision: int = Field(ge=1, description="1 when recorded; each correction and the withdrawal add one")
    commune_code: str
    unit_id: str
    unit_type: str
    task_id: str = Field(description="the plan's task, e.g. IV.7")
    plan_version: str
    kind: str = Field(description="an activity kind of the plan, e.g. communication, inspection")
    held_on: date = Field(description="the day the activity took place (Vietnam's date)")
    counts: ActivityCounts
    by: str = Field(description="the principal who recorded, corrected or withdrew it")
    at: datetime


class ActivityRecorded(ActivityEvent):
    event_type: ClassVar[str] = "activity.recorded"


class ActivityCorrected(ActivityEvent):
    event_type: ClassVar[str] = "activity.corrected"


class ActivityWithdrawn(ActivityEvent):
    """The activity no longer counts; its last counts are carried for a consumer that never saw it."""

    event_type: ClassVar[str] = "activity.withdrawn"


# -- possible duplicates: two reports of one child (issue 17) ----------------------------------------


class IncidentPossibleDuplicate(Event):
    """Intake found that a new report may be about a child of an earlier one: ids and the score, no personal data."""

    event_type: ClassVar[str] = "incident.possible_duplicate"

    incident_id: str = Field(description="the new report")
    duplicate_of: str = Field(description="the earlier report of the commune (within 30 days)")
    commune_code: str
    score: float = Field(ge=0, le=100)
    at: datetime


class IncidentLinked(Event):
    """The commune's cp_officer confirmed two reports are about the same child or children: one case, counted once."""

    event_type: ClassVar[str] = "incident.linked"

    incident_id: str
    linked_to: str
    commune_code: str
    by: str
    at: datetime


EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_type: cls
    for cls in (
        IncidentReported,
        IncidentRecorded,
        IncidentRouted,
        AssignmentAcknowledged,
        AssignmentStatusChanged,
        AssignmentOverdue,
        IncidentEscalated,
        IncidentStepOverdue,
        IncidentStepChanged,
        IncidentCareDecided,
        IncidentClosed,
        IncidentClosureRecorded,
        IncidentReopened,
        IncidentErased,
        ReportGenerated,
        ReportSubmitted,
        ReportDue,
        ActivityRecorded,
        ActivityCorrected,
        ActivityWithdrawn,
        IncidentPossibleDuplicate,
        IncidentLinked,
    )
}


def parse_payload(envelope: Envelope) -> Event:
    """The typed payload of an envelope; unknown types raise KeyError (a poison message)."""
    return EVENT_TYPES[envelope.event_type].model_validate(envelope.payload)
