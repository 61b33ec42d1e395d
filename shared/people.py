"""People: named officials who sign in and act as a unit, a district or admin.

Administration over the token store, each in the caller's transaction: add, list, disable, enable,
reset a password, issue and revoke tokens. Every change is written to the audit in the same
transaction. Signing in, changing one's password and signing out are in `shared.signin`.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared import audit, auth, errors, passwords
from shared.db import utcnow

USERNAME = re.compile(r"^\w[\w.-]{1,63}$")


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


@dataclass(frozen=True)
class Actor:
    """Who administers people: a person or machine token over HTTP, or the command line (`by` names it)."""

    by: str
    principal: str = "cli"
    username: str | None = None
    token_id: str | None = None
    endpoint: str = "cli"
    service: str = "cli"

    @classmethod
    def of(cls, principal: auth.Principal, endpoint: str) -> Actor:
        """The caller of an HTTP route: audited under their username and token, not the person they changed."""
        return cls(principal.username or f"token {principal.token_id}", principal.label, principal.username,
                   principal.token_id, endpoint, "intake")


def _actor(by: Actor | str) -> Actor:
    return by if isinstance(by, Actor) else Actor(by)


async def _administered(session: AsyncSession, action: str, actor: Actor, target: dict[str, Any] | str, what: str = "") -> None:
    """An administrator's act, audited under the actor; the person acted on is named in the detail."""
    name = target if isinstance(target, str) else f"{target['username']} ({target['label']})"
    await audit.record_event(
        session, action, principal=actor.principal, username=actor.username, token_id=actor.token_id,
        detail=f"{name}{what} by {actor.by}", endpoint=actor.endpoint, service=actor.service,
    )


async def hash_off_loop(password: str) -> str:
    """The argon2 hash computed in a thread: the event loop keeps serving meanwhile."""
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
    created_by: Actor | str = "cli",
    *,
    must_change_password: bool | None = None,
) -> str | None:
    """Create a person; returns the one-time password when none was given (it must be changed at first sign-in)."""
    actor = _actor(created_by)
    username, full_name = check_username(username), normalise_name(full_name)
    try:
        auth.check_principal(kind, subject)
    except ValueError as exc:
        raise errors.Invalid(str(exc)) from None
    if await get_person(session, username) is not None:
        raise errors.Conflict("username not available")  # whoever has it, maybe in a commune the caller cannot see
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
            password_hash=await hash_off_loop(password),
            must_change_password=one_time is not None if must_change_password is None else must_change_password,
            created_at=now, created_by=actor.by, changed_at=now, changed_by=actor.by,
        )
    )
    await _administered(session, "user_added", actor, f"{username} ({auth.principal_label(kind, subject)})")
    return one_time


async def list_people(session: AsyncSession, commune: str | None = None) -> list[dict[str, Any]]:
    """Everyone, or the people of one commune's units, by username."""
    stmt = select(auth.person).order_by(auth.person.c.username)
    if commune is not None:
        stmt = stmt.where(auth.person.c.kind == "unit", auth.person.c.subject.like(f"{commune}.%"))
    return [as_person(r) for r in (await session.execute(stmt)).all()]


async def change_person(session: AsyncSession, username: str, by: str, **values: Any) -> None:
    await session.execute(
        update(auth.person).where(auth.person.c.username == username).values(changed_at=utcnow(), changed_by=by, **values)
    )


async def set_state(session: AsyncSession, username: str, state: str, by: Actor | str = "cli") -> dict[str, Any]:
    """Disable (every session and token revoked at once) or enable a person."""
    actor = _actor(by)
    found = await _existing(session, username)
    await change_person(session, found["username"], actor.by, state=state)
    what = ""
    if state == "disabled":
        revoked = await auth.revoke_tokens(session, username=found["username"])
        what = f", {len(revoked)} token(s) revoked,"
    await _administered(session, f"user_{state}", actor, found, what)
    return await _existing(session, found["username"])


async def reset_password(session: AsyncSession, username: str, by: Actor | str = "cli") -> tuple[dict[str, Any], str]:
    """A new one-time password (its sessions and personal tokens revoked, its lockout lifted); the person must change it at sign-in."""
    actor = _actor(by)
    found = await _existing(session, username)
    one_time = passwords.one_time_password()
    await change_person(session, found["username"], actor.by, password_hash=await hash_off_loop(one_time), must_change_password=True)
    await auth.revoke_tokens(session, username=found["username"])  # sessions and personal tokens: whoever knew the old one
    await session.execute(auth.sign_in_attempt.insert().values(username=found["username"], at=utcnow(), outcome="reset"))
    await _administered(session, "password_reset", actor, found)
    return await _existing(session, found["username"]), one_time


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
