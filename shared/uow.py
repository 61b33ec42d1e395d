"""The unit of work: one transaction, the events it stages for the outbox, and the relay woken after it commits.

Who commits: the unit of work, once, at the end of the request (the `Uow` dependency) or of the job
(`async with runtime.unit_of_work() as uow`). Services never commit or roll back: they use `uow.session`
and `uow.stage(...)` and return; an exception anywhere rolls the whole unit back. On the security store
the `AuthUow` dependency (shared/deps.py) is the unit, committed the same way. One exception, by design:
sign-in and password change (shared/signin.py) take a sessionmaker and write short transactions of their
own, so that no pooled connection is held while an argon2 hash is verified in a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import outbox
from shared.events import Envelope


class UnitOfWork:
    """One session and its transaction; events staged in it are published by the relay once it commits."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], outbox_table: Table, notify: Callable[[], None]) -> None:
        self._sessionmaker = sessionmaker
        self._outbox_table = outbox_table
        self._notify = notify
        self._staged = 0
        self.session: AsyncSession

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._sessionmaker()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                await self.commit()
            else:
                await self.session.rollback()
        finally:
            await self.session.close()
            del self.session  # a unit of work is used once; its session goes with its end

    async def stage(self, *events: Envelope) -> None:
        """Write events to the outbox in this transaction; they leave only if it commits."""
        await outbox.stage(self.session, self._outbox_table, *events)
        self._staged += len(events)

    async def commit(self) -> None:
        """Commit, then wake the relay if events were staged."""
        await self.session.commit()
        if self._staged:
            self._staged = 0
            self._notify()
