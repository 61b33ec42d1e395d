"""The commune's report document: the cp_officer drafts its narrative, submits it, the chairman (or a deputy)
approves and signs it, and it is sent to the district (`report.submitted`).

Each version pins the generated revision whose figures it prints. While a version is a draft it follows the
newest revision; once submitted its figures are fixed. After a version was sent, a newer revision of the
figures makes the next version (a replacement, marked so in the document), never a change to the sent one.
Everything runs in the caller's unit of work; the rules about who may do what and which step follows which
are the pure functions at the top.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal
from shared.enums import UnitType
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.events import ReportSubmitted
from shared.reference import Hierarchy
from shared.uow import UnitOfWork

from . import reports
from .models import GeneratedReport, ReportDocument
from .periods import Period, PlanConfig
from .summaries import check_access, district_share, period_of

PRODUCER = "reporting"
# The narrative sections the officer writes (the figures are the summary's): section I, II, III, IV, V.
NARRATIVE = ("situation", "results", "incidents", "assessment", "next_tasks", "recommendations")
MAX_SECTION = 20_000
Action = Literal["submit", "return", "approve", "send"]
# action -> (from, to)
STEPS: dict[str, tuple[str, str]] = {
    "submit": ("draft", "submitted"),
    "return": ("submitted", "draft"),
    "approve": ("submitted", "approved"),
    "send": ("approved", "sent"),
}
SIGNED_AS = ("chairman", "deputy")


# -- pure rules --------------------------------------------------------------------------------


def is_chairman_of(principal: Principal, commune: str) -> bool:
    """The commune's chairman unit: the chairman or a deputy chairman (Phó Chủ tịch) signed in for it."""
    return principal.kind == "unit" and principal.subject == f"{commune}.{UnitType.chairman.value}"


def may_act(principal: Principal, commune: str, action: str) -> bool:
    """The cp_officer drafts, submits and sends; the chairman (or a deputy) approves or returns, and may send."""
    if action in ("draft", "submit"):
        return principal.is_cp_officer_of(commune)
    if action in ("approve", "return"):
        return is_chairman_of(principal, commune)
    if action == "send":
        return principal.is_cp_officer_of(commune) or is_chairman_of(principal, commune)
    return False


def next_status(current: str, action: str) -> str:
    """The status after `action`; Conflict naming what is possible when the action does not apply now."""
    start, end = STEPS[action]
    if current != start:
        allowed = [a for a, (s, _) in STEPS.items() if s == current]
        raise Conflict(f"the document is {current}: {action} needs {start} (possible now: {', '.join(allowed) or 'nothing'})")
    return end


def clean_narrative(raw: Mapping[str, Any], before: Mapping[str, str] | None = None) -> dict[str, str]:
    """The sections as stored: NFC, trimmed, known keys only; a section not given keeps its text."""
    unknown = sorted(set(raw) - set(NARRATIVE))
    if unknown:
        raise Invalid(f"unknown narrative sections {unknown}; known: {list(NARRATIVE)}")
    out = {key: (before or {}).get(key, "") for key in NARRATIVE}
    for key, value in raw.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise Invalid(f"narrative section {key!r} must be text")
        text = unicodedata.normalize("NFC", value).replace("\r\n", "\n").strip()
        if len(text) > MAX_SECTION:
            raise Invalid(f"narrative section {key!r} is longer than {MAX_SECTION} characters")
        out[key] = text
    return out


def missing_sections(narrative: Mapping[str, str]) -> list[str]:
    return [key for key in NARRATIVE if not (narrative.get(key) or "").strip()]


# -- reading -------------------------------------------------------------------------------------


def check_read(hierarchy: Hierarchy, commune: str, period: Period, principal: Principal) -> None:
    """Whoever reads summaries of the commune, and its chairman (who signs the document), may read it."""
    if is_chairman_of(principal, commune):
        return
    check_access(hierarchy, commune, principal)
    district_share(hierarchy, commune, period, principal)


