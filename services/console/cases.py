"""The console's case screens: the inbox, a case and its actions, the form to report an incident."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response

from . import forms, vi
from .admin import commune_units
from .clients import ApiError, NotFound
from .sessions import Session
from .web import HIERARCHY, OPEN, TEMPLATES, UNIT_NAMES, current, passed_on, posted, redirect, render, unit_name, utc_now


def _safe_next(value: str | None, default: str) -> str:
    return value if value and value.startswith("/") and not value.startswith("//") else default


TEMPLATES.globals.update(forms_yesno=forms.YESNO, forms_signers=forms.SIGNERS, task_fields=forms.TASK_FIELDS)


# -- inbox -------------------------------------------------------------------------------------


def inbox_filters(request: Request) -> dict[str, str]:
    q = request.query_params
    return {
        "status": q.get("status", "open") if q.get("status", "open") in (*OPEN, "done", "declined", "open", "all") else "open",
        "urgency": q.get("urgency", "") if q.get("urgency", "") in ("emergency", "high", "medium", "low") else "",
        "overdue": "1" if q.get("overdue") == "1" else "",
    }


def inbox_params(filters: dict[str, str]) -> list[tuple[str, str]]:
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
        # A plan task (issue 17) is due when the task is to be done: "hết ngày 07/12/2026", late while still open.
        task = str(a.get("origin") or "").startswith("plan:")
        rows.append({
            **a,
            "due_text": due_text if a["status"] == "pending" and not task else None,
            "task_due": vi.end_day(a["due_at"]) if task else None,
            "late": a["overdue"] or (late and (a["status"] == "pending" or (task and a["status"] in OPEN))),
            "actions": vi.NEXT_ACTIONS.get(a["status"], ()),
        })
    return rows


async def inbox(request: Request) -> Response:
    console = request.app.state.console
    session = await current(request)
    if session.unit_id is None:
        return redirect("/")
    filters = inbox_filters(request)
    page = await console.apis.json(
        "routing", "GET", f"/v1/agencies/{session.unit_id}/assignments", session.token, params=inbox_params(filters)
    )
    rows = inbox_rows(page["items"], utc_now())
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
    closed = bool(incident) and _closed(incident)
    erased = bool(incident) and incident["status"] == "erased"
    may_link = session.is_cp_officer and case.get("commune_code") == session.commune and incident is not None
    process = await _process(request, session, case.get("commune_code"), incident_id)
    return {
        "process": process,
        "duplicates": await _duplicates(request, session, incident_id) if may_link else [],
        "case": case,
        "incident_id": incident_id,
        "assignment": inbox_rows([assignment], utc_now())[0] if assignment else None,
        "view": (assignment or {}).get("incident", {}).get("view", "full") if incident is None else "full",
        # An erased case that had been closed stays closed: there is nothing left to reopen it for.
        "may_close": may_close and incident is not None and not (erased and closed),
        "closed": closed,
        "erased": erased,
        "risk_levels": vi.RISK,
    }


async def _process(request: Request, session: Session, commune: str | None, incident_id: str) -> dict | None:
    """The case's Decree 56/2017 process for the commune's cp_officer (who records its forms), its chairman and admins
    (who read it); None for anyone else, who sees nothing of it (domain.md section 7), or while routing has no case."""
    reader = session.kind == "admin" or (session.commune == commune and session.unit_type in ("cp_officer", "chairman"))
    if not reader:
        return None
    try:
        process = await request.app.state.console.apis.json("routing", "GET", f"/v1/incidents/{incident_id}/process", session.token)
    except (NotFound, ApiError):
        return None
    now = utc_now()
    deadline = process.get("deadline")
    if deadline:
        deadline["label"] = vi.STEP_DUE.get(deadline["step"], vi.STEPS.get(deadline["step"], deadline["step"]))
        deadline["text"], deadline["late"] = vi.due(deadline["due_at"], now) if deadline.get("due_at") else (deadline.get("note") or "", False)
    versions = [r for r in process["records"] if r["form"] == "initial_assessment"]
    process["assessments"] = sorted(versions, key=lambda r: r["version"], reverse=True)
    process["may_assess"] = session.is_cp_officer and process["step"] != "closed"
    process["actor"] = (
        "cp_officer" if session.is_cp_officer and session.commune == commune
        else "chairman" if session.unit_type == "chairman" and session.commune == commune else None
    )
    process["kept"] = [
        {"name": name, "title": spec["title"], "versions": [
            {**r, "shown": shown_record(name, r["data"])}
            for r in sorted((r for r in process["records"] if r["form"] == name), key=lambda r: r["version"], reverse=True)
        ]}
        for name, spec in forms.PROCESS_FORMS.items()
    ]
    process["kept"] = [k for k in process["kept"] if k["versions"]]
    process["current"] = {r["form"]: r["data"] for r in process["records"] if r["current"]}
    process["care_end_text"] = vi.end_day(process.get("care_ends_at")) if process.get("care_ends_at") else None
    if process["care_end_text"]:
        process["care_left"], process["care_late"] = vi.due(process["care_ends_at"], now)
    process["units"] = []
    if process["actor"] == "cp_officer" and any(f["name"] == "plan" for f in next_forms(process)):
        try:
            units = await commune_units(request, session, commune or "")
        except (NotFound, ApiError):
            units = []
        process["units"] = sorted(((u["id"], u["name"]) for u in units if u["active"]), key=lambda u: vi.fold(u[1]))
    return process


def next_forms(process: dict) -> list[dict]:
    """The process's forms this person may record now (routing has the last word): each with whether it is the
    step's next move (shown open) or an amendment, an extension, the exception (folded until asked for)."""
    step, actor, current = process["step"], process.get("actor"), process.get("current", {})
    out: list[dict] = []

    def offer(name: str, primary: bool, heading: str | None = None) -> None:
        out.append({"name": name, "primary": primary, "heading": heading or forms.PROCESS_FORMS[name]["title"],
                    "amend": name in current})

    if step == "closed" or actor is None:
        return out
    if actor == "cp_officer":
        urgent = bool(current.get("initial_assessment", {}).get("urgent_protection"))
        if step == "initial_assessment":
            offer("emergency_measures", urgent)
            offer("detailed_assessment", not urgent)
        elif step == "emergency_measures":
            offer("detailed_assessment", True)
        elif step == "detailed_assessment":
            offer("plan", True)
        elif step == "plan":
            offer("plan", False, "Sửa đổi kế hoạch trước khi phê duyệt (tạo phiên bản mới)")
        elif step == "implementation":
            offer("review", True)
        elif step == "review":
            low = current.get("review", {}).get("overall") == "low"
            offer("plan", not low, "Lập kế hoạch mới (quay lại bước lập kế hoạch)")
            offer("review", False, "Sửa đổi đánh giá Mẫu 06 (tạo phiên bản mới)")
        for name, at in (("emergency_measures", "emergency_measures"), ("detailed_assessment", "detailed_assessment")):
            if name in current and step != at and not any(f["name"] == name for f in out):
                offer(name, False, f"Sửa đổi: {forms.PROCESS_FORMS[name]['title'].lower()} (tạo phiên bản mới)")
        if step == "emergency_measures":
            offer("emergency_measures", False, "Sửa đổi biện pháp khẩn cấp (tạo phiên bản mới)")
        if step == "detailed_assessment":
            offer("detailed_assessment", False, "Sửa đổi đánh giá chi tiết (tạo phiên bản mới)")
    elif actor == "chairman":
        if step == "plan":
            offer("plan_approval", True)
        if step != "received":
            proposed = bool(current.get("emergency_measures", {}).get("separation_proposed"))
            decided = "care_decision" in current
            offer("care_decision", proposed and not decided,
                  "Gia hạn hoặc điều chỉnh quyết định tạm thời cách ly (tạo phiên bản mới)" if decided else None)
    return out


