"""Named officials: sign-in, lockout, per-address limits, disabling, the audit naming a person, expiring tokens,
and the demo's guard (plan/people-api.md, issue 13)."""

from __future__ import annotations

import asyncio
import importlib
import io
import os
import stat
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import inspect, select, text

from services import cli
from shared import audit, auth, people, signin
from shared.migrate import config
from shared.runtime import AUTH_MIGRATIONS
from shared.settings import CommonSettings
from tests.support import SETTINGS, bearer, incident_payload

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "sông Hồng chảy mãi về xuôi"
WRONG = {"detail": "wrong username or password"}


def runtime_on(service: str, tmp_path: Path, auth_url: str | None = None, **extra):
    common = CommonSettings(data_dir=tmp_path, **({"auth_database_url": SecretStr(auth_url)} if auth_url else {}))
    settings = SETTINGS[service](common=common, graceful_timeout=5.0, **extra)
    return importlib.import_module(f"services.{service}.app").create_runtime(settings)


def client(runtime, address: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.api, client=(address, 40000)), base_url="http://test")


@pytest.fixture
async def intake(tmp_path, database_url):
    """Intake with its token store on SQLite and on PostgreSQL; failed sign-ins answer at once (the delay is a setting)."""
    runtime = runtime_on("intake", tmp_path, database_url, sign_in_failure_delay_seconds=0.0)
    await asyncio.to_thread(runtime.migrate)
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def add(runtime, username: str, kind: str = "unit", subject: str = "25349.police", password: str | None = PASSWORD) -> str | None:
    async with runtime.auth_sessionmaker() as session, session.begin():
        return await people.add_person(session, username, "Nguyễn Thị Lan", kind, subject, password, created_by="test")


async def sign_in(http, username: str, password: str, **headers):
    return await http.post("/v1/sessions", json={"username": username, "password": password}, headers=headers)


async def audit_log(runtime, **filters) -> list[dict]:
    async with runtime.auth_sessionmaker() as session:
        items, _ = await audit.query(session, limit=500, **filters)
    return items


class TestSigningIn:
    async def test_a_person_signs_in_whatever_the_case_typed_and_reads_themselves(self, intake):
        await add(intake, "Lan.Nguyen")
        async with client(intake) as http:
            answer = await sign_in(http, "LAN.nguyen", PASSWORD)
            me = await http.get("/v1/me", headers=bearer(answer.json()["token"]))
        assert answer.status_code == 201
        body = answer.json()
        assert body["idle_timeout_seconds"] == 1800 and body["must_change_password"] is False
        assert body["person"]["username"] == "lan.nguyen" and body["person"]["label"] == "25349.police"
        assert me.json()["username"] == "lan.nguyen" and me.json()["session_expires_at"] == body["expires_at"]

    async def test_six_wrong_passwords_then_the_right_one_all_answer_as_a_wrong_password_and_the_audit_shows_the_lockout(self, intake):
        await add(intake, "lan")
        async with client(intake) as http:
            answers = [await sign_in(http, "lan", f"wrong guess {n}") for n in range(6)]
            seventh = await sign_in(http, "lan", PASSWORD)
            unknown = await sign_in(http, "nobody-here", PASSWORD)
        for answer in [*answers, seventh, unknown]:
            assert (answer.status_code, answer.json()) == (401, WRONG)
        actions = [e["action"] for e in reversed(await audit_log(intake, username="lan"))]
        assert actions == [*["sign_in_failed"] * 5, "lockout", "sign_in_failed", "sign_in_failed"]
        assert "locked out" in (await audit_log(intake, username="lan"))[0]["detail"]

    async def test_a_password_reset_lifts_the_lockout_and_the_one_time_password_must_be_changed(self, intake):
        await add(intake, "lan")
        async with client(intake) as http:
            for n in range(5):
                await sign_in(http, "lan", f"wrong guess {n}")
            async with intake.auth_sessionmaker() as session, session.begin():
                _, one_time = await people.reset_password(session, "lan", "test")
            answer = await sign_in(http, "lan", one_time)
            token = answer.json()["token"]
            refused = await http.get("/v1/users", headers=bearer(token))
            weak = await http.post("/v1/sessions/password", headers=bearer(token),
                                   json={"current_password": one_time, "new_password": "matkhau@123"})
            changed = await http.post("/v1/sessions/password", headers=bearer(token),
                                      json={"current_password": one_time, "new_password": PASSWORD + " nữa"})
            intake.verifier.forget(token)
            me = await http.get("/v1/me", headers=bearer(token))
        assert answer.status_code == 201 and answer.json()["must_change_password"] is True
        assert (refused.status_code, refused.json()) == (403, {"detail": "password must be changed first"})
        assert weak.status_code == 422 and weak.json()["detail"]["code"] == "common"
        assert changed.status_code == 204 and me.json()["must_change_password"] is False

    async def test_signing_out_ends_the_session_at_once(self, intake):
        await add(intake, "lan")
        async with client(intake) as http:
            token = (await sign_in(http, "lan", PASSWORD)).json()["token"]
            out = await http.delete("/v1/sessions/current", headers=bearer(token))
            after = await http.get("/v1/me", headers=bearer(token))
        assert out.status_code == 204 and after.status_code == 401
        assert [e["action"] for e in await audit_log(intake, username="lan")][:2] == ["sign_out", "sign_in"]


