"""A case's timeline, without I/O: the entry each of routing's events makes, and the order entries are read in."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from shared.events import (
    AssignmentAcknowledged,
    AssignmentOverdue,
    AssignmentStatusChanged,
    Event,
    IncidentCareDecided,
    IncidentClosed,
    IncidentEscalated,
    IncidentReopened,
    IncidentRouted,
    IncidentStepChanged,
    IncidentStepOverdue,
)

from .models import TimelineEntry


class TimelineFact(NamedTuple):
    """What an event puts on its case's timeline; `at` None means the envelope's time."""

    incident_id: str
    at: datetime | None
    kind: str
    principal: str
    detail: dict



def timeline_entry(event: Event) -> TimelineFact | None:
    """The timeline entry of an event that belongs on a case's timeline."""
    if isinstance(event, IncidentRouted):
        # The first is the routing decision (rule-table version and the rules matched); later ones tell of a
        # lead handed back, an escalation or a reopened case (rules_version "handoff", "escalation", "reopen").
        return TimelineFact(
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
        return TimelineFact(event.incident_id, event.at, "assignment.acknowledged", event.by, {"unit_id": event.unit_id, "assignment_id": event.assignment_id})
    if isinstance(event, AssignmentStatusChanged):
        return TimelineFact(
            event.incident_id,
            event.at,
            f"assignment.{event.to_status.value}",
            event.by,
            {"unit_id": event.unit_id, "assignment_id": event.assignment_id, "from": event.from_status.value},
        )
    if isinstance(event, AssignmentOverdue):
        return TimelineFact(
            event.incident_id,
            event.at,
            "assignment.overdue",
            event.by,
            {"unit_id": event.unit_id, "assignment_id": event.assignment_id, "due_at": event.due_at.isoformat()},
        )
    if isinstance(event, IncidentEscalated):
        return TimelineFact(
            event.incident_id,
            event.at,
            "escalated",
            "routing",
            {"to": list(event.escalated_to), "overdue_assignment_id": event.overdue_assignment_id},
        )
    if isinstance(event, IncidentStepOverdue):
        # Kind "step_overdue.<the step not done in time>": the console names the step and its deadline.
        return TimelineFact(
            event.incident_id,
            event.at,
            f"step_overdue.{event.step}",
            "routing",
            {"step": event.step, "due_at": event.due_at.isoformat(), "to": list(event.escalated_to)},
        )
    if isinstance(event, IncidentStepChanged):
        # Kind "step.<the step done>"; the step's record (Mẫu 02...) stays in routing.
        return TimelineFact(
            event.incident_id,
            event.at,
            f"step.{event.to_step}",
            event.by,
            {"from": event.from_step, "record_id": event.record_id},
        )
    if isinstance(event, IncidentCareDecided):
        # The chairman's temporary care decision (1) or its extension (2, 3...): its dates; the placement stays in routing.
        return TimelineFact(
            event.incident_id,
            event.at,
            "care_decided",
            event.by,
            {"starts_on": event.starts_on.isoformat(), "ends_on": event.ends_on.isoformat(), "version": event.version},
        )
    if isinstance(event, IncidentClosed):
        return TimelineFact(event.incident_id, event.at, "closed", event.by, {"risk_level": event.risk_level.value, "outcome": event.outcome})
    if isinstance(event, IncidentReopened):
        return TimelineFact(event.incident_id, event.at, "reopened", event.by, {})
    return None



def timeline_order(entry: TimelineEntry) -> tuple[datetime, int, int]:
    """By time; entries of one instant (one transaction in routing) in causal order, whatever order they arrived in:
    the assignment changes, then the process's step moves, then what they did to the case (closed, reopened,
    escalated), then the assignments made because of it."""
    if entry.kind.startswith("assignment."):
        rank = 1
    elif entry.kind.startswith("step."):
        rank = 2
    elif entry.kind == "routed":
        rank = 4
    else:
        rank = 0 if entry.kind == "reported" else 3
    return entry.at, rank, entry.id


def in_order(entries: list[TimelineEntry]) -> list[TimelineEntry]:
    """The entries as timeline_order sorts them, with the process's moves of one instant (a plan's approval moves the
    case plan → plan_approved → implementation in one transaction) each after the step it left: events of one
    transaction may be consumed in any order, so their arrival (`id`) does not tell it."""
    ordered = sorted(entries, key=timeline_order)
    result: list[TimelineEntry] = []
    start = 0
    while start < len(ordered):
        end = start
        while end < len(ordered) and ordered[end].at == ordered[start].at:
            end += 1
        result += _moves_chained(ordered[start:end])
        start = end
    return result


def _moves_chained(group: list[TimelineEntry]) -> list[TimelineEntry]:
    moves = [e for e in group if e.kind.startswith("step.")]
    if len(moves) < 2:
        return group
    chain: list[TimelineEntry] = []
    while moves:
        reached = {e.kind.removeprefix("step.") for e in moves}
        # The move from a step no other of the instant reached comes first (the arrival order when none is).
        first = next((e for e in moves if (e.detail or {}).get("from") not in reached), moves[0])
        chain.append(first)
        moves.remove(first)
    chained = iter(chain)
    return [next(chained) if e.kind.startswith("step.") else e for e in group]
