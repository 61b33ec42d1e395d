"""Alembic per service: each service (and the token store) has its own migrations folder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from shared.db import make_engine


def config(script_location: Path, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["url"] = url
    return cfg


def upgrade(script_location: Path, url: str) -> None:
    """Bring one database to the newest revision (runs its own event loop: call it off the loop)."""
    command.upgrade(config(script_location, url), "head")


def new_revision(script_location: Path, message: str) -> None:
    """Autogenerate a revision against a scratch SQLite database brought to head (a developer's tool)."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite+aiosqlite:///{scratch}/scratch.db"
        cfg = config(script_location, url)
        command.upgrade(cfg, "head")
        command.revision(cfg, message=message, autogenerate=True)


def _to_newest() -> bool:
    """An upgrade to the newest revision (not to an older one, nor a downgrade)."""
    target = context.get_revision_argument()
    return not context.is_offline_mode() and target in ("head", "heads", context.get_head_revision())


def run_env(metadata: MetaData, after: Callable[[Connection], None] | None = None) -> None:
    """The body of every migrations/env.py; `after` runs in the same transaction once the database is at the newest revision."""
    url = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
    batch = url.startswith("sqlite")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=batch)
        with context.begin_transaction():
            context.run_migrations()
        return

    def migrate(connection) -> None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=batch)
        with context.begin_transaction():
            context.run_migrations()
            if after is not None and _to_newest():
                after(connection)

    async def main() -> None:
        engine = make_engine(url)
        async with engine.connect() as connection:
            await connection.run_sync(migrate)
            await connection.commit()
        await engine.dispose()

    asyncio.run(main())
