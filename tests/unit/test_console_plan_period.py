"""Which plan period's report the console opens by default: read from the commune's plan, not assumed."""

from __future__ import annotations

from datetime import date

import pytest

from services.console.reports import plan_period_now


@pytest.mark.parametrize(
    ("today", "period"),
    [
        # The 2025 plan of 25349 (shared/reference/plans): 6M due 10/05/2025, 12M due 10/11/2025.
        (date(2025, 4, 9), "2025-6M"),  # a month before the 6-month report's due date: being written
        (date(2025, 3, 1), "2024-12M"),  # before it, no 2024 plan: the months' rule
        (date(2025, 7, 1), "2025-6M"),  # after its due date, still the latest begun (late reports)
        (date(2025, 10, 10), "2025-12M"),  # a month before the annual report's due date
        (date(2026, 1, 15), "2025-12M"),
    ],
)
def test_the_report_being_written_follows_the_plans_due_dates(today, period):
    assert plan_period_now("25349", today) == period


def test_a_commune_without_a_plan_falls_back_to_may_and_november():
    assert plan_period_now("25339", date(2025, 4, 30)) == "2024-12M"
    assert plan_period_now("25339", date(2025, 5, 1)) == "2025-6M"
    assert plan_period_now("25339", date(2025, 11, 1)) == "2025-12M"
