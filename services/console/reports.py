"""The console's report screens: a unit's summary and reports, their export, the district, a commune's cases."""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from shared.labels_vi import DOCUMENT_STATUS, TIMELINESS
from shared.plans import PlanNotFound, load_plan

from . import forms, vi
from .cases import inbox_filters, inbox_params, inbox_rows
from .clients import ApiError, NotFound
from .sessions import Session
from .web import HIERARCHY, PERIOD, current, passed_on, posted, redirect, render, utc_now


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


PLAN_PERIOD = re.compile(r"^\d{4}-(6|12)M$")


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
    fmt = request.query_params.get("format", "")
    fmt = fmt if fmt in ("csv", "docx", "pdf") else "xlsx"
    revision = request.query_params.get("revision", "")
    if fmt in ("docx", "pdf") and revision != "latest" and not revision.isdigit():
        raise NotFound()  # the document prints a generated revision's figures: which one is part of the link
    stored = revision.isdigit() or revision == "latest"
    path = f"/v1/reports/{org_unit}/{period}/{revision}/export" if stored else f"/v1/summaries/{org_unit}/export"
    answer = await console.apis.call("reporting", "GET", path, session.token,
                                     params={"format": fmt} | ({} if stored else {"period": period}))
    return passed_on(answer)


async def district_page(request: Request) -> Response:
    code = request.path_params["code"]
    session, period, summary = await _summary(request, code)
    return render(request, "district.html", summary=summary, period=period, code=code,
                  reports={r["code"]: r for r in ((summary.get("completeness") or {}).get("reports") or [])},
                  document_status=DOCUMENT_STATUS, timeliness=TIMELINESS,
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


# What waits for whom on the board: a case at `plan` waits for the chairman's approval (Mẫu 05); at `review` for a
# new plan or the closing; the others for the cp_officer's next form.
BOARD_WAITS = {
    "received": "Chờ đánh giá ban đầu (Mẫu 02)",
    "initial_assessment": "Chờ đánh giá chi tiết (Mẫu 03) hoặc biện pháp khẩn cấp",
    "emergency_measures": "Chờ đánh giá chi tiết (Mẫu 03)",
    "detailed_assessment": "Chờ lập kế hoạch (Mẫu 04)",
    "plan": "Chờ Chủ tịch UBND xã phê duyệt kế hoạch (Mẫu 05)",
    "plan_approved": "Đang thực hiện kế hoạch",
    "implementation": "Đang thực hiện kế hoạch; chờ đánh giá lại (Mẫu 06)",
    "review": "Chờ lập lại kế hoạch hoặc kết thúc vụ việc",
}


async def process_board(request: Request) -> Response:
    """The commune's open cases in the Decree 56/2017 process, soonest deadline first, for its cp_officer and chairman
    (and admins): what is overdue, what waits for the chairman's approval, what is due next. No child's name."""
    session = await current(request)
    code = request.path_params["code"]
    if not (session.kind == "admin" or (session.commune == code and session.unit_type in ("cp_officer", "chairman"))):
        raise NotFound()
    board = await request.app.state.console.apis.json("routing", "GET", f"/v1/communes/{code}/cases", session.token)
    now = utc_now()
    rows = []
    for case in board["items"]:
        deadline = case.get("deadline") or {}
        text, late = vi.due(deadline["due_at"], now) if deadline.get("due_at") else ("", False)
        rows.append(case | {"waits": BOARD_WAITS.get(case["step"], vi.STEPS.get(case["step"], case["step"])), "due_text": text, "late": late,
                            "due_label": vi.STEP_DUE.get(deadline.get("step", ""), "") if deadline else ""})
    approvals = [r for r in rows if r["step"] == "plan"]
    return render(request, "process_board.html", code=code, rows=rows, approvals=approvals, truncated=board["truncated"],
                  overdue=sum(1 for r in rows if r["late"]), chairman=session.unit_type == "chairman")


# -- the commune's report document: drafting, sign-off, downloads --------------------------------------------


# A report is being written from about a month before its due date (the plan's reporting section).
WRITING_STARTS = timedelta(days=31)


def plan_period_now(commune: str, today: date, lookup=load_plan) -> str:
    """The plan period whose report is being written now: of the commune's plans (last year's, this year's, next
    year's), the last report whose writing has begun (a month before its due date); without a plan, the 6-month one
    from May and the annual one from November."""
    periods = []
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            plan = lookup(commune, year)
        except PlanNotFound:
            continue
        periods += [(r.due, f"{plan.year}-{r.period}") for r in plan.reporting.reports]
    begun = [period for due, period in sorted(periods) if due - WRITING_STARTS <= today]
    if begun:
        return begun[-1]
    if today.month >= 11:
        return f"{today.year}-12M"
    if today.month >= 5:
        return f"{today.year}-6M"
    return f"{today.year - 1}-12M"


def _plan_period(request: Request, commune: str) -> str:
    asked = request.query_params.get("period", "")
    return asked if PLAN_PERIOD.match(asked) else plan_period_now(commune, datetime.now(vi.VN).date())


def _plan_periods(today: date) -> list[tuple[str, str]]:
    return [(f"{y}-{s}", f"{'6 tháng đầu năm' if s == '6M' else 'Cả năm'} {y}") for y in range(today.year, today.year - 3, -1) for s in ("12M", "6M")]


def _may_open(session: Session, commune: str) -> bool:
    return session.kind in ("admin", "district") or (session.commune == commune and session.unit_type in ("cp_officer", "chairman"))


async def _document(request: Request, session: Session, commune: str, period: str) -> dict[str, Any] | None:
    try:
        return await request.app.state.console.apis.json("reporting", "GET", f"/v1/reports/{commune}/{period}/document", session.token)
    except NotFound:
        return None


async def document_page(request: Request, notice: str | None = None, errors: dict | None = None, status: int = 200,
                        form: dict | None = None) -> Response:
    session = await current(request)
    commune = request.path_params["code"]
    if not _may_open(session, commune):
        raise NotFound()
    period = _plan_period(request, commune)
    documents = await _document(request, session, commune, period)
    current_version = (documents or {}).get("current")
    narrative = (form or {}).get("narrative") or (current_version or {}).get("narrative") or {}
    return render(
        request, "report_document.html", status, commune=commune, period=period, documents=documents, doc=current_version,
        narrative=narrative, sections=vi.NARRATIVE, statuses=DOCUMENT_STATUS, notice=notice, errors=errors or {},
        periods=_plan_periods(datetime.now(vi.VN).date()), form=form or {},
        officer=session.commune == commune and session.unit_type == "cp_officer",
        chairman=session.commune == commune and session.unit_type == "chairman",
        notice_done=vi.DOCUMENT_DONE.get(request.query_params.get("done", "")),
    )


async def document_action(request: Request) -> Response:
    """save (the officer's narrative), submit, return, approve (with the signer), send: each one call to reporting."""
    console = request.app.state.console
    session = await current(request)
    commune = request.path_params["code"]
    if not _may_open(session, commune):
        raise NotFound()
    fields = await posted(request, session)
    period = fields.get("period", "")
    if not PLAN_PERIOD.match(period):
        raise NotFound()
    action = fields.get("action", "")
    base = f"/v1/reports/{commune}/{period}/document"
    if action == "save":
        narrative = {key: fields.get(key, "") for key, _ in vi.NARRATIVE}
        call = ("PUT", base, {"narrative": narrative, "number": fields.get("number", "")})
    elif action == "approve":
        call = ("POST", f"{base}/approve", {"signer_name": fields.get("signer_name", ""),
                                            "signed_as": "deputy" if fields.get("signed_as") == "deputy" else "chairman"})
    elif action in ("submit", "return", "send"):
        call = ("POST", f"{base}/{action}", None)
    else:
        raise NotFound()
    try:
        await console.apis.call("reporting", call[0], call[1], session.token, json=call[2])
    except ApiError as exc:
        form = {"narrative": {key: fields.get(key, "") for key, _ in vi.NARRATIVE}} if action == "save" else None
        message = vi.DOCUMENT_REFUSED.get(exc.status, vi.DOCUMENT_REFUSED[422])
        return await document_page(request, errors={"action": message}, status=exc.status, form=form)
    return redirect(f"/reports/{commune}/document?period={period}&done={action}")


async def district_consolidated(request: Request) -> Response:
    """The district's consolidated report (DOCX or PDF) from reporting, as a download."""
    session = await current(request)
    code = request.path_params["code"]
    period = request.query_params.get("period", "")
    if not PLAN_PERIOD.match(period):
        raise NotFound()
    fmt = "docx" if request.query_params.get("format") == "docx" else "pdf"
    answer = await request.app.state.console.apis.call("reporting", "GET", f"/v1/consolidated/{code}/{period}", session.token,
                                                       params={"format": fmt})
    return passed_on(answer)
