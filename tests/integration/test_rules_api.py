"""The routing rules over HTTP: read the active table (admins, any commune's cp_officer), load a new version (admins),
with the file's error named as `baove rules load` names it (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.routing.models import Assignment
from services.routing.rules import DEFAULT_RULES
from tests.routing_support import reported, route, routing_runtime
from tests.support import bearer, client, issue_token

DEFAULT_TEXT = DEFAULT_RULES.read_text(encoding="utf-8")


def changed(version: str) -> str:
    """The default table under another version, with injuries led by the police."""
    text = DEFAULT_TEXT.replace('version: "2025.1"', f'version: "{version}"')
    return text.replace("  injury:\n    lead: health", "  injury:\n    lead: police")


@pytest.fixture
async def routing(tmp_path, database_url):
    runtime = await routing_runtime(tmp_path, database_url)
    runtime.tokens = {u: await issue_token(runtime, "unit", u) for u in ("25349.cp_officer", "25339.cp_officer", "25349.police")}
    runtime.tokens["admin"] = await issue_token(runtime, "admin", "admin")
    runtime.tokens["district"] = await issue_token(runtime, "district", "694")
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def get_rules(runtime, who: str):
    async with client(runtime) as http:
        return await http.get("/v1/rules", headers=bearer(runtime.tokens[who]))


async def load(runtime, who: str, text: str, filename: str = "xa-25349.yaml"):
    async with client(runtime) as http:
        return await http.post("/v1/rules", json={"text": text, "filename": filename}, headers=bearer(runtime.tokens[who]))


class TestReadingTheRules:
    async def test_admins_and_every_communes_cp_officer_read_the_active_table(self, routing):
        for who in ("admin", "25349.cp_officer", "25339.cp_officer"):
            answer = await get_rules(routing, who)
            assert answer.status_code == 200, who
            body = answer.json()
            assert body["version"] == "2025.1" and body["text"] == DEFAULT_TEXT and body["loaded_by"] == "routing:start"
            assert body["ack_deadlines"] == {"emergency": 60, "high": 240, "medium": 1440, "low": 4320}
            rows = {(r["category"], r["role"], r["unit_type"]): r for r in body["rules"]}
            assert rows[("sexual_abuse", "lead", "police")]["urgencies"] is None
            assert rows[(None, "support", "chairman")]["urgencies"] == ["emergency"]
            assert rows[("violence", "support", "police")]["urgencies"] == ["emergency", "high"]

    async def test_other_units_and_districts_are_refused(self, routing):
        for who in ("25349.police", "district"):
            assert (await get_rules(routing, who)).status_code == 403


class TestLoadingRules:
    async def test_an_admin_loads_a_new_version_and_new_incidents_follow_it(self, routing):
        answer = await load(routing, "admin", changed("2025.2"))
        assert answer.status_code == 201
        assert answer.json()["version"] == "2025.2" and answer.json()["loaded_by"] == "admin"
        assert (await get_rules(routing, "25349.cp_officer")).json()["version"] == "2025.2"
        event = reported(category="injury", urgency="high")
        await route(routing, event)
        async with routing.sessionmaker() as session:
            stmt = select(Assignment.unit_id, Assignment.rules_version).where(Assignment.incident_id == event.incident_id, Assignment.role == "lead")
            assert tuple((await session.execute(stmt)).one()) == ("25349.police", "2025.2")

    async def test_a_bad_file_is_refused_naming_line_key_and_reason_as_the_cli_does(self, routing):
        bad = changed("2025.3").replace("  injury:\n    lead: police", "  injury:\n    lead: polise")
        line = bad.splitlines().index("    lead: polise") + 1
        answer = await load(routing, "admin", bad)
        assert answer.status_code == 422
        assert answer.json()["detail"] == f"xa-25349.yaml:{line}: categories.injury.lead: unknown unit type 'polise' (known: " + answer.json()[
            "detail"
        ].split("(known: ", 1)[1]
        assert (await get_rules(routing, "admin")).json()["version"] == "2025.1"

    async def test_a_file_that_is_not_yaml_is_refused(self, routing):
        answer = await load(routing, "admin", "version: [unclosed\n")
        assert answer.status_code == 422 and answer.json()["detail"].startswith("xa-25349.yaml: not valid YAML")

    async def test_a_version_loaded_before_is_a_conflict(self, routing):
        answer = await load(routing, "admin", DEFAULT_TEXT)
        assert answer.status_code == 409 and "2025.1" in answer.json()["detail"]
        assert (await get_rules(routing, "admin")).json()["version"] == "2025.1"

    async def test_only_admins_load(self, routing):
        for who in ("25349.cp_officer", "25349.police", "district"):
            assert (await load(routing, who, changed("2025.4"))).status_code == 403
        assert (await get_rules(routing, "admin")).json()["version"] == "2025.1"
