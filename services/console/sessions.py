"""Browser sessions: an opaque cookie id -> the person's API token, kept sealed under that id.

The cookie holds 32 random bytes; the store keeps their SHA-256 and the token encrypted with a
keystream derived from them, so neither a stolen cookie-less database nor the logs give a token.
The CSRF token is an HMAC of the same id: nothing more to store, and it dies with the session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from shared.db import utcnow

from .models import browser_session


@dataclass(frozen=True)
class Session:
    """One signed-in browser: who, as which principal, and the token to call the APIs with."""

    cookie_id: str
    token: str
    username: str
    kind: str
    subject: str
    must_change_password: bool
    expires_at: datetime

    @property
    def csrf(self) -> str:
        return csrf_token(self.cookie_id)

    @property
    def unit_id(self) -> str | None:
        return self.subject if self.kind == "unit" else None

    @property
    def commune(self) -> str | None:
        return self.subject.split(".", 1)[0] if self.kind == "unit" else None

    @property
    def unit_type(self) -> str | None:
        return self.subject.split(".")[1] if self.kind == "unit" else None

    @property
    def is_cp_officer(self) -> bool:
        return self.unit_type == "cp_officer"


def _hash(cookie_id: str) -> str:
    return hashlib.sha256(cookie_id.encode()).hexdigest()


def csrf_token(cookie_id: str) -> str:
    return hmac.new(cookie_id.encode(), b"csrf", hashlib.sha256).hexdigest()


def _keystream(cookie_id: str, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hmac.new(cookie_id.encode(), b"token" + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return out[:length]


def _seal(cookie_id: str, token: str) -> bytes:
    # Each key seals exactly one token, so a keystream cipher is safe here.
    data = token.encode()
    return bytes(a ^ b for a, b in zip(data, _keystream(cookie_id, len(data)), strict=True))


def _open(cookie_id: str, sealed: bytes) -> str:
    return bytes(a ^ b for a, b in zip(sealed, _keystream(cookie_id, len(sealed)), strict=True)).decode()


class SessionStore:
    def __init__(self, sessionmaker: async_sessionmaker, lifetime: timedelta) -> None:
        self.sessionmaker = sessionmaker
        self.lifetime = lifetime

    async def create(
        self, token: str, username: str, kind: str, subject: str, must_change_password: bool, api_expires_at: datetime | None
    ) -> Session:
        cookie_id = secrets.token_urlsafe(32)
        now = utcnow()
        expires_at = min(now + self.lifetime, api_expires_at or now + self.lifetime)
        async with self.sessionmaker() as db, db.begin():
            # Sessions past their end are swept here, at sign-in, rather than by a loop of their own.
            await db.execute(delete(browser_session).where(browser_session.c.expires_at < now))
            await db.execute(
                insert(browser_session).values(
                    id_hash=_hash(cookie_id),
                    sealed_token=_seal(cookie_id, token),
                    username=username,
                    kind=kind,
                    subject=subject,
                    must_change_password=must_change_password,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        return Session(cookie_id, token, username, kind, subject, must_change_password, expires_at)

    async def get(self, cookie_id: str | None) -> Session | None:
        """The live session of this cookie, or None (unknown or ended)."""
        if not cookie_id or len(cookie_id) > 100:
            return None
        async with self.sessionmaker() as db:
            row = (await db.execute(select(browser_session).where(browser_session.c.id_hash == _hash(cookie_id)))).first()
        if row is None or row.expires_at <= utcnow():
            return None
        return Session(
            cookie_id, _open(cookie_id, row.sealed_token), row.username, row.kind, row.subject, row.must_change_password, row.expires_at
        )

    async def password_changed(self, cookie_id: str) -> None:
        async with self.sessionmaker() as db, db.begin():
            await db.execute(
                update(browser_session).where(browser_session.c.id_hash == _hash(cookie_id)).values(must_change_password=False)
            )

    async def end(self, cookie_id: str) -> None:
        async with self.sessionmaker() as db, db.begin():
            await db.execute(delete(browser_session).where(browser_session.c.id_hash == _hash(cookie_id)))
