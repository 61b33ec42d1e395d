"""The disclosure table: every unit type decided; support units that do not meet the child see sex and age only, no description."""

from datetime import UTC, datetime

from services.routing.disclosure import SUPPORT_VIEW, disclosed, view_of
from shared.enums import UnitType

CASE = {
    "description": "what happened",
    "children": [
        {"full_name": "Nguyễn Thị A", "sex": "female", "birth_date": "2013-05-01", "age_years": None, "school": "25349.school.th-a", "special_circumstances": ["poor"]},
        {"full_name": None, "sex": "male", "birth_date": None, "age_years": 9, "school": None, "special_circumstances": []},
    ],
    "reporter": {"name": "Trần Văn B", "phone": "0912000000", "relation": "neighbour", "anonymous": False},
    "consent": {"child": True, "guardian": True},
}


def test_every_unit_type_has_a_decided_view():
    assert set(SUPPORT_VIEW) == set(UnitType)


def test_a_lead_and_the_units_that_meet_the_child_see_the_whole_case():
    assert view_of("lead", "school") == "full"
    assert {t for t in UnitType if view_of("support", t) == "full"} == {"police", "health", "cp_officer", "chairman"}
    assert view_of("support", "a_type_not_yet_in_the_table") == "minimal"


def test_the_minimal_view_keeps_sex_and_age_on_the_incident_day_and_nothing_that_names_anyone():
    # 1 May 2025 00:30 in Vietnam is still 30 April in UTC: the age is taken on Vietnam's day.
    cut = disclosed(CASE, "minimal", datetime(2025, 4, 30, 17, 30, tzinfo=UTC))
    assert cut["children"] == [{"sex": "female", "age_years": 12}, {"sex": "male", "age_years": 9}]
    assert cut["reporter"] is None and cut["description"] is None and cut["consent"] == CASE["consent"]
    # The description is free text that often names the child or the reporter: a support unit never gets it.
    assert not any(secret in str(cut) for secret in ("what happened", "Nguyễn", "2013-05-01", "th-a", "Trần", "0912"))
    assert disclosed(CASE, "full", datetime(2025, 4, 30, tzinfo=UTC)) is CASE
