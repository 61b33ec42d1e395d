"""Signing in, changing one's own password, signing out: with lockout after repeated failures.

Each writes its audit entries in the transaction of its change. Sign-in and password change take
a sessionmaker, not a session: they hold no connection while an argon2 hash is verified.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import audit, auth, errors, passwords
from shared.db import utcnow
from shared.people import as_person, change_person, hash_off_loop, normalise_username

LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = timedelta(minutes=15)
LOCKOUT_FOR = timedelta(minutes=15)
WRONG = "wrong username or password"
WRONG_CURRENT = "wrong current password"
# Attempts under a username nobody has are kept under this prefix and a digest (no username has a colon).
UNKNOWN_PREFIX = "unknown:"


@dataclass
class SignIn:
    """What a sign-in attempt came to: `answer` for a success, else None (the caller says only WRONG)."""

    answer: dict[str, Any] | None
    reason: str


# One lock per typed username in this process, kept while someone holds it.
_gates: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def _gate(name: str) -> asyncio.Lock:
    lock = _gates.get(name)
    if lock is None:
        lock = _gates[name] = asyncio.Lock()
    return lock


def attempt_key(name: str, exists: bool) -> str:
    """What attempts keep of a typed username: the person's, else a digest (a password typed in the wrong box is never stored)."""
    if exists:
        return name
    return UNKNOWN_PREFIX + hashlib.sha256(f"baove sign-in {name}".encode()).hexdigest()[:24]


async def _serialise(session: AsyncSession, name: str) -> None:
    """On PostgreSQL, one transaction at a time per username across every intake process (SQLite has one writer anyway)."""
    if (await session.connection()).dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"baove.sign_in:{name}"})


async def _locked(session: AsyncSession, key: str, now: datetime) -> tuple[bool, int]:
    """(refused now, failures counted since the window opened); attempts still being verified count as failures."""
    t = auth.sign_in_attempt
    last_clear = (
        await session.execute(select(func.max(t.c.at)).where(t.c.username == key, t.c.outcome.in_(("ok", "reset"))))
    ).scalar()
    since = max(now - LOCKOUT_WINDOW, last_clear) if last_clear else now - LOCKOUT_WINDOW
    last_lockout = (
        await session.execute(select(func.max(t.c.at)).where(t.c.username == key, t.c.outcome == "lockout", t.c.at > since))
    ).scalar()
    if last_lockout is not None and last_lockout + LOCKOUT_FOR > now:
        return True, 0
    failures = (
        await session.execute(
            select(func.count()).where(
                t.c.username == key, t.c.outcome == "failed", t.c.at > max(since, last_lockout or since)
            )
        )
    ).scalar_one()
    return failures >= LOCKOUT_FAILURES, failures


