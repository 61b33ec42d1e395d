"""The audit: who read which incident's details, when, through which endpoint, and who signed in,
out or failed to, and who changed people and tokens.

Append-only and kept in the security store beside the tokens; it names the person (or the
machine token), the principal they acted as and incident ids, never a child's data.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from sqlalchemy import Column, Index, Integer, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.auth import Principal, api_token, metadata
from shared.cursor import decode_cursor, encode_cursor
from shared.db import UtcDateTime, utcnow

# The commune's clock: a `since` given without an offset means Vietnam time.
VN = timezone(timedelta(hours=7))

audit_entry = Table(
    "audit_entry",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("principal", String(120), nullable=False),
    Column("action", String(40), nullable=False),
    Column("incident_id", String(36), nullable=True),
    Column("endpoint", String(200), nullable=False),
    Column("service", String(20), nullable=False),
    Column("username", String(64), nullable=True, comment="the person; none for a machine token"),
    Column("token_id", String(36), nullable=True),
    Column("detail", String(300), nullable=True, comment="for people and token events: what changed, from where"),
)
Index("ix_audit_entry_incident", audit_entry.c.incident_id, audit_entry.c.id)
Index("ix_audit_entry_principal", audit_entry.c.principal, audit_entry.c.id)
Index("ix_audit_entry_username", audit_entry.c.username, audit_entry.c.id)


async def record_reads(
    sessionmaker: async_sessionmaker[AsyncSession], service: str, principal: Principal, endpoint: str, incident_ids: Iterable[str]
) -> None:
    """Append one entry per incident read, in its own transaction (a read is logged even if nothing else is written)."""
    now = utcnow()
    rows = [
        {"at": now, "principal": principal.label, "action": "read", "incident_id": i, "endpoint": endpoint, "service": service,
         "username": principal.username, "token_id": principal.token_id}
        for i in dict.fromkeys(incident_ids)
    ]
    if not rows:
        return
    async with sessionmaker() as session, session.begin():
        await session.execute(audit_entry.insert(), rows)


async def record_event(
    session: AsyncSession,
    action: str,
    *,
    principal: str,
    username: str | None,
    token_id: str | None = None,
    detail: str | None = None,
    endpoint: str = "cli",
    service: str = "cli",
    incident_id: str | None = None,
) -> None:
    """Append a sign-in, sign-out, people, token or erasure event (of `incident_id`) in the caller's transaction."""
    await session.execute(
        audit_entry.insert().values(
            at=utcnow(), principal=principal, action=action, incident_id=incident_id, endpoint=endpoint, service=service,
            username=username, token_id=token_id, detail=detail[:300] if detail else None,
        )
    )


def _cursor(entry_id: int) -> str:
    return encode_cursor({"id": entry_id})


def _after(cursor: str | None) -> int | None:
    """The id the page starts after; InvalidCursor when the cursor is not one of ours."""
    return None if cursor is None else decode_cursor(cursor, id=int)["id"]


async def query(
    session: AsyncSession,
    *,
    incident_id: str | None = None,
    principal: str | None = None,
    username: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[dict], str | None]:
    """Entries newest first, filtered; (items, next_cursor)."""
    token_name = select(api_token.c.label).where(api_token.c.id == audit_entry.c.token_id).scalar_subquery()
    stmt = select(audit_entry, token_name.label("token_name")).order_by(audit_entry.c.id.desc()).limit(limit + 1)
    if incident_id:
        stmt = stmt.where(audit_entry.c.incident_id == incident_id)
    if principal:
        stmt = stmt.where(audit_entry.c.principal == principal)
    if username:
        stmt = stmt.where(audit_entry.c.username == username)
    if action:
        stmt = stmt.where(audit_entry.c.action == action)
    if since:
        stmt = stmt.where(audit_entry.c.at >= (since if since.tzinfo else since.replace(tzinfo=VN)))
    after = _after(cursor)
    if after is not None:
        stmt = stmt.where(audit_entry.c.id < after)
    rows = (await session.execute(stmt)).all()
    items = [
        {"at": r.at, "principal": r.principal, "action": r.action, "incident_id": r.incident_id, "endpoint": r.endpoint,
         "service": r.service, "username": r.username, "token_id": r.token_id, "token_name": r.token_name, "detail": r.detail}
        for r in rows[:limit]
    ]
    return items, (_cursor(rows[limit - 1].id) if len(rows) > limit else None)
