"""The console's activity screen (issue 16): a unit's member records what the unit did under the commune's plan,
on a phone, and sees and withdraws its own; the commune's cp_officer records for any unit and sees them all."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from shared.plans import COUNT_FIELDS, COUNT_LABELS_VI, Plan, available_plans, load_plan
from shared.reference import load_demo_units

from . import forms, vi
from .clients import ApiError
from .sessions import Session
from .web import current, posted, redirect, render, utc_now

COMMUNE_UNITS = load_demo_units()


def today() -> date:
    return utc_now().astimezone(vi.VN).date()


def _plan(commune: str, day: date) -> Plan | None:
    """The plan the form offers: the commune's for that year, else its newest before it (a late report of last year's work)."""
    years = [year for code, year in available_plans() if code == commune and year <= day.year]
    return load_plan(commune, max(years)) if years else None


def _context(session: Session, plan: Plan | None, items: list[dict], form: dict, errors: dict) -> dict[str, Any]:
    officer = session.is_cp_officer
    tasks = [t for t in plan.tasks if t.kinds] if plan and officer else plan.tasks_of(session.unit_type) if plan else []
    kinds = {k: plan.kinds[k] for t in tasks for k in t.kinds} if plan else {}
    return {
        "plan": plan,
        "tasks": [(t.id, f"{t.id} – {t.unit}") for t in tasks],
        "kinds": [(code, kind.label) for code, kind in kinds.items()],
        # What each kind counts, so the person fills in only those on a small screen.
        "kind_counts": [(kind.label, ", ".join(COUNT_LABELS_VI[f] for f in kind.fields)) for kind in kinds.values()],
        "task_kinds": [(t.id, ", ".join(plan.kinds[k].label for k in t.kinds)) for t in tasks] if plan else [],
        "units": [(u.id, u.name) for u in COMMUNE_UNITS if u.commune_code == session.commune] if officer else [],
        "count_fields": [(f, COUNT_LABELS_VI[f]) for f in COUNT_FIELDS],
        "items": [_row(a, plan) for a in items],
        "form": form,
        "errors": errors,
        "today": today().isoformat(),
    }


def _row(activity: dict, plan: Plan | None) -> dict:
    kind = plan.kinds.get(activity["kind"]) if plan else None
    counts = [(COUNT_LABELS_VI[f], n) for f, n in activity["counts"].items() if n]
    return {**activity, "kind_label": kind.label if kind else activity["kind"], "count_text": counts,
            "status_label": vi.ACTIVITY_STATUS.get(activity["status"], activity["status"])}


async def _items(request: Request, session: Session) -> list[dict]:
    page = await request.app.state.console.apis.json(
        "intake", "GET", "/v1/activities", session.token, params={"commune": session.commune, "limit": 100, "include_withdrawn": "true"}
    )
    return page["items"]


async def activities_page(request: Request) -> Response:
    session = await current(request)
    if session.unit_id is None:
        return redirect("/")
    notice = {"recorded": "Đã ghi nhận kết quả hoạt động.", "withdrawn": "Đã rút lại hoạt động."}.get(request.query_params.get("done", ""))
    context = _context(session, _plan(session.commune, today()), await _items(request, session), {"held_on": today().isoformat()}, {})
    return render(request, "activities.html", notice=notice, **context)


async def activities_action(request: Request) -> Response:
    console = request.app.state.console
    session = await current(request)
    if session.unit_id is None:
        return redirect("/")
    form = await posted(request, session)
    if form.get("action") == "withdraw":
        activity_id = str(form.get("activity_id", ""))
        await console.apis.call("intake", "DELETE", f"/v1/activities/{activity_id}", session.token)
        return redirect("/activities?done=withdrawn")
    unit_id = str(form.get("unit_id") or "") if session.is_cp_officer else session.unit_id
    payload, errors = forms.activity_payload(form, unit_id, today())
    if not errors:
        try:
            await console.apis.call("intake", "POST", "/v1/activities", session.token, json=payload, ok=(201,))
        except ApiError as exc:
            errors = forms.activity_api_errors(exc)
        else:
            return redirect("/activities?done=recorded")
    plan = _plan(session.commune, date.fromisoformat(payload["held_on"]) if "held_on" not in errors else today())
    return render(request, "activities.html", 422, notice=None, **_context(session, plan, await _items(request, session), form, errors))
