"""What each unit sees of a case (domain.md 7: only what it needs): a table by role and unit type, and the cut."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Literal

from shared.enums import Role, UnitType

View = Literal["full", "minimal"]
VN = timezone(timedelta(hours=7))

# A lead sees the whole case. A support unit sees it whole only if it must deal with the child or the reporter in
# person; the others learn the category, urgency, hamlet and each child's sex and age (domain.md 7): no description
# (free text that often names people), names, birth dates, school or reporter.
SUPPORT_VIEW: dict[UnitType, View] = {
    UnitType.police: "full",
    UnitType.health: "full",
    UnitType.cp_officer: "full",
    UnitType.chairman: "full",
    UnitType.school: "minimal",
    UnitType.justice: "minimal",
    UnitType.culture_info: "minimal",
    UnitType.radio: "minimal",
    UnitType.womens_union: "minimal",
    UnitType.youth_union: "minimal",
    UnitType.fatherland_front: "minimal",
    UnitType.hamlet: "minimal",
}


def view_of(role: str, unit_type: str) -> View:
    """The view of an assignment's unit; a unit type missing from the table sees the least."""
    return "full" if role == Role.lead else SUPPORT_VIEW.get(unit_type, "minimal")


def age_of(child: dict, on: date) -> int | None:
    if child.get("birth_date"):
        birth = date.fromisoformat(child["birth_date"])
        return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return child.get("age_years")


def disclosed(case: dict, view: View, occurred: datetime) -> dict:
    """The case as stored, cut down to the view; ages are taken on the incident's day in Vietnam."""
    if view == "full":
        return case
    on = occurred.astimezone(VN).date()
    return {
        "description": None,
        "children": [{"sex": c["sex"], "age_years": age_of(c, on)} for c in case["children"]],
        "reporter": None,
        "consent": case.get("consent", {}),
    }
