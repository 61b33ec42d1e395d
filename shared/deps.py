"""What a route may ask for, as `Annotated` dependencies: routes never reach into `app.state` themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, require_principal
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
Now = Annotated[datetime, Depends(now)]
AppHierarchy = Annotated[Hierarchy, Depends(from_state("hierarchy"))]


async def auth_session(runtime: AppRuntime) -> AsyncIterator[AsyncSession]:
    """A read of the security store (tokens, the read audit), closed when the route returns."""
    async with runtime.auth_sessionmaker() as session:
        yield session


AuthSession = Annotated[AsyncSession, Depends(auth_session, scope="function")]
