"""The audit chained by hashes (`baove audit verify`), concurrent writers, and what is audited besides reads:
refused requests (throttled) and reads of the audit itself (issue 15, point 4)."""

from __future__ import annotations

import asyncio
import importlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, text

from services import cli
from services.intake import erasure
from shared import audit, auth, migrate
from shared.db import make_engine, make_sessionmaker
from shared.runtime import AUTH_MIGRATIONS
from shared.settings import CommonSettings
from tests.support import SETTINGS, bearer

pytestmark = pytest.mark.integration
READER = auth.Principal("unit", "25349.police", "token-1", username="lan")


async def write_entries(url: str, n: int) -> None:
    engine = make_engine(url)
    try:
        for i in range(n):
            await audit.record_reads(make_sessionmaker(engine), "routing", READER, "GET /v1/cases/{id}", [f"incident-{i}"])
    finally:
        await engine.dispose()


async def execute(url: str, *statements: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def verify(monkeypatch, capsys, url: str) -> tuple[int, str]:
    monkeypatch.setenv("BAOVE_AUTH_DATABASE_URL", url)
    try:
        cli.main(["audit", "verify"])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().out


async def forged_after(url: str, entry_id: int) -> dict:
    """An entry as a forger who knows the algorithm would write it, linked to entry `entry_id`."""
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            before = (await session.execute(select(audit.audit_entry).where(audit.audit_entry.c.id == entry_id))).one()
    finally:
        await engine.dispose()
    row = {"at": before.at, "principal": "admin", "action": "read", "incident_id": "nobody-read-this", "endpoint": "cli",
           "service": "cli", "username": None, "token_id": None, "detail": None}
    return {**row, "id": entry_id + 5, "prev_hash": before.entry_hash, "entry_hash": audit.entry_digest(before.entry_hash, row)}


class TestVerify:
    @pytest.mark.parametrize("tamper", ["changed", "removed", "inserted"])
    def test_a_changed_removed_or_inserted_entry_breaks_the_chain_there(self, database_url, tamper, monkeypatch, capsys):
        migrate.upgrade(AUTH_MIGRATIONS, database_url)
        asyncio.run(write_entries(database_url, 5))
        # Ids are not hashed: spaced out, the chain still holds (and leaves room for a forger in between).
        asyncio.run(execute(database_url, "UPDATE audit_entry SET id = id * 10"))
        assert verify(monkeypatch, capsys, database_url) == (0, "audit chain OK: 5 entries, newest 50 hash "
                                                             f"{audit_head(database_url)}\n")
        if tamper == "changed":
            asyncio.run(execute(database_url, "UPDATE audit_entry SET incident_id = 'another' WHERE id = 30"))
            expected = "entry 30: its content does not match its hash"
        elif tamper == "removed":
            asyncio.run(execute(database_url, "DELETE FROM audit_entry WHERE id = 30"))
            expected = "entry 40: its link does not match the entry before it"
        else:
            forged = asyncio.run(forged_after(database_url, 20))
            asyncio.run(insert(database_url, forged))
            expected = "entry 30: its link does not match the entry before it"
        code, out = verify(monkeypatch, capsys, database_url)
        assert code == 1 and "audit chain BROKEN" in out and expected in out, out


def audit_head(url: str) -> str:
    async def head() -> str:
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as session:
                return (await audit.chain_head(session))[1]
        finally:
            await engine.dispose()

    return asyncio.run(head())


async def insert(url: str, row: dict) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(audit.audit_entry.insert().values(**row))
    finally:
        await engine.dispose()


async def write_at(url: str, moments: list[datetime]) -> None:
    """Entries written at these moments, as the services append them."""
    engine = make_engine(url)
    try:
        for n, at in enumerate(moments):
            async with make_sessionmaker(engine)() as session, session.begin():
                await audit._append(session, [{  # noqa: SLF001 - the writers' own append, at a chosen time
                    "at": at, "principal": "25349.police", "action": "read", "incident_id": f"incident-{n}",
                    "endpoint": "GET /v1/incidents/{id}", "service": "intake", "username": "lan", "token_id": "token-1", "detail": None,
                }])
    finally:
        await engine.dispose()


async def entries(url: str) -> list:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(select(audit.audit_entry).order_by(audit.audit_entry.c.id))).all()
    finally:
        await engine.dispose()


