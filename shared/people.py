"""People: named officials who sign in and act as a unit, a district or admin.

Use cases over the token store, each in the caller's transaction: add, list, disable, enable,
reset a password, sign in, change a password, sign out, issue a personal token. Every change
and every sign-in (good, failed, locked out) is written to the audit in the same transaction.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared import audit, auth, errors, passwords
from shared.db import utcnow

USERNAME = re.compile(r"^\w[\w.-]{1,63}$")
LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = timedelta(minutes=15)
LOCKOUT_FOR = timedelta(minutes=15)
WRONG = "wrong username or password"


def normalise_username(raw: str) -> str:
    """NFC and case-folded: `Lan.Nguyen` and `lan.nguyen` are one person."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", raw.strip()).casefold())


def check_username(raw: str) -> str:
    username = normalise_username(raw)
    if not USERNAME.fullmatch(username):
        raise errors.Invalid(
            f"username {raw!r} must be 2 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit"
        )
    return username


def normalise_name(raw: str) -> str:
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if not name or len(name) > 200:
        raise errors.Invalid("full name must be 1 to 200 characters")
    return name


def as_person(row: Any) -> dict[str, Any]:
    """The Person of the HTTP interface."""
    return {
        "username": row.username,
        "full_name": row.full_name,
        "kind": row.kind,
        "subject": row.subject,
        "label": auth.principal_label(row.kind, row.subject),
        "state": row.state,
        "must_change_password": bool(row.must_change_password),
        "created_at": row.created_at,
        "created_by": row.created_by,
        "changed_at": row.changed_at,
        "changed_by": row.changed_by,
    }


async def _hash(password: str) -> str:
    return await asyncio.to_thread(passwords.hash_password, password)


async def get_person(session: AsyncSession, username: str) -> dict[str, Any] | None:
    row = (await session.execute(select(auth.person).where(auth.person.c.username == normalise_username(username)))).first()
    return as_person(row) if row else None


async def _existing(session: AsyncSession, username: str) -> dict[str, Any]:
    found = await get_person(session, username)
    if found is None:
        raise errors.NotFound(f"no person with username {normalise_username(username)!r}")
    return found


async def add_person(
    session: AsyncSession,
    username: str,
    full_name: str,
    kind: str,
    subject: str,
    password: str | None = None,
    created_by: str = "cli",
    *,
    must_change_password: bool | None = None,
) -> str | None:
    """Create a person; returns the one-time password when none was given (it must be changed at first sign-in)."""
    username, full_name = check_username(username), normalise_name(full_name)
    try:
        auth.check_principal(kind, subject)
    except ValueError as exc:
        raise errors.Invalid(str(exc)) from None
    if await get_person(session, username) is not None:
        raise errors.Conflict(f"username {username!r} is taken")
    one_time = None
    if password is None:
        one_time = password = passwords.one_time_password()
    else:
        try:
            passwords.check_new_password(password, username, full_name)
        except passwords.PasswordRefused as exc:
            raise errors.Invalid({"code": exc.code, "message": exc.message}) from None
    now = utcnow()
    await session.execute(
        auth.person.insert().values(
            username=username, full_name=full_name, kind=kind, subject=subject, state="active",
            password_hash=await _hash(password),
            must_change_password=one_time is not None if must_change_password is None else must_change_password,
            created_at=now, created_by=created_by, changed_at=now, changed_by=created_by,
        )
    )
    await audit.record_event(
        session, "user_added", principal=auth.principal_label(kind, subject), username=username, detail=f"by {created_by}"
    )
    return one_time


async def list_people(session: AsyncSession, commune: str | None = None) -> list[dict[str, Any]]:
    """Everyone, or the people of one commune's units, by username."""
    stmt = select(auth.person).order_by(auth.person.c.username)
    if commune is not None:
        stmt = stmt.where(auth.person.c.kind == "unit", auth.person.c.subject.like(f"{commune}.%"))
    return [as_person(r) for r in (await session.execute(stmt)).all()]


async def _change(session: AsyncSession, username: str, by: str, **values: Any) -> None:
    await session.execute(
        update(auth.person).where(auth.person.c.username == username).values(changed_at=utcnow(), changed_by=by, **values)
    )


async def set_state(session: AsyncSession, username: str, state: str, by: str = "cli") -> dict[str, Any]:
    """Disable (every session and token revoked at once) or enable a person."""
    found = await _existing(session, username)
    await _change(session, found["username"], by, state=state)
    detail = f"by {by}"
    if state == "disabled":
        revoked = await auth.revoke_tokens(session, username=found["username"])
        detail += f"; {len(revoked)} token(s) revoked"
    await audit.record_event(session, f"user_{state}", principal=found["label"], username=found["username"], detail=detail)
    return await _existing(session, found["username"])


