"""People's HTTP routes, served by intake: sign in and out, who am I, change my password, administer people."""

from __future__ import annotations

import asyncio
import ipaddress
import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from shared import errors, passwords, people, signin
from shared.auth import Principal, TokenVerifier
from shared.deps import AppRuntime, AuthSession, AuthSessions, AuthUow, Caller, SignedIn, from_state
from shared.ratelimit import RateLimiter

router = APIRouter(prefix="/v1", tags=["people"])
CLIENT_ADDRESS = "x-baove-client-address"


class Person(BaseModel):
    username: str
    full_name: str
    kind: Literal["unit", "district", "admin"]
    subject: str
    label: str
    state: Literal["active", "disabled"]
    must_change_password: bool
    created_at: datetime
    created_by: str
    changed_at: datetime
    changed_by: str


class Me(Person):
    session_expires_at: datetime | None
    token_id: str


class SessionCreate(BaseModel):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1000)


class SessionCreated(BaseModel):
    token: str
    token_id: str
    expires_at: datetime
    idle_timeout_seconds: int
    must_change_password: bool
    person: Person


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=1000)
    new_password: str = Field(max_length=1000)


class PersonCreate(BaseModel):
    username: str = Field(max_length=200)
    full_name: str = Field(max_length=200)
    kind: Literal["unit", "district", "admin"]
    subject: str = Field(max_length=120)


class PersonPage(BaseModel):
    items: list[Person]


class PersonWithPassword(BaseModel):
    person: Person
    one_time_password: str


WRONG = {401: {"description": "wrong username or password (whatever the reason)"}}


async def warm_up() -> None:
    """Make the dummy hash before the first sign-in, so an unknown username never costs a hash more."""
    await asyncio.to_thread(passwords.dummy_hash)


def client_address(request: Request, runtime: AppRuntime) -> str:
    """The browser's address: the console's forwarded header when the caller is a trusted proxy, else the peer."""
    peer = request.client.host if request.client else "unknown"
    forwarded = request.headers.get(CLIENT_ADDRESS)
    if forwarded and _trusted(peer, runtime.common.trusted_proxies):
        try:
            return str(ipaddress.ip_address(forwarded.strip()))
        except ValueError:
            return peer
    return peer


def _trusted(peer: str, listed: str) -> bool:
    try:
        if ipaddress.ip_address(peer).is_loopback:
            return True
    except ValueError:
        return False
    return peer in {p.strip() for p in listed.split(",") if p.strip()}


def _bearer(request: Request) -> str:
    return request.headers.get("authorization", "").partition(" ")[2].strip()


Verifier = Annotated[TokenVerifier, Depends(from_state("verifier"))]


async def forget_token_after(request: Request, verifier: Verifier) -> AsyncIterator[None]:
    """Drop this process's memory of the caller's token once the route is done (a sign-out answers at once here)."""
    try:
        yield
    finally:
        verifier.forget(_bearer(request))


ClientAddress = Annotated[str, Depends(client_address)]
SignInLimiter = Annotated[RateLimiter, Depends(from_state("sign_in_limiter"))]
# Declared before `AuthUow` in a route, it ends after the transaction has committed (function-scoped exits run last-in, first-out).
ForgetToken = Annotated[None, Depends(forget_token_after, scope="function")]


@router.post("/sessions", status_code=201, response_model=SessionCreated,
             responses={**WRONG, 429: {"description": "too many sign-ins from this address; retry after Retry-After seconds"}})
async def sign_in(body: SessionCreate, runtime: AppRuntime, sessions: AuthSessions, address: ClientAddress, limiter: SignInLimiter):
    """Sign in: a personal session token (12 h, refused after 30 min unused). Every failure answers the same."""
    wait = limiter.retry_after(address)
    if wait is not None:
        raise errors.TooMany(f"too many sign-in attempts from this address; retry after {math.ceil(wait)} s", math.ceil(wait))
    common = runtime.common
    outcome = await signin.sign_in(
        sessions, body.username, body.password, address,
        lifetime=timedelta(hours=common.session_hours), idle_timeout=timedelta(minutes=common.session_idle_minutes),
    )
    if outcome.answer is None:
        # Slows guessing, and hides how long each kind of refusal took behind one fixed wait.
        await asyncio.sleep(runtime.settings.sign_in_failure_delay_seconds)
        raise errors.Unauthenticated(signin.WRONG)
    return outcome.answer


@router.get("/me", response_model=Me, responses={401: {"description": "not signed in"}})
async def me(principal: SignedIn, session: AuthSession):
    """The signed-in person (or, for a machine token, its principal) and when the session ends."""
    if principal.username is None:
        raise errors.Forbidden("a machine token is not a person")
    person = await people.get_person(session, principal.username)
    return {**person, "session_expires_at": principal.expires_at, "must_change_password": principal.must_change_password,
            "token_id": principal.token_id}


