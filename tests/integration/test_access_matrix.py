"""Every route of every service, called by people of every kind: 401 without a good token (none, malformed, unknown,
expired, revoked, a disabled person's, an idle session's), 403/404 and no data outside the token's scope
(contract.md, Authentication), 403 everywhere but the password change while a one-time password is unchanged.
Every read of case details is audited under the person who made it. A route without a rule here fails the test."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import select, update

from services.routing.models import Assignment
from services.routing.rules import DEFAULT_RULES
from shared import audit, auth, people
from shared.db import make_engine, make_sessionmaker, utcnow
from tests.routing_support import reported, route, routing_runtime
from tests.support import bearer, client, incident_payload, make_runtime, migrate

pytestmark = pytest.mark.integration

# Open by design: probes, metrics, the API's own documentation and signing in. Nothing else may be.
PUBLIC = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/v1/sessions"}
UNAUTHENTICATED = ("none", "malformed", "unknown", "expired", "revoked", "disabled", "idle_session")
# What a person with an unchanged one-time password may still do.
BEFORE_PASSWORD_CHANGE = {("GET", "/v1/me"), ("POST", "/v1/sessions/password"), ("DELETE", "/v1/sessions/current")}
PASSWORD = "sông Hồng chảy mãi về xuôi"
EVERYONE = frozenset({"same_commune", "other_commune", "other_district"})
_seq = itertools.count(1)
OUT_OF_SCOPE = ("same_commune", "other_commune", "other_district")


@dataclass
class World:
    """What the calls need: seeded ids and the personal data that must never leak."""

    incident_id: str = ""
    routed_incident_id: str = ""
    pending_assignment: str = ""
    acknowledged_assignment: str = ""
    secrets: list[str] = field(default_factory=list)
    target: str = "matrix-target"
    subscription_id: str = ""
    activity_id: str = ""
    withdrawn_activity_id: str = ""
    recorded_incident_id: str = ""  # a case with a process record (its initial assessment)
    record_id: str = ""


Call = Callable[[World], tuple[str, dict[str, Any] | None, dict[str, Any] | None]]


@dataclass(frozen=True)
class Rule:
    """Who the route is for (`right`, a unit id or `admin`), what it answers them, and any other kind also allowed."""

    right: str
    ok: int
    call: Call
    also_allowed: frozenset[str] = frozenset()
    fresh_token: bool = False  # the call spends the caller's token (sign-out): each caller gets a new one


MATRIX_RULES = DEFAULT_RULES.read_text(encoding="utf-8").replace('version: "2025.1"', 'version: "matrix"')
CLOSE = {"risk_level": "low", "outcome": "reviewed"}
SUBSCRIPTION = {"unit_id": "25349.police", "channel": "webhook", "target": "https://police.example.vn/hook", "events": ["assignment.created"]}
ACTIVITY = {
    "unit_id": "25349.police", "task_id": "IV.7", "kind": "communication", "held_on": "2025-03-02",
    "counts": {"sessions": 1, "participants_total": 40, "participants_male": 20, "participants_female": 20},
    "note": "Tuyên truyền phòng chống xâm hại",
}
def ASSESSMENT() -> dict:  # noqa: N802 - a body like the constants beside it, made at call time
    return {
        "harm": "bị đánh", "danger_level": "medium", "urgent_protection": False, "assessed_by": "Cán bộ xã",
        "assessed_at": utcnow().isoformat(),
    }


def MEASURES() -> dict:  # noqa: N802
    return {"measures": "đưa trẻ đến nơi an toàn", "taken_by": "Công an xã", "taken_at": utcnow().isoformat()}


def CARE() -> dict:  # noqa: N802
    today = utcnow().date()
    return {
        "decision_no": "1/QĐ-UBND", "placement": "nhà bà ngoại", "starts_on": today.isoformat(), "ends_on": today.isoformat(),
        "signed_by": "Chủ tịch", "signed_as": "chairman",
    }


def DETAILED() -> dict:  # noqa: N802
    return {"meeting_at": utcnow().isoformat(), "participants": "các đơn vị", "needs": "chăm sóc", "assessed_by": "Cán bộ xã"}


def PLAN() -> dict:  # noqa: N802
    task = {"task": "khám sức khỏe", "unit_id": "25349.health", "due_on": utcnow().date().isoformat()}
    return {"goals": "an toàn", "tasks": [task], "drafted_by": "Cán bộ xã"}


def REVIEW() -> dict:  # noqa: N802
    levels = dict.fromkeys(("harm_severity", "abuser_access", "care_obstacles", "child_capacity", "overall"), "low")
    return levels | {"reviewed_by": "Cán bộ xã", "reviewed_at": utcnow().isoformat()}


APPROVAL = {"decision_no": "2/QĐ-UBND", "approved_on": "2026-11-30", "signed_by": "Chủ tịch", "signed_as": "chairman"}
CORRECTION = {name: value for name, value in ACTIVITY.items() if name != "unit_id"}  # a correction keeps the unit
DOCUMENT = "/v1/reports/25349/2025-6M/document"
RULES: dict[tuple[str, str], Rule] = {
    # intake
    ("POST", "/v1/incidents"): Rule(
        "25349.police", 202, lambda w: ("/v1/incidents", None, incident_payload()),
        also_allowed=frozenset({"same_commune"}),  # any unit reports in its own commune
    ),
    ("GET", "/v1/incidents/{incident_id}"): Rule("25349.police", 200, lambda w: (f"/v1/incidents/{w.incident_id}", None, None)),
    ("GET", "/v1/audit"): Rule("admin", 200, lambda w: ("/v1/audit", None, None)),
    # possible duplicates (issue 17): the commune's cp_officer; no pair is seeded, so a decision finds none
    ("GET", "/v1/incidents/{incident_id}/duplicates"): Rule(
        "25349.cp_officer", 200, lambda w: (f"/v1/incidents/{w.incident_id}/duplicates", None, None)
    ),
    ("POST", "/v1/incidents/{incident_id}/duplicates/{other_id}/{decision}"): Rule(
        "25349.cp_officer", 404, lambda w: (f"/v1/incidents/{w.incident_id}/duplicates/{w.routed_incident_id}/link", None, None)
    ),
    # activities under the commune's plan: a unit records its own, its author corrects or withdraws them
    ("POST", "/v1/activities"): Rule("25349.police", 201, lambda w: ("/v1/activities", None, ACTIVITY)),
    ("GET", "/v1/activities"): Rule(
        "25349.police", 200, lambda w: ("/v1/activities", {"commune": "25349"}, None),
        also_allowed=frozenset({"same_commune"}),  # another unit of the commune lists its own (none here)
    ),
    ("GET", "/v1/activities/{activity_id}"): Rule("25349.police", 200, lambda w: (f"/v1/activities/{w.activity_id}", None, None)),
    ("PUT", "/v1/activities/{activity_id}"): Rule("25349.police", 200, lambda w: (f"/v1/activities/{w.activity_id}", None, CORRECTION)),
    ("DELETE", "/v1/activities/{activity_id}"): Rule(
        "25349.police", 200, lambda w: (f"/v1/activities/{w.withdrawn_activity_id}", None, None)
    ),
    # privacy: the commune's cp_officer exports what is held about a child; only an admin erases (an unknown id here:
    # the other routes still need the seeded incident).
    ("GET", "/v1/incidents/{incident_id}/subject-access"): Rule(
        "25349.cp_officer", 200, lambda w: (f"/v1/incidents/{w.incident_id}/subject-access", None, None)
    ),
    ("POST", "/v1/incidents/{incident_id}/erasure"): Rule(
        "admin", 404, lambda w: ("/v1/incidents/00000000-0000-4000-8000-000000000000/erasure", None, {"reason": "matrix"})
    ),
    # people: anyone signed in reads themselves, changes their password (here: a wrong current one), signs out
    ("GET", "/v1/me"): Rule("25349.police", 200, lambda w: ("/v1/me", None, None), also_allowed=EVERYONE),
    ("POST", "/v1/sessions/password"): Rule(
        "25349.police", 422, lambda w: ("/v1/sessions/password", None, {"current_password": "not it at all", "new_password": PASSWORD}),
        also_allowed=EVERYONE,
    ),
    ("DELETE", "/v1/sessions/current"): Rule(
        "25349.police", 204, lambda w: ("/v1/sessions/current", None, None), also_allowed=EVERYONE, fresh_token=True
    ),
    # people administration: admins, and a commune's cp_officer for its own commune's units
    ("GET", "/v1/users"): Rule("25349.cp_officer", 200, lambda w: ("/v1/users", {"commune": "25349"}, None)),
    ("POST", "/v1/users"): Rule(
        "25349.cp_officer", 201,
        lambda w: ("/v1/users", None, {"username": "matrix-new", "full_name": "Lê Văn Mới", "kind": "unit", "subject": "25349.justice"}),
    ),
    ("POST", "/v1/users/{username}/disable"): Rule("25349.cp_officer", 200, lambda w: (f"/v1/users/{w.target}/disable", None, None)),
    ("POST", "/v1/users/{username}/enable"): Rule("25349.cp_officer", 200, lambda w: (f"/v1/users/{w.target}/enable", None, None)),
    ("POST", "/v1/users/{username}/reset-password"): Rule(
        "25349.cp_officer", 200, lambda w: (f"/v1/users/{w.target}/reset-password", None, None)
    ),
    # routing
    ("GET", "/v1/agencies/{unit_id}/assignments"): Rule(
        "25349.police", 200, lambda w: ("/v1/agencies/25349.police/assignments", None, None)
    ),
    ("POST", "/v1/agencies/{unit_id}/assignments/{assignment_id}/acknowledge"): Rule(
        "25349.police", 200, lambda w: (f"/v1/agencies/25349.police/assignments/{w.pending_assignment}/acknowledge", None, None)
    ),
    ("POST", "/v1/agencies/{unit_id}/assignments/{assignment_id}/status"): Rule(
        "25349.police",
        200,
        lambda w: (f"/v1/agencies/25349.police/assignments/{w.acknowledged_assignment}/status", None, {"status": "in_progress"}),
    ),
    # The right principal meets the case's state (assignments still open; not closed): past the scope check.
    ("POST", "/v1/incidents/{incident_id}/close"): Rule(
        "25349.cp_officer", 409, lambda w: (f"/v1/incidents/{w.routed_incident_id}/close", None, CLOSE)
    ),
    ("POST", "/v1/incidents/{incident_id}/reopen"): Rule(
        "25349.cp_officer", 409, lambda w: (f"/v1/incidents/{w.routed_incident_id}/reopen", None, {"reason": "new facts"})
    ),
    # The case process (issue 17): the commune's cp_officer records (a second call is an amendment) and reads.
    ("POST", "/v1/incidents/{incident_id}/assessment"): Rule(
        "25349.cp_officer", 200, lambda w: (f"/v1/incidents/{w.routed_incident_id}/assessment", None, ASSESSMENT())
    ),
    # The steps after it, in the order the routes are served (each moves the seeded case on): the chairman's forms are
    # the chairman's alone, the others the cp_officer's.
    ("POST", "/v1/incidents/{incident_id}/emergency-measures"): Rule(
        "25349.cp_officer", 200, lambda w: (f"/v1/incidents/{w.routed_incident_id}/emergency-measures", None, MEASURES())
    ),
    ("POST", "/v1/incidents/{incident_id}/care-decision"): Rule(
        "25349.chairman", 200, lambda w: (f"/v1/incidents/{w.routed_incident_id}/care-decision", None, CARE())
    ),
    ("POST", "/v1/incidents/{incident_id}/detailed-assessment"): Rule(
        "25349.cp_officer", 200, lambda w: (f"/v1/incidents/{w.routed_incident_id}/detailed-assessment", None, DETAILED())
    ),
    ("POST", "/v1/incidents/{incident_id}/plan"): Rule(
        "25349.cp_officer", 200, lambda w: (f"/v1/incidents/{w.routed_incident_id}/plan", None, PLAN())
    ),
    ("POST", "/v1/incidents/{incident_id}/plan-approval"): Rule(
        "25349.chairman", 200, lambda w: (f"/v1/incidents/{w.routed_incident_id}/plan-approval", None, APPROVAL)
    ),
    ("POST", "/v1/incidents/{incident_id}/review"): Rule(
        "25349.cp_officer", 200, lambda w: (f"/v1/incidents/{w.routed_incident_id}/review", None, REVIEW())
    ),
    ("GET", "/v1/communes/{commune_code}/cases"): Rule("25349.cp_officer", 200, lambda w: ("/v1/communes/25349/cases", None, None)),
    ("GET", "/v1/incidents/{incident_id}/process"): Rule(
        "25349.cp_officer", 200, lambda w: (f"/v1/incidents/{w.routed_incident_id}/process", None, None)
    ),
    ("GET", "/v1/incidents/{incident_id}/process/records/{record_id}.{fmt}"): Rule(
        "25349.cp_officer", 200, lambda w: (f"/v1/incidents/{w.recorded_incident_id}/process/records/{w.record_id}.docx", None, None)
    ),
    ("POST", "/v1/subscriptions"): Rule("25349.cp_officer", 201, lambda w: ("/v1/subscriptions", None, SUBSCRIPTION)),
    ("GET", "/v1/subscriptions"): Rule(
        "25349.cp_officer", 200, lambda w: ("/v1/subscriptions", None, None),
        also_allowed=frozenset({"other_commune"}),  # another commune's cp_officer lists its own (none here)
    ),
    ("DELETE", "/v1/subscriptions/{subscription_id}"): Rule(
        "25349.cp_officer", 204, lambda w: (f"/v1/subscriptions/{w.subscription_id}", None, None)
    ),
    ("POST", "/v1/subscriptions/{subscription_id}/rotate"): Rule(
        "25349.cp_officer", 200, lambda w: (f"/v1/subscriptions/{w.subscription_id}/rotate", None, None)
    ),
    ("GET", "/v1/subscriptions/{subscription_id}/deliveries"): Rule(
        "25349.cp_officer", 200, lambda w: (f"/v1/subscriptions/{w.subscription_id}/deliveries", None, None)
    ),
    ("GET", "/v1/units"): Rule("25349.cp_officer", 200, lambda w: ("/v1/units", {"commune": "25349"}, None)),
    ("GET", "/v1/rules"): Rule(
        "25349.cp_officer", 200, lambda w: ("/v1/rules", None, None),
        also_allowed=frozenset({"other_commune"}),  # every commune's cp_officer reads the table that routes its cases
    ),
    ("POST", "/v1/rules"): Rule("admin", 201, lambda w: ("/v1/rules", None, {"text": MATRIX_RULES})),
    # reporting
    ("GET", "/v1/summaries/{org_unit}"): Rule("25349.cp_officer", 200, lambda w: ("/v1/summaries/25349", {"period": "2025"}, None)),
    ("GET", "/v1/summaries/{org_unit}/export"): Rule(
        "25349.cp_officer", 200, lambda w: ("/v1/summaries/25349/export", {"period": "2025", "format": "csv"}, None)
    ),
    ("GET", "/v1/reports/{org_unit}"): Rule("25349.cp_officer", 200, lambda w: ("/v1/reports/25349", None, None)),
    # No revision is generated in this test: the right principal passes the scope check and finds none.
    ("GET", "/v1/reports/{org_unit}/{period}/{revision}"): Rule(
        "25349.cp_officer", 404, lambda w: ("/v1/reports/25349/2025-6M/latest", None, None)
    ),
    ("GET", "/v1/reports/{org_unit}/{period}/{revision}/export"): Rule(
        "25349.cp_officer", 404, lambda w: ("/v1/reports/25349/2025-6M/latest/export", {"format": "csv"}, None)
    ),
    # The report document: read by the summaries' readers (and the chairman); drafted by the cp_officer (409: no figures
    # generated yet), signed by the chairman; each step finds no document here, past the scope check.
    ("GET", "/v1/reports/{org_unit}/{period}/document"): Rule("25349.cp_officer", 200, lambda w: (DOCUMENT, None, None)),
    ("PUT", "/v1/reports/{org_unit}/{period}/document"): Rule(
        "25349.cp_officer", 409, lambda w: (DOCUMENT, None, {"narrative": {"situation": "Tình hình ổn định."}})
    ),
    ("POST", "/v1/reports/{org_unit}/{period}/document/submit"): Rule("25349.cp_officer", 404, lambda w: (f"{DOCUMENT}/submit", None, None)),
    ("POST", "/v1/reports/{org_unit}/{period}/document/return"): Rule("25349.chairman", 404, lambda w: (f"{DOCUMENT}/return", None, None)),
    ("POST", "/v1/reports/{org_unit}/{period}/document/approve"): Rule(
        "25349.chairman", 404, lambda w: (f"{DOCUMENT}/approve", None, {"signer_name": "Nguyễn Quốc Trung"})
    ),
    ("POST", "/v1/reports/{org_unit}/{period}/document/send"): Rule("25349.cp_officer", 404, lambda w: (f"{DOCUMENT}/send", None, None)),
    ("GET", "/v1/consolidated/{org_unit}/{period}"): Rule("admin", 200, lambda w: ("/v1/consolidated/694/2025-6M", {"format": "docx"}, None)),
}


def subjects(right: str) -> dict[str, tuple[str, str]]:
    """The in-scope principal and, beside it, another unit of its commune, a unit of another commune, another district."""
    as_token = ("admin", "admin") if right == "admin" else ("unit", right)
    unit_type = "cp_officer" if right == "admin" else right.split(".")[1]
    neighbour = "25349.health" if unit_type != "health" else "25349.police"
    return {
        "right": as_token,
        "same_commune": ("unit", neighbour if right != "admin" else "25349.cp_officer"),
        "other_commune": ("unit", f"25348.{unit_type}"),
        "other_district": ("district", "695"),
    }


def routes(runtime) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves, included routers flattened; a mount counts as method `*`."""
    return sorted(
        (method, r.path)
        for r in iter_route_contexts(runtime.api.routes)
        if r.path not in PUBLIC
        for method in (getattr(r, "methods", None) or {"*"}) - {"HEAD"}
    )


