"""A database URL's sslmode reaches the PostgreSQL connection (the test server speaks no TLS: that is the proof)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared.db import make_engine


async def select_one(url: str) -> int:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text("SELECT 1"))).scalar_one()
    finally:
        await engine.dispose()


def with_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


@pytest.mark.parametrize("mode", ["disable", "prefer"])
async def test_modes_that_accept_a_plain_server_connect(pg_server, mode):
    assert await select_one(with_query(pg_server, f"sslmode={mode}")) == 1


async def test_sslmode_require_refuses_a_server_without_tls(pg_server):
    """Not silently dropped, and not asyncpg's TypeError for an unknown keyword: the server's refusal itself."""
    with pytest.raises(ConnectionError, match="rejected SSL upgrade"):
        await select_one(with_query(pg_server, "sslmode=require"))