@router.post("/sessions/password", status_code=204, response_class=Response,
             responses={422: {"description": '{"detail": {"code": ..., "message": ...}}: the rule the new password breaks'}})
async def change_password(body: PasswordChange, principal: SignedIn, _forget: ForgetToken, sessions: AuthSessions):
    """Change one's own password (required first after a one-time password); the session keeps working."""
    # `_forget`: a fifth wrong current password ends this session.
    try:
        await signin.change_password(sessions, principal, body.current_password, body.new_password)
    except passwords.PasswordRefused as exc:
        raise errors.Invalid({"code": exc.code, "message": exc.message}) from None
    return Response(status_code=204)


@router.delete("/sessions/current", status_code=204, response_class=Response)
async def sign_out(principal: SignedIn, _forget: ForgetToken, session: AuthUow):
    """Sign out: this token is revoked at once."""
    await signin.sign_out(session, principal)
    return Response(status_code=204)


# -- administration -------------------------------------------------------------------------


def _may_administer(principal: Principal, kind: str, subject: str) -> bool:
    """Admins: everyone. A commune's cp_officer: people of its own commune's units."""
    if principal.is_admin:
        return True
    return _officer(principal) and kind == "unit" and subject.split(".", 1)[0] == principal.commune_code


def _officer(principal: Principal) -> bool:
    """A person acting as a commune's cp_officer; its machine tokens (a gateway, an integration) administer no one."""
    return principal.unit_type == "cp_officer" and principal.username is not None


async def _target(session, principal: Principal, username: str) -> dict:
    found = await people.get_person(session, username)
    # Someone outside the caller's reach is not found, as a case outside it is not.
    if found is None or not _may_administer(principal, found["kind"], found["subject"]):
        raise errors.NotFound(f"no person with username {people.normalise_username(username)!r}")
    return found


@router.get("/users", response_model=PersonPage)
async def list_users(principal: Caller, session: AuthSession, commune: str | None = Query(None, pattern=r"^\d{5}$")):
    """People, by username: admins see everyone (or one commune's), a cp_officer the people of its commune."""
    if not principal.is_admin:
        if not _officer(principal):
            raise errors.Forbidden("people are administered by admins and the people acting as a commune's cp_officer")
        if commune not in (None, principal.commune_code):
            raise errors.Forbidden(f"a cp_officer administers the people of commune {principal.commune_code} only")
        commune = principal.commune_code
    return {"items": await people.list_people(session, commune)}


@router.post("/users", status_code=201, response_model=PersonWithPassword,
             responses={409: {"description": "username not available"}, 422: {"description": "bad username, name or principal"}})
async def add_user(body: PersonCreate, principal: Caller, session: AuthUow):
    """Add a person; the answer carries their one-time password, shown this once."""
    if not _may_administer(principal, body.kind, body.subject):
        raise errors.Forbidden("a cp_officer adds people of its own commune's units only")
    one_time = await people.add_person(
        session, body.username, body.full_name, body.kind, body.subject, created_by=people.Actor.of(principal, "POST /v1/users")
    )
    person = await people.get_person(session, body.username)
    return {"person": person, "one_time_password": one_time}


async def _set_state(session, principal: Principal, username: str, state: str) -> dict:
    verb = "disable" if state == "disabled" else "enable"
    await _target(session, principal, username)
    return await people.set_state(session, username, state, people.Actor.of(principal, f"POST /v1/users/{{username}}/{verb}"))


@router.post("/users/{username}/disable", response_model=Person, responses={404: {"description": "no such person for this caller"}})
async def disable_user(username: str, principal: Caller, session: AuthUow):
    """Disable a person: their sessions and tokens are refused everywhere within a second."""
    return await _set_state(session, principal, username, "disabled")


@router.post("/users/{username}/enable", response_model=Person, responses={404: {"description": "no such person for this caller"}})
async def enable_user(username: str, principal: Caller, session: AuthUow):
    """Enable a disabled person again (they sign in anew)."""
    return await _set_state(session, principal, username, "active")


@router.post("/users/{username}/reset-password", response_model=PersonWithPassword,
             responses={404: {"description": "no such person for this caller"}})
async def reset_user_password(username: str, principal: Caller, session: AuthUow):
    """A new one-time password for a person, shown this once; their sessions end."""
    await _target(session, principal, username)
    person, one_time = await people.reset_password(
        session, username, people.Actor.of(principal, "POST /v1/users/{username}/reset-password")
    )
    return {"person": person, "one_time_password": one_time}