async def versions(session: AsyncSession, commune: str, period_id: str) -> list[ReportDocument]:
    d = ReportDocument
    rows = await session.execute(select(d).where(d.org_unit == commune, d.period == period_id).order_by(d.version))
    return list(rows.scalars())


async def generated(session: AsyncSession, commune: str, period_id: str, revision: int | None) -> GeneratedReport | None:
    """A generated revision (the newest when `revision` is None)."""
    g = GeneratedReport
    stmt = select(g).where(g.org_unit == commune, g.period == period_id)
    stmt = stmt.where(g.revision == revision) if revision is not None else stmt.order_by(g.revision.desc()).limit(1)
    return (await session.execute(stmt)).scalars().first()


def document_read(row: ReportDocument, newest_revision: int | None = None) -> dict[str, Any]:
    return {
        "org_unit": row.org_unit,
        "period": row.period,
        "version": row.version,
        "replaces": row.version - 1 if row.version > 1 else None,
        "revision": row.revision,
        "newer_revision": newest_revision if newest_revision and newest_revision > row.revision else None,
        "status": row.status,
        "number": row.number,
        "narrative": {key: (row.narrative or {}).get(key, "") for key in NARRATIVE},
        "drafted_by": row.drafted_by,
        "drafted_at": row.drafted_at,
        "submitted_by": row.submitted_by,
        "submitted_at": row.submitted_at,
        "approved_by": row.approved_by,
        "approved_at": row.approved_at,
        "signer_name": row.signer_name,
        "signed_as": row.signed_as,
        "sent_by": row.sent_by,
        "sent_at": row.sent_at,
        "on_time": row.on_time,
    }


async def read_documents(
    session: AsyncSession, hierarchy: Hierarchy, plans: PlanConfig, commune: str, period_id: str, principal: Principal
) -> dict[str, Any]:
    period = plan_period_of(period_id, plans)
    check_read(hierarchy, commune, period, principal)
    rows = await versions(session, commune, period.id)
    newest = await generated(session, commune, period.id, None)
    newest_revision = newest.revision if newest else None
    return {
        "org_unit": commune,
        "period": period.id,
        "due": period.due,
        "newest_revision": newest_revision,
        "current": document_read(rows[-1], newest_revision) if rows else None,
        "versions": [document_read(r, newest_revision) for r in reversed(rows)],
    }


async def document_for(session: AsyncSession, commune: str, period_id: str, revision: int) -> ReportDocument | None:
    """The newest version that prints this revision's figures."""
    d = ReportDocument
    stmt = select(d).where(d.org_unit == commune, d.period == period_id, d.revision == revision).order_by(d.version.desc())
    return (await session.execute(stmt.limit(1))).scalars().first()


def plan_period_of(period_id: str, plans: PlanConfig) -> Period:
    period = period_of(period_id, plans)
    if period.kind != "plan":
        raise Invalid(f"period {period_id!r} is not a plan period: documents are for the plan's reports (e.g. 2025-6M)")
    return period


def _commune(hierarchy: Hierarchy, code: str) -> None:
    unit = hierarchy.unit(code)
    if unit is None or unit.level != "commune":
        raise NotFound(f"{code!r} is not a commune of the administrative hierarchy")


# -- writing -------------------------------------------------------------------------------------


