"""Indicators (domain.md section 5) from grouped counts: tallies per commune, their sum, and the rendered dicts.

Pure: the SQL that groups the read model lives in summaries.py and hands rows of plain values here.
A tally keeps raw acknowledgement times so that a total's median is the median of all of them,
never a median of medians. `None` means "no data" (the unit did not exist); a tally of zeros is a true zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from statistics import median as _median
from typing import Any, NamedTuple

from shared.decree56 import INITIAL_ASSESSMENT_WITHIN, plan_due
from shared.enums import AgeBand, Category, Channel, RiskLevel, Sex, SpecialCircumstance, UnitType, Urgency
from shared.plans import COUNT_FIELDS
from shared.reference import Coverage, Hierarchy
from shared.workdays import UncoveredYear, WorkCalendar

from .periods import Period

UNKNOWN_HAMLET = "unknown"
INJURY_CATEGORIES = (Category.injury.value, Category.drowning.value)
# The forms of abuse of the Law on Children 2016, Art. 4 cl. 5 (violence, exploitation, sexual abuse,
# trafficking, abandonment, neglect), with school violence and online abuse as the seed's own forms of them:
# indicator 0101 of Circular 13/2021 ("số trẻ em bị xâm hại") counts these children.
ABUSE_FORMS = tuple(
    c.value
    for c in (
        Category.sexual_abuse,
        Category.violence,
        Category.school_violence,
        Category.exploitation,
        Category.trafficking,
        Category.abandonment,
        Category.neglect,
        Category.online_abuse,
    )
)
CIRCUMSTANCE_SEPARATOR = ","


# -- rows as the queries give them -------------------------------------------------------------


class IncidentGroup(NamedTuple):
    commune_code: str
    category: str
    urgency: str
    channel: str
    hamlet: str | None
    closed: bool
    count: int


class ChildGroup(NamedTuple):
    commune_code: str
    category: str
    sex: str
    age_band: str
    special_circumstances: str  # codes joined by CIRCUMSTANCE_SEPARATOR, "" for none
    count: int
    supported: bool = False  # a unit took the child's case up: acknowledged it and did not decline


class ChildPlaceGroup(NamedTuple):
    """Children counted by their incident's urgency, channel and hamlet."""

    commune_code: str
    urgency: str
    channel: str
    hamlet: str | None
    count: int


class ResponseGroup(NamedTuple):
    commune_code: str
    unit_type: str
    assignments: int
    acknowledged: int
    acknowledged_within_deadline: int
    overdue: int


class AckTime(NamedTuple):
    commune_code: str
    unit_type: str
    seconds: float


class EscalationGroup(NamedTuple):
    commune_code: str
    unit_type: str
    count: int


# -- tallies ----------------------------------------------------------------------------------


@dataclass
class UnitResponse:
    assignments: int = 0
    acknowledged: int = 0
    acknowledged_within_deadline: int = 0
    overdue: int = 0
    escalations: int = 0
    seconds_to_acknowledge: list[float] = field(default_factory=list)

    def add(self, other: UnitResponse) -> None:
        self.assignments += other.assignments
        self.acknowledged += other.acknowledged
        self.acknowledged_within_deadline += other.acknowledged_within_deadline
        self.overdue += other.overdue
        self.escalations += other.escalations
        self.seconds_to_acknowledge.extend(other.seconds_to_acknowledge)


@dataclass
class Tally:
    """The raw counts of one commune's share of a period, or of several communes summed."""

    incidents_total: int = 0
    cases_closed: int = 0
    by_category: Counter[str] = field(default_factory=Counter)
    by_urgency: Counter[str] = field(default_factory=Counter)
    by_channel: Counter[str] = field(default_factory=Counter)
    by_hamlet: Counter[str] = field(default_factory=Counter)
    children_total: int = 0
    children_in_special_circumstances: int = 0
    children_in_special_circumstances_supported: int = 0
    children_by_category: Counter[str] = field(default_factory=Counter)
    children_by_urgency: Counter[str] = field(default_factory=Counter)
    children_by_channel: Counter[str] = field(default_factory=Counter)
    children_by_hamlet: Counter[str] = field(default_factory=Counter)
    by_sex: Counter[str] = field(default_factory=Counter)
    by_age_band: Counter[str] = field(default_factory=Counter)
    by_special_circumstance: Counter[str] = field(default_factory=Counter)
    # Abused children (ABUSE_FORMS) by "form/sex/age band": indicator 0101 of Circular 13/2021 is broken down so.
    abused_by_form_sex_age: Counter[str] = field(default_factory=Counter)
    response: dict[str, UnitResponse] = field(default_factory=dict)

    def unit(self, unit_type: str) -> UnitResponse:
        return self.response.setdefault(unit_type, UnitResponse())

    def add(self, other: Tally) -> None:
        self.incidents_total += other.incidents_total
        self.cases_closed += other.cases_closed
        self.children_total += other.children_total
        self.children_in_special_circumstances += other.children_in_special_circumstances
        self.children_in_special_circumstances_supported += other.children_in_special_circumstances_supported
        for name in (
            "by_category",
            "by_urgency",
            "by_channel",
            "by_hamlet",
            "children_by_category",
            "children_by_urgency",
            "children_by_channel",
            "children_by_hamlet",
            "by_sex",
            "by_age_band",
            "by_special_circumstance",
            "abused_by_form_sex_age",
        ):
            getattr(self, name).update(getattr(other, name))
        for unit_type, response in other.response.items():
            self.unit(unit_type).add(response)