def shown_record(name: str, data: dict) -> list[tuple[str, str, bool]]:
    """A record's fields as (label, text, long text?) in the order of its form; a plan's tasks apart."""
    rows = []
    for key, label, kind, _, _, _ in forms.PROCESS_FORMS[name]["fields"]:
        value = data.get(key)
        if value in (None, "") and kind == "textarea":
            continue
        if kind == "risk":
            text = vi.RISK.get(value, str(value))
        elif kind == "yesno":
            text = "Có" if value else "Không"
        elif kind == "signer":
            text = forms.SIGNERS.get(value, str(value))
        elif kind == "day":
            text = vi.day(value)
        elif kind == "moment":
            text = vi.moment(value)
        else:
            text = str(value)
        rows.append((label, text, kind == "textarea"))
    if name == "plan_approval" and data.get("plan_version"):
        rows.append(("Kế hoạch được phê duyệt", f"Mẫu 04, phiên bản {data['plan_version']}", False))
    return rows


def task_rows(tasks: list[dict]) -> list[dict]:
    """A plan's tasks as the page shows them: the unit's name, the due day as an official writes it, the cost."""
    return [
        {**t, "unit": unit_name(t["unit_id"]), "due": vi.day(t["due_on"]), "cost": vi.dong(t.get("cost_vnd")) if t.get("cost_vnd") else "",
         "funding": t.get("funding") or ""}
        for t in tasks
    ]


