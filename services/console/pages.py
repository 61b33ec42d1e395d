"""The console's pages: each reads or changes through an API with the person's token, then renders a template."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from shared.reference import load_demo_units, load_hierarchy

from . import forms, security, vi
from .clients import ApiError, MustChangePassword, NotFound, SignedOut, Unavailable
from .sessions import Session, csrf_token

COOKIE = "baove_session"
PRE_COOKIE = "baove_signin"
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"]))
TEMPLATES.filters.update(number=vi.number, moment=vi.moment, day=vi.day, label=vi.label)
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


def _safe_next(value: str | None, default: str) -> str:
    return value if value and value.startswith("/") and not value.startswith("//") else default


def _now() -> datetime:
    return datetime.now(UTC)


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None, samesite: str = "lax") -> None:
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite=samesite, secure=request.url.scheme == "https", path="/"
    )


# -- sign-in -------------------------------------------------------------------------------------


def _login_page(request: Request, status: int = 200, error: str | None = None, username: str = "") -> HTMLResponse:
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
    notice = None
    if request.query_params.get("expired"):
        notice = "Phiên làm việc đã hết hạn hoặc đã kết thúc. Vui lòng đăng nhập lại."
    elif request.query_params.get("signed_out"):
        notice = "Bạn đã đăng xuất."
    response = render(request, "login.html", status, csrf=csrf_token(pre), error=error, notice=notice, username=username)
    _set_cookie(request, response, PRE_COOKIE, pre, 3600, samesite="strict")
    return response


async def login_form(request: Request) -> Response:
    if await request.app.state.console.sessions.get(request.cookies.get(COOKIE)):
        return redirect("/")
    return _login_page(request)


async def login(request: Request) -> Response:
    console = request.app.state.console
    pre = request.cookies.get(PRE_COOKIE) or ""
    try:
        fields = await posted(request, expected=csrf_token(pre) if pre else "-")
    except Refused:
        return _login_page(request, 403, "Trang đăng nhập đã cũ. Vui lòng thử lại.")
    username, password = str(fields.get("username", "")).strip(), str(fields.get("password", ""))
    if not username or not password:
        return _login_page(request, 422, "Nhập tên đăng nhập và mật khẩu.", username)
    headers = {"X-Baove-Client-Address": request.client.host if request.client else ""}
    try:
        answer = await console.apis.call(
            "intake", "POST", "/v1/sessions", json={"username": username, "password": password}, headers=headers, ok=(201,)
        )
    except ApiError as exc:
        if exc.status == 429:
            return _login_page(request, 429, "Đăng nhập sai quá nhiều lần. Vui lòng chờ vài phút rồi thử lại.", username)
        return _login_page(request, 401, "Sai tên đăng nhập hoặc mật khẩu.", username)
    body = answer.json()
    person = body["person"]
    expires = datetime.fromisoformat(body["expires_at"]) if body.get("expires_at") else None
    session = await console.sessions.create(
        body["token"], person["username"], person["kind"], person["subject"], bool(body.get("must_change_password")), expires
    )
    response = redirect("/password" if session.must_change_password else "/")
    _set_cookie(request, response, COOKIE, session.cookie_id, int(console.settings.session_hours * 3600))
    response.delete_cookie(PRE_COOKIE, path="/")
    return response


async def logout(request: Request) -> Response:
    console = request.app.state.console
    session = await current(request)
    await posted(request, session)
    try:
        await console.apis.call("intake", "DELETE", "/v1/sessions/current", session.token, ok=(204,))
    except (SignedOut, ApiError, NotFound, Unavailable, MustChangePassword):
        pass  # the browser session ends whatever the API says
    await console.sessions.end(session.cookie_id)
    response = redirect("/login?signed_out=1")
    response.delete_cookie(COOKIE, path="/")
    return response


async def password_form(request: Request) -> Response:
    session = await current(request)
    return render(request, "password.html", forced=session.must_change_password, errors={})


async def change_password(request: Request) -> Response:
    console = request.app.state.console
    session = await current(request)
    fields = await posted(request, session)
    current_pw, new, again = (str(fields.get(k, "")) for k in ("current_password", "new_password", "new_password_again"))
    errors = {}
    if not current_pw:
        errors["current_password"] = "Nhập mật khẩu hiện tại."
    if not new:
        errors["new_password"] = "Nhập mật khẩu mới."
    elif new != again:
        errors["new_password_again"] = "Hai lần nhập mật khẩu mới không giống nhau."
    if not errors:
        try:
            await console.apis.call(
                "intake", "POST", "/v1/sessions/password", session.token,
                json={"current_password": current_pw, "new_password": new}, ok=(204,),
            )
        except ApiError as exc:
            code = exc.detail.get("code") if isinstance(exc.detail, dict) else None
            field = "current_password" if code == "wrong_current_password" else "new_password"
            errors[field] = vi.PASSWORD_ERRORS.get(code, "Không đổi được mật khẩu. Vui lòng thử lại.")
    if errors:
        return render(request, "password.html", 422, forced=session.must_change_password, errors=errors)
    await console.sessions.password_changed(session.cookie_id)
    return redirect("/?password_changed=1")


async def home(request: Request) -> Response:
    session = await current(request)
    if session.kind == "district":
        return redirect(f"/districts/{session.subject}")
    if session.kind == "admin":
        return render(request, "admin_home.html", communes=sorted(HIERARCHY.hamlets))
    return redirect("/inbox")


# -- inbox -------------------------------------------------------------------------------------


def _inbox_filters(request: Request) -> dict[str, str]:
    q = request.query_params
    return {
        "status": q.get("status", "open") if q.get("status", "open") in (*OPEN, "done", "declined", "open", "all") else "open",
        "urgency": q.get("urgency", "") if q.get("urgency", "") in ("emergency", "high", "medium", "low") else "",
        "overdue": "1" if q.get("overdue") == "1" else "",
    }


def _inbox_params(filters: dict[str, str]) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = [("limit", "200")]
    if filters["status"] == "open":
        params += [("status", s) for s in OPEN]
    elif filters["status"] != "all":
        params.append(("status", filters["status"]))
    if filters["urgency"]:
        params.append(("urgency", filters["urgency"]))
    if filters["overdue"]:
        params.append(("overdue", "true"))
    return params


def inbox_rows(items: list[dict], now: datetime) -> list[dict]:
    rows = []
    for a in items:
        due_text, late = vi.due(a["due_at"], now)
        rows.append({
            **a,
            "due_text": due_text if a["status"] == "pending" else None,
            "late": a["overdue"] or (late and a["status"] == "pending"),
            "actions": vi.NEXT_ACTIONS.get(a["status"], ()),
        })
    return rows


async def inbox(request: Request) -> Response:
    console = request.app.state.console
    session = await current(request)
    if session.unit_id is None:
        return redirect("/")
    filters = _inbox_filters(request)
    page = await console.apis.json(
        "routing", "GET", f"/v1/agencies/{session.unit_id}/assignments", session.token, params=_inbox_params(filters)
    )
    rows = inbox_rows(page["items"], _now())
    query = urlencode({k: v for k, v in filters.items() if v})
    fragment = TEMPLATES.get_template("_inbox_list.html").render(
        rows=rows, csrf=session.csrf, here=f"/inbox?{query}" if query else "/inbox", more=page.get("next_cursor") is not None,
        vi=vi, unit_name=unit_name,
    )
    version = hashlib.sha256(fragment.encode()).hexdigest()[:16]
    if request.headers.get("hx-request") and request.query_params.get("fragment"):
        if request.query_params.get("v") == version:
            return Response(status_code=204)  # nothing changed: htmx leaves the list as it is
        return render(request, "_inbox_poll.html", fragment=fragment, version=version, query=query)
    return render(request, "inbox.html", fragment=fragment, version=version, query=query, filters=filters)


# -- a case ------------------------------------------------------------------------------------


async def _own_assignment(request: Request, session: Session, incident_id: str) -> dict | None:
    if session.unit_id is None:
        return None
    page = await request.app.state.console.apis.json(
        "routing", "GET", f"/v1/agencies/{session.unit_id}/assignments", session.token, params={"limit": 500}
    )
    mine = [a for a in page["items"] if a["incident_id"] == incident_id]
    # A reopened case may have given this unit a second assignment: the open one is the one to act on.
    mine.sort(key=lambda a: (a["status"] not in OPEN, a["assigned_at"]))
    return mine[0] if mine else None


async def _case_context(request: Request, session: Session, incident_id: str) -> dict[str, Any]:
    console = request.app.state.console
    try:
        incident = await console.apis.json("intake", "GET", f"/v1/incidents/{incident_id}", session.token)
    except NotFound:
        incident = None
    assignment = await _own_assignment(request, session, incident_id)
    if incident is None and assignment is None:
        raise NotFound()
    case = incident or {**assignment["incident"], "incident_id": incident_id, "timeline": None, "status": None}
    may_close = session.kind == "admin" or (session.is_cp_officer and case.get("commune_code") == session.commune)
    closed = bool(incident) and incident["status"] == "closed"
    return {
        "case": case,
        "incident_id": incident_id,
        "assignment": inbox_rows([assignment], _now())[0] if assignment else None,
        "view": (assignment or {}).get("incident", {}).get("view", "full") if incident is None else "full",
        "may_close": may_close and incident is not None,
        "closed": closed,
        "risk_levels": vi.RISK,
    }


async def case_page(request: Request) -> Response:
    session = await current(request)
    incident_id = request.path_params["incident_id"]
    context = await _case_context(request, session, incident_id)
    notice = "Đã gửi báo cáo. Số hồ sơ của vụ việc là" if request.query_params.get("received") else None
    return render(request, "case.html", notice=notice, error=None, errors={}, form={}, **context)


ASSIGNMENT_ACTIONS = ("acknowledge", "in_progress", "done", "declined")


async def case_action(request: Request) -> Response:
    console = request.app.state.console
    session = await current(request)
    incident_id = request.path_params["incident_id"]
    fields = await posted(request, session)
    action = fields.get("action")
    note = str(fields.get("note", "")).strip()
    back = _safe_next(fields.get("next"), f"/cases/{incident_id}")
    errors: dict[str, str] = {}
    try:
        if action in ASSIGNMENT_ACTIONS:
            assignment = await _own_assignment(request, session, incident_id)
            if assignment is None or assignment["assignment_id"] != fields.get("assignment_id"):
                raise NotFound()
            base = f"/v1/agencies/{session.unit_id}/assignments/{assignment['assignment_id']}"
            if action == "declined" and not note:
                errors["note"] = "Cần ghi rõ lý do từ chối."
            elif action == "acknowledge":
                await console.apis.call("routing", "POST", f"{base}/acknowledge", session.token)
            else:
                await console.apis.call("routing", "POST", f"{base}/status", session.token,
                                        json={"status": action, "note": note or None})
        elif action == "close":
            risk, outcome = fields.get("risk_level"), str(fields.get("outcome", "")).strip()
            if risk not in vi.RISK:
                errors["risk_level"] = "Chọn mức độ nguy cơ."
            if not outcome:
                errors["outcome"] = "Ghi kết quả xử lý vụ việc."
            if not errors:
                await console.apis.call("routing", "POST", f"/v1/incidents/{incident_id}/close", session.token,
                                        json={"risk_level": risk, "outcome": outcome})
        elif action == "reopen":
            reason = str(fields.get("reason", "")).strip()
            if not reason:
                errors["reason"] = "Ghi lý do mở lại vụ việc."
            else:
                await console.apis.call("routing", "POST", f"/v1/incidents/{incident_id}/reopen", session.token,
                                        json={"reason": reason})
        else:
            errors["action"] = "Thao tác không hợp lệ."
    except ApiError as exc:
        errors["action"] = _action_error(exc)
    if not errors:
        return redirect(back)
    context = await _case_context(request, session, incident_id)
    return render(request, "case.html", 409 if "action" in errors else 422, notice=None,
                  error=next(iter(errors.values())), errors=errors, form=fields, **context)


def _action_error(exc: ApiError) -> str:
    if exc.status == 409:
        detail = exc.detail if isinstance(exc.detail, dict) else {}
        if detail.get("open_assignments"):
            units = ", ".join(unit_name(a["unit_id"]) for a in detail["open_assignments"])
            return f"Chưa thể kết thúc: các đơn vị sau chưa hoàn thành hoặc từ chối: {units}."
        if "current" in detail:
            return f"Không thực hiện được: tình trạng hiện tại là “{vi.label(detail['current'])}”. Trang đã được cập nhật."
        return "Không thực hiện được với tình trạng hiện tại của vụ việc."
    if exc.status == 403:
        return "Bạn không có quyền thực hiện thao tác này."
    return "Không thực hiện được. Vui lòng kiểm tra thông tin và thử lại."


# -- report an incident ----------------------------------------------------------------------


def _report_context(session: Session, form: dict, errors: dict, commune: str | None) -> dict[str, Any]:
    commune = commune or session.commune or ""
    return {
        "form": form,
        "errors": errors,
        "commune": commune,
        "communes": sorted(HIERARCHY.hamlets),
        "hamlets": [(f"{commune}.hamlet.{local}", name) for local, name in HIERARCHY.hamlets.get(commune, ())],
        "schools": sorted((uid, name) for uid, name in UNIT_NAMES.items() if uid.startswith(f"{commune}.school.")),
        "children": forms.child_count(form),
        "choices": forms.CHOICES,
    }


async def report_form(request: Request) -> Response:
    session = await current(request)
    form = {"report_id": str(uuid.uuid4()), "children_count": "1"}
    if session.unit_type == "hamlet":
        form["hamlet"] = session.subject
    return render(request, "report.html", **_report_context(session, form, {}, request.query_params.get("commune")))


async def report(request: Request) -> Response:
    console = request.app.state.console
    session = await current(request)
    form = await posted(request, session)
    commune = session.commune or str(form.get("commune_code", ""))
    if form.get("action") == "add_child":
        form["children_count"] = str(min(forms.child_count(form) + 1, 20))
        return render(request, "report.html", **_report_context(session, form, {}, commune))
    if form.get("action") == "remove_child":
        form["children_count"] = str(max(forms.child_count(form) - 1, 1))
        return render(request, "report.html", **_report_context(session, form, {}, commune))
    payload, errors = forms.incident_payload(form, commune, _now())
    if not errors:
        try:
            answer = await console.apis.json("intake", "POST", "/v1/incidents", session.token, json=payload, ok=(202,))
            return redirect(f"/cases/{answer['incident_id']}?received=1")
        except ApiError as exc:
            errors = forms.api_errors(exc)
    return render(request, "report.html", 422, **_report_context(session, form, errors, commune))


# -- reports and the district ----------------------------------------------------------------


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


async def reports_page(request: Request) -> Response:
    console = request.app.state.console
    session = await current(request)
    org_unit = request.path_params["org_unit"]
    period = _period(request, org_unit)
    summary = await console.apis.json("reporting", "GET", f"/v1/summaries/{org_unit}", session.token, params={"period": period})
    revisions = []
    if len(org_unit) == 5:
        try:
            revisions = (await console.apis.json("reporting", "GET", f"/v1/reports/{org_unit}", session.token,
                                                 params={"limit": 20}))["items"]
        except ApiError:
            revisions = []
    return render(request, "reports.html", summary=summary, period=period, org_unit=org_unit,
                  charts=forms.charts(summary.get("indicators"), HIERARCHY), revisions=revisions, periods=forms.periods(_now()))


async def reports_export(request: Request) -> Response:
    console = request.app.state.console
    session = await current(request)
    org_unit = request.path_params["org_unit"]
    period = _period(request, org_unit)
    fmt = "csv" if request.query_params.get("format") == "csv" else "xlsx"
    revision = request.query_params.get("revision", "")
    if revision.isdigit():
        path = f"/v1/reports/{org_unit}/{period}/{revision}/export"
    else:
        path = f"/v1/summaries/{org_unit}/export"
    answer = await console.apis.call("reporting", "GET", path, session.token,
                                     params={"format": fmt} | ({} if revision.isdigit() else {"period": period}))
    return Response(answer.content, media_type=answer.headers.get("content-type"),
                    headers={"Content-Disposition": answer.headers.get("content-disposition", "attachment")})


async def district_page(request: Request) -> Response:
    console = request.app.state.console
    session = await current(request)
    code = request.path_params["code"]
    period = _period(request, code)
    summary = await console.apis.json("reporting", "GET", f"/v1/summaries/{code}", session.token, params={"period": period})
    return render(request, "district.html", summary=summary, period=period, code=code, periods=forms.periods(_now()),
                  charts=forms.charts(summary.get("indicators"), HIERARCHY),
                  reports={r["code"]: r for r in ((summary.get("completeness") or {}).get("reports") or [])})


async def commune_cases(request: Request) -> Response:
    console = request.app.state.console
    session = await current(request)
    code = request.path_params["code"]
    if not (session.kind == "admin" or (session.is_cp_officer and session.commune == code)):
        raise NotFound()
    filters = _inbox_filters(request)
    category = request.query_params.get("category", "")
    unit = session.unit_id or f"{code}.cp_officer"
    page = await console.apis.json("routing", "GET", f"/v1/agencies/{unit}/assignments", session.token,
                                   params=_inbox_params(filters) + [("limit", "500")])
    rows = [r for r in inbox_rows(page["items"], _now()) if not category or r["incident"]["category"] == category]
    return render(request, "commune_cases.html", rows=rows, code=code, filters=filters, category=category,
                  choices=forms.CHOICES, overdue=sum(1 for r in rows if r["late"]))


# -- people (admins; a commune's cp_officer for the units of its commune) -------------------------


def _may_administer(session: Session) -> bool:
    return session.kind == "admin" or session.is_cp_officer


async def _people_page(request: Request, session: Session, status: int = 200, **extra: Any) -> Response:
    if not _may_administer(session):
        raise NotFound()
    params = {"commune": session.commune} if session.commune else {}
    people = (await request.app.state.console.apis.json("intake", "GET", "/v1/users", session.token, params=params))["items"]
    units = sorted((uid, name) for uid, name in UNIT_NAMES.items() if not session.commune or uid.startswith(f"{session.commune}."))
    context = {"people": people, "units": units, "form": {}, "errors": {}, "issued": None} | extra
    return render(request, "people.html", status, **context)


async def people_page(request: Request) -> Response:
    session = await current(request)
    return await _people_page(request, session)


PEOPLE_ACTIONS = {"disable": "disable", "enable": "enable", "reset_password": "reset-password"}


async def people_action(request: Request) -> Response:
    console = request.app.state.console
    session = await current(request)
    if not _may_administer(session):
        raise NotFound()
    fields = await posted(request, session)
    action = fields.get("action")
    if action == "add":
        form = {k: str(fields.get(k, "")).strip() for k in ("username", "full_name", "subject")}
        errors = {k: "Thông tin bắt buộc." for k, v in form.items() if not v}
        if not errors:
            try:
                answer = await console.apis.json("intake", "POST", "/v1/users", session.token, ok=(201,), json={
                    **form, "kind": "unit"})
                return await _people_page(request, session, issued=answer)
            except ApiError as exc:
                errors["form"] = _people_error(exc)
        return await _people_page(request, session, 422, form=form, errors=errors)
    username = str(fields.get("username", ""))
    if action not in PEOPLE_ACTIONS or not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,119}", username):
        return await _people_page(request, session, 422, errors={"form": "Thao tác không hợp lệ."})
    try:
        answer = await console.apis.json("intake", "POST", f"/v1/users/{username}/{PEOPLE_ACTIONS[action]}", session.token)
    except ApiError as exc:
        return await _people_page(request, session, 422, errors={"form": _people_error(exc)})
    if action == "reset_password":
        return await _people_page(request, session, issued=answer)
    return redirect("/people")


def _people_error(exc: ApiError) -> str:
    if exc.status == 409:
        return "Tên đăng nhập này đã có người dùng."
    if exc.status == 403:
        return "Bạn không có quyền quản lý người dùng của đơn vị này."
    return "Không thực hiện được: tên đăng nhập chỉ gồm chữ thường không dấu, số, dấu gạch ngang; hãy kiểm tra lại."


# -- wiring --------------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    routes = [
        ("GET", "/login", login_form), ("POST", "/login", login), ("POST", "/logout", logout),
        ("GET", "/password", password_form), ("POST", "/password", change_password),
        ("GET", "/", home), ("GET", "/inbox", inbox),
        ("GET", "/cases/new", report_form), ("POST", "/cases/new", report),
        ("GET", "/cases/{incident_id}", case_page), ("POST", "/cases/{incident_id}", case_action),
        ("GET", "/communes/{code}/cases", commune_cases),
        ("GET", "/reports/{org_unit}", reports_page), ("GET", "/reports/{org_unit}/export", reports_export),
        ("GET", "/districts/{code}", district_page),
        ("GET", "/people", people_page), ("POST", "/people", people_action),
    ]
    for method, path, endpoint in routes:
        app.add_api_route(path, endpoint, methods=[method], response_class=HTMLResponse, include_in_schema=False)

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        return _to_login(request, exc.expired)

    @app.exception_handler(SignedOut)
    async def _signed_out(request: Request, _exc: SignedOut) -> Response:
        await request.app.state.console.sessions.end(request.cookies.get(COOKIE) or "")
        return _to_login(request, True)

    @app.exception_handler(MustChangePassword)
    async def _must_change(_request: Request, _exc: MustChangePassword) -> Response:
        return redirect("/password")

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, _exc: NotFound) -> Response:
        return render(request, "message.html", 404, title="Không tìm thấy",
                      message="Không tìm thấy trang hoặc vụ việc này, hoặc bạn không có quyền xem.")

    @app.exception_handler(Refused)
    async def _refused(request: Request, _exc: Refused) -> Response:
        return render(request, "message.html", 403, title="Yêu cầu bị từ chối",
                      message="Biểu mẫu đã cũ hoặc không hợp lệ. Vui lòng tải lại trang rồi thử lại.")

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, _exc: Unavailable) -> Response:
        response = render(request, "message.html", 503, title="Hệ thống tạm thời gián đoạn",
                          message="Không kết nối được với hệ thống. Chưa có gì bị thay đổi; vui lòng thử lại sau ít phút.")
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        title = "Không có quyền" if exc.status == 403 else "Yêu cầu không hợp lệ"
        message = "Bạn không có quyền xem trang này." if exc.status == 403 else "Thông tin yêu cầu không hợp lệ (ví dụ: kỳ báo cáo)."
        return render(request, "message.html", exc.status if exc.status in (403, 422) else 400, title=title, message=message)

    @app.exception_handler(404)
    async def _no_route(request: Request, _exc: Exception) -> Response:
        return render(request, "message.html", 404, title="Không tìm thấy", message="Không có trang này.")


def _to_login(request: Request, expired: bool) -> Response:
    target = "/login?expired=1" if expired else "/login"
    if request.headers.get("hx-request"):
        response = Response(status_code=204, headers={"HX-Redirect": target})
    else:
        response = redirect(target)
    response.delete_cookie(COOKIE, path="/")
    return response
