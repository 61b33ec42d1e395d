"""Token authentication: opaque bearer tokens, stored only as SHA-256 hashes, one principal each.

Principals: a unit (`25349.police`), a district office (`district:694`), or an admin.
A token belongs to a person (a sign-in session or a personal API token) or is a named machine
token; every token expires. The token store is the one database the three services share: an
identity store (people, tokens, sign-in attempts, the audit), not any service's domain tables.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from fastapi import Request
from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import errors
from shared.db import UtcDateTime, new_id, new_metadata, utcnow
from shared.enums import MULTI_INSTANCE_TYPES, UnitType

PrincipalKind = Literal["unit", "district", "admin"]
TokenPurpose = Literal["session", "personal", "machine"]
TOKEN_PREFIX = "bv_"
UNIT_ID = re.compile(r"^(?P<commune>\d{5})\.(?P<type>[a-z_]+)(?:\.(?P<local>[a-z0-9][a-z0-9-]{0,62}))?$")
DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 365
# A token's last use is written at most this often: idle timeouts need it, the hot path does not.
LAST_USED_GRANULARITY = timedelta(seconds=60)

metadata = new_metadata()
person = Table(
    "person",
    metadata,
    Column("username", String(64), primary_key=True, comment="NFC, case-folded: unique whatever the case typed"),
    Column("full_name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("subject", String(120), nullable=False),
    Column("state", String(16), nullable=False),
    Column("password_hash", String(200), nullable=True),
    Column("must_change_password", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(120), nullable=False),
    Column("changed_at", UtcDateTime(), nullable=False),
    Column("changed_by", String(120), nullable=False),
)
Index("ix_person_subject", person.c.kind, person.c.subject)

api_token = Table(
    "api_token",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("subject", String(120), nullable=False),
    Column("label", String(200), nullable=True, comment="a machine token's name"),
    Column("username", String(64), ForeignKey("person.username"), nullable=True),
    Column("purpose", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("last_used_at", UtcDateTime(), nullable=False),
)
Index("ix_api_token_subject", api_token.c.kind, api_token.c.subject)
Index("ix_api_token_username", api_token.c.username)

sign_in_attempt = Table(
    "sign_in_attempt",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, comment="the person's username, or 'unknown:' and a digest of a name nobody has"),
    Column("at", UtcDateTime(), nullable=False),
    Column("outcome", String(16), nullable=False, comment="ok | failed | lockout | locked"),
    Column("address", String(64), nullable=True),
)
Index("ix_sign_in_attempt_username", sign_in_attempt.c.username, sign_in_attempt.c.at)


def parse_unit_id(unit_id: str) -> tuple[str, UnitType, str | None]:
    """Split `25349.school.th-a` into (commune, type, local id); ValueError naming the fault."""
    m = UNIT_ID.match(unit_id)
    if not m:
        raise ValueError(f"unit id {unit_id!r} is not of the form COMMUNE.TYPE or COMMUNE.TYPE.LOCAL_ID")
    try:
        unit_type = UnitType(m["type"])
    except ValueError:
        raise ValueError(f"unit id {unit_id!r} has unknown unit type {m['type']!r}") from None
    if (unit_type in MULTI_INSTANCE_TYPES) != (m["local"] is not None):
        need = "needs" if unit_type in MULTI_INSTANCE_TYPES else "takes no"
        raise ValueError(f"unit id {unit_id!r}: a {unit_type} unit {need} a local id")
    return m["commune"], unit_type, m["local"]


def principal_label(kind: str, subject: str) -> str:
    """How a principal is named in timelines and audit: never a person's name."""
    return {"unit": subject, "district": f"district:{subject}", "admin": "admin"}[kind]


def check_principal(kind: str, subject: str) -> None:
    """ValueError naming the fault when (kind, subject) is not a principal."""
    if kind == "unit":
        parse_unit_id(subject)
    elif kind == "district":
        if not re.fullmatch(r"\d{3}", subject):
            raise ValueError(f"district code {subject!r} must be 3 digits")
    elif kind == "admin":
        if subject != "admin":
            raise ValueError("an admin's subject is 'admin'")
    else:
        raise ValueError(f"kind {kind!r} is not one of unit, district, admin")


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    subject: str
    token_id: str
    username: str | None = None
    token_name: str | None = None
    must_change_password: bool = False
    purpose: TokenPurpose = "machine"
    expires_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    @property
    def unit_id(self) -> str | None:
        return self.subject if self.kind == "unit" else None

    @property
    def commune_code(self) -> str | None:
        return self.subject.split(".", 1)[0] if self.kind == "unit" else None

    @property
    def unit_type(self) -> str | None:
        return self.subject.split(".")[1] if self.kind == "unit" else None

    @property
    def district_code(self) -> str | None:
        return self.subject if self.kind == "district" else None

    @property
    def label(self) -> str:
        """How the principal is named in timelines: never a person's name."""
        return principal_label(self.kind, self.subject)

    def is_cp_officer_of(self, commune_code: str) -> bool:
        return self.kind == "unit" and self.subject == f"{commune_code}.cp_officer"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_lifetime(days: int | None) -> timedelta:
    """A personal or machine token's lifetime: 90 days unless told, at most 365."""
    days = DEFAULT_TOKEN_DAYS if days is None else days
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise ValueError(f"a token lives 1 to {MAX_TOKEN_DAYS} days, not {days}")
    return timedelta(days=days)