class TestRetention:
    """Intake's audit retention job removes the oldest entries; the chain is verified from the first entry kept."""

    async def prune(self, tmp_path, url: str, days: int = 3650) -> int:
        intake = runtime_on("intake", tmp_path, url)
        try:
            assert "audit-retention" in intake.background
            return await erasure.apply_audit_retention(intake, days)
        finally:
            await intake.engine.dispose()
            await intake.auth_engine.dispose()

    @pytest.mark.parametrize("tamper", ["none", "changed", "removed_oldest_kept"])
    async def test_pruned_entries_go_verify_passes_and_a_kept_entry_tampered_with_still_breaks_it(
        self, tmp_path, database_url, tamper, monkeypatch, capsys
    ):
        await asyncio.to_thread(migrate.upgrade, AUTH_MIGRATIONS, database_url)
        now = datetime.now(UTC)
        old, recent = now - timedelta(days=3651), now - timedelta(days=3649)
        await write_at(database_url, [old - timedelta(days=2), old - timedelta(days=1), old, recent, now])
        before = await entries(database_url)
        assert await self.prune(tmp_path, database_url) == 3
        after = await entries(database_url)
        assert [e.incident_id for e in after[:2]] == ["incident-3", "incident-4"]
        [pruned] = [e for e in after if e.action == audit.PRUNED]
        assert pruned is after[-1] and pruned.principal == "retention" and pruned.service == "intake"
        assert "3 entries written before" in pruned.detail and f"ids up to {before[2].id}" in pruned.detail
        assert after[0].prev_hash == before[2].entry_hash and before[2].entry_hash in pruned.detail
        assert await self.prune(tmp_path, database_url) == 0  # nothing more is due: nothing removed, nothing written
        if tamper == "none":
            code, out = await asyncio.to_thread(verify, monkeypatch, capsys, database_url)
            assert (code, out.split(",")[0]) == (0, "audit chain OK: 3 entries"), out
            return
        if tamper == "changed":
            await execute(database_url, f"UPDATE audit_entry SET incident_id = 'another' WHERE id = {after[1].id}")
            expected = f"entry {after[1].id}: its content does not match its hash"
        else:  # one entry more than the retention removed: the pruning entry names where the chain starts
            await execute(database_url, f"DELETE FROM audit_entry WHERE id = {after[0].id}")
            expected = f"entry {after[1].id}: the first entry kept links to an entry no retention run removed"
        code, out = await asyncio.to_thread(verify, monkeypatch, capsys, database_url)
        assert code == 1 and "audit chain BROKEN" in out and expected in out, out

    async def test_a_second_pruning_moves_the_start_and_a_pruning_record_cannot_be_cut_off_unseen(
        self, tmp_path, database_url, monkeypatch, capsys
    ):
        await asyncio.to_thread(migrate.upgrade, AUTH_MIGRATIONS, database_url)
        now = datetime.now(UTC)
        await write_at(database_url, [now - timedelta(days=40), now - timedelta(days=20), now - timedelta(days=1)])
        assert await self.prune(tmp_path, database_url, days=30) == 1
        assert await self.prune(tmp_path, database_url, days=10) == 1  # the second entry; the first pruning record stays
        code, out = await asyncio.to_thread(verify, monkeypatch, capsys, database_url)
        assert (code, out.split(",")[0]) == (0, "audit chain OK: 3 entries"), out
        kept = await entries(database_url)
        assert [e.action for e in kept] == ["read", audit.PRUNED, audit.PRUNED]
        # Without the newest pruning record the start is not accounted for (an older record names an older start).
        await execute(database_url, f"DELETE FROM audit_entry WHERE id = {kept[-1].id}")
        code, out = await asyncio.to_thread(verify, monkeypatch, capsys, database_url)
        assert code == 1 and f"entry {kept[0].id}: the first entry kept links to an entry no retention run removed" in out, out

    def test_the_owner_prunes_from_the_command_line(self, database_url, monkeypatch, capsys):
        migrate.upgrade(AUTH_MIGRATIONS, database_url)
        now = datetime.now(UTC)
        asyncio.run(write_at(database_url, [now - timedelta(days=5), now]))
        monkeypatch.setenv("BAOVE_AUTH_DATABASE_URL", database_url)
        cli.main(["audit", "prune", "--days", "3"])
        assert capsys.readouterr().out == "removed 1 audit entries older than 3 days\n"
        assert [(e.action, e.principal) for e in asyncio.run(entries(database_url))] == [("read", "25349.police"), (audit.PRUNED, "admin")]
        assert verify(monkeypatch, capsys, database_url)[0] == 0


class TestTheMigration:
    def test_entries_written_before_the_chain_are_chained_by_the_migration(self, database_url):
        from alembic import command

        command.upgrade(migrate.config(AUTH_MIGRATIONS, database_url), "a7c3e1d2b9f4")
        asyncio.run(execute(database_url, *(
            "INSERT INTO audit_entry (at, principal, action, incident_id, endpoint, service, username, token_id, detail) "
            f"VALUES ('2026-11-2{n} 08:00:00.000001+00:00', '25349.police', 'read', 'incident-{n}', 'GET /v1/incidents/{{id}}', "
            "'intake', 'lan', 'token-1', NULL)" for n in range(1, 4)
        )))
        migrate.upgrade(AUTH_MIGRATIONS, database_url)
        asyncio.run(write_entries(database_url, 2))  # new entries link to the migrated ones

        async def check():
            engine = make_engine(database_url)
            try:
                async with make_sessionmaker(engine)() as session:
                    return await audit.verify(session)
            finally:
                await engine.dispose()

        assert asyncio.run(check()) == (5, None)


