"""Intake's read audit and rate limit, over a real database."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.intake.app import create_runtime
from shared.settings import CommonSettings, IntakeSettings
from tests.support import bearer, client, incident_payload, issue_token, make_runtime, migrate

VN = timezone(timedelta(hours=7))


@pytest.fixture
async def intake(tmp_path, database_url):
    runtime = make_runtime("intake", tmp_path, database_url)
    await migrate(runtime)
    runtime.tokens = {
        who: await issue_token(runtime, *principal)
        for who, principal in {
            "police": ("unit", "25349.police"),
            "cp": ("unit", "25349.cp_officer"),
            "admin": ("admin", "admin"),
        }.items()
    }
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


class TestReadAudit:
    async def test_every_read_of_a_case_is_recorded_and_only_admins_see_the_log(self, intake):
        async with client(intake) as http:
            incident_id = (await http.post("/v1/incidents", json=incident_payload(), headers=bearer(intake.tokens["police"]))).json()["incident_id"]
            for who in ("cp", "police", "cp"):
                assert (await http.get(f"/v1/incidents/{incident_id}", headers=bearer(intake.tokens[who]))).status_code == 200
            log = await http.get("/v1/audit", params={"incident_id": incident_id}, headers=bearer(intake.tokens["admin"]))
            mine = await http.get("/v1/audit", headers=bearer(intake.tokens["cp"]))
            by_principal = await http.get("/v1/audit", params={"principal": "25349.police"}, headers=bearer(intake.tokens["admin"]))
        assert log.status_code == 200 and mine.status_code == 403
        entries = log.json()["items"]
        assert [e["principal"] for e in entries] == ["25349.cp_officer", "25349.police", "25349.cp_officer"]
        assert {(e["action"], e["endpoint"], e["service"]) for e in entries} == {("read", "GET /v1/incidents/{incident_id}", "intake")}
        assert [e["principal"] for e in by_principal.json()["items"]] == ["25349.police"]
        assert "Nguyễn" not in log.text and "0912" not in log.text

    async def test_a_refused_read_is_not_a_read(self, intake):
        async with client(intake) as http:
            await http.get("/v1/incidents/not-an-incident", headers=bearer(intake.tokens["police"]))
            log = await http.get("/v1/audit", headers=bearer(intake.tokens["admin"]))
        assert log.json()["items"] == []

    async def test_the_log_pages_with_a_cursor(self, intake):
        async with client(intake) as http:
            incident_id = (await http.post("/v1/incidents", json=incident_payload(), headers=bearer(intake.tokens["police"]))).json()["incident_id"]
            for _ in range(5):
                await http.get(f"/v1/incidents/{incident_id}", headers=bearer(intake.tokens["cp"]))
            first = (await http.get("/v1/audit", params={"limit": 3}, headers=bearer(intake.tokens["admin"]))).json()
            second = (await http.get("/v1/audit", params={"limit": 3, "cursor": first["next_cursor"]}, headers=bearer(intake.tokens["admin"]))).json()
        assert len(first["items"]) == 3 and len(second["items"]) == 2 and second["next_cursor"] is None

    async def test_since_without_an_offset_is_vietnam_time(self, intake):
        async with client(intake) as http:
            incident_id = (await http.post("/v1/incidents", json=incident_payload(), headers=bearer(intake.tokens["police"]))).json()["incident_id"]
            await http.get(f"/v1/incidents/{incident_id}", headers=bearer(intake.tokens["cp"]))
            vietnam_now = datetime.now(UTC).astimezone(VN).replace(tzinfo=None)
            seen = {
                since: await http.get("/v1/audit", params={"since": since}, headers=bearer(intake.tokens["admin"]))
                for since in ((vietnam_now - timedelta(minutes=5)).isoformat(), (vietnam_now + timedelta(minutes=5)).isoformat())
            }
        # Read as UTC, the first would lie seven hours ahead and find nothing.
        assert [(a.status_code, len(a.json()["items"])) for a in seen.values()] == [(200, 1), (200, 0)]

    @pytest.mark.parametrize("cursor", ["²", "eyJpZCI6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OX0"])  # the last: id 10^25
    async def test_a_cursor_not_given_out_is_422_naming_the_cursor(self, intake, cursor):
        async with client(intake) as http:
            answer = await http.get("/v1/audit", params={"cursor": cursor}, headers=bearer(intake.tokens["admin"]))
        assert answer.status_code == 422 and [e["loc"] for e in answer.json()["detail"]] == [["query", "cursor"]]


class TestRateLimit:
    async def test_a_principal_over_its_limit_gets_429_with_retry_after_and_others_are_unaffected(self, tmp_path):
        settings = IntakeSettings(common=CommonSettings(data_dir=tmp_path), rate_limit_per_minute=60, rate_limit_burst=2)
        runtime = create_runtime(settings)
        await migrate(runtime)
        police = await issue_token(runtime, "unit", "25349.police")
        health = await issue_token(runtime, "unit", "25349.health")
        async with client(runtime) as http:
            answers = [await http.post("/v1/incidents", json=incident_payload(), headers=bearer(police)) for _ in range(3)]
            other = await http.post("/v1/incidents", json=incident_payload(), headers=bearer(health))
        assert [a.status_code for a in answers] == [202, 202, 429]
        assert int(answers[2].headers["retry-after"]) >= 1 and "25349.police" in answers[2].json()["detail"]
        assert other.status_code == 202
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()