@pytest.fixture
async def services(tmp_path):
    intake = make_runtime("intake", tmp_path)
    reporting = make_runtime("reporting", tmp_path)
    await migrate(intake)
    await migrate(reporting)
    routing = await routing_runtime(tmp_path)
    yield {"intake": intake, "routing": routing, "reporting": reporting}
    for runtime in (intake, routing, reporting):
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()


async def _police_assignment(runtime, incident_id: str) -> str:
    async with runtime.sessionmaker() as session:
        return (
            await session.execute(
                select(Assignment.id).where(Assignment.incident_id == incident_id, Assignment.unit_id == "25349.police")
            )
        ).scalar_one()


async def _seed(services, tokens: dict) -> World:
    world = World()
    body = incident_payload(description="Access-matrix sentinel: a child hurt at the ferry landing")
    async with client(services["intake"]) as http:
        answer = await http.post("/v1/incidents", json=body, headers=bearer(tokens["25349.police"]))
    world.incident_id = answer.json()["incident_id"]
    async with client(services["intake"]) as http:
        kept, withdrawn = [await http.post("/v1/activities", json=ACTIVITY, headers=bearer(tokens["25349.police"])) for _ in "12"]
    world.activity_id, world.withdrawn_activity_id = kept.json()["activity_id"], withdrawn.json()["activity_id"]
    world.secrets += [body["description"], body["children"][0]["full_name"], body["reporter"]["name"], body["reporter"]["phone"]]
    routing = services["routing"]
    pending, acknowledged = reported(category="sexual_abuse"), reported(category="sexual_abuse")
    for event in (pending, acknowledged):
        await route(routing, event)
        world.secrets += [event.case.description, event.case.children[0].full_name, event.case.reporter.name, event.case.reporter.phone]
    world.routed_incident_id = pending.incident_id
    world.pending_assignment = await _police_assignment(routing, pending.incident_id)
    world.acknowledged_assignment = await _police_assignment(routing, acknowledged.incident_id)
    async with client(routing) as http:
        ack = await http.post(
            f"/v1/agencies/25349.police/assignments/{world.acknowledged_assignment}/acknowledge", headers=bearer(tokens["25349.police"])
        )
    assert ack.status_code == 200
    async with client(routing) as http:
        created = await http.post("/v1/subscriptions", json=SUBSCRIPTION, headers=bearer(tokens["25349.cp_officer"]))
    assert created.status_code == 201, created.text
    world.subscription_id = created.json()["subscription_id"]
    async with client(routing) as http:
        assessed = await http.post(
            f"/v1/incidents/{acknowledged.incident_id}/assessment", json=ASSESSMENT(), headers=bearer(tokens["25349.cp_officer"])
        )
    assert assessed.status_code == 200, assessed.text
    world.recorded_incident_id, world.record_id = acknowledged.incident_id, assessed.json()["records"][0]["record_id"]
    return world


