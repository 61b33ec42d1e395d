"""Browser-facing protections: headers on every answer, cross-site writes refused, CSRF tokens checked."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

# No inline script or style anywhere: htmx's own indicator style is turned off in the page's htmx-config.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
SAME_SITE = {b"same-origin", b"none"}


class SecurityHeaders:
    """Add the headers; refuse a write another site's page started (Sec-Fetch-Site), before any work."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        static = scope["path"].startswith("/static/")
        if scope["method"] in UNSAFE and not cross_site_allowed(headers):
            body = "Yêu cầu từ trang web khác bị từ chối.".encode()
            await send({"type": "http.response.start", "status": 403, "headers": [
                (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()), *HEADERS]})
            await send({"type": "http.response.body", "body": body})
            return

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                extra = list(HEADERS)
                extra.append((b"cache-control", b"public, max-age=86400" if static else b"no-store"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


def cross_site_allowed(headers: dict[bytes, bytes]) -> bool:
    """A write comes from our own pages: Sec-Fetch-Site same-origin (or a typed URL), and an Origin that is ours."""
    site = headers.get(b"sec-fetch-site")
    if site is not None and site not in SAME_SITE:
        return False
    origin = headers.get(b"origin")
    if origin is not None and origin != b"null":
        host = headers.get(b"host", b"")
        return origin.split(b"://", 1)[-1] == host
    return origin != b"null"


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected, given)