class TestAddressLimits:
    async def test_one_address_is_slowed_with_429_while_another_still_signs_in(self, tmp_path):
        runtime = runtime_on("intake", tmp_path, sign_in_per_minute=1, sign_in_burst=3, sign_in_failure_delay_seconds=0.0)
        await asyncio.to_thread(runtime.migrate)
        await add(runtime, "lan")
        async with client(runtime, "203.0.113.7") as http:
            answers = [await sign_in(http, "lan", "wrong guess") for _ in range(4)]
        async with client(runtime, "203.0.113.8") as http:
            other = await sign_in(http, "lan", PASSWORD)
        assert [a.status_code for a in answers] == [401, 401, 401, 429] and int(answers[-1].headers["retry-after"]) > 0
        assert other.status_code == 201
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()

    async def test_the_consoles_forwarded_address_is_believed_from_loopback_only(self, tmp_path):
        runtime = runtime_on("intake", tmp_path, sign_in_per_minute=1, sign_in_burst=1, sign_in_failure_delay_seconds=0.0)
        await asyncio.to_thread(runtime.migrate)
        header = {"X-Baove-Client-Address": "198.51.100.1"}
        async with client(runtime, "127.0.0.1") as console:
            first = await sign_in(console, "x", "y", **header)
            second = await sign_in(console, "x", "y", **{"X-Baove-Client-Address": "198.51.100.2"})
        async with client(runtime, "203.0.113.9") as stranger:
            spoofed = [await sign_in(stranger, "x", "y", **{"X-Baove-Client-Address": f"198.51.100.{n}"}) for n in (3, 4)]
        assert [first.status_code, second.status_code] == [401, 401]  # two browsers behind the console: two addresses
        assert [a.status_code for a in spoofed] == [401, 429]  # a stranger's header is ignored: one address
        log = await audit_log(runtime, action="sign_in_failed")
        assert any("from 198.51.100.1" in e["detail"] for e in log) and any("from 203.0.113.9" in e["detail"] for e in log)
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()