async def _person_token(session, kind: str, subject: str, *, must_change: bool = False) -> tuple[str, str]:
    """A new person acting as (kind, subject) and their personal token: (username, token)."""
    username = f"matrix-{next(_seq)}"
    await people.add_person(session, username, "Phạm Thị Kiểm", kind, subject, PASSWORD, created_by="test",
                            must_change_password=must_change)
    token, _ = await people.issue_personal_token(session, username, 30, by="test")
    return username, token


async def _tokens(runtime) -> dict[str, str]:
    """A person per subject with a good token, and the right person's tokens gone bad (expired, revoked, disabled, idle)."""
    tokens = {}
    engine = make_engine(runtime.common.auth_url())
    async with make_sessionmaker(engine)() as session, session.begin():
        await people.add_person(session, "matrix-target", "Võ Văn Đích", "unit", "25349.justice", PASSWORD, created_by="test")
        for rule in RULES.values():
            for kind, subject in subjects(rule.right).values():
                key = subject if kind != "district" else f"district:{subject}"
                if key not in tokens:
                    tokens[f"user:{key}"], tokens[key] = await _person_token(session, kind, subject)
        for rule in RULES.values():
            kind, subject = subjects(rule.right)["right"]
            username = tokens[f"user:{subject}"]
            tokens[f"expired:{subject}"] = await auth.issue_token(session, kind, subject, username=username, ttl=timedelta(seconds=-1))
            tokens[f"revoked:{subject}"] = revoked = await auth.issue_token(session, kind, subject, username=username)
            await auth.revoke_tokens(session, token=revoked)
            disabled_user, tokens[f"disabled:{subject}"] = await _person_token(session, kind, subject)
            await people.set_state(session, disabled_user, "disabled", "test")
            tokens[f"idle_session:{subject}"] = idle = await auth.issue_token(
                session, kind, subject, username=username, purpose="session", ttl=timedelta(hours=12)
            )
            await session.execute(
                update(auth.api_token).where(auth.api_token.c.token_hash == auth.hash_token(idle))
                .values(last_used_at=utcnow() - timedelta(minutes=31))
            )
        tokens["user:must_change"], tokens["must_change"] = await _person_token(session, "unit", "25349.police", must_change=True)
    await engine.dispose()
    return tokens


