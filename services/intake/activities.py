"""An activity of a unit under the commune's plan, worked out without I/O: which plan, what the plan allows, the
counts' consistency, who may record, see, correct and withdraw it, and the event it becomes (issue 16)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime

from shared.auth import Principal, parse_unit_id
from shared.events import ActivityCorrected, ActivityEvent, ActivityRecorded, ActivityWithdrawn, Envelope
from shared.plans import PARTICIPANT_FIELDS, ActivityCounts, Plan, PlanNotFound

PRODUCER = "intake"
NOTE_MAX = 500
# A note says what was done, never who: a run of 7 or more digits, spaces, dots or dashes between them allowed
# (a phone, an ID card number) or an e-mail address is refused, and the note is neither published nor logged.
# Dates written 12/3/2025 pass: a session's day belongs in a note. Names cannot be told from words by a pattern:
# the form says so, and reporting never receives the note.
DIGIT_RUN = re.compile(r"\d(?:[\s.\-]?\d){6,}")
EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[a-z]{2,}", re.IGNORECASE)
SEX_FIELDS = ("participants_male", "participants_female")
AGE_FIELDS = ("participants_under_16", "participants_16_17", "participants_adult")

PlanLookup = Callable[[str, int], Plan]


def error(field: str | tuple, msg: str) -> dict:
    loc = ["body", *(field if isinstance(field, tuple) else (field,))]
    return {"loc": loc, "msg": msg, "type": "value_error"}


def plan_for(lookup: PlanLookup, commune: str, day: date) -> Plan | None:
    """The plan an activity held on `day` counts under: its year's, or for November and December the next year's
    (a plan year's first report covers the months from 1 November before it, domain.md section 5)."""
    for year in (day.year, day.year + 1) if day.month >= 11 else (day.year,):
        try:
            return lookup(commune, year)
        except PlanNotFound:
            continue
    return None


def note_errors(note: str | None) -> list[dict]:
    if not note:
        return []
    found = []
    if len(note) > NOTE_MAX:
        found.append(error("note", f"the note has {len(note)} characters; at most {NOTE_MAX}"))
    if DIGIT_RUN.search(note):
        found.append(error("note", "the note must carry no personal data: no phone, ID or other number of 7 digits or more"))
    if EMAIL.search(note):
        found.append(error("note", "the note must carry no personal data: no e-mail address"))
    return found


def count_errors(plan: Plan, kind: str, counts: ActivityCounts) -> list[dict]:
    """What the kind's counts say: only the counts it takes, its required ones at least 1, breakdowns within totals."""
    spec = plan.kinds[kind]
    values = counts.model_dump()
    found = []
    foreign = [name for name, n in values.items() if n and name not in spec.fields]
    if foreign:
        found.append(error("counts", f"an activity of kind {kind} counts only {list(spec.fields)}; not {foreign}"))
    for name in ("participants_total" if r == "participants" else r for r in spec.required):
        if values[name] < 1:
            found.append(error(("counts", name), f"an activity of kind {kind} needs {name} of at least 1"))
    total = values["participants_total"]
    for label, fields in (("sex", SEX_FIELDS), ("age group", AGE_FIELDS)):
        split = sum(values[f] for f in fields)
        if split > total:
            found.append(
                error(("counts", "participants_total"), f"participants by {label} ({' + '.join(fields)} = {split}) exceed participants_total ({total})")
            )
    if any(values[f] for f in PARTICIPANT_FIELDS) and total == 0:
        found.append(error(("counts", "participants_total"), "participants are broken down but participants_total is 0"))
    return found


def check_activity(plan: Plan | None, commune: str, unit_id: str, task_id: str, kind: str, counts: ActivityCounts, note: str | None,
                   year: int) -> list[dict]:
    """Errors (FastAPI's shape) of an activity against its commune's plan; [] when it may be recorded."""
    found = note_errors(note)
    if plan is None:
        return [error("held_on", f"commune {commune} has no children's-work plan for {year}: no activity can be recorded"), *found]
    task = plan.task(task_id)
    if task is None:
        ids = [t.id for t in plan.tasks if t.kinds]
        return [error("task_id", f"task {task_id!r} is not in the {plan.year} plan of commune {commune} (version {plan.version}); its tasks: {ids}"), *found]
    _, unit_type, _ = parse_unit_id(unit_id)
    if task.role_of(unit_type) is None:
        mine = [t.id for t in plan.tasks_of(unit_type)]
        found.append(
            error("task_id", f"task {task_id} is for {[u.value for u in task.responsible]} (supported by {[u.value for u in task.supporting]}), "
                             f"not a {unit_type.value} unit; this unit's tasks: {mine}")
        )
        return found
    if kind not in task.kinds:
        found.append(error("kind", f"task {task_id} implies the activity kinds {list(task.kinds)}; not {kind!r}"))
        return found
    return found + count_errors(plan, kind, counts)


def unit_errors(unit_id: str) -> list[dict]:
    try:
        parse_unit_id(unit_id)
    except ValueError as exc:
        return [error("unit_id", str(exc))]
    return []


def may_record(principal: Principal, unit_id: str) -> bool:
    """A unit's members record for their own unit; the commune's cp_officer for any unit of it; admins for any."""
    commune = unit_id.split(".", 1)[0]
    return principal.is_admin or principal.unit_id == unit_id or principal.is_cp_officer_of(commune)


def may_see(principal: Principal, unit_id: str, commune: str) -> bool:
    return principal.is_admin or principal.unit_id == unit_id or principal.is_cp_officer_of(commune)


def author_of(principal: Principal) -> str:
    """Who may later correct or withdraw: the person, or for a machine token that token."""
    return f"user:{principal.username}" if principal.username else f"token:{principal.token_id}"


EVENTS: dict[str, type[ActivityEvent]] = {"recorded": ActivityRecorded, "corrected": ActivityCorrected, "withdrawn": ActivityWithdrawn}


def build_event(change: str, row: dict, by: str, at: datetime) -> Envelope:
    """The event of a change ("recorded", "corrected", "withdrawn") to an activity row: codes and counts, never the note."""
    event = EVENTS[change](
        activity_id=row["id"],
        revision=row["revision"],
        commune_code=row["commune_code"],
        unit_id=row["unit_id"],
        unit_type=row["unit_type"],
        task_id=row["task_id"],
        plan_version=row["plan_version"],
        kind=row["kind"],
        held_on=row["held_on"],
        counts=ActivityCounts(**row["counts"]),
        by=by,
        at=at,
    )
    return event.envelope(correlation_id=row["id"], producer=PRODUCER, emitted_at=at)
