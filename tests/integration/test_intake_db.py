"""Intake over a real database (SQLite and PostgreSQL): what an agency's client sees over HTTP."""

import asyncio
import json
import uuid

import pytest
from sqlalchemy import select

from services.intake.models import Incident, outbox_message
from shared.migrate import upgrade
from shared.runtime import AUTH_MIGRATIONS
from tests.support import bearer, client, incident_payload, issue_token, make_runtime, migrate


@pytest.fixture
async def intake(tmp_path, database_url):
    runtime = make_runtime("intake", tmp_path, database_url)
    await migrate(runtime)
    runtime.tokens = {
        "police": await issue_token(runtime, "unit", "25349.police"),
        "cp": await issue_token(runtime, "unit", "25349.cp_officer"),
        "other_cp": await issue_token(runtime, "unit", "25339.cp_officer"),
        "health": await issue_token(runtime, "unit", "25349.health"),
        "district": await issue_token(runtime, "district", "694"),
        "admin": await issue_token(runtime, "admin", "admin"),
    }
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def outbox_rows(runtime, event_type: str = "incident.reported"):
    async with runtime.sessionmaker() as session:
        return (await session.execute(select(outbox_message).where(outbox_message.c.event_type == event_type))).all()


class TestReportingAnIncident:
    async def test_it_is_stored_with_its_event_in_one_transaction(self, intake):
        async with client(intake) as http:
            answer = await http.post("/v1/incidents", json=incident_payload(), headers=bearer(intake.tokens["police"]))
        assert answer.status_code == 202 and answer.json()["status"] == "received"
        incident_id = answer.json()["incident_id"]
        [row] = await outbox_rows(intake)
        assert row.event_type == "incident.reported" and row.correlation_id == incident_id and row.published_at is None
        body = json.loads(row.body)
        assert body["payload"]["incident_id"] == incident_id and body["schema_version"] == 1

    async def test_its_facts_are_staged_alone_for_the_consumers_that_keep_no_personal_data(self, intake):
        payload = incident_payload(reporter={"name": "Trần Văn Báo", "phone": "0912345678", "relation": "neighbour"})
        async with client(intake) as http:
            incident_id = (await http.post("/v1/incidents", json=payload, headers=bearer(intake.tokens["police"]))).json()["incident_id"]
        [reported] = await outbox_rows(intake)
        [recorded] = await outbox_rows(intake, "incident.recorded")
        full, facts = json.loads(reported.body)["payload"], json.loads(recorded.body)["payload"]
        assert facts == {"incident_id": incident_id, "facts": full["facts"]} and recorded.correlation_id == incident_id
        for child in full["case"]["children"]:
            for value in (child["full_name"], child["birth_date"], child["school"]):
                assert value is None or value not in recorded.body
        for value in ("Trần Văn Báo", "0912345678", full["case"]["description"]):
            assert value not in recorded.body

    async def test_a_repeated_report_id_returns_the_same_incident(self, intake):
        payload = incident_payload(report_id=str(uuid.uuid4()))
        async with client(intake) as http:
            first = await http.post("/v1/incidents", json=payload, headers=bearer(intake.tokens["police"]))
            second = await http.post("/v1/incidents", json=payload, headers=bearer(intake.tokens["police"]))
        assert first.status_code == second.status_code == 202
        assert first.json()["incident_id"] == second.json()["incident_id"]
        assert len(await outbox_rows(intake)) == 1

    async def test_another_reporter_cannot_reuse_a_report_id(self, intake):
        payload = incident_payload(report_id=str(uuid.uuid4()))
        async with client(intake) as http:
            await http.post("/v1/incidents", json=payload, headers=bearer(intake.tokens["police"]))
            clash = await http.post("/v1/incidents", json=payload, headers=bearer(intake.tokens["health"]))
        assert clash.status_code == 409

    async def test_reports_posted_together_are_each_stored_once_with_their_event(self, intake):
        """Concurrent posts share a transaction: repeats and clashes inside one batch still answer as if alone."""
        shared_id = str(uuid.uuid4())
        clash_id = str(uuid.uuid4())
        payloads = [(incident_payload(), "police") for _ in range(40)]
        payloads += [(incident_payload(report_id=shared_id), "police") for _ in range(5)]
        payloads += [(incident_payload(report_id=clash_id), "police"), (incident_payload(report_id=clash_id), "health")]
        payloads += [(incident_payload(commune_code="25339", hamlet=None), "police")]  # not its commune: 403, alone
        async with client(intake) as http:
            answers = await asyncio.gather(
                *(http.post("/v1/incidents", json=p, headers=bearer(intake.tokens[who])) for p, who in payloads)
            )
        codes = [a.status_code for a in answers]
        assert codes[:45] == [202] * 45
        assert sorted(codes[45:47]) == [202, 409] and codes[47] == 403, answers[47].text
        assert len({a.json()["incident_id"] for a in answers[40:45]}) == 1  # one incident for the repeated report_id
        ids = {a.json()["incident_id"] for a in answers if a.status_code == 202}
        assert len(ids) == 40 + 1 + 1
        async with intake.sessionmaker() as session:
            stored = set((await session.execute(select(Incident.id))).scalars())
        assert stored == ids
        assert sorted(r.correlation_id for r in await outbox_rows(intake)) == sorted(ids)

    async def test_an_anonymous_reporter_s_name_and_phone_are_kept_nowhere(self, intake):
        name, phone = "Lê Thị Ẩn Danh", "0987654321"
        payload = incident_payload(reporter={"name": name, "phone": phone, "relation": "neighbour", "anonymous": True})
        async with client(intake) as http:
            incident_id = (await http.post("/v1/incidents", json=payload, headers=bearer(intake.tokens["police"]))).json()["incident_id"]
            shown = await http.get(f"/v1/incidents/{incident_id}", headers=bearer(intake.tokens["cp"]))
        async with intake.sessionmaker() as session:
            row = (await session.execute(select(Incident.__table__).where(Incident.id == incident_id))).one()
        [message] = await outbox_rows(intake)
        published = json.loads(message.body)["payload"]["case"]["reporter"]
        assert shown.status_code == 200 and shown.json()["reporter"] == published == row.reporter
        assert published == {"name": None, "phone": None, "relation": "neighbour", "anonymous": True}
        for place in (str(tuple(row)), message.body, shown.text):
            assert name not in place and phone not in place

    async def test_invalid_input_is_422_naming_each_field_and_echoes_no_data(self, intake):
        bad = incident_payload(category="beating", urgency="urgent", children=[])
        async with client(intake) as http:
            answer = await http.post("/v1/incidents", json=bad, headers=bearer(intake.tokens["police"]))
        assert answer.status_code == 422
        fields = {e["loc"][-1] for e in answer.json()["detail"]}
        assert {"category", "urgency", "children"} <= fields
        assert "Reporter" not in answer.text and "input" not in answer.json()["detail"][0]
        assert await outbox_rows(intake) == []

    async def test_a_validator_s_message_names_the_problem_without_the_value(self, intake):
        child = {"sex": "female", "age_years": 9, "school": "Nguyễn Thị Bé, lớp 3A"}
        async with client(intake) as http:
            answer = await http.post("/v1/incidents", json=incident_payload(children=[child]), headers=bearer(intake.tokens["police"]))
        assert answer.status_code == 422
        [error] = answer.json()["detail"]
        assert error["loc"] == ["body", "children", 0, "school"] and "COMMUNE.TYPE" in error["msg"]
        assert "Nguyễn" not in answer.text and "3A" not in answer.text and set(error) == {"loc", "msg", "type"}

    async def test_malformed_json_and_wrong_content_type_are_4xx(self, intake):
        async with client(intake) as http:
            broken = await http.post(
                "/v1/incidents", content=b"{not json", headers={**bearer(intake.tokens["police"]), "content-type": "application/json"}
            )
            text = await http.post(
                "/v1/incidents", content=b"hello", headers={**bearer(intake.tokens["police"]), "content-type": "text/plain"}
            )
        assert broken.status_code == 422 and text.status_code == 422

    async def test_an_oversized_body_is_413(self, intake):
        async with client(intake) as http:
            answer = await http.post(
                "/v1/incidents", content=b"x" * 200_000, headers={**bearer(intake.tokens["police"]), "content-type": "application/json"}
            )
        assert answer.status_code == 413 and "bytes" in answer.json()["detail"]

    async def test_a_unit_reports_only_in_its_own_commune(self, intake):
        async with client(intake) as http:
            answer = await http.post(
                "/v1/incidents", json=incident_payload(commune_code="25339", hamlet=None), headers=bearer(intake.tokens["police"])
            )
            district = await http.post("/v1/incidents", json=incident_payload(), headers=bearer(intake.tokens["district"]))
        assert answer.status_code == 403 and district.status_code == 403

    async def test_no_token_or_a_bad_one_is_401(self, intake):
        async with client(intake) as http:
            none = await http.post("/v1/incidents", json=incident_payload())
            bad = await http.post("/v1/incidents", json=incident_payload(), headers=bearer("bv_nonsense"))
        assert none.status_code == bad.status_code == 401