def split_circumstances(text: str) -> list[str]:
    return [code for code in text.split(CIRCUMSTANCE_SEPARATOR) if code]


def join_circumstances(codes: Iterable[str]) -> str:
    """The stored form: known codes only (anything else could be free text), sorted, deduplicated."""
    known = {c.value for c in SpecialCircumstance}
    return CIRCUMSTANCE_SEPARATOR.join(sorted({c for c in codes if c in known}))


def tally_by_commune(
    incidents: Iterable[IncidentGroup],
    children: Iterable[ChildGroup] = (),
    responses: Iterable[ResponseGroup] = (),
    ack_times: Iterable[AckTime] = (),
    escalations: Iterable[EscalationGroup] = (),
    child_places: Iterable[ChildPlaceGroup] = (),
) -> dict[str, Tally]:
    """Fold grouped rows into one tally per commune code."""
    tallies: dict[str, Tally] = {}

    def of(code: str) -> Tally:
        return tallies.setdefault(code, Tally())

    for row in incidents:
        t = of(row.commune_code)
        t.incidents_total += row.count
        t.cases_closed += row.count if row.closed else 0
        t.by_category[row.category] += row.count
        t.by_urgency[row.urgency] += row.count
        t.by_channel[row.channel] += row.count
        t.by_hamlet[row.hamlet or UNKNOWN_HAMLET] += row.count
    for row in children:
        t = of(row.commune_code)
        codes = split_circumstances(row.special_circumstances)
        t.children_total += row.count
        t.children_by_category[row.category] += row.count
        t.by_sex[row.sex] += row.count
        t.by_age_band[row.age_band] += row.count
        t.children_in_special_circumstances += row.count if codes else 0
        t.children_in_special_circumstances_supported += row.count if codes and row.supported else 0
        for code in codes:
            t.by_special_circumstance[code] += row.count
        if row.category in ABUSE_FORMS:
            t.abused_by_form_sex_age[f"{row.category}/{row.sex}/{row.age_band}"] += row.count
    for row in child_places:
        t = of(row.commune_code)
        t.children_by_urgency[row.urgency] += row.count
        t.children_by_channel[row.channel] += row.count
        t.children_by_hamlet[row.hamlet or UNKNOWN_HAMLET] += row.count
    for row in responses:
        u = of(row.commune_code).unit(row.unit_type)
        u.assignments += row.assignments
        u.acknowledged += row.acknowledged
        u.acknowledged_within_deadline += row.acknowledged_within_deadline
        u.overdue += row.overdue
    for row in ack_times:
        # Clocks of two services may disagree by a little: a negative wait is a zero wait.
        of(row.commune_code).unit(row.unit_type).seconds_to_acknowledge.append(max(0.0, row.seconds))
    for row in escalations:
        of(row.commune_code).unit(row.unit_type).escalations += row.count
    return tallies


def total(tallies: Iterable[Tally]) -> Tally:
    """The sum of several communes' tallies (acknowledgement times pooled)."""
    result = Tally()
    for tally in tallies:
        result.add(tally)
    return result


def median(values: Sequence[float]) -> float | None:
    return float(_median(values)) if values else None


# -- rendering --------------------------------------------------------------------------------


def every_code(counts: Counter[str], codes: Iterable[str]) -> dict[str, int]:
    """Every code with its count, 0 where none, so a true zero shows; codes seen but not listed come last."""
    out = {code: counts.get(code, 0) for code in codes}
    for code in sorted(counts):
        out.setdefault(code, counts[code])
    return out


