"""Calls to intake, routing and reporting with the signed-in person's own token.

Each API's answer is the rule: 401 ends the browser session, 404 is a 404 page, the password-change
403 sends the person to change it; anything else comes back as an `ApiError` for the page to show.
"""

from __future__ import annotations

from typing import Any

import httpx

MUST_CHANGE = "password must be changed first"


class SignedOut(Exception):
    """The API no longer accepts the token: expired, idle too long, or revoked."""


class MustChangePassword(Exception):
    pass


class NotFound(Exception):
    pass


class Unavailable(Exception):
    """An API did not answer, or answered 5xx."""

    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.service = service


class ApiError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(status)
        self.status = status
        self.detail = detail


class Apis:
    """One pooled HTTP client per API."""

    def __init__(self, urls: dict[str, str], timeout: float) -> None:
        self.clients = {name: httpx.AsyncClient(base_url=url, timeout=timeout) for name, url in urls.items()}

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def call(
        self, service: str, method: str, path: str, token: str | None = None, *, ok: tuple[int, ...] = (200,), **kwargs
    ) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            answer = await self.clients[service].request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(service) from exc
        if answer.status_code in ok:
            return answer
        detail = _detail(answer)
        if answer.status_code == 401 and token:
            raise SignedOut()
        if answer.status_code == 403 and detail == MUST_CHANGE:
            raise MustChangePassword()
        if answer.status_code == 404:
            raise NotFound()
        if answer.status_code >= 500:
            raise Unavailable(service)
        raise ApiError(answer.status_code, detail)

    async def json(self, service: str, method: str, path: str, token: str | None = None, **kwargs) -> Any:
        return (await self.call(service, method, path, token, **kwargs)).json()

    async def ready(self) -> dict[str, str]:
        checks = {}
        for name, client in self.clients.items():
            try:
                answer = await client.get("/healthz", timeout=3)
                checks[name] = "ok" if answer.status_code == 200 else f"answered {answer.status_code}"
            except httpx.HTTPError as exc:
                checks[name] = f"unreachable: {type(exc).__name__}"
        return checks


def _detail(answer: httpx.Response) -> Any:
    try:
        return answer.json().get("detail")
    except (ValueError, AttributeError):
        return None