class TestReadingAnIncident:
    async def test_the_reporter_the_cp_officer_and_admins_see_it_others_get_404(self, intake):
        async with client(intake) as http:
            incident_id = (
                await http.post("/v1/incidents", json=incident_payload(), headers=bearer(intake.tokens["police"]))
            ).json()["incident_id"]
            seen = {
                who: await http.get(f"/v1/incidents/{incident_id}", headers=bearer(intake.tokens[who]))
                for who in ("police", "cp", "admin", "health", "other_cp", "district")
            }
        assert {who: r.status_code for who, r in seen.items()} == {
            "police": 200, "cp": 200, "admin": 200, "health": 404, "other_cp": 404, "district": 404,
        }
        case = seen["cp"].json()
        assert case["category"] == "violence" and case["status"] == "received"
        assert [e["kind"] for e in case["timeline"]] == ["reported"]
        assert case["timeline"][0]["principal"] == "25349.police"
        assert "detail" in seen["health"].json() and "category" not in seen["health"].json()

    async def test_stored_times_keep_their_instant(self, intake):
        async with client(intake) as http:
            incident_id = (
                await http.post("/v1/incidents", json=incident_payload(occurred_at="2025-04-30T23:30:00+07:00"), headers=bearer(intake.tokens["police"]))
            ).json()["incident_id"]
        async with intake.sessionmaker() as session:
            incident = (await session.execute(select(Incident).where(Incident.id == incident_id))).scalar_one()
        assert incident.occurred_at.isoformat() == "2025-04-30T16:30:00+00:00"


class TestDatabaseUnreachable:
    async def test_intake_answers_503_with_retry_after_and_stores_nothing(self, tmp_path):
        runtime = make_runtime("intake", tmp_path, "postgresql+asyncpg://baove:baove@127.0.0.1:9/nowhere")
        await asyncio.to_thread(migrate_auth, runtime.common.auth_url())
        token = await issue_token(runtime, "unit", "25349.police")
        async with client(runtime) as http:
            answer = await http.post("/v1/incidents", json=incident_payload(), headers=bearer(token))
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "5" and "database is unavailable" in answer.json()["detail"]
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()


def migrate_auth(url: str) -> None:
    upgrade(AUTH_MIGRATIONS, url)