async def reset_password(session: AsyncSession, username: str, by: str = "cli") -> tuple[dict[str, Any], str]:
    """A new one-time password (its sessions revoked, its lockout lifted); the person must change it at sign-in."""
    found = await _existing(session, username)
    one_time = passwords.one_time_password()
    await _change(session, found["username"], by, password_hash=await _hash(one_time), must_change_password=True)
    await auth.revoke_tokens(session, username=found["username"], purpose="session")
    await session.execute(auth.sign_in_attempt.insert().values(username=found["username"], at=utcnow(), outcome="reset"))
    await audit.record_event(session, "password_reset", principal=found["label"], username=found["username"], detail=f"by {by}")
    return await _existing(session, found["username"]), one_time


# -- sign-in -------------------------------------------------------------------------------


@dataclass
class SignIn:
    """What a sign-in attempt came to: `answer` for a success, else None (the caller says only WRONG)."""

    answer: dict[str, Any] | None
    reason: str


async def _locked(session: AsyncSession, username: str, now: datetime) -> tuple[bool, int]:
    """(locked now, failures counted since the window opened)."""
    t = auth.sign_in_attempt
    last_clear = (
        await session.execute(select(func.max(t.c.at)).where(t.c.username == username, t.c.outcome.in_(("ok", "reset"))))
    ).scalar()
    since = max(now - LOCKOUT_WINDOW, last_clear) if last_clear else now - LOCKOUT_WINDOW
    last_lockout = (
        await session.execute(select(func.max(t.c.at)).where(t.c.username == username, t.c.outcome == "lockout", t.c.at > since))
    ).scalar()
    if last_lockout is not None and last_lockout + LOCKOUT_FOR > now:
        return True, 0
    failures = (
        await session.execute(
            select(func.count()).where(
                t.c.username == username, t.c.outcome == "failed", t.c.at > max(since, last_lockout or since)
            )
        )
    ).scalar_one()
    return False, failures


async def sign_in(
    session: AsyncSession,
    username: str,
    password: str,
    address: str | None,
    *,
    lifetime: timedelta,
    idle_timeout: timedelta,
    service: str = "intake",
    endpoint: str = "POST /v1/sessions",
) -> SignIn:
    """Check a username and password; on success a new session token. Every path verifies one argon2 hash,
    so an unknown, disabled or locked-out username costs the same time as a wrong password."""
    name = normalise_username(username)[:64]
    now = utcnow()
    row = (await session.execute(select(auth.person).where(auth.person.c.username == name))).first()
    locked, failures = await _locked(session, name, now)
    stored = row.password_hash if row is not None and row.password_hash else passwords.dummy_hash()
    matches = await asyncio.to_thread(passwords.verify_password, stored, password)
    label = auth.principal_label(row.kind, row.subject) if row is not None else "unknown"
    where = f"from {address or 'unknown address'}"

    async def attempt(outcome: str) -> None:
        await session.execute(auth.sign_in_attempt.insert().values(username=name, at=now, outcome=outcome, address=address))

    async def event(action: str, detail: str, token_id: str | None = None) -> None:
        await audit.record_event(
            session, action, principal=label, username=name, token_id=token_id, detail=f"{detail} {where}",
            endpoint=endpoint, service=service,
        )

    if locked:
        await attempt("locked")
        await event("sign_in_failed", "locked out")
        return SignIn(None, "locked out")
    reason = (
        "unknown username" if row is None else "disabled" if row.state != "active" else None if matches else "wrong password"
    )
    if reason is not None:
        await attempt("failed")
        await event("sign_in_failed", reason)
        if failures + 1 >= LOCKOUT_FAILURES:
            await attempt("lockout")
            await event("lockout", f"{failures + 1} failures in {int(LOCKOUT_WINDOW.total_seconds() // 60)} min: refused for "
                        f"{int(LOCKOUT_FOR.total_seconds() // 60)} min")
        return SignIn(None, reason)
    await attempt("ok")
    if passwords.needs_rehash(row.password_hash):
        await _change(session, name, name, password_hash=await _hash(password))
    token, token_row = await auth.mint_token(
        session, row.kind, row.subject, ttl=lifetime, label=None, username=name, purpose="session"
    )
    await event("sign_in", "session", token_row["id"])
    return SignIn(
        {
            "token": token,
            "token_id": token_row["id"],
            "expires_at": token_row["expires_at"],
            "idle_timeout_seconds": int(idle_timeout.total_seconds()),
            "must_change_password": bool(row.must_change_password),
            "person": as_person(row),
        },
        "ok",
    )