class TestConcurrentWriters:
    async def test_writers_in_separate_processes_worth_of_connections_never_fork_the_chain(self, database_url):
        await asyncio.to_thread(migrate.upgrade, AUTH_MIGRATIONS, database_url)
        # Each writer its own engine, as each service has its own: 6 writers, 15 entries each, all at once.
        await asyncio.gather(*(write_entries(database_url, 15) for _ in range(6)))
        engine = make_engine(database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                assert await audit.verify(session) == (90, None)
        finally:
            await engine.dispose()


def runtime_on(service: str, tmp_path: Path, auth_url: str):
    common = CommonSettings(data_dir=tmp_path, auth_database_url=SecretStr(auth_url))
    settings = SETTINGS[service](common=common, graceful_timeout=5.0)
    return importlib.import_module(f"services.{service}.app").create_runtime(settings)


class TestWhatIsAudited:
    async def test_refusals_and_reads_of_the_audit_are_audited_by_token_id_never_the_token(self, tmp_path, database_url):
        intake, routing = runtime_on("intake", tmp_path, database_url), runtime_on("routing", tmp_path, database_url)
        try:
            await asyncio.to_thread(intake.migrate)
            await asyncio.to_thread(routing.migrate)
            async with intake.auth_sessionmaker() as session, session.begin():
                admin = await auth.issue_token(session, "admin", "admin", label="ops laptop")
                police = await auth.issue_token(session, "unit", "25349.police", label="hotline gateway")
                revoked = await auth.issue_token(session, "unit", "25349.school.th-a", label="old gateway")
                [revoked_id] = await auth.revoke_tokens(session, token=revoked)
            police_id = await routing.verifier.token_id(police)
            intake_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=intake.api), base_url="http://test")
            routing_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=routing.api), base_url="http://test")
            async with intake_http, routing_http:
                assert (await intake_http.get("/v1/audit", headers=bearer(police))).status_code == 403
                assert (await routing_http.get("/v1/agencies/25349.police/assignments", headers=bearer(revoked))).status_code == 401
                assert (await routing_http.get("/v1/agencies/25349.police/assignments")).status_code == 401
                assert (await intake_http.post("/v1/sessions", json={"username": "nobody", "password": "x" * 12})).status_code == 401
                page = await intake_http.get("/v1/audit", headers=bearer(admin), params={"principal": "25349.police"})
                assert page.status_code == 200
                own = (await intake_http.get("/v1/audit", headers=bearer(admin), params={"limit": 100})).json()["items"]
            async with intake.auth_sessionmaker() as session:
                entries, _ = await audit.query(session, limit=100)
        finally:
            for runtime in (intake, routing):
                await runtime.engine.dispose()
                await runtime.auth_engine.dispose()
        denied = [e for e in entries if e["action"] == "denied"]
        assert [(e["principal"], e["service"], e["endpoint"], e["token_id"]) for e in denied] == [
            ("unknown", "routing", "GET /v1/agencies/{unit_id}/assignments", None),
            ("unknown", "routing", "GET /v1/agencies/{unit_id}/assignments", revoked_id),
            ("25349.police", "intake", "GET /v1/audit", police_id),
        ]
        assert denied[-1]["token_name"] == "hotline gateway" and denied[-1]["detail"].startswith("403: the read audit is for admins")
        assert denied[0]["detail"].startswith("401: missing bearer token") and "from 127.0.0.1" in denied[0]["detail"]
        # A failed sign-in is audited once, as such, not again as a refusal.
        assert [e["action"] for e in entries if e["endpoint"] == "POST /v1/sessions"] == ["sign_in_failed"]
        reads = [e for e in entries if e["action"] == "audit_read"]
        assert [(e["principal"], e["token_name"], e["detail"]) for e in reads] == [
            ("admin", "ops laptop", "newest"), ("admin", "ops laptop", "principal=25349.police")
        ]
        assert [e["action"] for e in own][0] == "audit_read", "a read of the audit is in the next one, not in its own page"
        assert not any(token in str(entries) for token in (admin, police, revoked))

    async def test_a_flood_of_refused_requests_adds_a_bounded_number_of_entries(self, tmp_path):
        url = f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
        routing = runtime_on("routing", tmp_path, url)
        try:
            await asyncio.to_thread(routing.migrate)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=routing.api), base_url="http://test") as http:
                for n in range(200):
                    assert (await http.get("/v1/agencies/25349.police/assignments", headers=bearer(f"bv_guess{n}"))).status_code == 401
            async with routing.auth_sessionmaker() as session:
                items, _ = await audit.query(session, action="denied", limit=500)
        finally:
            await routing.engine.dispose()
            await routing.auth_engine.dispose()
        assert len(items) == 10, "the unknown callers' burst, then 2 a minute"
