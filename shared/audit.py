"""The audit: who read which incident's details, when, through which endpoint, and who signed in,
out or failed to, and who changed people and tokens.

Append-only and kept in the security store beside the tokens; it names the person (or the
machine token), the principal they acted as and incident ids, never a child's data.

Tamper-evident: each entry stores the SHA-256 of the entry before it (`prev_hash`) and of its own content
with that link (`entry_hash`), so changing, removing or slipping in an entry breaks the chain at that
point (`verify`, `baove audit verify`). Writers append one at a time: on PostgreSQL under a
transaction-scoped advisory lock, on SQLite under the database's one write lock (see `_append`).

Kept for a retention period (`prune`): the oldest entries go, and an `audit_pruned` entry, chained like any
other, names the hash of the last one removed; `verify` starts the chain there, so removing any more is seen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import Column, Index, Integer, String, Table, bindparam, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.auth import Principal, api_token, metadata
from shared.cursor import decode_cursor, encode_cursor
from shared.db import UtcDateTime, on_postgresql, utcnow
from shared.ratelimit import RateLimiter

log = logging.getLogger("baove.audit")

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
    Column("prev_hash", String(64), nullable=False, comment="entry_hash of the entry before (64 zeros for the first)"),
    Column("entry_hash", String(64), nullable=False, comment="SHA-256 of prev_hash and this entry's content (shared.audit.entry_digest)"),
)
Index("ix_audit_entry_incident", audit_entry.c.incident_id, audit_entry.c.id)
Index("ix_audit_entry_principal", audit_entry.c.principal, audit_entry.c.id)
Index("ix_audit_entry_username", audit_entry.c.username, audit_entry.c.id)


GENESIS = "0" * 64
# The fields an entry's hash covers, in this order (the id is not among them: the chain itself orders the entries).
HASHED = ("at", "principal", "action", "incident_id", "endpoint", "service", "username", "token_id", "detail")


def entry_digest(prev_hash: str, entry) -> str:
    """SHA-256 over a canonical serialization: a JSON array of the link and the hashed fields, `at` in UTC to the microsecond."""
    get = entry.get if isinstance(entry, dict) else lambda name: getattr(entry, name)
    values = [prev_hash] + [
        get(name).astimezone(UTC).isoformat(timespec="microseconds") if name == "at" else get(name) for name in HASHED
    ]
    return hashlib.sha256(json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def _chained(prev_hash: str, rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        digest = entry_digest(prev_hash, row)
        out.append({**row, "prev_hash": prev_hash, "entry_hash": digest})
        prev_hash = digest
    return out


async def _head(session: AsyncSession, before: int | None = None) -> str:
    stmt = select(audit_entry.c.entry_hash).order_by(audit_entry.c.id.desc()).limit(1)
    if before is not None:
        stmt = stmt.where(audit_entry.c.id < before)
    return (await session.execute(stmt)).scalar() or GENESIS


async def _lock_chain(session: AsyncSession) -> None:
    """PostgreSQL: serialize with every appender until the transaction ends (SQLite: its write lock does it)."""
    if on_postgresql(session):
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('baove.audit_chain'))"))


async def _append(session: AsyncSession, rows: list[dict]) -> None:
    """Append entries to the chain in the caller's transaction; two writers never link to the same entry.

    PostgreSQL: a transaction-scoped advisory lock serializes the appenders (lock, read the head, insert; the lock
    ends with the transaction), and needs no UPDATE on the audit: a service's role has none.
    SQLite: the insert takes the database's single write lock first, then the entries are linked to the head
    under it (no roles there, so the update is allowed); a head read before the insert could be stale.
    """
    for row in rows:
        if row.get("detail"):
            row["detail"] = row["detail"][:300]
    if on_postgresql(session):
        await _lock_chain(session)
        await session.execute(audit_entry.insert(), _chained(await _head(session), rows))
        return
    await session.execute(audit_entry.insert(), [{**row, "prev_hash": "", "entry_hash": ""} for row in rows])
    # Under the write lock since that insert, so the newest len(rows) entries are ours and all before them are
    # committed: one query gives ours and the head before them, one statement links them all.
    newest = (await session.execute(select(audit_entry).order_by(audit_entry.c.id.desc()).limit(len(rows) + 1))).all()
    mine, prev = newest[: len(rows)][::-1], (newest[len(rows)].entry_hash if len(newest) > len(rows) else GENESIS)
    links = []
    for row in mine:
        digest = entry_digest(prev, row)
        links.append({"entry_id": row.id, "link": prev, "digest": digest})
        prev = digest
    await session.execute(
        update(audit_entry).where(audit_entry.c.id == bindparam("entry_id")).values(prev_hash=bindparam("link"), entry_hash=bindparam("digest")),
        links,
    )


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
        await _append(session, rows)


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
    await _append(session, [{
        "at": utcnow(), "principal": principal, "action": action, "incident_id": incident_id, "endpoint": endpoint[:200],
        "service": service, "username": username, "token_id": token_id, "detail": detail,
    }])


async def record(sessionmaker: async_sessionmaker[AsyncSession], action: str, **entry) -> None:
    """`record_event` in a transaction of its own (a refusal or a read is logged though nothing else is written)."""
    async with sessionmaker() as session, session.begin():
        await record_event(session, action, **entry)


PRUNED = "audit_pruned"
_ANCHOR = re.compile(r"the chain starts after ([0-9a-f]{64})")


def pruned_detail(removed: int, cutoff: datetime, last_id: int, anchor: str) -> str:
    """The `audit_pruned` entry's detail: what went, and the hash the first entry kept links to (read by `verify`)."""
    return (f"retention: {removed} entries written before {cutoff.astimezone(UTC).isoformat(timespec='seconds')} removed "
            f"(ids up to {last_id}); the chain starts after {anchor}")