async def _fresh(runtime, who: str, rule: Rule, tokens: dict[str, str]) -> str:
    """Another token of the person the matrix calls `who` for this rule."""
    kind, name = subjects(rule.right)[who]
    engine = make_engine(runtime.common.auth_url())
    async with make_sessionmaker(engine)() as session, session.begin():
        token, _ = await people.issue_personal_token(session, tokens[f"user:{name if kind != 'district' else 'district:' + name}"], 1)
    await engine.dispose()
    return token


def _headers(who: str, rule: Rule, tokens: dict[str, str]) -> dict[str, str]:
    subject = subjects(rule.right)["right"][1]
    if who == "none":
        return {}
    if who == "malformed":
        return {"Authorization": f"Token {tokens[subject]}"}
    if who == "unknown":
        return bearer("bv_" + "x" * 43)
    if who in ("expired", "revoked", "disabled", "idle_session"):
        return bearer(tokens[f"{who}:{subject}"])
    kind, name = subjects(rule.right)[who]
    return bearer(tokens[name if kind != "district" else f"district:{name}"])


def _leaks(answer, world: World) -> list[str]:
    """Personal data of a seeded case found in an answer, and any non-empty page of items."""
    found = [s for s in world.secrets if s in answer.text]
    if answer.headers.get("content-type", "").startswith("application/json"):
        body = answer.json()
        if isinstance(body, dict) and body.get("items"):
            found.append("items")
    return found


