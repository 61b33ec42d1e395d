"""Small-cell protection of the published exports (pure): a count from 1 to threshold-1 below district level is shown
as "<5", and enough other cells as "x" that no suppressed count can be worked out by subtraction.

Below district level means a commune's column (a commune's own export, or the per-commune columns of a district's or
province's) and the hamlet lines of any column. Zero stays 0 (a true zero is not a person), blank stays blank.

Secondary suppression: the export's numbers are tied by sums (a total is the sum of its breakdown by category, by
urgency, by hamlet...; a district's column is the sum of its communes' columns; a form of abuse repeats a category's
count). Whenever exactly one number of such a sum is hidden, it could be recovered from the others, so the smallest
other count of the sum is hidden too ("x"), until no sum has a single unknown.
Sums not listed in `_column_sums` (the response measures per unit type, special circumstances, which overlap) are
not protected by secondary suppression; their counts are operational, not children's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .aggregates import ABUSE_FORMS, INJURY_CATEGORIES

SECONDARY = "x"
HAMLET_SECTIONS = ("by_hamlet", "children_by_hamlet")
INCIDENT_BREAKDOWNS = ("by_category", "by_urgency", "by_channel", "by_hamlet")
CHILD_BREAKDOWNS = (
    "by_sex", "by_age_band", "children_by_category", "children_by_urgency", "children_by_channel", "children_by_hamlet",
)

Line = tuple[str, str]  # (section, code)
Cell = tuple[str, str, int]  # (section, code, column)


def small(threshold: int) -> str:
    return f"<{threshold}"


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _column_sums(lines: Iterable[Line]) -> list[tuple[Line, list[Line]]]:
    """(total, parts) pairs of one column: total == sum(parts)."""
    codes: dict[str, list[str]] = {}
    for section, code in lines:
        codes.setdefault(section, []).append(code)
    sums: list[tuple[Line, list[Line]]] = []
    sums += [(("incidents_total", ""), [(s, c) for c in codes.get(s, [])]) for s in INCIDENT_BREAKDOWNS]
    sums.append((("incidents_total", ""), [("cases_open", ""), ("cases_closed", "")]))
    if "cases_closed_by_risk_level" in codes:
        sums.append((("cases_closed", ""), [("cases_closed_by_risk_level", c) for c in codes["cases_closed_by_risk_level"]]))
    sums += [(("children_total", ""), [(s, c) for c in codes.get(s, [])]) for s in CHILD_BREAKDOWNS]
    sums.append((("abused_children_total", ""), [("abused_children_by_form", c) for c in codes.get("abused_children_by_form", [])]))
    sums.append((("injuries_and_drownings", ""), [("by_category", c) for c in INJURY_CATEGORIES]))
    sums += [(("abused_children_by_form", c), [("children_by_category", c)]) for c in ABUSE_FORMS]
    return sums


def protect(
    values: Mapping[Cell, Any], lines: list[Line], columns: int, below_district: Callable[[Cell], bool], threshold: int
) -> dict[Cell, str]:
    """The cells to hide and how they show: "<threshold" (primary) or "x" (secondary). Column 0 is the total column
    and, when there are more columns, the sum of the others."""
    if threshold <= 1:
        return {}
    hidden = {
        cell: small(threshold)
        for cell, value in values.items()
        if _count(value) and 0 < value < threshold and below_district(cell)
    }
    if not hidden:
        return {}
    sums: list[tuple[Cell, list[Cell]]] = [
        ((*total, col), [(*part, col) for part in parts]) for col in range(columns) for total, parts in _column_sums(lines)
    ]
    if columns > 1:
        sums += [((*line, 0), [(*line, col) for col in range(1, columns)]) for line in lines]
    changed = True
    while changed:
        changed = False
        for total, parts in sums:
            known = [cell for cell in (total, *parts) if values.get(cell) is not None]
            if sum(cell in hidden for cell in known) != 1:
                continue
            visible = [cell for cell in parts if cell in known and cell not in hidden and _count(values[cell])]
            visible.sort(key=lambda cell: (values[cell] == 0, values[cell]))
            pick = visible[0] if visible else total if total in known and total not in hidden else None
            if pick is not None:
                hidden[pick] = SECONDARY
                changed = True
    return hidden