def form_values(process: dict | None, name: str, posted_fields: dict | None) -> dict:
    """A process form's values: what was posted for it, else the current version's (an amendment, an extension, a new
    plan starts from it), else the defaults (moments as now, to the minute; a decision's day as today)."""
    if posted_fields is not None and posted_fields.get("action") in (name, f"add_task:{name}"):
        values = dict(posted_fields)
        for key, _, kind, *_ in forms.PROCESS_FORMS[name]["fields"] + (forms.TASK_FIELDS if name == "plan" else ()):
            for k in [k for k in values if k == key or (k.startswith("tasks-") and k.endswith(f"-{key}"))]:
                if kind == "day" and isinstance(values[k], str) and (day := forms.parse_day(values[k])):
                    values[k] = f"{day:%d/%m/%Y}"  # as an official writes it, whatever way it was typed
        return values
    now = utc_now().astimezone(vi.VN)
    shown = now.strftime("%d/%m/%Y %H:%M")
    current = (process or {}).get("current", {}).get(name)
    values: dict[str, Any] = {}
    for key, _, kind, *_ in forms.PROCESS_FORMS[name]["fields"]:
        if kind == "moment":
            values[key] = values[f"{key}_shown"] = shown
        elif current is not None and key in current:
            values[key] = {True: "yes", False: "no"}.get(current[key], current[key]) if kind == "yesno" else current[key]
            if kind == "day" and current[key]:
                values[key] = vi.day(current[key])
        elif kind == "day" and key in ("approved_on", "starts_on"):
            values[key] = f"{now.date():%d/%m/%Y}"
    if name == "plan":
        tasks = (current or {}).get("tasks", [])
        for i, task in enumerate(tasks):
            for key, *_ in forms.TASK_FIELDS:
                value = task.get(key)
                values[f"tasks-{i}-{key}"] = "" if value in (None, 0) else vi.day(value) if key == "due_on" else str(value)
        values["tasks_count"] = str(max(forms.PLAN_ROWS, len(tasks) + (1 if tasks else 0)))
    return values


def assessment_form(process: dict | None, posted: dict | None) -> dict:
    """The Mẫu 02 form's values: what was posted, else the current version's (an amendment starts from it); the
    assessment's time shown as now, Vietnam's time to the minute."""
    if posted is not None and posted.get("action") == "assess":
        return posted
    shown = utc_now().astimezone(vi.VN).strftime("%Y-%m-%dT%H:%M")
    current = next((r["data"] for r in (process or {}).get("assessments", []) if r["current"]), None)
    form = {"assessed_at": shown, "assessed_at_shown": shown}
    if current:
        form.update({k: current.get(k) or "" for k in ("harm", "danger_level", "measures_taken", "assessed_by")})
        form["urgent_protection"] = "yes" if current.get("urgent_protection") else "no"
    return form


def _closed(incident: dict) -> bool:
    """Closed, or erased after it was closed (an erased incident's status is `erased`; its timeline keeps the steps)."""
    if incident["status"] != "erased":
        return incident["status"] == "closed"
    steps = [e["kind"] for e in incident.get("timeline") or [] if e["kind"] in ("closed", "reopened")]
    return bool(steps) and steps[-1] == "closed"


async def _duplicates(request: Request, session: Session, incident_id: str) -> list[dict]:
    """The possible duplicates of a case (issue 17), each with the other report's children, for the cp_officer."""
    apis = request.app.state.console.apis
    items = (await apis.json("intake", "GET", f"/v1/incidents/{incident_id}/duplicates", session.token))["items"]
    for item in items:
        try:
            item["other"] = await apis.json("intake", "GET", f"/v1/incidents/{item['incident_id']}", session.token)
        except NotFound:
            item["other"] = None
    return items


async def case_page(request: Request) -> Response:
    session = await current(request)
    incident_id = request.path_params["incident_id"]
    context = await _case_context(request, session, incident_id)
    notice = "Đã gửi báo cáo. Số hồ sơ của vụ việc là" if request.query_params.get("received") else None
    done = vi.ASSESSMENT_DONE.get(request.query_params.get("assessed", "")) or vi.PROCESS_DONE.get(request.query_params.get("recorded", ""))
    return render(request, "case.html", notice=notice, done=done, error=None, errors={}, form={},
                  assessment=assessment_form(context["process"], None), offered=_offered(context["process"], None), **context)


def _offered(process: dict | None, posted_fields: dict | None) -> list[dict]:
    """The process forms to show this person, each with its values (a refused one with what was posted, open)."""
    if process is None:
        return []
    offered = []
    for f in next_forms(process):
        values = form_values(process, f["name"], posted_fields)
        mine = posted_fields is not None and posted_fields.get("action") in (f["name"], f"add_task:{f['name']}")
        if mine:
            values["_posted"] = True
        if f["name"] == "plan":
            count = forms.task_count(values)
            if mine and posted_fields.get("action") == "add_task:plan":
                count = min(count + 1, forms.PLAN_MOST_TASKS)
            values["tasks_count"] = str(count)
        offered.append({**f, "spec": forms.PROCESS_FORMS[f["name"]], "values": values, "open": f["primary"] or mine})
    return offered


