"""Administration beyond people: the unit registry, the active routing rules (and loading a new version), the read audit."""

from __future__ import annotations

import re
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from shared.enums import Category, Urgency

from .clients import ApiError, NotFound
from .sessions import Session
from .web import HIERARCHY, current, posted, render

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
COMMUNE = re.compile(r"^\d{5}$")
FILENAME = re.compile(r"^[\w.\- ]{1,100}$")
AUDIT_FILTERS = ("incident", "principal", "since")
AUDIT_ACTIONS = {
    "read": "Xem hồ sơ vụ việc", "sign_in": "Đăng nhập", "sign_in_failed": "Đăng nhập sai", "lockout": "Tạm khóa do đăng nhập sai",
    "sign_out": "Đăng xuất", "password_changed": "Đổi mật khẩu", "password_change_failed": "Đổi mật khẩu không thành công",
    "password_reset": "Cấp lại mật khẩu", "user_added": "Thêm người dùng", "user_disabled": "Khóa người dùng",
    "user_active": "Mở khóa người dùng", "token_issued": "Cấp mã truy cập", "token_revoked": "Thu hồi mã truy cập",
    "denied": "Truy cập bị từ chối", "audit_read": "Xem nhật ký truy cập", "audit_pruned": "Xóa nhật ký hết thời hạn lưu trữ",
}


def _admin_or_cp_officer(session: Session) -> None:
    if not (session.kind == "admin" or session.is_cp_officer):
        raise NotFound()


# -- the unit registry ---------------------------------------------------------------------------


@router.get("/admin/units")
async def units_page(request: Request) -> Response:
    session = await current(request)
    _admin_or_cp_officer(session)
    communes = sorted(HIERARCHY.hamlets) if session.kind == "admin" else [session.commune]
    code = request.query_params.get("commune") or communes[0]
    if code not in communes or not COMMUNE.match(code):
        raise NotFound()
    units = await commune_units(request, session, code)
    return render(request, "admin_units.html", units=units, code=code, communes=communes)


async def commune_units(request: Request, session: Session, code: str) -> list[dict]:
    """The commune's registered units from routing; a person routing refuses gets a 404, as for another commune."""
    units, cursor = [], None
    while True:  # a commune has tens of units: read them all, a page of 500 at a time
        params = {"commune": code, "limit": "500"} | ({"cursor": cursor} if cursor else {})
        try:
            page = await request.app.state.console.apis.json("routing", "GET", "/v1/units", session.token, params=params)
        except ApiError as exc:
            if exc.status == 403:
                raise NotFound() from None
            raise
        units += page["items"]
        if not (cursor := page["next_cursor"]):
            return units


# -- the routing rules ---------------------------------------------------------------------------


def rule_table(rule_set: dict) -> list[dict]:
    """One row per category (and one for every incident): its lead and support units, each with the urgencies it applies at."""
    by_category: dict[str | None, dict[str, list[dict]]] = {}
    for rule in rule_set["rules"]:
        by_category.setdefault(rule["category"], {"lead": [], "support": []})[rule["role"]].append(rule)
    order = [None, *(c.value for c in Category)]
    return [{"category": c, **by_category[c]} for c in order if c in by_category]


async def _rules_page(request: Request, session: Session, status: int = 200, **extra) -> Response:
    _admin_or_cp_officer(session)
    try:
        rule_set = await request.app.state.console.apis.json("routing", "GET", "/v1/rules", session.token)
    except ApiError as exc:
        if exc.status == 403:
            raise NotFound() from None
        raise
    context = {"text": rule_set["text"], "filename": None, "error": None, "loaded": None} | extra
    return render(request, "admin_rules.html", status, rule_set=rule_set, table=rule_table(rule_set),
                  urgencies=[u.value for u in Urgency], **context)


@router.get("/admin/rules")
async def rules_page(request: Request) -> Response:
    return await _rules_page(request, await current(request))


@router.post("/admin/rules")
async def load_rules(request: Request) -> Response:
    session = await current(request)
    if session.kind != "admin":
        raise NotFound()
    fields = await posted(request, session)
    text = str(fields.get("rules_text", "")).replace("\r\n", "\n")
    # The chosen file's name (set by admin.js) names the place of an error, as `baove rules load FILE` does.
    filename = str(fields.get("rules_filename", ""))
    filename = filename if FILENAME.match(filename) else "rules.yaml"
    if not text.strip():
        return await _rules_page(request, session, 422, text=text, error="Hãy dán nội dung tệp quy tắc (YAML).")
    try:
        loaded = await request.app.state.console.apis.json(
            "routing", "POST", "/v1/rules", session.token, ok=(201,), json={"text": text, "filename": filename})
    except ApiError as exc:
        if exc.status == 409:
            error = f"Phiên bản này đã được nạp trước đây; hãy đặt phiên bản mới (version). Chi tiết: {exc.detail}"
        elif exc.status == 422 and isinstance(exc.detail, str):
            error = f"Tệp quy tắc có lỗi: {exc.detail}"
        else:
            error = "Nội dung không hợp lệ; hãy kiểm tra lại tệp quy tắc."
        return await _rules_page(request, session, 422, text=text, filename=filename, error=error)
    return await _rules_page(request, session, loaded=loaded["version"])


# -- the read audit ------------------------------------------------------------------------------


@router.get("/admin/audit")
async def audit_page(request: Request) -> Response:
    session = await current(request)
    if session.kind != "admin":
        raise NotFound()
    filters = {k: request.query_params.get(k, "").strip() for k in AUDIT_FILTERS}
    errors = {}
    params: dict[str, str] = {"limit": "50"}
    if filters["incident"]:
        params["incident_id"] = filters["incident"]
    if filters["principal"]:
        params["principal"] = filters["principal"]
    if filters["since"]:
        try:
            params["since"] = f"{date.fromisoformat(filters['since']).isoformat()}T00:00:00+07:00"
        except ValueError:
            errors["since"] = "Ngày không hợp lệ (dd/mm/yyyy)."
    if cursor := request.query_params.get("cursor"):
        params["cursor"] = cursor
    page = {"items": [], "next_cursor": None}
    if not errors:
        try:
            page = await request.app.state.console.apis.json("intake", "GET", "/v1/audit", session.token, params=params)
        except ApiError as exc:
            if exc.status == 403:
                raise NotFound() from None
            errors["form"] = "Bộ lọc không hợp lệ; hãy xóa bộ lọc và thử lại."
    next_params = {k: v for k, v in filters.items() if v} | ({"cursor": page["next_cursor"]} if page["next_cursor"] else {})
    return render(request, "admin_audit.html", 422 if errors else 200, items=page["items"], filters=filters, errors=errors,
                  next_params=next_params if page["next_cursor"] else None, first_page=bool(cursor), actions=AUDIT_ACTIONS)
