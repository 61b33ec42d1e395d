"""Reporting's HTTP models (contract.md, Reporting)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field


class PeriodRead(BaseModel):
    id: str
    kind: Literal["year", "half", "quarter", "month", "plan"]
    start: date = Field(description="first day (Vietnam's date)")
    end: date = Field(description="last day, inclusive (Vietnam's date)")
    due: date | None = Field(description="the report's due date (plan periods only)")


class HierarchyVersionRead(BaseModel):
    id: str
    name: str
    start: date = Field(description="first day of the period this version was used for")
    end: date = Field(description="last day, inclusive")
    communes: list[str]


class ResponseIndicators(BaseModel):
    assignments: int
    acknowledged: int
    acknowledged_within_deadline: int
    median_seconds_to_acknowledge: float | None = Field(description="null when nothing was acknowledged")
    overdue: int = Field(description="assignments routing flagged overdue (not acknowledged by due_at)")
    escalations: int = Field(description="escalations caused by this unit type's overdue assignments")


class Indicators(BaseModel):
    """Counts of the period's incidents and their children; every breakdown lists every code, 0 where none."""

    incidents_total: int
    children_total: int
    by_category: dict[str, int]
    by_urgency: dict[str, int]
    by_channel: dict[str, int]
    by_hamlet: dict[str, int] = Field(description="hamlet unit id -> incidents; 'unknown' where no hamlet was given")
    by_sex: dict[str, int]
    by_age_band: dict[str, int]
    children_by_category: dict[str, int] = Field(description="children affected, by form of abuse or harm")
    children_by_urgency: dict[str, int] = Field(description="children affected, by their incident's urgency")
    children_by_channel: dict[str, int] = Field(description="children affected, by the channel their incident came in by")
    children_by_hamlet: dict[str, int] = Field(description="children affected, by their incident's hamlet")
    abused_children_total: int = Field(
        description="children abused (indicator 0101 of Circular 13/2021): the abuse forms of Law on Children Art. 4 cl. 5"
    )
    abused_children_by_form: dict[str, int] = Field(description="abused children by form of abuse (category code)")
    abused_children_by_form_and_sex: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="abused children per form of abuse, by sex (indicator 0101's breakdown)"
    )
    abused_children_by_form_and_age_band: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="abused children per form of abuse, by age band (indicator 0101's breakdown)"
    )
    by_special_circumstance: dict[str, int] = Field(description="children per Law on Children Art. 10 group")
    children_in_special_circumstances: int
    children_in_special_circumstances_supported: int = Field(
        description="of those, children whose case a unit took up (acknowledged and did not decline)"
    )
    injuries_and_drownings: int
    cases_open: int
    cases_closed: int
    response: dict[str, ResponseIndicators] = Field(description="per unit type, for the period's incidents")
    # The case process of Decree 56/2017 (issue 17). Absent from summaries generated before it.
    initial_assessment: dict[str, int] = Field(
        default_factory=dict,
        description="the period's cases whose initial assessment (Mẫu 02) was recorded (`assessed`), of those within 12 hours "
        "of the report's receipt (`assessed_within_12_hours`), and cases escalated to the chairman for its lateness "
        "(`escalated_overdue`)",
    )
    plan: dict[str, int] = Field(
        default_factory=dict,
        description="the period's cases whose support plan (Mẫu 04) was recorded (`planned`), of those within 5 working days "
        "of the report's receipt by the holidays calendar (`planned_within_5_working_days`), those whose year the calendar "
        "does not hold (`due_unknown`), and cases escalated for a late plan (`escalated_overdue`)",
    )
    cases_closed_by_risk_level: dict[str, int] = Field(
        default_factory=dict,
        description="the period's closed cases by the last review's risk level (high, medium, low; `unknown` for closings "
        "recorded before the level was kept): they add up to cases_closed",
    )
    temporary_care: dict[str, int] = Field(
        default_factory=dict,
        description="cases in temporary care away from the parents on any day of the period (`cases`), and their children "
        "(`children`), each counted once across linked reports",
    )


class CommuneRow(BaseModel):
    code: str
    name: str
    indicators: Indicators


class ReportStatusRead(BaseModel):
    """A commune's generated report for a plan period: produced or not, and by the due date or not."""

    code: str
    name: str | None = None
    produced: bool = Field(description="a revision was generated (automatic generation counts as produced)")
    revision: int | None = Field(description="the latest revision; null when not produced")
    first_produced_at: datetime | None
    produced_on_time: bool | None = Field(None, description="the first revision was generated by the due date; null: not produced")
    latest_produced_at: datetime | None
    latest_as_of: datetime | None = Field(description="the data time of the latest revision")
    due: date
    document_status: Literal["draft", "submitted", "approved", "sent"] | None = Field(
        None, description="the latest version of the commune's report document; null: not drafted"
    )
    document_version: int | None = None
    sent: bool = Field(False, description="a version of the document was approved and sent to the district")
    sent_at: datetime | None = Field(None, description="when the first version was sent")
    on_time: bool | None = Field(description="the document was first sent by the due date (Vietnam's date); null: not sent")
    timeliness: Literal["on_time", "late", "pending"] = Field(
        "pending", description="late also when not sent and the due date is over"
    )


class Completeness(BaseModel):
    communes_expected: list[str]
    communes_with_data: list[str] = Field(description="communes with at least one incident in the period")
    reports: list[ReportStatusRead] | None = Field(None, description="plan periods only: each commune's generated report")
    reports_produced: int | None = None
    reports_sent: int | None = None
    reports_on_time: int | None = Field(None, description="documents sent by the due date")
    reports_late: int | None = Field(None, description="documents sent after the due date, or not sent and the due date over")


