"""The console's only table: browser sessions (no case data is ever stored here)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, LargeBinary, String, Table

from shared.db import UtcDateTime, new_metadata

metadata = new_metadata()

browser_session = Table(
    "browser_session",
    metadata,
    # SHA-256 of the cookie's opaque id: the database alone cannot be turned into a cookie.
    Column("id_hash", String(64), primary_key=True),
    # The person's bearer token, encrypted with a key only the cookie's id yields.
    Column("sealed_token", LargeBinary, nullable=False),
    Column("username", String(120), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("subject", String(120), nullable=False),
    Column("must_change_password", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)
Index("ix_browser_session_expires_at", browser_session.c.expires_at)
