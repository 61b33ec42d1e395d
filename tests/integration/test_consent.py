"""Consent recorded on the case (domain.md 7) from intake to the inbox; and the inbox shows each unit only what it needs."""

from datetime import UTC, datetime

import pytest

from services.intake.incidents import build_event
from services.intake.schemas import IncidentCreate
from shared.auth import Principal
from shared.events import Consent, IncidentCase
from tests.routing_support import reported, route, routing_runtime
from tests.support import bearer, client, incident_payload, issue_token, make_runtime, migrate

TODDLER = {"full_name": "Lê Văn Bé", "sex": "male", "birth_date": "2022-01-01", "special_circumstances": []}


@pytest.fixture
async def intake(tmp_path):
    runtime = make_runtime("intake", tmp_path)
    await migrate(runtime)
    runtime.token = await issue_token(runtime, "unit", "25349.police")
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def post_and_read(runtime, body: dict):
    async with client(runtime) as http:
        posted = await http.post("/v1/incidents", json=body, headers=bearer(runtime.token))
        if posted.status_code != 202:
            return posted, None
        read = await http.get(f"/v1/incidents/{posted.json()['incident_id']}", headers=bearer(runtime.token))
    return posted, read.json()


class TestIntake:
    async def test_consent_is_stored_and_shown_on_the_case(self, intake):
        _, case = await post_and_read(intake, incident_payload(consent={"child": True, "guardian": False}))
        assert case["consent"] == {"child": True, "guardian": False}

    async def test_no_consent_means_not_asked(self, intake):
        _, case = await post_and_read(intake, incident_payload())
        assert case["consent"] == {"child": None, "guardian": None}

    @pytest.mark.parametrize("given", [True, False])
    async def test_a_childs_consent_where_every_child_is_under_7_is_refused_naming_consent_child(self, intake, given):
        posted, _ = await post_and_read(intake, incident_payload(children=[TODDLER], consent={"child": given, "guardian": True}))
        assert posted.status_code == 422
        assert [e["loc"] for e in posted.json()["detail"]] == [["body", "consent", "child"]]

    async def test_a_childs_consent_is_taken_when_one_child_is_7_or_more_or_of_unknown_age(self, intake):
        older = incident_payload(children=[TODDLER, {"sex": "female", "age_years": 9}], consent={"child": True})
        unknown = incident_payload(children=[{"sex": "female"}], consent={"child": True})
        guardian_only = incident_payload(children=[TODDLER], consent={"child": None, "guardian": True})
        for body in (older, unknown, guardian_only):
            posted, case = await post_and_read(intake, body)
            assert posted.status_code == 202 and case["consent"]["guardian"] == body["consent"].get("guardian")

    async def test_unknown_consent_fields_are_refused(self, intake):
        posted, _ = await post_and_read(intake, incident_payload(consent={"child": True, "teacher": True}))
        assert posted.status_code == 422 and ["body", "consent", "teacher"] in [e["loc"] for e in posted.json()["detail"]]


class TestEvent:
    def test_incident_reported_carries_the_consent(self):
        body = IncidentCreate.model_validate(incident_payload(consent={"child": True, "guardian": True}))
        envelope = build_event("i-1", body, Principal("unit", "25349.police", "t"), body.occurred_at)
        assert envelope.payload["case"]["consent"] == {"child": True, "guardian": True}

    def test_an_event_from_before_consent_still_parses_as_not_asked(self):
        case = IncidentCase.model_validate({"description": "old", "children": [{"sex": "female"}]})
        assert case.consent == Consent(child=None, guardian=None)


class TestRoutingInbox:
    async def test_the_inbox_shows_the_consent_recorded_at_intake(self, tmp_path):
        routing = await routing_runtime(tmp_path)
        token = await issue_token(routing, "unit", "25349.police")
        event = reported(category="sexual_abuse")
        event = event.model_copy(update={"case": event.case.model_copy(update={"consent": Consent(child=False, guardian=True)})})
        await route(routing, event)
        async with client(routing) as http:
            page = await http.get("/v1/agencies/25349.police/assignments", headers=bearer(token))
        assert [i["incident"]["consent"] for i in page.json()["items"]] == [{"child": False, "guardian": True}]
        await routing.engine.dispose()
        await routing.auth_engine.dispose()


class TestInboxMinimisation:
    async def test_a_school_in_support_sees_sex_and_age_only_while_the_police_lead_sees_the_case(self, tmp_path):
        routing = await routing_runtime(tmp_path)
        school, police = "25349.school.th-minh-tam-a", "25349.police"
        tokens = {unit: await issue_token(routing, "unit", unit) for unit in (school, police)}
        event = reported(category="sexual_abuse", received_at=datetime(2025, 3, 2, 8, tzinfo=UTC))
        await route(routing, event)
        async with client(routing) as http:
            pages = {unit: (await http.get(f"/v1/agencies/{unit}/assignments", headers=bearer(tokens[unit]))).json() for unit in tokens}
        [support], [lead] = pages[school]["items"], pages[police]["items"]
        assert support["role"] == "support" and support["incident"]["view"] == "minimal"
        assert [(c["sex"], c["age_years"], c["full_name"], c["birth_date"], c["school"]) for c in support["incident"]["children"]] == [
            ("female", 11, None, None, None)
        ]
        assert support["incident"]["reporter"] is None and support["incident"]["description"] is None
        assert lead["incident"]["description"] == event.case.description
        for secret in (event.case.description, event.case.children[0].full_name, event.case.reporter.name, event.case.reporter.phone, "2013-05-01"):
            assert secret not in str(pages[school]) and secret in str(pages[police])
        assert lead["role"] == "lead" and lead["incident"]["view"] == "full"
        await routing.engine.dispose()
        await routing.auth_engine.dispose()
