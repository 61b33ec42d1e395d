"""Token authentication: opaque bearer tokens, stored only as SHA-256 hashes, one principal each.

Principals: a unit (`25349.police`), a district office (`district:694`), or an admin.
The token store is the one database the three services share: an identity store, not any
service's domain tables.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from fastapi import HTTPException, Request
from sqlalchemy import Column, Index, MetaData, String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import UtcDateTime, new_id, new_metadata, utcnow
from shared.enums import MULTI_INSTANCE_TYPES, UnitType

PrincipalKind = Literal["unit", "district", "admin"]
TOKEN_PREFIX = "bv_"
UNIT_ID = re.compile(r"^(?P<commune>\d{5})\.(?P<type>[a-z_]+)(?:\.(?P<local>[a-z0-9][a-z0-9-]{0,62}))?$")

metadata = new_metadata()
api_token = Table(
    "api_token",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("subject", String(120), nullable=False),
    Column("label", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
)
Index("ix_api_token_subject", api_token.c.kind, api_token.c.subject)


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


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    subject: str
    token_id: str

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
        """How the principal is named in timelines and audit: never a person's name."""
        return {"unit": self.subject, "district": f"district:{self.subject}", "admin": "admin"}[self.kind]

    def is_cp_officer_of(self, commune_code: str) -> bool:
        return self.kind == "unit" and self.subject == f"{commune_code}.cp_officer"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(
    session: AsyncSession, kind: PrincipalKind, subject: str, *, ttl: timedelta | None = None, label: str | None = None
) -> str:
    """Create a token and return it in clear, the only time it is ever seen."""
    if kind == "unit":
        parse_unit_id(subject)
    elif kind == "district" and not re.fullmatch(r"\d{3}", subject):
        raise ValueError(f"district code {subject!r} must be 3 digits")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    await session.execute(
        api_token.insert().values(
            id=new_id(),
            token_hash=hash_token(token),
            kind=kind,
            subject=subject,
            label=label,
            created_at=now,
            expires_at=now + ttl if ttl else None,
        )
    )
    return token


async def revoke_tokens(session: AsyncSession, *, token: str | None = None, subject: str | None = None) -> int:
    """Revoke one token (given in clear) or every token of a subject; returns how many."""
    stmt = update(api_token).where(api_token.c.revoked_at.is_(None)).values(revoked_at=utcnow())
    if token is not None:
        stmt = stmt.where(api_token.c.token_hash == hash_token(token))
    elif subject is not None:
        stmt = stmt.where(api_token.c.subject == subject)
    else:
        raise ValueError("name a token or a subject to revoke")
    return (await session.execute(stmt)).rowcount


class TokenVerifier:
    """Looks tokens up by hash; remembers answers for a few seconds to keep lookups off the hot path."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], cache_seconds: float = 5.0) -> None:
        self._sessionmaker = sessionmaker
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal | None, datetime | None]] = {}

    async def verify(self, token: str) -> Principal | None:
        digest = hash_token(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is None or now - hit[0] > self._cache_seconds:
            async with self._sessionmaker() as session:
                row = (
                    await session.execute(
                        select(api_token.c.id, api_token.c.kind, api_token.c.subject, api_token.c.expires_at).where(
                            api_token.c.token_hash == digest, api_token.c.revoked_at.is_(None)
                        )
                    )
                ).first()
            principal = Principal(row.kind, row.subject, row.id) if row else None
            hit = (now, principal, row.expires_at if row else None)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = hit
        _, principal, expires_at = hit
        if principal is None or (expires_at is not None and expires_at <= utcnow()):
            return None
        return principal


UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def require_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller's principal, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>'", headers=UNAUTHORIZED)
    principal = await request.app.state.verifier.verify(token.strip())
    if principal is None:
        raise HTTPException(401, "token is unknown, expired or revoked", headers=UNAUTHORIZED)
    request.state.principal = principal
    return principal
