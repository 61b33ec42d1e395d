"""Routing's inbox reads are in the read audit, and `baove audit` prints it."""

import asyncio

import pytest

from services import cli
from shared import audit
from tests.routing_support import reported, route, routing_runtime
from tests.support import bearer, client, issue_token

INBOX = "GET /v1/agencies/{unit_id}/assignments"


async def entries(runtime, **filters) -> list[dict]:
    async with runtime.auth_sessionmaker() as session:
        items, _ = await audit.query(session, limit=500, **filters)
    return items


async def close(runtime) -> None:
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


@pytest.fixture
async def routing(tmp_path):
    runtime = await routing_runtime(tmp_path)
    runtime.tokens = {
        who: await issue_token(runtime, *principal)
        for who, principal in {"police": ("unit", "25349.police"), "health": ("unit", "25349.health"), "admin": ("admin", "admin")}.items()
    }
    yield runtime
    await close(runtime)


class TestInboxReads:
    async def test_each_incident_on_an_inbox_page_is_recorded_as_read_by_the_caller(self, routing):
        events = [reported(category="sexual_abuse") for _ in range(2)]
        for event in events:
            await route(routing, event)
        async with client(routing) as http:
            mine = await http.get("/v1/agencies/25349.police/assignments", headers=bearer(routing.tokens["police"]))
            admin = await http.get("/v1/agencies/25349.police/assignments", headers=bearer(routing.tokens["admin"]))
        assert mine.status_code == admin.status_code == 200
        log = await entries(routing)
        assert sorted((e["principal"], e["incident_id"]) for e in log) == sorted(
            (who, e.incident_id) for who in ("25349.police", "admin") for e in events
        )
        assert {(e["action"], e["endpoint"], e["service"]) for e in log} == {("read", INBOX, "routing")}

    async def test_a_refused_or_empty_inbox_is_not_a_read(self, routing):
        await route(routing, reported(category="sexual_abuse"))
        async with client(routing) as http:
            refused = await http.get("/v1/agencies/25349.police/assignments", headers=bearer(routing.tokens["health"]))
            empty = await http.get("/v1/agencies/25349.police/assignments", params={"status": "done"}, headers=bearer(routing.tokens["police"]))
        assert refused.status_code == 404 and empty.json()["items"] == []
        assert await entries(routing) == []

    async def test_acknowledging_returns_the_case_and_is_recorded_as_a_read(self, routing):
        event = reported(category="sexual_abuse")
        await route(routing, event)
        async with client(routing) as http:
            page = await http.get("/v1/agencies/25349.police/assignments", headers=bearer(routing.tokens["police"]))
            assignment_id = page.json()["items"][0]["assignment_id"]
            ack = await http.post(f"/v1/agencies/25349.police/assignments/{assignment_id}/acknowledge", headers=bearer(routing.tokens["police"]))
        assert ack.status_code == 200
        log = await entries(routing, incident_id=event.incident_id)
        assert [e["endpoint"] for e in log] == ["POST /v1/agencies/{unit_id}/assignments/{assignment_id}/acknowledge", INBOX]


class TestTheCommandLine:
    def test_baove_audit_prints_entries_filtered_newest_first_without_personal_data(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv("BAOVE_DATA_DIR", str(tmp_path))

        async def read_inboxes() -> tuple[list, list]:
            runtime = await routing_runtime(tmp_path)
            police = await issue_token(runtime, "unit", "25349.police")
            admin = await issue_token(runtime, "admin", "admin")
            events = [reported(category="sexual_abuse") for _ in range(2)]
            for event in events:
                await route(runtime, event)
            async with client(runtime) as http:
                await http.get("/v1/agencies/25349.police/assignments", headers=bearer(police))
                await http.get("/v1/agencies/25349.police/assignments", headers=bearer(admin))
            await close(runtime)
            return events

        cli.main(["audit"])
        assert capsys.readouterr().out == "no audit entries\n"
        first, second = asyncio.run(read_inboxes())
        cli.main(["audit", "--incident", first.incident_id])
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 2 and all(first.incident_id in line and INBOX in line and "routing" in line for line in lines)
        assert "admin" in lines[0] and "25349.police" in lines[1]
        cli.main(["audit", "--principal", "25349.police", "--limit", "5"])
        out = capsys.readouterr().out
        assert out.count("25349.police") == 2 and "admin" not in out and second.incident_id in out
        cli.main(["audit", "--limit", "1"])
        assert len(capsys.readouterr().out.splitlines()) == 1
        for event in (first, second):
            assert event.case.children[0].full_name not in out and event.case.reporter.phone not in out