async def issue_token(
    session: AsyncSession,
    kind: PrincipalKind,
    subject: str,
    *,
    ttl: timedelta | None = None,
    label: str | None = None,
    username: str | None = None,
    purpose: TokenPurpose | None = None,
) -> str:
    """Create a token and return it in clear, the only time it is ever seen.

    It belongs to a person (`username`) or is a machine token named by `label`; it expires after
    `ttl` (90 days when not given, at most 365).
    """
    check_principal(kind, subject)
    if ttl is not None and ttl > timedelta(days=MAX_TOKEN_DAYS):
        raise ValueError(f"a token lives at most {MAX_TOKEN_DAYS} days, not {ttl.days}")
    if username is None and not (label and label.strip()):
        raise ValueError("a token belongs to a person (--user) or is a machine token with a name (--name)")
    token, _ = await mint_token(
        session, kind, subject, ttl=ttl or timedelta(days=DEFAULT_TOKEN_DAYS), label=label.strip() if label else None,
        username=username, purpose=purpose or ("personal" if username else "machine"),
    )
    return token


async def mint_token(session: AsyncSession, kind: str, subject: str, *, ttl: timedelta, label: str | None,
                     username: str | None, purpose: str) -> tuple[str, dict]:
    """Store a new token as given (callers check the principal and the rules); (token in clear, its row)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = {
        "id": new_id(), "token_hash": hash_token(token), "kind": kind, "subject": subject, "label": label,
        "username": username, "purpose": purpose, "created_at": now, "expires_at": now + ttl, "last_used_at": now,
    }
    await session.execute(api_token.insert().values(**row))
    return token, row


async def revoke_tokens(
    session: AsyncSession,
    *,
    token: str | None = None,
    token_id: str | None = None,
    subject: str | None = None,
    username: str | None = None,
    purpose: TokenPurpose | None = None,
) -> list[str]:
    """Revoke one token (given in clear or by id), every token of a subject or of a person; the ids revoked."""
    stmt = update(api_token).where(api_token.c.revoked_at.is_(None)).values(revoked_at=utcnow())
    if token is not None:
        stmt = stmt.where(api_token.c.token_hash == hash_token(token))
    elif token_id is not None:
        stmt = stmt.where(api_token.c.id == token_id)
    elif subject is not None:
        stmt = stmt.where(api_token.c.subject == subject)
    elif username is not None:
        stmt = stmt.where(api_token.c.username == username)
    else:
        raise ValueError("name a token, a subject or a person to revoke")
    if purpose is not None:
        stmt = stmt.where(api_token.c.purpose == purpose)
    return list((await session.execute(stmt.returning(api_token.c.id))).scalars())


class TokenVerifier:
    """Looks tokens up by hash with their person's state; remembers answers for under a second.

    The short memory keeps one lookup per token per `cache_seconds` off the hot path while a
    revocation or a disabled person is refused everywhere within a second.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        cache_seconds: float = 0.5,
        idle_timeout: timedelta = timedelta(minutes=30),
    ) -> None:
        self._sessionmaker = sessionmaker
        self._cache_seconds = cache_seconds
        self._idle_timeout = idle_timeout
        self._cache: dict[str, tuple[float, dict | None]] = {}

    def forget(self, token: str) -> None:
        """Drop what this process remembers of a token (sign-out answers at once here)."""
        self._cache.pop(hash_token(token), None)

    async def verify(self, token: str) -> Principal | None:
        digest = hash_token(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is None or now - hit[0] > self._cache_seconds:
            hit = (now, await self._lookup(digest))
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = hit
        row = hit[1]
        if row is None:
            return None
        at = utcnow()
        if row["expires_at"] <= at:
            return None
        if row["purpose"] == "session" and row["last_used_at"] + self._idle_timeout <= at:
            return None
        if row["last_used_at"] + LAST_USED_GRANULARITY <= at:
            row["last_used_at"] = at
            await self._touch(row["id"], at)
        return Principal(
            row["kind"], row["subject"], row["id"], username=row["username"], token_name=row["label"],
            must_change_password=bool(row["must_change_password"]), purpose=row["purpose"], expires_at=row["expires_at"],
        )

    async def _lookup(self, digest: str) -> dict | None:
        async with self._sessionmaker() as session:
            row = (
                await session.execute(
                    select(
                        api_token.c.id, api_token.c.kind, api_token.c.subject, api_token.c.label, api_token.c.username,
                        api_token.c.purpose, api_token.c.expires_at, api_token.c.last_used_at,
                        person.c.state, person.c.must_change_password,
                    )
                    .select_from(api_token.outerjoin(person, person.c.username == api_token.c.username))
                    .where(api_token.c.token_hash == digest, api_token.c.revoked_at.is_(None))
                )
            ).first()
        if row is None or (row.username is not None and row.state != "active"):
            return None
        return row._asdict()

    async def token_id(self, token: str) -> str | None:
        """The id of a token of ours, revoked or expired too (to audit a refusal by id, never the token); None if unknown."""
        async with self._sessionmaker() as session:
            return (await session.execute(select(api_token.c.id).where(api_token.c.token_hash == hash_token(token)))).scalar()

    async def _touch(self, token_id: str, at: datetime) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(update(api_token).where(api_token.c.id == token_id).values(last_used_at=at))


MUST_CHANGE = "password must be changed first"


async def require_signed_in(request: Request) -> Principal:
    """FastAPI dependency: the caller's principal even before a one-time password is changed, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthenticated("missing bearer token: send 'Authorization: Bearer <token>'")
    principal = await request.app.state.verifier.verify(token.strip())
    if principal is None:
        raise errors.Unauthenticated("token is unknown, expired or revoked")
    request.state.principal = principal
    return principal


async def require_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller's principal, or 401; 403 while their one-time password is unchanged."""
    principal = await require_signed_in(request)
    if principal.must_change_password:
        raise errors.Forbidden(MUST_CHANGE)
    return principal
