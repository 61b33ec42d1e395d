"""A district office reads a commune only for the days the commune belonged to it (shared/reference: 694 ended 30 June 2025)."""

from __future__ import annotations

from datetime import date

import pytest

from services.reporting.periods import DEFAULT_PLANS, parse_period
from services.reporting.summaries import district_share
from shared.auth import Principal
from shared.errors import Forbidden
from shared.reference import load_hierarchy

HIERARCHY = load_hierarchy()
DISTRICT = Principal("district", "694", "t1")


def share(org_unit: str, period: str, principal: Principal = DISTRICT):
    return district_share(HIERARCHY, org_unit, parse_period(period, DEFAULT_PLANS), principal)


def test_a_period_after_the_district_was_abolished_is_refused_naming_the_days_it_held_the_commune():
    with pytest.raises(Forbidden, match=r"2008-01-01 to 2025-06-30.*period 2026 \(2026-01-01 to 2026-12-31\)"):
        share("25349", "2026")
    with pytest.raises(Forbidden):
        share("25349", "202507")


def test_a_period_straddling_the_change_is_cut_to_the_districts_days():
    [part] = share("25349", "2025")
    assert (part.start, part.end) == (date(2025, 1, 1), date(2025, 7, 1))  # end exclusive: up to 30 June


def test_a_period_wholly_before_the_change_is_whole():
    [part] = share("25349", "2025Q2")
    assert (part.start, part.end) == (date(2025, 4, 1), date(2025, 7, 1))


def test_the_district_itself_an_admin_and_a_commune_officer_are_not_cut():
    assert share("694", "2026") is None  # its own summary: no data after 30 June, not a refusal
    assert share("25349", "2026", Principal("admin", "admin", "t2")) is None
    assert share("25349", "2026", Principal("unit", "25349.cp_officer", "t3")) is None
