"""The assignment and case lifecycles (contract.md, Routing): legal transitions, overdue, handoff, closing (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from shared.enums import AssignmentStatus, UnitType
from shared.errors import Conflict, Invalid

# pending -> acknowledged -> in_progress -> done; declined (with a note) from any open state.
TRANSITIONS: dict[AssignmentStatus, tuple[AssignmentStatus, ...]] = {
    AssignmentStatus.pending: (AssignmentStatus.acknowledged, AssignmentStatus.declined),
    AssignmentStatus.acknowledged: (AssignmentStatus.in_progress, AssignmentStatus.declined),
    AssignmentStatus.in_progress: (AssignmentStatus.done, AssignmentStatus.declined),
    AssignmentStatus.done: (),
    AssignmentStatus.declined: (),
}
NOTE_REQUIRED = frozenset({AssignmentStatus.declined})
OPEN = frozenset({AssignmentStatus.pending, AssignmentStatus.acknowledged, AssignmentStatus.in_progress})
HANDOFF_ORIGIN = "decline:"
REOPEN_ORIGIN = "reopen:"


class IllegalTransition(Conflict):
    """The move is not in the table; `allowed` names the moves that are."""

    def __init__(self, current: AssignmentStatus, target: AssignmentStatus) -> None:
        self.current = current
        self.target = target
        self.allowed = TRANSITIONS[current]
        allowed = ", ".join(s.value for s in self.allowed) or "none: the assignment is closed"
        self.message = f"an assignment cannot go from {current.value} to {target.value}; allowed: {allowed}"
        super().__init__({"message": self.message, "current": current.value, "allowed": [s.value for s in self.allowed]})

    def __str__(self) -> str:
        return self.message


class NoteRequired(Invalid):
    def __init__(self, target: AssignmentStatus) -> None:
        self.message = f"a note is required to set {target.value}: say why"
        super().__init__([{"loc": ["body", "note"], "msg": self.message, "type": "value_error"}])

    def __str__(self) -> str:
        return self.message


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
    return status is AssignmentStatus.pending and due_at < now


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


def reopen_origin(change_id: int) -> str:
    return f"{REOPEN_ORIGIN}{change_id}"


# -- the case: closed by the commune's cp_officer once every assignment is done or declined --------------


class CaseStatus(StrEnum):
    open = "open"
    closed = "closed"


class CaseCannotMove(Conflict):
    """The case cannot move now; `detail` says why and what would allow it."""

    def __init__(self, message: str, current: CaseStatus, **extra) -> None:
        self.message = message
        super().__init__({"message": message, "current": current.value, **extra})

    def __str__(self) -> str:
        return self.message


def check_close(status: CaseStatus, assignments: Iterable[tuple[str, str, AssignmentStatus]]) -> None:
    """Closing needs an open case whose assignments (id, unit, status) are all done or declined."""
    if status is CaseStatus.closed:
        raise CaseCannotMove("the incident is already closed; reopen it first", status, allowed=["reopen"])
    still_open = [{"assignment_id": a, "unit_id": u, "status": st.value} for a, u, st in assignments if st in OPEN]
    if still_open:
        names = ", ".join(f"{o['unit_id']} ({o['status']})" for o in still_open)
        raise CaseCannotMove(
            f"{len(still_open)} assignment(s) are not done or declined: {names}", status, open_assignments=still_open
        )


def check_reopen(status: CaseStatus) -> None:
    if status is not CaseStatus.closed:
        raise CaseCannotMove("the incident is not closed", status, allowed=["close"])