class TestPeopleAdministration:
    async def test_a_cp_officer_administers_the_people_of_their_own_commune_only(self, intake):
        await add(intake, "cp", subject="25349.cp_officer")
        await add(intake, "police-25348", subject="25348.police")
        async with client(intake) as http:
            cp = bearer((await sign_in(http, "cp", PASSWORD)).json()["token"])
            added = await http.post("/v1/users", headers=cp, json={"username": "Mới", "full_name": "Lê  Văn Mới", "kind": "unit",
                                                                    "subject": "25349.health"})
            elsewhere = await http.post("/v1/users", headers=cp, json={"username": "x2", "full_name": "X", "kind": "unit",
                                                                        "subject": "25348.health"})
            listed = await http.get("/v1/users", headers=cp)
            other_commune = await http.get("/v1/users", headers=cp, params={"commune": "25348"})
            hidden = await http.post("/v1/users/police-25348/disable", headers=cp)
            taken = await http.post("/v1/users", headers=cp, json={"username": "MỚI", "full_name": "Y", "kind": "unit",
                                                                    "subject": "25349.health"})
        assert added.status_code == 201 and added.json()["person"]["full_name"] == "Lê Văn Mới"
        assert added.json()["person"]["must_change_password"] is True and len(added.json()["one_time_password"]) >= 10
        assert added.json()["person"]["created_by"] == "cp"
        assert [p["username"] for p in listed.json()["items"]] == ["cp", "mới"]
        assert (elsewhere.status_code, other_commune.status_code, hidden.status_code, taken.status_code) == (403, 403, 404, 409)
        assert taken.json() == {"detail": "username not available"}

    async def test_what_an_administrator_did_over_http_is_audited_under_them_with_the_route(self, intake):
        await add(intake, "cp", subject="25349.cp_officer")
        await add(intake, "lan", subject="25349.health")
        async with client(intake) as http:
            answer = (await sign_in(http, "cp", PASSWORD)).json()
            cp = bearer(answer["token"])
            await http.post("/v1/users", headers=cp, json={"username": "moi", "full_name": "Lê Văn Mới", "kind": "unit",
                                                           "subject": "25349.justice"})
            for route in ("disable", "enable", "reset-password"):
                assert (await http.post(f"/v1/users/lan/{route}", headers=cp)).status_code == 200
        done = [e for e in await audit_log(intake, username="cp") if e["action"] != "sign_in"]
        assert [(e["action"], e["endpoint"], e["service"], e["principal"], e["token_id"]) for e in reversed(done)] == [
            ("user_added", "POST /v1/users", "intake", "25349.cp_officer", answer["token_id"]),
            ("user_disabled", "POST /v1/users/{username}/disable", "intake", "25349.cp_officer", answer["token_id"]),
            ("user_active", "POST /v1/users/{username}/enable", "intake", "25349.cp_officer", answer["token_id"]),
            ("password_reset", "POST /v1/users/{username}/reset-password", "intake", "25349.cp_officer", answer["token_id"]),
        ]
        assert done[-1]["detail"].startswith("moi (25349.justice)") and all("lan (25349.health)" in e["detail"] for e in done[:3])

    async def test_a_cp_officers_machine_token_administers_no_one(self, intake):
        async with intake.auth_sessionmaker() as session, session.begin():
            machine, _ = await people.issue_machine_token(session, "unit", "25349.cp_officer", "commune gateway", 30, by="test")
        await add(intake, "lan", subject="25349.health")
        async with client(intake) as http:
            answers = [
                await http.get("/v1/users", headers=bearer(machine)),
                await http.post("/v1/users", headers=bearer(machine), json={"username": "moi", "full_name": "Lê Văn Mới",
                                                                            "kind": "unit", "subject": "25349.justice"}),
                await http.post("/v1/users/lan/disable", headers=bearer(machine)),
            ]
        assert [a.status_code for a in answers] == [403, 403, 404]


class TestDisabling:
    async def test_a_disabled_person_is_refused_within_a_second_by_every_service(self, tmp_path):
        services = {name: runtime_on(name, tmp_path) for name in ("intake", "routing", "reporting")}
        for runtime in services.values():
            await asyncio.to_thread(runtime.migrate)
        await add(services["intake"], "lan", subject="25349.cp_officer")
        calls = {"intake": "/v1/me", "routing": "/v1/units?commune=25349", "reporting": "/v1/reports/25349"}
        async with client(services["intake"]) as http:
            token = (await sign_in(http, "lan", PASSWORD)).json()["token"]
        for name, runtime in services.items():  # each service has now remembered the token
            async with client(runtime) as http:
                assert (await http.get(calls[name], headers=bearer(token))).status_code == 200, name
        subprocess.run([sys.executable, "-m", "services.cli", "user", "disable", "lan"], check=True, cwd=ROOT, capture_output=True,
                       env={**os.environ, "BAOVE_DATA_DIR": str(tmp_path)})
        disabled_at = time.monotonic()
        refused_after = {}
        while len(refused_after) < 3 and time.monotonic() - disabled_at < 3:
            for name, runtime in services.items():
                if name not in refused_after:
                    async with client(runtime) as http:
                        if (await http.get(calls[name], headers=bearer(token))).status_code == 401:
                            refused_after[name] = time.monotonic() - disabled_at
            await asyncio.sleep(0.02)
        assert set(refused_after) == set(services) and max(refused_after.values()) < 1.0, refused_after
        for runtime in services.values():
            await runtime.engine.dispose()
            await runtime.auth_engine.dispose()