async def sign_in(
    sessionmaker: async_sessionmaker[AsyncSession],
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
    so an unknown, disabled or locked-out username costs the same time as a wrong password.

    A guess is written down as a failure, in its own committed transaction, before its hash is verified
    (and turned into `ok` if right): however many arrive at once, at most LOCKOUT_FAILURES are ever
    verified per window. No connection is held while hashing: token checks share the pool.
    """
    name = normalise_username(username)[:64]
    where = f"from {address or 'unknown address'}"

    async def event(session: AsyncSession, row: Any, action: str, detail: str, token_id: str | None = None) -> None:
        await audit.record_event(
            session, action, principal=auth.principal_label(row.kind, row.subject) if row is not None else "unknown",
            username=row.username if row is not None else None, token_id=token_id, detail=f"{detail} {where}",
            endpoint=endpoint, service=service,
        )

    async with _gate(name), sessionmaker() as session, session.begin():
        await _serialise(session, name)
        row = (await session.execute(select(auth.person).where(auth.person.c.username == name))).first()
        key = attempt_key(name, row is not None)
        locked, failures = await _locked(session, key, utcnow())
        attempt_id = (
            await session.execute(
                auth.sign_in_attempt.insert()
                .values(username=key, at=utcnow(), outcome="locked" if locked else "failed", address=address)
                .returning(auth.sign_in_attempt.c.id)
            )
        ).scalar_one()
        if locked:
            await event(session, row, "sign_in_failed", "locked out")
    usable = row is not None and row.password_hash and not locked
    matches = await asyncio.to_thread(passwords.verify_password, row.password_hash if usable else passwords.dummy_hash(), password)
    if locked:
        return SignIn(None, "locked out")
    reason = (
        "unknown username" if row is None else "disabled" if row.state != "active" else None if matches else "wrong password"
    )
    new_hash = await hash_off_loop(password) if reason is None and passwords.needs_rehash(row.password_hash) else None
    async with sessionmaker() as session, session.begin():
        if reason is not None:
            await event(session, row, "sign_in_failed", reason)
            if failures + 1 == LOCKOUT_FAILURES:
                await session.execute(auth.sign_in_attempt.insert().values(username=key, at=utcnow(), outcome="lockout", address=address))
                await event(session, row, "lockout", f"{failures + 1} failures in {int(LOCKOUT_WINDOW.total_seconds() // 60)} min: "
                            f"refused for {int(LOCKOUT_FOR.total_seconds() // 60)} min")
            return SignIn(None, reason)
        await session.execute(update(auth.sign_in_attempt).where(auth.sign_in_attempt.c.id == attempt_id).values(outcome="ok"))
        if new_hash is not None:
            await change_person(session, name, name, password_hash=new_hash)
        token, token_row = await auth.mint_token(
            session, row.kind, row.subject, ttl=lifetime, label=None, username=name, purpose="session"
        )
        await event(session, row, "sign_in", "session", token_row["id"])
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


async def change_password(
    sessionmaker: async_sessionmaker[AsyncSession], principal: auth.Principal, current: str, new: str
) -> None:
    """The signed-in person changes their own password; PasswordRefused names the rule broken.

    A wrong current password is audited, and the fifth within LOCKOUT_WINDOW ends the session (a stolen
    session must not become a password oracle); a change ends the person's other sessions. No
    connection is held while hashing.
    """
    if principal.username is None:
        raise errors.Forbidden("a machine token has no password")

    async def event(session: AsyncSession, action: str, detail: str) -> None:
        await audit.record_event(
            session, action, principal=principal.label, username=principal.username, token_id=principal.token_id,
            detail=detail, endpoint="POST /v1/sessions/password", service="intake",
        )

    async with sessionmaker() as session:
        row = (await session.execute(select(auth.person).where(auth.person.c.username == principal.username))).one()
    if not await asyncio.to_thread(passwords.verify_password, row.password_hash or passwords.dummy_hash(), current):
        a = audit.audit_entry
        async with sessionmaker() as session, session.begin():
            failures = (await session.execute(select(func.count()).where(
                a.c.token_id == principal.token_id, a.c.action == "password_change_failed",
                a.c.detail == WRONG_CURRENT, a.c.at > utcnow() - LOCKOUT_WINDOW,
            ))).scalar_one()
            await event(session, "password_change_failed", WRONG_CURRENT)
            if failures + 1 >= LOCKOUT_FAILURES:
                await auth.revoke_tokens(session, token_id=principal.token_id)
                await event(session, "token_revoked", f"{failures + 1} wrong current passwords in "
                            f"{int(LOCKOUT_WINDOW.total_seconds() // 60)} min: this session ended")
        raise passwords.PasswordRefused("wrong_current_password")
    try:
        passwords.check_new_password(new, row.username, row.full_name, current)
    except passwords.PasswordRefused as exc:
        async with sessionmaker() as session, session.begin():
            await event(session, "password_change_failed", f"refused: {exc.code}")
        raise
    new_hash = await hash_off_loop(new)
    t = auth.api_token
    async with sessionmaker() as session, session.begin():
        await change_person(session, row.username, row.username, password_hash=new_hash, must_change_password=False)
        ended = (await session.execute(
            update(t).where(t.c.username == row.username, t.c.purpose == "session", t.c.id != principal.token_id,
                            t.c.revoked_at.is_(None)).values(revoked_at=utcnow()).returning(t.c.id)
        )).scalars().all()
        await event(session, "password_changed", f"{len(ended)} other session(s) ended")


async def sign_out(session: AsyncSession, principal: auth.Principal) -> None:
    await auth.revoke_tokens(session, token_id=principal.token_id)
    await audit.record_event(
        session, "sign_out", principal=principal.label, username=principal.username, token_id=principal.token_id,
        endpoint="DELETE /v1/sessions/current", service="intake",
    )
