"""The retention policy's core (which cases are due) and what an erasure keeps of a case, without I/O."""

import json
from datetime import UTC, date, datetime, timedelta

from services.intake.incidents import build_event
from services.intake.retention import ClosedCase, RetentionPolicy, erased_detail, redacted_reported
from services.intake.schemas import IncidentCreate
from shared.auth import Principal
from shared.children import anonymous_child, erased_case
from shared.events import Envelope, IncidentReported, parse_payload
from shared.settings import IntakeSettings
from tests.support import incident_payload

NOW = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)
POLICY = RetentionPolicy(closed_case_days=1825)
CHILD = {"full_name": "Lê Văn Tý", "sex": "male", "birth_date": "2014-03-02", "age_years": None,
         "school": "25349.school.th-minh-tam-a", "special_circumstances": ["disabled"]}


class TestWhichCasesAreDue:
    def test_a_case_closed_longer_than_the_period_is_due_and_one_closed_since_is_not(self):
        cases = [
            ClosedCase("old", "closed", NOW - timedelta(days=1825, seconds=1)),
            ClosedCase("exactly", "closed", NOW - timedelta(days=1825)),
            ClosedCase("recent", "closed", NOW - timedelta(days=1824, hours=23)),
        ]
        assert POLICY.due(cases, NOW) == ["old", "exactly"]

    def test_open_reopened_or_erased_cases_are_never_due_however_old(self):
        long_ago = NOW - timedelta(days=5000)
        cases = [ClosedCase("open", "routed", long_ago), ClosedCase("reopened", "reopened", long_ago),
                 ClosedCase("erased", "erased", long_ago), ClosedCase("never-closed", "closed", None)]
        assert POLICY.due(cases, NOW) == []

    def test_the_longest_closed_go_first(self):
        cases = [ClosedCase("b", "closed", NOW - timedelta(days=2000)), ClosedCase("a", "closed", NOW - timedelta(days=3000))]
        assert POLICY.due(cases, NOW) == ["a", "b"]

    def test_the_period_is_a_setting_with_a_five_year_default(self, monkeypatch):
        assert IntakeSettings().retention_closed_case_days == 1825
        monkeypatch.setenv("BAOVE_INTAKE_RETENTION_CLOSED_CASE_DAYS", "30")
        assert RetentionPolicy(IntakeSettings().retention_closed_case_days).cutoff(NOW) == NOW - timedelta(days=30)


class TestWhatAnErasureKeeps:
    def test_a_child_keeps_sex_age_band_and_circumstances_only(self):
        assert anonymous_child(CHILD, date(2025, 3, 2)) == {"sex": "male", "age_band": "11-15", "special_circumstances": ["disabled"]}

    def test_erasing_twice_keeps_the_same_facts(self):
        once = anonymous_child(CHILD, date(2025, 3, 2))
        assert anonymous_child(once, date(2025, 3, 2)) == once

    def test_a_case_loses_description_names_school_and_reporter_and_keeps_consent(self):
        case = {"description": "Tý bị đánh ở nhà", "children": [CHILD],
                "reporter": {"name": "Bà Ba", "phone": "0912000111", "relation": "neighbour", "anonymous": False},
                "consent": {"child": True, "guardian": None}}
        erased = erased_case(case, date(2025, 3, 2))
        text = json.dumps(erased, ensure_ascii=False)
        for personal in ("Tý", "Bà Ba", "0912000111", "2014-03-02", "th-minh-tam-a"):
            assert personal not in text
        assert erased["consent"] == {"child": True, "guardian": None}
        assert erased["children"] == [{"sex": "male", "age_band": "11-15", "special_circumstances": ["disabled"]}]

    def test_a_timeline_entry_loses_the_review_outcome_and_keeps_the_risk_level(self):
        assert erased_detail({"risk_level": "low", "outcome": "Tý về với bà ngoại"}) == {"risk_level": "low"}

    def test_an_unpublished_report_leaves_blanked_but_valid(self):
        body = IncidentCreate.model_validate(incident_payload())
        envelope = build_event("i-1", body, Principal("unit", "25349.police", "t1"), NOW)
        redacted = redacted_reported(envelope.model_dump_json())
        for personal in (body.children[0].full_name, body.reporter.phone, body.description, "2013-05-01"):
            assert personal not in redacted
        event = parse_payload(Envelope.model_validate_json(redacted))
        assert isinstance(event, IncidentReported) and event.facts == parse_payload(envelope).facts
