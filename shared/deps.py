"""What a route may ask for, as `Annotated` dependencies: routes never reach into `app.state` themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.auth import Principal, require_principal, require_signed_in
from shared.reference import Hierarchy
from shared.runtime import Runtime
from shared.uow import UnitOfWork

Clock = Callable[[], datetime]


def from_state(name: str) -> Callable[[Request], Any]:
    """A dependency giving what the service's `app.py` put in `app.state.<name>` at composition."""

    def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    dependency.__name__ = f"state_{name}"
    return dependency


async def unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    """The request's unit of work: committed when the route returns, before the answer is sent."""
    async with request.app.state.runtime.unit_of_work() as uow:
        yield uow


def now(request: Request) -> datetime:
    """The service's clock read once for the request (it may run ahead in development)."""
    return request.app.state.clock()


Uow = Annotated[UnitOfWork, Depends(unit_of_work, scope="function")]
AppRuntime = Annotated[Runtime, Depends(from_state("runtime"))]
Caller = Annotated[Principal, Depends(require_principal)]
# A caller who may be in the middle of changing a one-time password (who am I, change it, sign out).
SignedIn = Annotated[Principal, Depends(require_signed_in)]
Now = Annotated[datetime, Depends(now)]
AppHierarchy = Annotated[Hierarchy, Depends(from_state("hierarchy"))]


async def auth_session(runtime: AppRuntime) -> AsyncIterator[AsyncSession]:
    """A read of the security store (tokens, the read audit), closed when the route returns."""
    async with runtime.auth_sessionmaker() as session:
        yield session


AuthSession = Annotated[AsyncSession, Depends(auth_session, scope="function")]


async def auth_unit_of_work(runtime: AppRuntime) -> AsyncIterator[AsyncSession]:
    """A change to the security store (people, tokens, the audit): one transaction, committed when the route returns."""
    async with runtime.auth_sessionmaker() as session, session.begin():
        yield session


def auth_sessionmaker(runtime: AppRuntime) -> async_sessionmaker[AsyncSession]:
    """The security store's sessionmaker, for the use cases that hold no connection while an argon2 hash is verified."""
    return runtime.auth_sessionmaker


AuthUow = Annotated[AsyncSession, Depends(auth_unit_of_work, scope="function")]
# Sign-in and password change read, close their session, verify the hash in a thread, then write in a short
# transaction of their own: one transaction around the route would hold a pooled connection through the hashing.
AuthSessions = Annotated[async_sessionmaker[AsyncSession], Depends(auth_sessionmaker)]