async def test_every_route_has_a_rule_and_no_other_route_is_open(services):
    served = {(m, p): name for name, runtime in services.items() for m, p in routes(runtime)}
    assert sorted(set(served) - set(RULES)) == [], "a route without an access rule: add one to RULES"
    assert sorted(set(RULES) - set(served)) == [], "a rule for a route no service serves"


async def test_every_route_refuses_bad_tokens_and_other_scopes_and_serves_its_principal(services):
    tokens = await _tokens(services["intake"])
    world = await _seed(services, tokens)
    failures = []
    for name, runtime in services.items():
        async with client(runtime) as http:
            for method, path in routes(runtime):
                rule = RULES.get((method, path))
                if rule is None:
                    failures.append(f"{method} {path}: no rule")
                    continue
                url, params, body = rule.call(world)
                # The right principal last: its call may change the state the others are refused.
                for who in (*UNAUTHENTICATED, *OUT_OF_SCOPE, "right"):
                    headers = _headers(who, rule, tokens)
                    if rule.fresh_token and who not in UNAUTHENTICATED:
                        headers = bearer(await _fresh(runtime, who, rule, tokens))
                    answer = await http.request(method, url, params=params, json=body, headers=headers)
                    where = f"{name} {method} {path} as {who}: {answer.status_code}"
                    if who in UNAUTHENTICATED:
                        if answer.status_code != 401 or answer.headers.get("www-authenticate") != "Bearer":
                            failures.append(f"{where}, expected 401 with WWW-Authenticate")
                    elif who == "right" or who in rule.also_allowed:
                        if answer.status_code != rule.ok and not (who in rule.also_allowed and answer.status_code < 300):
                            failures.append(f"{where}, expected {rule.ok}")
                    else:
                        if answer.status_code not in (403, 404):
                            failures.append(f"{where}, expected 403 or 404")
                    if who != "right" and who not in rule.also_allowed and (leaked := _leaks(answer, world)):
                        failures.append(f"{where} leaks {leaked}")
    assert failures == []


