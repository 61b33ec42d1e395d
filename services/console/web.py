"""What every console page uses: the templates, the signed-in person, the checked form, names of units."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from shared.reference import load_demo_units, load_hierarchy

from . import security, vi
from .sessions import Session

COOKIE = "baove_session"
PRE_COOKIE = "baove_signin"
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"]))
TEMPLATES.filters.update(number=vi.number, moment=vi.moment, day=vi.day, label=vi.label, end_day=vi.end_day)
TEMPLATES.globals.update(vi=vi)
HIERARCHY = load_hierarchy()
UNIT_NAMES = {u.id: u.name for u in load_demo_units()}
OPEN = ("pending", "acknowledged", "in_progress")
PERIOD = re.compile(r"^\d{4}(-6M|-12M|S[12]|Q[1-4]|\d{2})?$")


class NotSignedIn(Exception):
    def __init__(self, expired: bool = False) -> None:
        super().__init__()
        self.expired = expired


class Refused(Exception):
    """A write without a valid CSRF token."""


def unit_name(unit_id: str) -> str:
    if unit_id in UNIT_NAMES:
        return UNIT_NAMES[unit_id]
    parts = unit_id.split(".")
    return vi.label(parts[1]) if len(parts) > 1 else unit_id


def commune_name(code: str) -> str:
    unit = HIERARCHY.unit(code)
    return f"xã {unit.name}" if unit else f"xã {code}"


TEMPLATES.globals.update(unit_name=unit_name, commune_name=commune_name)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    session: Session | None = getattr(request.state, "session", None)
    html = TEMPLATES.get_template(template).render(
        request=request, session=session, csrf=session.csrf if session else context.pop("csrf", ""),
        poll_seconds=request.app.state.console.settings.poll_seconds, **context,
    )
    return HTMLResponse(vi.nfc(html), status_code=status)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def current(request: Request) -> Session:
    """The signed-in person of this request, or NotSignedIn (expired when a cookie was there)."""
    cookie = request.cookies.get(COOKIE)
    session = await request.app.state.console.sessions.get(cookie)
    if session is None:
        raise NotSignedIn(expired=bool(cookie))
    request.state.session = session
    return session


async def posted(request: Request, session: Session | None = None, expected: str | None = None) -> dict[str, Any]:
    """The urlencoded form, its CSRF token checked (form field or htmx header); repeated fields as lists."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise Refused()
    body = (await request.body()).decode("utf-8", errors="replace")
    fields: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        value = vi.nfc(value)
        if key in fields:
            fields[key] = (fields[key] if isinstance(fields[key], list) else [fields[key]]) + [value]
        else:
            fields[key] = value
    given = fields.pop("csrf_token", None) or request.headers.get("x-csrf-token")
    if not security.csrf_ok(expected or (session.csrf if session else ""), given if isinstance(given, str) else None):
        raise Refused()
    return fields




def utc_now() -> datetime:
    return datetime.now(UTC)


def passed_on(answer: Any) -> Response:
    """A file a service made (a report's export, a printed form), handed to the browser as the download it is."""
    return Response(answer.content, media_type=answer.headers.get("content-type"),
                    headers={"Content-Disposition": answer.headers.get("content-disposition", "attachment")})
