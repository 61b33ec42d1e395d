"""The assignment lifecycle (contract.md, Routing): the legal transitions, overdue, and decline handoff (pure)."""

from __future__ import annotations

from datetime import datetime

from shared.enums import AssignmentStatus, UnitType

S = AssignmentStatus

# pending -> acknowledged -> in_progress -> done; declined (with a note) from any open state.
TRANSITIONS: dict[AssignmentStatus, tuple[AssignmentStatus, ...]] = {
    S.pending: (S.acknowledged, S.declined),
    S.acknowledged: (S.in_progress, S.declined),
    S.in_progress: (S.done, S.declined),
    S.done: (),
    S.declined: (),
}
NOTE_REQUIRED = frozenset({S.declined})
HANDOFF_ORIGIN = "decline:"


class IllegalTransition(Exception):
    """The move is not in the table; `allowed` names the moves that are."""

    def __init__(self, current: AssignmentStatus, target: AssignmentStatus) -> None:
        self.current = current
        self.target = target
        self.allowed = TRANSITIONS[current]
        allowed = ", ".join(s.value for s in self.allowed) or "none: the assignment is closed"
        super().__init__(f"an assignment cannot go from {current.value} to {target.value}; allowed: {allowed}")


class NoteRequired(Exception):
    def __init__(self, target: AssignmentStatus) -> None:
        super().__init__(f"a note is required to set {target.value}: say why")


def allowed(current: AssignmentStatus) -> tuple[AssignmentStatus, ...]:
    return TRANSITIONS[current]


def transition(current: AssignmentStatus, target: AssignmentStatus, note: str | None = None) -> AssignmentStatus:
    """The new status, or IllegalTransition / NoteRequired."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)
    if target in NOTE_REQUIRED and not (note and note.strip()):
        raise NoteRequired(target)
    return target


def is_overdue(status: AssignmentStatus, due_at: datetime, now: datetime) -> bool:
    """Overdue is a flag on a pending assignment past its acknowledgement deadline."""
    return status is S.pending and due_at < now


def handoff_unit(commune_code: str, declined_unit_id: str) -> str:
    """Who takes over a declined lead: the commune's cp_officer (the focal point)."""
    # When the cp_officer itself declines, the chairman, who directs the commune's child-protection
    # work (Decree 56/2017 Art. 26), takes it: a case is never left without a lead.
    cp_officer = f"{commune_code}.{UnitType.cp_officer.value}"
    if declined_unit_id == cp_officer:
        return f"{commune_code}.{UnitType.chairman.value}"
    return cp_officer


def handoff_origin(declined_assignment_id: str) -> str:
    return f"{HANDOFF_ORIGIN}{declined_assignment_id}"