class TestTheCommandLine:
    def test_a_person_added_with_the_cli_signs_in_reads_a_case_and_the_audit_names_them(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv("BAOVE_DATA_DIR", str(tmp_path))
        monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
        cli.main(["user", "add", "Thu.Tran", "--unit", "25349.police", "--name", "Trần Thị Thu", "--password-stdin"])
        assert "thu.tran: active, acts as 25349.police" in capsys.readouterr().out
        runtime = runtime_on("intake", tmp_path)

        async def read_a_case() -> tuple[str, str]:
            async with client(runtime) as http:
                session = (await sign_in(http, "thu.tran", PASSWORD)).json()
                posted = await http.post("/v1/incidents", json=incident_payload(), headers=bearer(session["token"]))
                incident_id = posted.json()["incident_id"]
                assert (await http.get(f"/v1/incidents/{incident_id}", headers=bearer(session["token"]))).status_code == 200
            await runtime.engine.dispose()
            await runtime.auth_engine.dispose()
            return incident_id, session["token_id"]

        asyncio.run(asyncio.to_thread(runtime.migrate))
        incident_id, token_id = asyncio.run(read_a_case())
        cli.main(["audit", "--incident", incident_id])
        [line] = capsys.readouterr().out.splitlines()
        assert "thu.tran" in line and token_id in line and "25349.police" in line and "read" in line

    def test_tokens_are_a_persons_or_named_and_expire_within_a_year(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv("BAOVE_DATA_DIR", str(tmp_path))
        cli.main(["user", "add", "lan", "--district", "694", "--name", "Lê Thị Lan"])
        assert "one-time password" in capsys.readouterr().out
        cli.main(["token", "issue", "--user", "lan"])
        cli.main(["token", "issue", "--unit", "25349.police", "--name", "hotline gateway", "--days", "365"])
        for refused in (["token", "issue", "--unit", "25349.police"], ["token", "issue", "--admin", "--name", "x", "--days", "366"]):
            with pytest.raises(SystemExit) as exit_:
                cli.main(refused)
            assert exit_.value.code == 2
        capsys.readouterr()
        cli.main(["token", "list"])
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 2 and "machine 'hotline gateway'" in lines[0] and "personal lan" in lines[1]
        cli.main(["audit", "--action", "token_issued"])
        assert "machine:hotline gateway" in capsys.readouterr().out

    def test_the_demo_creates_its_people_once_and_refuses_to_run_in_production(self, tmp_path):
        env = {**os.environ, "BAOVE_DATA_DIR": str(tmp_path)}
        for command in (["up", "--demo"], ["demo"]):
            refused = subprocess.run([sys.executable, "-m", "services.cli", *command], cwd=ROOT, capture_output=True, text=True,
                                     env={**env, "BAOVE_ENV": "prod"}, timeout=120)
            assert refused.returncode != 0 and "BAOVE_ENV=prod" in refused.stderr
        first = subprocess.run([sys.executable, "-m", "services.cli", "demo"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
        second = subprocess.run([sys.executable, "-m", "services.cli", "demo"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
        assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
        path = tmp_path / "demo-people.txt"
        rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        usernames = {r[0] for r in rows}
        assert {"25349-police", "25349-cp_officer", "25349-school-th-minh-tam-a", "district-694", "admin"} <= usernames
        assert all(r[1] in first.stdout for r in rows) and "bv_" not in first.stdout
        assert not any(r[1] in second.stdout for r in rows) and "exist already" in second.stdout


class TestExpiry:
    async def test_the_migration_revokes_the_old_unnamed_tokens_and_gives_none_more_than_a_year(self, database_url):
        """Unnamed never-expiring tokens were printed to logs by `baove up --demo` (admin's too): revoked, not extended."""
        from alembic import command

        from shared.db import make_engine, utcnow

        await asyncio.to_thread(command.upgrade, config(AUTH_MIGRATIONS, database_url), "f53aace3ea25")
        engine = make_engine(database_url)
        async with engine.begin() as conn:
            for token_id, label, expires in (("demo", None, None), ("gateway", "hotline gateway", None),
                                             ("far", "far future", utcnow() + timedelta(days=3000))):
                await conn.execute(
                    text("INSERT INTO api_token (id, token_hash, kind, subject, label, created_at, expires_at) "
                         "VALUES (:id, :hash, 'admin', 'admin', :label, :now, :expires)"),
                    {"id": token_id, "hash": f"h-{token_id}", "label": label, "now": utcnow(), "expires": expires},
                )
        await engine.dispose()
        await asyncio.to_thread(command.upgrade, config(AUTH_MIGRATIONS, database_url), "head")
        engine = make_engine(database_url)
        async with engine.connect() as conn:
            rows = {r.id: r for r in (await conn.execute(select(auth.api_token))).all()}
            columns = await conn.run_sync(lambda c: {col["name"]: col for col in inspect(c).get_columns("api_token")})
        await engine.dispose()
        year = utcnow() + timedelta(days=365, minutes=1)
        assert rows["demo"].revoked_at is not None and rows["demo"].label == "issued before people"
        assert rows["gateway"].revoked_at is None and utcnow() + timedelta(days=364) < rows["gateway"].expires_at <= year
        assert rows["far"].revoked_at is None and rows["far"].expires_at <= year
        assert columns["expires_at"]["nullable"] is False

class TestConcurrentGuessing:
    @pytest.mark.parametrize("in_process_lock", [True, False], ids=["one_process", "as_across_processes"])
    async def test_fifteen_guesses_at_once_get_at_most_five_verified_and_the_right_one_after_them_is_refused(
        self, intake, monkeypatch, in_process_lock
    ):
        from shared import passwords

        if not in_process_lock:  # only the database serialises: PostgreSQL's advisory lock, SQLite's one writer
            monkeypatch.setattr(signin, "_gate", lambda name: asyncio.Lock())
        await add(intake, "lan")
        await asyncio.to_thread(passwords.dummy_hash)  # made once at start, as intake's warm-up does
        verified: list[str] = []
        real_verify = passwords.verify_password

        def counting_verify(stored: str, password: str) -> bool:
            if stored != passwords.dummy_hash():
                verified.append(password)
            return real_verify(stored, password)

        monkeypatch.setattr(passwords, "verify_password", counting_verify)
        guesses = [f"wrong guess {n}" for n in range(15)]

        async def attempt(n: int, password: str):
            async with client(intake, f"203.0.113.{n + 1}") as http:  # one address each: the per-address limit is not the test
                return await sign_in(http, "lan", password)

        # Fifteen wrong guesses at once (a right one among them may legitimately win if verified first, so it comes
        # after them: what matters is how many guesses of a burst are ever tried against the real hash).
        answers = await asyncio.gather(*(attempt(n, p) for n, p in enumerate(guesses)))
        print(f"guesses verified: {len(verified)} of {len(guesses)}")
        assert len(verified) <= 5, verified
        assert [a.status_code for a in answers] == [401] * 15
        right = await attempt(15, PASSWORD)
        assert right.status_code == 401 and PASSWORD not in verified  # locked out: the right password is not even tried
        assert [e["action"] for e in await audit_log(intake, action="lockout")] == ["lockout"]

    async def test_token_checks_are_answered_while_a_sign_in_and_a_password_change_hash(self, intake, monkeypatch):
        import threading

        from shared import passwords

        await add(intake, "lan")
        async with intake.auth_sessionmaker() as session, session.begin():
            token, _ = await people.issue_personal_token(session, "lan", 1, by="test")
        async with client(intake) as http:
            session_token = (await sign_in(http, "lan", PASSWORD)).json()["token"]
        hashing, release = threading.Event(), threading.Event()
        real_verify = passwords.verify_password

        def slow_verify(stored: str, password: str) -> bool:
            hashing.set()
            release.wait(10)
            return real_verify(stored, password)

        monkeypatch.setattr(passwords, "verify_password", slow_verify)
        for call in (
            lambda http: sign_in(http, "lan", PASSWORD),
            lambda http: http.post("/v1/sessions/password", headers=bearer(session_token),
                                   json={"current_password": PASSWORD, "new_password": PASSWORD + " nữa"}),
        ):
            hashing.clear(), release.clear()
            async with client(intake) as http:
                pending = asyncio.create_task(call(http))
                assert await asyncio.to_thread(hashing.wait, 10)
                intake.verifier.forget(token)
                checked = await asyncio.wait_for(intake.verifier.verify(token), 2)  # the pool is not held by the hashing
                release.set()
                answer = await pending
            assert checked is not None and checked.username == "lan" and answer.status_code in (201, 204)


class TestWhatIsKept:
    async def test_a_username_nobody_has_is_never_stored_as_typed_and_is_still_locked_out(self, intake):
        typed = "Mật khẩu bí mật 2025"  # a password typed in the username box
        async with client(intake) as http:
            answers = [await sign_in(http, typed, f"guess {n}") for n in range(6)]
        assert [a.status_code for a in answers] == [401] * 6
        async with intake.auth_sessionmaker() as session:
            attempts = (await session.execute(select(auth.sign_in_attempt))).all()
        log = await audit_log(intake)
        kept = repr([tuple(a) for a in attempts]) + repr(log)
        assert people.normalise_username(typed) not in kept and "bí mật" not in kept.lower()
        assert [e["action"] for e in log[:2]] == ["sign_in_failed", "lockout"] and "locked out" in log[0]["detail"]


class TestPasswordChanges:
    async def test_five_wrong_current_passwords_end_the_session_and_each_is_audited(self, intake):
        await add(intake, "lan")
        async with client(intake) as http:
            token = (await sign_in(http, "lan", PASSWORD)).json()["token"]
            wrong = [await http.post("/v1/sessions/password", headers=bearer(token),
                                     json={"current_password": f"guess {n}", "new_password": PASSWORD + " nữa"}) for n in range(5)]
            after = await http.get("/v1/me", headers=bearer(token))
        assert [a.status_code for a in wrong] == [422] * 5 and wrong[0].json()["detail"]["code"] == "wrong_current_password"
        assert after.status_code == 401
        actions = [e["action"] for e in await audit_log(intake, username="lan")]
        assert actions[:6] == ["token_revoked", *["password_change_failed"] * 5]

    async def test_a_change_ends_the_other_sessions_and_a_reset_ends_personal_tokens_too(self, intake):
        await add(intake, "lan")
        async with intake.auth_sessionmaker() as session, session.begin():
            personal, _ = await people.issue_personal_token(session, "lan", 30, by="test")
        async with client(intake) as http:
            mine, other = [(await sign_in(http, "lan", PASSWORD)).json()["token"] for _ in range(2)]
            changed = await http.post("/v1/sessions/password", headers=bearer(mine),
                                      json={"current_password": PASSWORD, "new_password": PASSWORD + " nữa"})
            intake.verifier.forget(other)
            still = [(await http.get("/v1/me", headers=bearer(t))).status_code for t in (mine, other, personal)]
            async with intake.auth_sessionmaker() as session, session.begin():
                await people.reset_password(session, "lan", "test")
            for t in (mine, personal):
                intake.verifier.forget(t)
            after_reset = [(await http.get("/v1/me", headers=bearer(t))).status_code for t in (mine, personal)]
        assert changed.status_code == 204
        assert still == [200, 401, 200]
        assert after_reset == [401, 401]
