"""The console's report screens: a unit's summary and reports, their export, the district, a commune's cases."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
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


def _months(period: dict[str, Any]) -> list[tuple[int, int]]:
    """(year, month) of each month a period covers, in order; none for a period of one month."""
    start, end = date.fromisoformat(period["start"]), date.fromisoformat(period["end"])
    months = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months if len(months) > 1 else []


async def _trend(request: Request, session: Session, org_unit: str, summary: dict[str, Any]) -> dict[str, Any] | None:
    """Incidents month by month over the period, as one more chart (each month's own summary from the API)."""
    months = _months(summary["period"])
    if not months:
        return None
    apis = request.app.state.console.apis
    answers = await asyncio.gather(*(
        apis.json("reporting", "GET", f"/v1/summaries/{org_unit}", session.token, params={"period": f"{y}{m:02d}"})
        for y, m in months
    ), return_exceptions=True)
    # A month this person may not read (a district after the commune left it) is left out, not the whole trend.
    counts = [
        ((y, m), None if isinstance(a, (ApiError, NotFound)) else (a.get("indicators") or {}).get("incidents_total"))
        for (y, m), a in zip(months, answers, strict=True)
    ]
    if failed := next((a for a in answers if isinstance(a, BaseException) and not isinstance(a, (ApiError, NotFound))), None):
        raise failed
    top = max((c for _, c in counts if c), default=0)
    rows = [
        {"label": f"Tháng {m}/{y}", "count": c, "width": round(100 * c / top, 1) if top else 0}
        for (y, m), c in counts if c is not None
    ]
    return {"key": "by_month", "title": "Vụ việc theo tháng", "rows": rows} if rows else None


async def _charts(request: Request, session: Session, org_unit: str, summary: dict[str, Any]) -> dict[str, Any]:
    charts = forms.charts(summary.get("indicators"), HIERARCHY)
    if charts and (trend := await _trend(request, session, org_unit, summary)):
        charts.append(trend)
    return {"charts": charts, "periods": forms.periods(utc_now())}


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
                  **await _charts(request, session, org_unit, summary))


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
    session, period, summary = await _summary(request, code)
    return render(request, "district.html", summary=summary, period=period, code=code,
                  reports={r["code"]: r for r in ((summary.get("completeness") or {}).get("reports") or [])},
                  **await _charts(request, session, code, summary))


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