async def prune(
    session: AsyncSession, cutoff: datetime, *, principal: str = "retention", service: str = "cli", endpoint: str = "retention"
) -> int:
    """Remove the entries written before `cutoff` that open the chain (a prefix: the oldest, never the newest) and
    append an `audit_pruned` entry naming the hash of the last one removed, in the caller's transaction.

    Returns how many went (0: nothing was due, nothing written). Only the store's owner may delete on PostgreSQL
    with per-service roles (shared/auth_roles.py): another role's attempt fails and changes nothing.
    """
    oldest = (await session.execute(select(audit_entry.c.at).order_by(audit_entry.c.id).limit(1))).scalar()
    if oldest is None or oldest >= cutoff:
        return 0  # the usual pass: by the primary key alone, no scan of `at` (which has no index)
    await _lock_chain(session)
    newer = (await session.execute(select(func.min(audit_entry.c.id)).where(audit_entry.c.at >= cutoff))).scalar()
    # The newest entry always stays (even when older than the cutoff): the pruning entry links to it.
    first_kept = newer if newer is not None else (await session.execute(select(func.max(audit_entry.c.id)))).scalar()
    if first_kept is None:
        return 0
    last = (await session.execute(
        select(audit_entry.c.id, audit_entry.c.entry_hash).where(audit_entry.c.id < first_kept).order_by(audit_entry.c.id.desc()).limit(1)
    )).first()
    if last is None:
        return 0
    removed = (await session.execute(delete(audit_entry).where(audit_entry.c.id <= last.id))).rowcount
    await record_event(
        session, PRUNED, principal=principal, username=None, endpoint=endpoint, service=service,
        detail=pruned_detail(removed, cutoff, last.id, last.entry_hash),
    )
    log.info("audit pruned", extra={"removed": removed, "last_id": last.id})
    return removed


async def _anchor(session: AsyncSession) -> str | None:
    """The hash the chain starts after, as the newest `audit_pruned` entry names it; None if the audit was never pruned."""
    detail = (await session.execute(
        select(audit_entry.c.detail).where(audit_entry.c.action == PRUNED).order_by(audit_entry.c.id.desc()).limit(1)
    )).scalar()
    found = _ANCHOR.search(detail or "")
    return found.group(1) if found else None


