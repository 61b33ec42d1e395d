"""The console's sign-in screens and its wiring: each page reads or changes through an API with the person's token."""

from __future__ import annotations

import contextlib
import secrets
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from . import activities, cases, notifications, people, reports, vi
from .clients import ApiError, MustChangePassword, NotFound, SignedOut, Unavailable
from .sessions import csrf_token
from .web import COOKIE, HIERARCHY, PRE_COOKIE, NotSignedIn, Refused, current, posted, redirect, render


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
    # The browser session ends whatever the API says.
    with contextlib.suppress(SignedOut, ApiError, NotFound, Unavailable, MustChangePassword):
        await console.apis.call("intake", "DELETE", "/v1/sessions/current", session.token, ok=(204,))
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


# -- wiring --------------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    routes = [
        ("GET", "/login", login_form), ("POST", "/login", login), ("POST", "/logout", logout),
        ("GET", "/password", password_form), ("POST", "/password", change_password),
        ("GET", "/", home), ("GET", "/inbox", cases.inbox),
        ("GET", "/cases/new", cases.report_form), ("POST", "/cases/new", cases.report),
        ("GET", "/activities", activities.activities_page), ("POST", "/activities", activities.activities_action),
        ("GET", "/cases/{incident_id}", cases.case_page), ("POST", "/cases/{incident_id}", cases.case_action),
        ("GET", "/cases/{incident_id}/records/{record_id}.{fmt}", cases.print_record),
        ("GET", "/communes/{code}/cases", reports.commune_cases),
        ("GET", "/communes/{code}/process", reports.process_board),
        ("GET", "/reports/{org_unit}", reports.reports_page), ("GET", "/reports/{org_unit}/export", reports.reports_export),
        ("GET", "/reports/{code}/document", reports.document_page), ("POST", "/reports/{code}/document", reports.document_action),
        ("GET", "/districts/{code}", reports.district_page), ("GET", "/districts/{code}/consolidated", reports.district_consolidated),
        ("GET", "/people", people.people_page), ("POST", "/people", people.people_action),
        ("GET", "/notifications", notifications.notifications_page), ("POST", "/notifications", notifications.notifications_action),
        ("GET", "/notifications/{subscription_id}", notifications.deliveries_page),
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
    response = Response(status_code=204, headers={"HX-Redirect": target}) if request.headers.get("hx-request") else redirect(target)
    response.delete_cookie(COOKIE, path="/")
    return response