async def save_draft(
    uow: UnitOfWork,
    hierarchy: Hierarchy,
    plans: PlanConfig,
    commune: str,
    period_id: str,
    principal: Principal,
    body: Mapping[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """Write the narrative (and the number) of the current draft; start the first version, or the next one after a sent
    version when newer figures exist."""
    _commune(hierarchy, commune)
    period = plan_period_of(period_id, plans)
    if not may_act(principal, commune, "draft"):
        raise Forbidden(f"only {commune}.cp_officer drafts the commune's report")
    session = uow.session
    newest = await generated(session, commune, period.id, None)
    if newest is None:
        raise Conflict(f"no figures yet for {commune} {period.id}: the report is generated once the period is over")
    rows = await versions(session, commune, period.id)
    current = rows[-1] if rows else None
    number = _number(body.get("number"), current.number if current else None)
    if current is None or current.status == "sent":
        if current is not None and newest.revision <= current.revision:
            raise Conflict(f"version {current.version} was sent with the newest figures (revision {current.revision}); "
                           "a new version needs a new revision of the figures")
        current = ReportDocument(
            org_unit=commune,
            period=period.id,
            version=current.version + 1 if current else 1,
            revision=newest.revision,
            status="draft",
            number=number if current is None else None,  # a replacement is a new document: its own number
            narrative=clean_narrative(body.get("narrative") or {}, current.narrative if current else None),
            drafted_by=principal.label,
            drafted_at=now,
        )
        session.add(current)
    elif current.status != "draft":
        raise Conflict(f"version {current.version} is {current.status}: only a draft is written (the chairman may return it)")
    else:
        current.narrative = clean_narrative(body.get("narrative") or {}, current.narrative)
        current.number = number
        current.revision = newest.revision  # a draft follows the newest figures
        current.drafted_by, current.drafted_at = principal.label, now
    await session.flush()
    return document_read(current, newest.revision)


def _number(raw: Any, before: str | None) -> str | None:
    if raw is None:
        return before
    text = unicodedata.normalize("NFC", str(raw)).strip()
    if len(text) > 32:
        raise Invalid("the document number is at most 32 characters (e.g. 45/BC-UBND)")
    return text or None


async def act(
    uow: UnitOfWork,
    hierarchy: Hierarchy,
    plans: PlanConfig,
    commune: str,
    period_id: str,
    principal: Principal,
    action: Action,
    now: datetime,
    body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Submit, return, approve or send the current version; sending stages `report.submitted`."""
    _commune(hierarchy, commune)
    period = plan_period_of(period_id, plans)
    if not may_act(principal, commune, action):
        who = {"submit": "the cp_officer", "approve": "the chairman", "return": "the chairman", "send": "the cp_officer or the chairman"}
        raise Forbidden(f"{principal.label} may not {action} the report: that is for {who[action]} of {commune}")
    body = body or {}
    session = uow.session
    rows = await versions(session, commune, period.id)
    if not rows:
        raise NotFound(f"no report document of {commune} for {period.id}: the cp_officer drafts it first")
    row = rows[-1]
    status = next_status(row.status, action)
    if action == "submit":
        missing = missing_sections(row.narrative or {})
        if missing:
            raise Invalid(f"write every section before submitting; empty: {missing}")
        row.submitted_by, row.submitted_at = principal.label, now
    elif action == "approve":
        signer = " ".join(unicodedata.normalize("NFC", str(body.get("signer_name") or "")).split())
        signed_as = body.get("signed_as") or "chairman"
        if not signer or len(signer) > 200:
            raise Invalid("signer_name: the full name of who signs (1 to 200 characters)")
        if signed_as not in SIGNED_AS:
            raise Invalid(f"signed_as must be one of {list(SIGNED_AS)}")
        row.approved_by, row.approved_at, row.signer_name, row.signed_as = principal.label, now, signer, signed_as
        if body.get("number") is not None:
            row.number = _number(body.get("number"), row.number)
    elif action == "return":
        row.submitted_by = row.submitted_at = None
    elif action == "send":
        assert period.due is not None
        first_sent = next((r.sent_at for r in rows if r.sent_at is not None), None)
        row.sent_by, row.sent_at = principal.label, now
        row.on_time = reports.on_time(first_sent or now, period.due)
        event = ReportSubmitted(
            org_unit=commune, period=period.id, version=row.version, revision=row.revision,
            replaces=row.version - 1 if row.version > 1 else None, signed_as=row.signed_as or "chairman",
            sent_at=now, due=period.due, on_time=reports.on_time(now, period.due),
        )
        await uow.stage(event.envelope(correlation_id=f"report:{commune}:{period.id}", producer=PRODUCER, emitted_at=now))
    row.status = status
    await session.flush()
    return document_read(row)
