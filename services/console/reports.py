"""The console's report screens: a unit's summary and reports, their export, the district, a commune's cases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from . import forms, vi
from .cases import inbox_filters, inbox_params, inbox_rows
from .clients import ApiError, NotFound
from .sessions import Session
from .web import HIERARCHY, PERIOD, current, render, utc_now


def _period(request: Request, org_unit: str) -> str:
    """The asked period, else this year, else the last year the unit existed (a district abolished in 2025)."""
    period = request.query_params.get("period", "")
    if PERIOD.match(period):
        return period
    today = datetime.now(vi.VN).date()
    ends = [v.valid_to for v in HIERARCHY.versions if org_unit in v.units]
    if ends and all(end is not None and end < today for end in ends):
        return str(max(ends).year)
    return str(today.year)


async def _summary(request: Request, org_unit: str) -> tuple[Session, str, dict[str, Any]]:
    """The signed-in person, the period asked (or the default) and the unit's summary for it."""
    session = await current(request)
    period = _period(request, org_unit)
    summary = await request.app.state.console.apis.json(
        "reporting", "GET", f"/v1/summaries/{org_unit}", session.token, params={"period": period}
    )
    return session, period, summary


def _charts(summary: dict[str, Any]) -> dict[str, Any]:
    return {"charts": forms.charts(summary.get("indicators"), HIERARCHY), "periods": forms.periods(utc_now())}


async def reports_page(request: Request) -> Response:
    org_unit = request.path_params["org_unit"]
    session, period, summary = await _summary(request, org_unit)
    revisions = []
    if len(org_unit) == 5:
        try:
            revisions = (await request.app.state.console.apis.json(
                "reporting", "GET", f"/v1/reports/{org_unit}", session.token, params={"limit": 20}
            ))["items"]
        except ApiError:
            revisions = []
    return render(request, "reports.html", summary=summary, period=period, org_unit=org_unit, revisions=revisions,
                  **_charts(summary))


async def reports_export(request: Request) -> Response:
    console = request.app.state.console
    session = await current(request)
    org_unit = request.path_params["org_unit"]
    period = _period(request, org_unit)
    fmt = "csv" if request.query_params.get("format") == "csv" else "xlsx"
    revision = request.query_params.get("revision", "")
    stored = revision.isdigit()
    path = f"/v1/reports/{org_unit}/{period}/{revision}/export" if stored else f"/v1/summaries/{org_unit}/export"
    answer = await console.apis.call("reporting", "GET", path, session.token,
                                     params={"format": fmt} | ({} if stored else {"period": period}))
    return Response(answer.content, media_type=answer.headers.get("content-type"),
                    headers={"Content-Disposition": answer.headers.get("content-disposition", "attachment")})


async def district_page(request: Request) -> Response:
    code = request.path_params["code"]
    _session, period, summary = await _summary(request, code)
    return render(request, "district.html", summary=summary, period=period, code=code,
                  reports={r["code"]: r for r in ((summary.get("completeness") or {}).get("reports") or [])},
                  **_charts(summary))


async def commune_cases(request: Request) -> Response:
    console = request.app.state.console
    session = await current(request)
    code = request.path_params["code"]
    if not (session.kind == "admin" or (session.is_cp_officer and session.commune == code)):
        raise NotFound()
    filters = inbox_filters(request)
    category = request.query_params.get("category", "")
    unit = session.unit_id or f"{code}.cp_officer"
    page = await console.apis.json("routing", "GET", f"/v1/agencies/{unit}/assignments", session.token,
                                   params=inbox_params(filters) + [("limit", "500")])
    rows = [r for r in inbox_rows(page["items"], utc_now()) if not category or r["incident"]["category"] == category]
    return render(request, "commune_cases.html", rows=rows, code=code, filters=filters, category=category,
                  choices=forms.CHOICES, overdue=sum(1 for r in rows if r["late"]))
