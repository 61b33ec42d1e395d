"""The console's notification screen (issue 18): the commune's cp_officer and admins see each unit's subscriptions
(webhook, email, agency queue), add one (a webhook's secret shown once), stop one or rotate its secret, and read
its delivery log, the failing endpoints marked. Every read and change is one call to routing's API."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from . import forms, vi
from .admin import COMMUNE, commune_units
from .clients import ApiError, NotFound
from .sessions import Session
from .web import HIERARCHY, current, posted, redirect, render, unit_name

RECENT = 10  # deliveries read per subscription to tell whether its endpoint is failing
LOG = 50  # deliveries on a subscription's own page
SUBSCRIPTION_ID = re.compile(r"^[0-9a-f-]{36}$")


def _communes(session: Session) -> list[str]:
    """The communes whose notifications this person manages: one for a cp_officer, all for admins, none for the others."""
    if session.kind == "admin":
        return sorted(HIERARCHY.hamlets)
    if session.is_cp_officer:
        return [session.commune]
    raise NotFound()


def _commune(session: Session, asked: str | None) -> str:
    communes = _communes(session)
    code = asked or communes[0]
    if code not in communes or not COMMUNE.match(code):
        raise NotFound()
    return code


def health(subscription: dict, deliveries: list[dict]) -> str:
    """`ok`, `failing` (the newest attempted delivery failed or waits for a retry), `gone` (routing disabled it: 410)
    or `stopped` (a person stopped it)."""
    if not subscription["active"]:
        return "stopped" if (subscription.get("disabled_reason") or "").startswith("deleted by") else "gone"
    tried = next((d for d in deliveries if d["attempts"] or d["status"] != "pending"), None)
    if tried and (tried["status"] == "failed" or (tried["status"] == "pending" and tried["last_error"])):
        return "failing"
    return "ok"


def _shown(subscription: dict, deliveries: list[dict] | None = None) -> dict[str, Any]:
    return {
        **subscription,
        "shown_target": forms.shown_target(subscription["channel"], subscription["target"]),
        "health": health(subscription, deliveries or []),
        "reason": vi.notify_error(subscription.get("disabled_reason")),
        "last_error": next((vi.notify_error(d["last_error"]) for d in deliveries or [] if d["last_error"]), ""),
        "retry_at": next((d["next_attempt_at"] for d in deliveries or [] if d["status"] == "pending" and d["last_error"]), None),
    }


async def _subscriptions(request: Request, session: Session, units: set[str]) -> list[dict]:
    apis = request.app.state.console.apis
    try:
        rows = await apis.json("routing", "GET", "/v1/subscriptions", session.token)
    except ApiError as exc:
        if exc.status == 403:
            raise NotFound() from None
        raise
    rows = [r for r in rows if r["unit_id"] in units]  # an admin reads every commune's: this page shows one
    logs = await asyncio.gather(
        *(
            apis.json("routing", "GET", f"/v1/subscriptions/{r['subscription_id']}/deliveries", session.token, params={"limit": RECENT})
            for r in rows
        )
    )
    return [_shown(r, log) for r, log in zip(rows, logs, strict=True)]


async def _page(
    request: Request,
    session: Session,
    code: str,
    status: int = 200,
    form: dict | None = None,
    errors: dict | None = None,
    secret: dict | None = None,
    notice: str | None = None,
) -> Response:
    units = await commune_units(request, session, code)
    subscriptions = await _subscriptions(request, session, {u["id"] for u in units})
    by_unit = [(u, [s for s in subscriptions if s["unit_id"] == u["id"]]) for u in units]
    return render(
        request,
        "notifications.html",
        status,
        code=code,
        communes=_communes(session),
        by_unit=[(u, s) for u, s in by_unit if s],
        units=[(u["id"], u["name"]) for u in units if u["active"]],
        failing=sum(s["health"] in ("failing", "gone") for s in subscriptions),
        form=form or {"events": ["assignment.created", "assignment.overdue", "incident.escalated"]},
        errors=errors or {},
        secret=secret,
        notice=notice,
        events=vi.NOTIFY_EVENTS,
        channels=vi.NOTIFY_CHANNELS,
    )


async def notifications_page(request: Request) -> Response:
    session = await current(request)
    code = _commune(session, request.query_params.get("commune"))
    notice = {"disabled": "Đã ngừng gửi thông báo theo đăng ký này."}.get(request.query_params.get("done", ""))
    return await _page(request, session, code, notice=notice)


async def notifications_action(request: Request) -> Response:
    """create (a new subscription), disable (stop one), rotate (a webhook's new secret): each one call to routing."""
    console = request.app.state.console
    session = await current(request)
    _communes(session)
    fields = await posted(request, session)
    code = _commune(session, str(fields.get("commune", "")) or None)
    action = fields.get("action")
    if action == "create":
        units = {u["id"] for u in await commune_units(request, session, code) if u["active"]}
        payload, errors = forms.subscription_payload(fields, units)
        form = {**fields, "events": payload["events"]}
        if errors:
            return await _page(request, session, code, 422, form=form, errors=errors)
        try:
            created = await console.apis.json("routing", "POST", "/v1/subscriptions", session.token, json=payload, ok=(201,))
        except ApiError as exc:
            return await _page(request, session, code, 422, form=form, errors=forms.subscription_api_errors(exc))
        secret = {"value": created["secret"], **_shown(created)} if created.get("secret") else None
        # The secret is in this answer only (Standard Webhooks): shown now, never stored by the console, not in a URL.
        return await _page(
            request, session, code, 201, secret=secret, notice=f"Đã đăng ký nhận thông báo cho {unit_name(created['unit_id'])}."
        )
    subscription_id = str(fields.get("subscription_id", ""))
    if not SUBSCRIPTION_ID.match(subscription_id):
        raise NotFound()
    if action == "disable":
        await console.apis.call("routing", "DELETE", f"/v1/subscriptions/{subscription_id}", session.token, ok=(204,))
        return redirect(f"/notifications?commune={code}&done=disabled")
    if action == "rotate":
        rotated = await console.apis.json("routing", "POST", f"/v1/subscriptions/{subscription_id}/rotate", session.token)
        subscription = await _one(request, session, subscription_id)
        return await _page(
            request,
            session,
            code,
            secret={"value": rotated["secret"], "rotated": True, **_shown(subscription)},
            notice="Đã tạo khóa ký mới.",
        )
    raise NotFound()


async def _one(request: Request, session: Session, subscription_id: str) -> dict:
    rows = await request.app.state.console.apis.json("routing", "GET", "/v1/subscriptions", session.token)
    found = next((r for r in rows if r["subscription_id"] == subscription_id), None)
    if found is None:
        raise NotFound()
    return found


async def deliveries_page(request: Request) -> Response:
    """One subscription's delivery log, newest first: status, attempts, the last error, the next attempt."""
    session = await current(request)
    _communes(session)
    subscription_id = request.path_params["subscription_id"]
    if not SUBSCRIPTION_ID.match(subscription_id):
        raise NotFound()
    try:
        deliveries = await request.app.state.console.apis.json(
            "routing", "GET", f"/v1/subscriptions/{subscription_id}/deliveries", session.token, params={"limit": LOG}
        )
        subscription = await _one(request, session, subscription_id)
    except ApiError as exc:
        if exc.status == 403:
            raise NotFound() from None
        raise
    rows = [{**d, "error": vi.notify_error(d["last_error"])} for d in deliveries]
    return render(
        request,
        "notification_log.html",
        s=_shown(subscription, deliveries),
        rows=rows,
        code=subscription["unit_id"].split(".", 1)[0],
        events=vi.NOTIFY_EVENTS,
        channels=vi.NOTIFY_CHANNELS,
        statuses=vi.DELIVERY_STATUS,
    )