def response_indicators(response: UnitResponse) -> dict[str, Any]:
    return {
        "assignments": response.assignments,
        "acknowledged": response.acknowledged,
        "acknowledged_within_deadline": response.acknowledged_within_deadline,
        "median_seconds_to_acknowledge": median(response.seconds_to_acknowledge),
        "overdue": response.overdue,
        "escalations": response.escalations,
    }


def abused_by(tally: Tally, part: int, codes: Sequence[str]) -> dict[str, dict[str, int]]:
    """Abused children per form, by sex (part 1) or age band (part 2): every form and code, 0 where none."""
    counts: dict[str, Counter[str]] = {form: Counter() for form in ABUSE_FORMS}
    for key, n in tally.abused_by_form_sex_age.items():
        form, *rest = key.split("/")
        counts.setdefault(form, Counter())[rest[part - 1]] += n
    return {form: every_code(counter, codes) for form, counter in counts.items()}


def indicators(tally: Tally | None, hamlets: Sequence[str] = (), process: ProcessTally | None = None) -> dict[str, Any] | None:
    """The indicator object of contract.md (Reporting) with the case process's (issue 17); None stays None: no data,
    not zero."""
    if tally is None:
        return None
    empty = UnitResponse()
    return {
        "incidents_total": tally.incidents_total,
        "children_total": tally.children_total,
        "by_category": every_code(tally.by_category, [c.value for c in Category]),
        "by_urgency": every_code(tally.by_urgency, [u.value for u in Urgency]),
        "by_channel": every_code(tally.by_channel, [c.value for c in Channel]),
        "by_hamlet": every_code(tally.by_hamlet, [*hamlets, UNKNOWN_HAMLET]),
        "by_sex": every_code(tally.by_sex, [s.value for s in Sex]),
        "by_age_band": every_code(tally.by_age_band, [a.value for a in AgeBand]),
        "children_by_category": every_code(tally.children_by_category, [c.value for c in Category]),
        "children_by_urgency": every_code(tally.children_by_urgency, [u.value for u in Urgency]),
        "children_by_channel": every_code(tally.children_by_channel, [c.value for c in Channel]),
        "children_by_hamlet": every_code(tally.children_by_hamlet, [*hamlets, UNKNOWN_HAMLET]),
        "abused_children_total": sum(tally.children_by_category.get(c, 0) for c in ABUSE_FORMS),
        "abused_children_by_form": {c: tally.children_by_category.get(c, 0) for c in ABUSE_FORMS},
        "abused_children_by_form_and_sex": abused_by(tally, 1, [s.value for s in Sex]),
        "abused_children_by_form_and_age_band": abused_by(tally, 2, [a.value for a in AgeBand]),
        "by_special_circumstance": every_code(tally.by_special_circumstance, [s.value for s in SpecialCircumstance]),
        "children_in_special_circumstances": tally.children_in_special_circumstances,
        "children_in_special_circumstances_supported": tally.children_in_special_circumstances_supported,
        "injuries_and_drownings": sum(tally.by_category.get(c, 0) for c in INJURY_CATEGORIES),
        "cases_open": tally.incidents_total - tally.cases_closed,
        "cases_closed": tally.cases_closed,
        "response": {
            unit_type: response_indicators(tally.response.get(unit_type, empty))
            for unit_type in [u.value for u in UnitType] + sorted(set(tally.response) - {u.value for u in UnitType})
        },
        **process_indicators(process or ProcessTally()),
    }


# -- the case process of Decree 56/2017 (issue 17) -----------------------------------------------

RISK_LEVELS = tuple(r.value for r in RiskLevel)
UNKNOWN_RISK = "unknown"  # a closing folded before reporting kept its risk level


class CaseSteps(NamedTuple):
    """One case of the period (by its report's date) that completed its initial assessment or its plan."""

    commune_code: str
    received_at: datetime
    assessed_at: datetime | None
    planned_at: datetime | None


class ClosedGroup(NamedTuple):
    commune_code: str
    risk_level: str | None
    count: int


class LateStepGroup(NamedTuple):
    commune_code: str
    step: str
    count: int


