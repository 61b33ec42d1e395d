"""Intake's pure core: age bands, the commune check, the event it publishes, the timeline entries."""

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from services.intake import incidents, timeline
from services.intake.schemas import IncidentCreate
from shared.auth import Principal
from shared.enums import AgeBand
from shared.events import IncidentReported, IncidentRouted, RoutedAssignment
from shared.reference import load_hierarchy
from tests.support import incident_payload

pytestmark = pytest.mark.unit
POLICE = Principal("unit", "25349.police", "t1")


class TestAgeBand:
    @pytest.mark.parametrize(
        ("birth", "age", "band"),
        [
            (date(2020, 3, 2), None, AgeBand.a0_5),
            (date(2019, 3, 3), None, AgeBand.a0_5),  # turns 6 the day after
            (date(2019, 3, 2), None, AgeBand.a6_10),
            (date(2014, 3, 3), None, AgeBand.a6_10),
            (date(2014, 3, 2), None, AgeBand.a11_15),
            (date(2009, 3, 2), None, AgeBand.a16_17),
            (None, 15, AgeBand.a11_15),
            (None, 16, AgeBand.a16_17),
            (None, None, AgeBand.unknown),
        ],
    )
    def test_band_is_the_age_on_the_incident_day(self, birth, age, band):
        assert incidents.age_band(birth, age, date(2025, 3, 2)) == band

    def test_an_adult_is_not_a_child(self):
        with pytest.raises(ValueError, match="not a child"):
            incidents.age_band(date(2000, 1, 1), None, date(2025, 3, 2))


class TestValidation:
    def test_a_valid_report_parses(self):
        assert IncidentCreate.model_validate(incident_payload()).category == "violence"

    @pytest.mark.parametrize(
        ("override", "field"),
        [
            ({"category": "beating"}, "category"),
            ({"urgency": "urgent"}, "urgency"),
            ({"channel": "pigeon"}, "channel"),
            ({"commune_code": "2534"}, "commune_code"),
            ({"children": []}, "children"),
            ({"description": ""}, "description"),
            ({"description": "x" * 4001}, "description"),
            ({"occurred_at": "2025-03-02T08:00:00"}, "occurred_at"),
            ({"occurred_at": "2099-01-01T00:00:00+07:00"}, "occurred_at"),
            ({"surprise": 1}, "surprise"),
        ],
    )
    def test_each_bad_field_is_named(self, override, field):
        with pytest.raises(ValidationError) as info:
            IncidentCreate.model_validate(incident_payload(**override))
        assert field in {str(part) for e in info.value.errors() for part in e["loc"]}

    def test_a_hamlet_of_another_commune_is_refused(self):
        with pytest.raises(ValidationError, match="hamlet must be a hamlet unit id of commune 25349"):
            IncidentCreate.model_validate(incident_payload(hamlet="25339.hamlet.ap-1"))

    def test_a_school_must_be_a_school_unit(self):
        bad = incident_payload()
        bad["children"][0]["school"] = "25349.police"
        with pytest.raises(ValidationError, match="not a school unit id"):
            IncidentCreate.model_validate(bad)

    def test_age_over_17_is_refused(self):
        bad = incident_payload()
        bad["children"][0].update(birth_date=None, age_years=18)
        with pytest.raises(ValidationError):
            IncidentCreate.model_validate(bad)


class TestCommuneCheck:
    received = datetime(2026, 11, 28, tzinfo=UTC)

    def test_a_merged_commune_is_refused_after_the_reform(self):
        body = IncidentCreate.model_validate(incident_payload(commune_code="25339", hamlet=None, occurred_at="2025-08-01T10:00:00+07:00"))
        [error] = incidents.check_commune(load_hierarchy(), body, self.received)
        assert error["loc"] == ["body", "commune_code"] and "did not exist on 2025-08-01" in error["msg"]

    def test_the_same_commune_before_the_reform_is_accepted(self):
        body = IncidentCreate.model_validate(incident_payload(commune_code="25339", hamlet=None, occurred_at="2025-06-30T23:30:00+07:00"))
        assert incidents.check_commune(load_hierarchy(), body, self.received) == []

    def test_an_unknown_commune_is_named(self):
        body = IncidentCreate.model_validate(incident_payload(commune_code="99999", hamlet=None))
        [error] = incidents.check_commune(load_hierarchy(), body, self.received)
        assert "99999 is not in the administrative hierarchy" in error["msg"]


class TestTheEvent:
    def test_facts_hold_no_personal_data_and_case_holds_what_units_need(self):
        body = IncidentCreate.model_validate(incident_payload())
        envelope = incidents.build_event("inc-1", body, POLICE, datetime(2025, 3, 2, 2, tzinfo=UTC))
        event = IncidentReported.model_validate(envelope.payload)
        facts = event.facts.model_dump_json()
        assert "Nguyễn" not in facts and "0912" not in facts and "2013-05-01" not in facts and "th-minh-tam-a" not in facts
        assert event.facts.children[0].age_band == AgeBand.a11_15
        assert event.case.children[0].full_name.startswith("Nguyễn Thị")
        assert envelope.correlation_id == "inc-1" and envelope.event_type == "incident.reported"


class TestTimeline:
    def test_a_routing_decision_becomes_a_timeline_entry(self):
        routed = IncidentRouted(
            incident_id="inc-1",
            commune_code="25349",
            category="violence",
            urgency="high",
            rules_version="v1",
            assignments=(
                RoutedAssignment(
                    assignment_id="a1", unit_id="25349.cp_officer", unit_type="cp_officer", role="lead",
                    rule="category.violence.lead", reason="lead", due_at=datetime(2025, 3, 2, 5, tzinfo=UTC),
                ),
            ),
        )
        incident_id, _, kind, principal, detail = timeline.timeline_entry(routed)
        assert (incident_id, kind, principal) == ("inc-1", "routed", "routing")
        assert detail["rules_version"] == "v1" and detail["assignments"][0]["unit_id"] == "25349.cp_officer"


def test_the_moves_of_one_instant_are_listed_each_after_the_step_it_left_whatever_order_they_arrived_in():
    from services.intake.models import TimelineEntry
    from services.intake.timeline import in_order

    approved = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)

    def entry(id_: int, kind: str, at: datetime = approved, **detail) -> TimelineEntry:
        return TimelineEntry(id=id_, incident_id="i", at=at, kind=kind, principal="25349.chairman", detail=detail)

    # An approval's two moves and its tasks' routing, consumed in the wrong order; the plan before it, later.
    entries = [
        entry(5, "routed", rules_version="plan"),
        entry(3, "step.implementation", **{"from": "plan_approved"}),
        entry(4, "step.plan_approved", **{"from": "plan"}),
        entry(2, "step.plan", approved.replace(hour=5), **{"from": "detailed_assessment"}),
    ]
    assert [e.kind for e in in_order(entries)] == ["step.plan", "step.plan_approved", "step.implementation", "routed"]
    # Closing (and reopening) moves the step in the transaction that closes the case: the move is listed first.
    closing = [entry(7, "closed"), entry(6, "step.closed", **{"from": "review"})]
    assert [e.kind for e in in_order(list(reversed(closing)))] == [e.kind for e in in_order(closing)] == ["step.closed", "closed"]
