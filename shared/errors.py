"""Domain errors: what a use case refuses, said without HTTP.

Services raise these; the shared runtime turns them into HTTP answers in one place
(`install_handlers`), so no route catches them and no service knows a status code.
The answer's body is always `{"detail": ...}`, as FastAPI's own errors are.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class DomainError(Exception):
    """Base of the refusals a use case may raise; `detail` is what the caller reads."""

    status = 400

    def __init__(self, detail: Any, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail
        self.headers = headers


class Unauthenticated(DomainError):
    """No valid credential: missing, unknown, expired, revoked, or its person disabled."""

    status = 401

    def __init__(self, detail: Any = "not signed in", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, headers=headers if headers is not None else {"WWW-Authenticate": "Bearer"})


class Forbidden(DomainError):
    """The caller is known but this is outside what it may do."""

    status = 403


class NotFound(DomainError):
    """Nothing of that id exists for this caller (also what a caller who may not see it is told)."""

    status = 404


class Conflict(DomainError):
    """The request clashes with the current state; `detail` says what is allowed now."""

    status = 409


class Invalid(DomainError):
    """Well-formed but not acceptable; `detail` names the field and the reason."""

    status = 422


class TooMany(DomainError):
    """Rate limited; `retry_after` seconds until the caller may try again."""

    status = 429

    def __init__(self, detail: Any, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


def answer(exc: DomainError) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)


def install_handlers(app: FastAPI) -> None:
    """Register the one translation from domain errors to HTTP answers."""

    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return answer(exc)