async def verify(session: AsyncSession, batch: int = 2000) -> tuple[int, str | None]:
    """Walk the chain oldest first: (entries checked, None) when whole, else (entries intact before it, what is wrong).

    The first entry kept links to 64 zeros, or to the last entry a retention run removed, which the newest
    `audit_pruned` entry names (itself in the chain, so it cannot be changed unseen): removing more is seen.
    """
    count, prev, after = 0, None, 0
    anchor = await _anchor(session)
    while True:
        rows = (await session.execute(
            select(audit_entry).where(audit_entry.c.id > after).order_by(audit_entry.c.id).limit(batch)
        )).all()
        for row in rows:
            if prev is None and row.prev_hash not in (GENESIS, anchor):
                return count, (f"entry {row.id}: the first entry kept links to an entry no retention run removed "
                               "(entries before it were removed)")
            if prev is not None and row.prev_hash != prev:
                return count, (f"entry {row.id}: its link does not match the entry before it "
                               "(an entry was removed or inserted before it, or its link was changed)")
            if entry_digest(row.prev_hash, row) != row.entry_hash:
                return count, f"entry {row.id}: its content does not match its hash (the entry was changed)"
            prev, count = row.entry_hash, count + 1
        if len(rows) < batch:
            return count, None
        after = rows[-1].id


async def chain_head(session: AsyncSession) -> tuple[int | None, str]:
    """The newest entry's id and hash: note them to detect later that entries were cut off the end."""
    row = (await session.execute(select(audit_entry.c.id, audit_entry.c.entry_hash).order_by(audit_entry.c.id.desc()).limit(1))).first()
    return (row.id, row.entry_hash) if row else (None, GENESIS)


class DenialLog:
    """Which refused requests (401, 403) reach the audit, so that a flood of them cannot fill the disk.

    Per caller, in each process: a known token at most `burst` entries at once and `per_minute` after; every
    caller without a valid token shares one bucket (`unknown_*`: an attacker varies addresses and tokens at will).
    Refusals beyond the budget are counted, and the count rides on the next entry written for that caller
    ("+N more not recorded"). So unknown callers add at most `unknown_per_minute` entries a minute per process.
    """

    def __init__(self, per_minute: float = 6, burst: int = 20, unknown_per_minute: float = 2, unknown_burst: int = 10,
                 clock=time.monotonic) -> None:
        self._known = RateLimiter(per_minute, burst, clock)
        self._unknown = RateLimiter(unknown_per_minute, unknown_burst, clock, max_keys=1)
        self._skipped: dict[str, int] = {}

    def admit(self, token_id: str | None) -> int | None:
        """None when this refusal is not written; else how many before it were not (to say so in the entry)."""
        key = token_id or "unknown"
        limiter = self._known if token_id else self._unknown
        if limiter.retry_after(key) is not None:
            if len(self._skipped) > 10_000:
                self._skipped.clear()
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return None
        return self._skipped.pop(key, 0)


async def record_denial(
    sessionmaker: async_sessionmaker[AsyncSession],
    denials: DenialLog,
    service: str,
    endpoint: str,
    status: int,
    reason: str,
    *,
    principal: Principal | None,
    token_id: str | None,
    address: str | None,
) -> None:
    """Audit a refused request (never the token itself: its id when it is one of ours); a failure to write is logged, not raised."""
    token_id = principal.token_id if principal else token_id
    skipped = denials.admit(token_id)
    if skipped is None:
        return
    detail = f"{status}: {reason}" + (f"; from {address}" if address and principal is None else "")
    if skipped:
        detail = f"{detail} (+{skipped} more not recorded)"
    try:
        await record(
            sessionmaker, "denied", principal=principal.label if principal else "unknown", username=principal.username if principal else None,
            token_id=token_id, detail=detail, endpoint=endpoint, service=service,
        )
    except Exception as exc:  # the refusal is answered whatever happens to its audit entry
        log.error("denied request not audited", extra={"error": type(exc).__name__})


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