@dataclass
class ProcessTally:
    """The case process's counts of one commune's share of a period (or several communes summed).

    Assessments and plans count the cases reported in the period (like every incident indicator), whenever the
    step was done; temporary care counts the cases whose care days overlap the period, and their children once."""

    assessed: int = 0
    assessed_within_12_hours: int = 0
    assessment_escalated: int = 0
    planned: int = 0
    planned_within_5_working_days: int = 0
    plan_due_unknown: int = 0
    plan_escalated: int = 0
    closed_by_risk_level: Counter[str] = field(default_factory=Counter)
    care_cases: int = 0
    care_children: int = 0

    def add(self, other: ProcessTally) -> None:
        for name in (
            "assessed", "assessed_within_12_hours", "assessment_escalated", "planned", "planned_within_5_working_days",
            "plan_due_unknown", "plan_escalated", "care_cases", "care_children",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.closed_by_risk_level.update(other.closed_by_risk_level)


def process_by_commune(
    cases: Iterable[CaseSteps],
    calendar: WorkCalendar,
    closed: Iterable[ClosedGroup] = (),
    late: Iterable[LateStepGroup] = (),
    care: Iterable[tuple[str, int, int]] = (),
) -> dict[str, ProcessTally]:
    """Fold the process rows into one tally per commune; `care` is (commune, cases, children)."""
    tallies: dict[str, ProcessTally] = {}

    def of(code: str) -> ProcessTally:
        return tallies.setdefault(code, ProcessTally())

    for case in cases:
        t = of(case.commune_code)
        if case.assessed_at is not None:
            t.assessed += 1
            t.assessed_within_12_hours += case.assessed_at - case.received_at <= INITIAL_ASSESSMENT_WITHIN
        if case.planned_at is not None:
            t.planned += 1
            try:
                due = plan_due(case.received_at, calendar)
            except UncoveredYear:
                # The holidays calendar does not hold the year yet: neither in time nor late, said apart.
                t.plan_due_unknown += 1
                continue
            # `due` is 24:00 of the fifth working day, the first moment the plan is late (routing's Deadline.missed).
            t.planned_within_5_working_days += case.planned_at <= due
    for row in closed:
        of(row.commune_code).closed_by_risk_level[row.risk_level or UNKNOWN_RISK] += row.count
    for row in late:
        t = of(row.commune_code)
        if row.step == "initial_assessment":
            t.assessment_escalated += row.count
        elif row.step == "plan":
            t.plan_escalated += row.count
    for commune, n_cases, n_children in care:
        t = of(commune)
        t.care_cases += n_cases
        t.care_children += n_children
    return tallies


def process_indicators(tally: ProcessTally) -> dict[str, Any]:
    """The process sections of an indicator object (contract-changes.md, issue 17)."""
    return {
        "initial_assessment": {
            "assessed": tally.assessed,
            "assessed_within_12_hours": tally.assessed_within_12_hours,
            "escalated_overdue": tally.assessment_escalated,
        },
        "plan": {
            "planned": tally.planned,
            "planned_within_5_working_days": tally.planned_within_5_working_days,
            "due_unknown": tally.plan_due_unknown,
            "escalated_overdue": tally.plan_escalated,
        },
        "cases_closed_by_risk_level": every_code(tally.closed_by_risk_level, RISK_LEVELS),
        "temporary_care": {"cases": tally.care_cases, "children": tally.care_children},
    }


def total_process(tallies: Iterable[ProcessTally]) -> ProcessTally:
    result = ProcessTally()
    for tally in tallies:
        result.add(tally)
    return result


# -- activities under the commune's plan (issue 16) --------------------------------------------


class ActivityGroup(NamedTuple):
    """Activities of one unit under one task and kind, with their counts summed (COUNT_FIELDS order)."""

    commune_code: str
    unit_id: str
    unit_type: str
    task_id: str
    kind: str
    activities: int
    counts: tuple[int, ...]


def _task_order(task_id: str) -> tuple:
    """IV.2 before IV.10: the plan's order, not the alphabet's."""
    return tuple(int(p) if p.isdigit() else p for p in task_id.split("."))


def _counts(values: Iterable[int]) -> dict[str, int]:
    return dict(zip(COUNT_FIELDS, values))


def _summed(groups: Iterable[ActivityGroup]) -> tuple[int, list[int]]:
    records, sums = 0, [0] * len(COUNT_FIELDS)
    for g in groups:
        records += g.activities
        sums = [a + b for a, b in zip(sums, g.counts)]
    return records, sums


def activity_indicators(groups: Iterable[ActivityGroup]) -> dict[str, Any]:
    """The `activities` object of a summary: a row per commune, unit, task and kind; a row per task and kind; totals.

    Every row has `activities` (how many were recorded and not withdrawn) and every count of COUNT_FIELDS.
    """
    groups = sorted(groups, key=lambda g: (_task_order(g.task_id), g.commune_code, g.unit_id, g.kind))
    rows = [
        {
            "commune_code": g.commune_code,
            "unit_id": g.unit_id,
            "unit_type": g.unit_type,
            "task": g.task_id,
            "kind": g.kind,
            "activities": g.activities,
            **_counts(g.counts),
        }
        for g in groups
    ]
    by_task: dict[tuple[str, str], list[ActivityGroup]] = {}
    for g in groups:
        by_task.setdefault((g.task_id, g.kind), []).append(g)
    task_rows = []
    for (task, kind), members in by_task.items():
        records, sums = _summed(members)
        units = sorted({g.unit_id for g in members})
        task_rows.append({"task": task, "kind": kind, "units": units, "activities": records, **_counts(sums)})
    records, sums = _summed(groups)
    return {"rows": rows, "by_task": task_rows, "totals": {"activities": records, **_counts(sums)}}


# -- the summary ------------------------------------------------------------------------------


def communes_of(coverages: Sequence[Coverage]) -> list[str]:
    """The communes of every coverage, each once, in order."""
    return list(dict.fromkeys(code for c in coverages for code in c.communes))


def covered_windows(coverages: Sequence[Coverage]) -> list[tuple[date, date]]:
    """The coverages' [start, end) windows with touching ones merged."""
    merged: list[tuple[date, date]] = []
    for start, end in sorted((c.start, c.end) for c in coverages):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def coverage_note(code: str, name: str, period: Period, coverages: Sequence[Coverage]) -> str | None:
    """Why the indicators are null, or which days they cover when the unit existed for part of the period only."""
    span = f"{period.start.isoformat()}..{period.last_day.isoformat()}"
    if not coverages:
        return f"{code} ({name}) did not exist in period {period.id} ({span}): no data"
    windows = covered_windows(coverages)
    if windows == [(period.start, period.end)]:
        return None
    days = ", ".join(f"{s.isoformat()}..{(e - timedelta(days=1)).isoformat()}" for s, e in windows)
    return f"{code} ({name}) existed for part of period {period.id} ({span}) only: indicators cover {days}"


def build_summary(
    hierarchy: Hierarchy,
    code: str,
    period: Period,
    coverages: Sequence[Coverage],
    tallies: dict[str, Tally],
    as_of: datetime,
    activities: Iterable[ActivityGroup] = (),
    process: dict[str, ProcessTally] | None = None,
) -> dict[str, Any]:
    """The summary of one org unit: its total, its units' activities, and above commune level a row per commune and
    completeness."""
    # The name and level the unit had in the period (25349 was Minh Tâm before 1 July 2025, Minh Đức after).
    unit = coverages[-1].version.units[code] if coverages else hierarchy.unit(code)
    communes = communes_of(coverages)
    commune_names = {c: v.version.units[c].name for v in coverages for c in v.communes}
    hamlets = [h for c in communes for h in hierarchy.hamlet_unit_ids(c)]
    aggregated = unit.level != "commune"
    process = process or {}
    summary: dict[str, Any] = {
        "org_unit": code,
        "name": unit.name,
        "level": unit.level,
        "period": {"id": period.id, "kind": period.kind, "start": period.start, "end": period.last_day, "due": period.due},
        "as_of": as_of,
        "hierarchy_version": [
            {
                "id": c.version.id,
                "name": c.version.name,
                "start": c.start,
                "end": c.end - timedelta(days=1),
                "communes": list(c.communes),
            }
            for c in coverages
        ],
        "note": coverage_note(code, unit.name, period, coverages),
        "indicators": indicators(
            total(tallies.get(c, Tally()) for c in communes) if coverages else None,
            hamlets,
            total_process(process.get(c, ProcessTally()) for c in communes),
        ),
        "activities": activity_indicators(activities) if coverages else None,
        "communes": None,
        "completeness": None,
    }
    if aggregated and coverages:
        summary["communes"] = [
            {
                "code": c,
                "name": commune_names[c],
                "indicators": indicators(tallies.get(c, Tally()), hierarchy.hamlet_unit_ids(c), process.get(c)),
            }
            for c in communes
        ]
        summary["completeness"] = {
            "communes_expected": communes,
            "communes_with_data": [c for c in communes if c in tallies and tallies[c].incidents_total > 0],
        }
    return summary
