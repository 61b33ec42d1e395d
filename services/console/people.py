"""The console's administration screen: people of the units (admins; a commune's cp_officer for its commune)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from .clients import ApiError, NotFound
from .sessions import Session
from .web import UNIT_NAMES, current, posted, redirect, render


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