async def change_password(session: AsyncSession, principal: auth.Principal, current: str, new: str) -> None:
    """The signed-in person changes their own password; PasswordRefused names the rule broken."""
    if principal.username is None:
        raise errors.Forbidden("a machine token has no password")
    row = (await session.execute(select(auth.person).where(auth.person.c.username == principal.username))).one()
    if not await asyncio.to_thread(passwords.verify_password, row.password_hash or passwords.dummy_hash(), current):
        raise passwords.PasswordRefused("wrong_current_password")
    passwords.check_new_password(new, row.username, row.full_name, current)
    await _change(session, row.username, row.username, password_hash=await _hash(new), must_change_password=False)
    await audit.record_event(
        session, "password_changed", principal=principal.label, username=row.username, token_id=principal.token_id,
        endpoint="POST /v1/sessions/password", service="intake",
    )


async def sign_out(session: AsyncSession, principal: auth.Principal) -> None:
    await auth.revoke_tokens(session, token_id=principal.token_id)
    await audit.record_event(
        session, "sign_out", principal=principal.label, username=principal.username, token_id=principal.token_id,
        endpoint="DELETE /v1/sessions/current", service="intake",
    )


# -- tokens --------------------------------------------------------------------------------


async def issue_personal_token(session: AsyncSession, username: str, days: int | None, by: str = "cli") -> tuple[str, str]:
    """A personal API token acting as the person's principal; (token in clear, token id)."""
    found = await _existing(session, username)
    if found["state"] != "active":
        raise errors.Conflict(f"{found['username']} is disabled: enable them first")
    try:
        ttl = auth.token_lifetime(days)
    except ValueError as exc:
        raise errors.Invalid(str(exc)) from None
    token, row = await auth.mint_token(
        session, found["kind"], found["subject"], ttl=ttl, label=None, username=found["username"], purpose="personal"
    )
    await audit.record_event(
        session, "token_issued", principal=found["label"], username=found["username"], token_id=row["id"],
        detail=f"personal, expires {row['expires_at'].date().isoformat()}, by {by}",
    )
    return token, row["id"]


async def issue_machine_token(
    session: AsyncSession, kind: str, subject: str, name: str, days: int | None, by: str = "cli"
) -> tuple[str, str]:
    """A named machine token (a hotline gateway, an integration); (token in clear, token id)."""
    if not name.strip():
        raise errors.Invalid("a machine token needs a name, e.g. --name \"hotline gateway\"")
    try:
        auth.check_principal(kind, subject)
        ttl = auth.token_lifetime(days)
    except ValueError as exc:
        raise errors.Invalid(str(exc)) from None
    token, row = await auth.mint_token(
        session, kind, subject, ttl=ttl, label=" ".join(name.split()), username=None, purpose="machine"
    )
    await audit.record_event(
        session, "token_issued", principal=auth.principal_label(kind, subject), username=None, token_id=row["id"],
        detail=f"machine {row['label']!r}, expires {row['expires_at'].date().isoformat()}, by {by}",
    )
    return token, row["id"]


async def list_tokens(session: AsyncSession, username: str | None = None) -> list[dict[str, Any]]:
    """Tokens not revoked and not expired, newest first (never the tokens themselves)."""
    t = auth.api_token
    stmt = (
        select(t.c.id, t.c.kind, t.c.subject, t.c.label, t.c.username, t.c.purpose, t.c.created_at, t.c.expires_at, t.c.last_used_at)
        .where(t.c.revoked_at.is_(None), t.c.expires_at > utcnow())
        .order_by(t.c.created_at.desc())
    )
    if username is not None:
        stmt = stmt.where(t.c.username == normalise_username(username))
    return [r._asdict() for r in (await session.execute(stmt)).all()]


async def revoke(session: AsyncSession, by: str = "cli", **which: str) -> list[str]:
    """Revoke tokens (see auth.revoke_tokens) and audit each under its person or machine token."""
    t = auth.api_token
    ids = await auth.revoke_tokens(session, **which)
    rows = (await session.execute(select(t.c.id, t.c.kind, t.c.subject, t.c.username).where(t.c.id.in_(ids)))).all() if ids else []
    for row in rows:
        await audit.record_event(session, "token_revoked", principal=auth.principal_label(row.kind, row.subject),
                                 username=row.username, token_id=row.id, detail=f"by {by}")
    return ids
