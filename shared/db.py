"""Async SQLAlchemy: SQLite under the data folder by default, PostgreSQL by URL."""

from __future__ import annotations

import os
import ssl
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData, String, event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UtcDateTime(TypeDecorator):
    """Stores aware datetimes as UTC and gives them back aware (SQLite forgets the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class IncidentFactColumns:
    """The facts of an incident every service keeps, each in a table of its own (a service owns its tables)."""

    category: Mapped[str] = mapped_column(String(32))
    urgency: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


def on_postgresql(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"


def dialect_insert(session: AsyncSession):
    """`insert` of the session's dialect, for ON CONFLICT clauses (PostgreSQL and SQLite both have them)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return pg_insert if on_postgresql(session) else sqlite_insert


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _private_file(url: str) -> None:
    """Create a SQLite file readable by the service's user only; SQLite gives its -wal and -shm files the same mode."""
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:") or not os.path.isdir(os.path.dirname(path) or "."):
        return  # in memory, a URI, or a folder that is not there: SQLite itself says what is wrong
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)  # a file made before, under a loose umask, is tightened too


# libpq's TLS options as a PostgreSQL URL carries them; asyncpg takes none of them as a keyword (SQLAlchemy passes the
# query through, so `?sslmode=require` fails with "unexpected keyword argument 'sslmode'"): they become its `ssl`.
LIBPQ_TLS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def postgres_tls(url: str) -> tuple[str, dict]:
    """The URL without libpq's TLS options, and asyncpg's `ssl` argument that means the same.

    sslmode disable/allow/prefer/require pass through by name (require: encrypted, certificate unchecked, as libpq);
    verify-ca checks the server's certificate against sslrootcert (default: the system's CAs), verify-full also its
    host name; sslcert/sslkey give a client certificate. Like libpq, require with an sslrootcert means verify-ca.
    """
    parsed = make_url(url)
    given = {k: parsed.query[k] for k in LIBPQ_TLS if k in parsed.query}
    if not given:
        return url, {}
    rest = parsed.difference_update_query(LIBPQ_TLS).render_as_string(hide_password=False)
    mode = given.get("sslmode", "prefer")
    if mode not in SSL_MODES:
        raise ValueError(f"sslmode must be one of {', '.join(SSL_MODES)}")
    root, cert = given.get("sslrootcert"), given.get("sslcert")
    if mode == "require" and root:
        mode = "verify-ca"
    if mode not in ("verify-ca", "verify-full") and not cert:
        return rest, {"ssl": mode}
    if mode == "disable":
        return rest, {"ssl": "disable"}
    context = ssl.create_default_context(cafile=root)
    if mode in ("verify-ca", "verify-full"):
        context.check_hostname = mode == "verify-full"
    else:  # allow, prefer, require with a client certificate: encrypted, the server's certificate unchecked
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert:
        context.load_cert_chain(cert, given.get("sslkey"))
    return rest, {"ssl": context}


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    # hide_parameters: a failing statement's error (logged, or in an exception message) must not carry a child's
    # name or birth date.
    if url.startswith("sqlite"):
        _private_file(url)
        # One connection per process: SQLite has one writer anyway, and queueing in the pool is
        # far cheaper than writers colliding on the file lock and sleeping in its busy handler.
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, pool_size=1, max_overflow=0, pool_timeout=120, hide_parameters=True
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - driver hook
            cursor = dbapi_connection.cursor()
            # WAL lets readers run beside the single writer; busy_timeout waits instead of failing.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Deleted and overwritten content is zeroed in the file, not left in free space and free pages
            # (an erased child's name must be gone from the bytes, not only from the rows: docs/privacy.md).
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        return engine
    url, connect_args = postgres_tls(url)
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def scrub(engine: AsyncEngine, tables: Sequence[str]) -> None:
    """After an erasure, get the old versions of the rows out of the files as far as the database allows.

    SQLite (secure_delete on): a TRUNCATE checkpoint copies the WAL into the database file and empties the WAL,
    where the pages written before the erasure still were. PostgreSQL: VACUUM removes the dead row versions
    of `tables` (WAL segments and backups keep them until they expire: docs/privacy.md)."""
    from sqlalchemy import text

    async with engine.connect() as conn:
        if is_sqlite(engine):
            await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            return
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in tables:
            await conn.execute(text(f'VACUUM "{table}"'))


async def ping(engine: AsyncEngine) -> None:
    from sqlalchemy import text

    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