async def test_the_right_principal_does_see_the_case_so_the_leak_check_can_fail(services):
    tokens = await _tokens(services["intake"])
    world = await _seed(services, tokens)
    async with client(services["intake"]) as http:
        mine = await http.get(f"/v1/incidents/{world.incident_id}", headers=bearer(tokens["25349.police"]))
    async with client(services["routing"]) as http:
        inbox = await http.get("/v1/agencies/25349.police/assignments", headers=bearer(tokens["25349.police"]))
    assert _leaks(mine, world) and "items" in _leaks(inbox, world)


async def test_every_read_of_case_details_names_a_person(services):
    tokens = await _tokens(services["intake"])
    world = await _seed(services, tokens)
    async with client(services["intake"]) as http:
        assert (await http.get(f"/v1/incidents/{world.incident_id}", headers=bearer(tokens["25349.police"]))).status_code == 200
    engine = make_engine(services["intake"].common.auth_url())
    async with make_sessionmaker(engine)() as session:
        reads, _ = await audit.query(session, action="read", limit=500)
    await engine.dispose()
    assert {e["service"] for e in reads} == {"intake", "routing"}
    assert all(e["username"] and e["token_id"] for e in reads), reads
    mine = [e for e in reads if e["incident_id"] == world.incident_id]
    assert [(e["username"], e["principal"]) for e in mine] == [(tokens["user:25349.police"], "25349.police")]