ASSIGNMENT_ACTIONS = ("acknowledge", "in_progress", "done", "declined")
DUPLICATE_ACTIONS = {"link_duplicate": "link", "dismiss_duplicate": "dismiss"}


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
        elif action in DUPLICATE_ACTIONS:
            try:
                other = str(uuid.UUID(str(fields.get("other_id", ""))))
            except ValueError:
                raise NotFound() from None
            await console.apis.call("intake", "POST", f"/v1/incidents/{incident_id}/duplicates/{other}/{DUPLICATE_ACTIONS[action]}", session.token)
        elif action == "assess":
            payload, errors = forms.assessment_payload(fields, utc_now())
            if not errors:
                first = (await console.apis.json("routing", "POST", f"/v1/incidents/{incident_id}/assessment", session.token, json=payload))
                back = f"/cases/{incident_id}?assessed={len([r for r in first['records'] if r['form'] == 'initial_assessment'])}#process"
        elif action in forms.PROCESS_FORMS:
            payload, errors = forms.process_payload(action, fields, utc_now())
            if not errors:
                await console.apis.json("routing", "POST", f"/v1/incidents/{incident_id}/{forms.PROCESS_FORMS[action]['path']}",
                                        session.token, json=payload)
                back = f"/cases/{incident_id}?recorded={action}#process"
        elif action == "add_task:plan":
            # One more empty task row (a phone has no script to add it): the page again, with what was typed.
            context = await _case_context(request, session, incident_id)
            return render(request, "case.html", notice=None, done=None, error=None, errors={}, form=fields,
                          assessment=assessment_form(context["process"], None), offered=_offered(context["process"], fields), **context)
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
        if action == "assess":
            errors = forms.assessment_api_errors(exc)
        elif action in forms.PROCESS_FORMS:
            errors = forms.process_api_errors(action, exc, fields)
        else:
            errors = {"action": _action_error(exc)}
    if not errors:
        return redirect(back)
    context = await _case_context(request, session, incident_id)
    error = next(iter(errors.values()))
    if action in forms.PROCESS_FORMS and len(errors) > 1:
        error = f"Chưa ghi được: {len(errors)} mục cần sửa, được đánh dấu bên dưới. {error}"
    return render(request, "case.html", 409 if "action" in errors else 422, notice=None, done=None,
                  error=error, errors=errors, form=fields,
                  assessment=assessment_form(context["process"], fields), offered=_offered(context["process"], fields), **context)


def _action_error(exc: ApiError) -> str:
    if exc.status == 409:
        detail = exc.detail if isinstance(exc.detail, dict) else {}
        if detail.get("current") == "review" and detail.get("allowed") == ["plan"]:
            return ("Chưa thể kết thúc: lần đánh giá gần nhất (Mẫu 06) thấy trẻ vẫn còn nguy cơ (mức chung không phải Thấp). "
                    "Hãy lập kế hoạch mới (quay lại bước lập kế hoạch), hoặc ghi đánh giá Mẫu 06 mới ở mức Thấp, rồi mới kết thúc.")
        if detail.get("open_assignments"):
            units = ", ".join(unit_name(a["unit_id"]) for a in detail["open_assignments"])
            return f"Chưa thể kết thúc: các đơn vị sau chưa hoàn thành hoặc từ chối: {units}."
        if "current" in detail and "allowed" in detail:
            return forms.step_conflict("Thao tác này", detail)
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
    payload, errors = forms.incident_payload(form, commune, utc_now())
    if not errors:
        try:
            answer = await console.apis.json("intake", "POST", "/v1/incidents", session.token, json=payload, ok=(202,))
            return redirect(f"/cases/{answer['incident_id']}?received=1")
        except ApiError as exc:
            errors = forms.api_errors(exc)
    return render(request, "report.html", 422, **_report_context(session, form, errors, commune))




TEMPLATES.globals.update(task_rows=task_rows)


async def print_record(request: Request) -> Response:
    """One version of a process record as its printed form (PDF or DOCX), made by routing where the record lives, for
    the people routing lets read the process (the commune's cp_officer and chairman, admins); audited there."""
    session = await current(request)
    params = request.path_params
    if params["fmt"] not in ("pdf", "docx"):
        raise NotFound()
    path = f"/v1/incidents/{params['incident_id']}/process/records/{params['record_id']}.{params['fmt']}"
    return passed_on(await request.app.state.console.apis.call("routing", "GET", path, session.token))
