"""The periods Decree 56/2017/NĐ-CP sets for a child's case (domain.md section 3), counted one way for every service:
routing watches them, reporting counts what was done within them. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.workdays import WorkCalendar, add_working_days

INITIAL_ASSESSMENT_WITHIN = timedelta(hours=12)  # Art. 26(3): from the report's receipt, by the clock
PLAN_WITHIN_WORKING_DAYS = 5  # the support and intervention plan (Mẫu 04)
PLAN_COUNTS_FROM = "received"  # the report's receipt (domain.md section 3 names no other start)
TEMPORARY_CARE_DAYS = 15  # at most, unless extended (Art. 32)


def initial_assessment_due(received_at: datetime) -> datetime:
    return received_at + INITIAL_ASSESSMENT_WITHIN


def plan_due(received_at: datetime, calendar: WorkCalendar) -> datetime:
    """24:00 (Vietnam) of the 5th working day after the day of the report's receipt (Civil Code art. 147): the first
    moment the plan is late; UncoveredYear past the calendar."""
    return add_working_days(received_at, PLAN_WITHIN_WORKING_DAYS, calendar)