async def test_a_one_time_password_must_be_changed_before_anything_else(services):
    tokens = await _tokens(services["intake"])
    world = World(incident_id="0" * 36, routed_incident_id="0" * 36, pending_assignment="0", acknowledged_assignment="0",
                  activity_id="0", withdrawn_activity_id="0", subscription_id="0", recorded_incident_id="0" * 36, record_id="0")
    failures = []
    for name, runtime in services.items():
        async with client(runtime) as http:
            for method, path in routes(runtime):
                if (method, path) in BEFORE_PASSWORD_CHANGE:
                    continue
                url, params, body = RULES[(method, path)].call(world)
                answer = await http.request(method, url, params=params, json=body, headers=bearer(tokens["must_change"]))
                if (answer.status_code, answer.json()) != (403, {"detail": "password must be changed first"}):
                    failures.append(f"{name} {method} {path}: {answer.status_code}")
    assert failures == []
    async with client(services["intake"]) as http:
        me = await http.get("/v1/me", headers=bearer(tokens["must_change"]))
        changed = await http.post("/v1/sessions/password", headers=bearer(tokens["must_change"]),
                                  json={"current_password": PASSWORD, "new_password": "gió mùa đông bắc về rồi"})
    assert me.json()["must_change_password"] is True and changed.status_code == 204
    await asyncio.sleep(1.0)  # every service learns of the change within a second
    async with client(services["reporting"]) as http:
        answer = await http.get("/v1/summaries/25349", params={"period": "2025"}, headers=bearer(tokens["must_change"]))
    assert answer.status_code == 403 and "password" not in answer.text  # the unit's scope now, not the password rule


async def test_the_communes_chairman_reads_the_case_file_another_communes_does_not(services):
    # domain.md section 7: the lead unit, the reporting unit, the commune's cp_officer and chairman see the case file.
    tokens = await _tokens(services["intake"])
    world = await _seed(services, tokens)
    async with client(services["intake"]) as http:
        mine = await http.get(f"/v1/incidents/{world.incident_id}", headers=bearer(tokens["25349.chairman"]))
        other = await http.get(f"/v1/incidents/{world.incident_id}", headers=bearer(tokens["25348.chairman"]))
    assert mine.status_code == 200 and _leaks(mine, world)
    assert other.status_code in (403, 404) and not _leaks(other, world)