class ActivityCountsRead(BaseModel):
    """Counts of activities (shared/plans.py COUNT_FIELDS): 0 where a kind takes no such count."""

    activities: int = Field(description="activities recorded and not withdrawn")
    sessions: int
    participants_total: int
    participants_male: int
    participants_female: int
    participants_under_16: int
    participants_16_17: int
    participants_adult: int
    children_supported: int
    households_visited: int
    sites_inspected: int
    violations_found: int
    items_published: int


class ActivityRow(ActivityCountsRead):
    commune_code: str
    unit_id: str = Field(description="e.g. 25349.police, 25349.school.th-minh-tam-a")
    unit_type: str
    task: str = Field(description="the plan's task id, e.g. IV.7")
    kind: str = Field(description="the plan's activity kind, e.g. communication")


class ActivityTaskRow(ActivityCountsRead):
    task: str
    kind: str
    units: list[str] = Field(description="the units whose activities are summed here")


class Activities(BaseModel):
    """What the units did under the commune's plan in the period (issue 16), by the day each activity was held."""

    rows: list[ActivityRow] = Field(description="per commune, unit, task and kind; in the plan's task order")
    by_task: list[ActivityTaskRow] = Field(description="per task and kind, the units summed")
    totals: ActivityCountsRead


class SummaryRead(BaseModel):
    org_unit: str
    name: str
    level: str
    period: PeriodRead
    as_of: datetime
    hierarchy_version: list[HierarchyVersionRead] = Field(description="[] when the unit did not exist in the period")
    note: str | None = Field(None, description="why indicators are null, or which part of the period is covered")
    indicators: Indicators | None = Field(description="null: no data (the unit did not exist), distinct from zero")
    activities: Activities | None = Field(None, description="the units' activities under the plan; null when the unit did not exist")
    communes: list[CommuneRow] | None = Field(None, description="a row per commune, above commune level")
    completeness: Completeness | None = Field(None, description="above commune level")
    revision: int | None = Field(
        None, description="a commune's plan period: the latest generated revision of its report (null: none yet)"
    )
    report: ReportStatusRead | None = Field(None, description="a commune's plan period: its generated report's status")


class GeneratedReportItem(BaseModel):
    """One stored revision of a commune's plan-period report."""

    org_unit: str
    period: str
    revision: int
    as_of: datetime = Field(description="the data time: events folded in by then are counted")
    due: date
    produced_at: datetime
    on_time: bool = Field(description="this revision was produced by the due date (Vietnam's date)")
    incidents_total: int
    children_total: int


class GeneratedReportRead(GeneratedReportItem):
    summary: SummaryRead = Field(description="the summary as generated: the numbers of its as_of")


class GeneratedReportPage(BaseModel):
    items: list[GeneratedReportItem]
    next_cursor: str | None


# -- the report document ---------------------------------------------------------------------------

NARRATIVE_DESCRIPTION = (
    "the officer's text per section: situation (I), results (II), incidents (III), assessment (IV), next_tasks and "
    "recommendations (V); a paragraph per line; no child's personal data"
)


class Narrative(BaseModel):
    situation: str | None = Field(None, description="I. the situation of children and of the work in the commune")
    results: str | None = Field(None, description="II. what the units did under the plan's tasks")
    incidents: str | None = Field(None, description="III. the incidents and their handling")
    assessment: str | None = Field(None, description="IV. strengths, shortcomings and their causes")
    next_tasks: str | None = Field(None, description="V.1 next tasks")
    recommendations: str | None = Field(None, description="V.2 recommendations to the district")


class DraftWrite(BaseModel):
    narrative: Narrative | None = Field(None, description=NARRATIVE_DESCRIPTION)
    number: str | None = Field(None, max_length=32, description="the document's number, e.g. 45/BC-UBND")


class ApprovalWrite(BaseModel):
    signer_name: str = Field(min_length=1, max_length=200, description="the full name of who signs")
    signed_as: Literal["chairman", "deputy"] = Field("chairman", description="deputy: KT. CHỦ TỊCH / PHÓ CHỦ TỊCH")
    number: str | None = Field(None, max_length=32, description="the number the document is issued under, if not set yet")


class DocumentRead(BaseModel):
    org_unit: str
    period: str
    version: int = Field(description="1, then 2, 3, ...: each a replacement of the one before")
    replaces: int | None
    revision: int = Field(description="the generated revision whose figures the version prints")
    newer_revision: int | None = Field(None, description="a newer revision of the figures exists (a draft follows it on its next write)")
    status: Literal["draft", "submitted", "approved", "sent"]
    number: str | None
    narrative: dict[str, str]
    drafted_by: str
    drafted_at: datetime
    submitted_by: str | None
    submitted_at: datetime | None
    approved_by: str | None
    approved_at: datetime | None
    signer_name: str | None
    signed_as: Literal["chairman", "deputy"] | None
    sent_by: str | None
    sent_at: datetime | None
    on_time: bool | None = Field(description="sent: the report (its first version) was sent by the due date")


class DocumentsRead(BaseModel):
    org_unit: str
    period: str
    due: date
    newest_revision: int | None = Field(description="the newest generated revision of the figures; null: none yet")
    current: DocumentRead | None = Field(description="the newest version; null: not drafted")
    versions: list[DocumentRead]
