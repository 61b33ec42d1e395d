"""Reporting's HTTP routes: parse, compute the summary in one read, answer as JSON, CSV or XLSX;
the generated plan-period reports, revision by revision; and the report as an official document (DOCX, PDF):
its narrative, sign-off and sending, and the district's consolidated report."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import Response

from shared import plans as plans_data
from shared.auth import Principal
from shared.deps import AppHierarchy, Caller, Now, Uow, from_state
from shared.errors import Invalid, NotFound
from shared.metrics import ReportingMetrics

from . import documents, exports, revisions, signoff, summaries
from .periods import PERIOD_FORMS, PlanConfig
from .schemas import (
    ApprovalWrite,
    DocumentRead,
    DocumentsRead,
    DraftWrite,
    GeneratedReportItem,
    GeneratedReportPage,
    GeneratedReportRead,
    SummaryRead,
)

router = APIRouter(prefix="/v1", tags=["summaries"])

ERRORS = {
    401: {"description": "missing or bad token"},
    403: {"description": "this principal may not read summaries"},
    404: {"description": "no such org unit, or not in the token's scope"},
    422: {"description": "bad period id"},
}
Metrics = Annotated[ReportingMetrics, Depends(from_state("metrics"))]
Plans = Annotated[PlanConfig, Depends(from_state("plans"))]
SmallCells = Annotated[int, Depends(from_state("small_cells"))]
PERIOD = Query(description=f"period id: {PERIOD_FORMS}, e.g. 2025, 2025S1, 2025Q2, 202505, 2025-6M, 2025-12M")


class Summaries:
    """What a summary route needs, asked once."""

    def __init__(self, uow: Uow, hierarchy: AppHierarchy, plans: Plans, metrics: Metrics, now: Now, small_cells: SmallCells) -> None:
        self.uow, self.hierarchy, self.plans, self.metrics, self.now = uow, hierarchy, plans, metrics, now
        self.small_cells = small_cells


Reads = Annotated[Summaries, Depends()]


async def _summary(reads: Summaries, org_unit: str, period: str, principal: Principal) -> dict:
    started = time.perf_counter()
    summary = await summaries.summary(reads.uow.session, reads.hierarchy, reads.plans, org_unit, period, principal, reads.now)
    reads.metrics.generation_seconds.labels(summary["level"]).observe(time.perf_counter() - started)
    return summary


@router.get("/summaries/{org_unit}", response_model=SummaryRead, responses=ERRORS)
async def read_summary(org_unit: str, reads: Reads, principal: Caller, period: str = PERIOD):
    """Indicators of a commune (5 digits), district (3) or province (2) for a period; null indicators mean no data."""
    summary = await _summary(reads, org_unit, period, principal)
    # Validated and written by pydantic's own serializer: a province's summary is ~400 kB, and FastAPI's
    # generic encoder takes ten times longer over it than the model does.
    return Response(SummaryRead.model_validate(summary).model_dump_json(by_alias=True), media_type="application/json")


def _as_table(what: str) -> dict:
    """How an export route is documented: `what` as CSV or XLSX."""
    return {"responses": {**ERRORS, 200: {"description": f"{what} as a table with Vietnamese headings"}}, "response_class": Response}


@router.get("/summaries/{org_unit}/export", **_as_table("the summary"))
async def export_summary(
    org_unit: str,
    reads: Reads,
    principal: Caller,
    period: str = PERIOD,
    fmt: Literal["csv", "xlsx"] = Query("xlsx", alias="format"),
):
    """The same numbers as the JSON summary, as CSV or XLSX for the district office."""
    summary = await _summary(reads, org_unit, period, principal)
    return _export(reads, summary, fmt, f"baove-{summary['org_unit']}-{summary['period']['id']}.{fmt}")


def _export(reads: Summaries, summary: dict, fmt: str, filename: str) -> Response:
    """A published table: small counts below district level hidden (BAOVE_REPORTING_SMALL_CELL_THRESHOLD)."""
    write, media_type = exports.EXPORTERS[fmt]
    hamlet_names = exports.hamlet_names(reads.hierarchy)
    return Response(
        write(summary, hamlet_names, reads.small_cells),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# -- generated reports -------------------------------------------------------------------------

reports_router = APIRouter(prefix="/v1", tags=["generated reports"])
REVISION = Path(description="the revision number (1, 2, ...) or `latest`", pattern=r"^(latest|[1-9][0-9]{0,5})$")


@reports_router.get("/reports/{org_unit}", response_model=GeneratedReportPage, responses=ERRORS)
async def list_reports(
    org_unit: str,
    reads: Reads,
    principal: Caller,
    period: str | None = Query(None, description="only this plan period, e.g. 2025-6M"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
):
    """The generated revisions of a commune's plan-period reports (of every commune, for a district or province); newest first."""
    rows, next_cursor = await revisions.list_reports(
        reads.uow.session, reads.hierarchy, reads.plans, org_unit, principal,
        period_id=period, limit=limit, cursor=cursor,
    )
    items = [GeneratedReportItem(**revisions.report_read(r, with_summary=False)) for r in rows]
    return GeneratedReportPage(items=items, next_cursor=next_cursor)


async def _stored(reads: Summaries, org_unit: str, period: str, revision: str, principal: Principal) -> dict:
    row = await revisions.read_report(
        reads.uow.session, reads.hierarchy, reads.plans, org_unit, period, None if revision == "latest" else int(revision), principal
    )
    return revisions.report_read(row, with_summary=True)


@reports_router.get("/reports/{org_unit}/{period}/{revision}", response_model=GeneratedReportRead, responses=ERRORS)
async def read_report(org_unit: str, period: str, reads: Reads, principal: Caller, revision: str = REVISION):
    """One revision of a commune's report, with the summary exactly as it was generated."""
    return await _stored(reads, org_unit, period, revision, principal)


@reports_router.get(
    "/reports/{org_unit}/{period}/{revision}/export",
    responses={**ERRORS, 200: {"description": "the revision as a table (csv, xlsx) or as the official document (docx, pdf)"}},
    response_class=Response,
)
async def export_report(
    org_unit: str,
    period: str,
    reads: Reads,
    principal: Caller,
    revision: str = REVISION,
    fmt: Literal["csv", "xlsx", "docx", "pdf"] = Query("xlsx", alias="format"),
):
    """A stored revision as CSV or XLSX: what was sent to the district, number for number; as DOCX or PDF: the report
    document (Decree 30/2020) printing that revision's figures, with the narrative and signature of the document
    version that pins it (a draft without narrative when no version does)."""
    if fmt in documents.MEDIA_TYPES:
        return await _document_export(reads, org_unit, period, revision, principal, fmt)
    stored = await _stored(reads, org_unit, period, revision, principal)
    # Through the response model, so dates and instants are objects again, as the exporters expect.
    summary = SummaryRead.model_validate(stored["summary"]).model_dump()
    filename = f"baove-{stored['org_unit']}-{stored['period']}-r{stored['revision']}.{fmt}"
    return _export(reads, summary, fmt, filename)


# -- the report as an official document ------------------------------------------------------------

documents_router = APIRouter(prefix="/v1", tags=["report documents"])
DOC_ERRORS = {**ERRORS, 409: {"description": "not possible in the document's current status; the detail says what is"}}


def _download(content: bytes, fmt: str, filename: str) -> Response:
    return Response(content, media_type=documents.MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _district_name(hierarchy, commune: str, period) -> str | None:
    """The district the commune belonged to at the period's end (none after the districts were abolished)."""
    for coverage in reversed(hierarchy.coverage(commune, period.start, period.end)):
        parent = coverage.version.units[commune].parent
        unit = coverage.version.units.get(parent) if parent else None
        if unit is not None and unit.level == "district":
            return unit.name
    return None


async def _document_export(reads: Summaries, commune: str, period_id: str, revision: str, principal: Principal, fmt: str) -> Response:
    session = reads.uow.session
    period = signoff.plan_period_of(period_id, reads.plans)
    signoff.check_read(reads.hierarchy, commune, period, principal)
    row = await signoff.generated(session, commune, period.id, None if revision == "latest" else int(revision))
    if row is None:
        raise NotFound(f"no generated report of {commune} for {period.id} ({'any revision' if revision == 'latest' else f'revision {revision}'})")
    doc = await signoff.document_for(session, commune, period.id, row.revision)
    summary = SummaryRead.model_validate({**row.summary, "revision": row.revision}).model_dump()
    if doc is None:
        sign, narrative = documents.Sign(status="draft", revision=row.revision), {}
    else:
        sign = documents.Sign(
            number=doc.number, signed_at=doc.sent_at or doc.approved_at, signer_name=doc.signer_name,
            signed_as=doc.signed_as, status=doc.status, version=doc.version, revision=doc.revision,
        )
        narrative = doc.narrative
    context = documents.commune_context(
        summary, narrative, sign, plan_words(commune, period), exports.hamlet_names(reads.hierarchy),
        _district_name(reads.hierarchy, commune, period),
    )
    content = await asyncio.to_thread(documents.to_docx if fmt == "docx" else documents.to_pdf, context)
    version = f"-v{doc.version}" if doc is not None else ""
    return _download(content, fmt, f"bao-cao-{commune}-{period.id}-r{row.revision}{version}.{fmt}")


def plan_words(commune: str, period) -> documents.PlanWords:
    """The commune's plan's words for the report (its title, basis, recipients, tasks); the defaults without a plan."""
    try:
        plan = plans_data.load_plan(commune, period.due.year if period.due else period.start.year)
    except plans_data.PlanNotFound:
        return documents.PlanWords(kinds=plans_data.kind_labels())
    return documents.PlanWords(
        title=plan.title,
        issued_by=plan.issued_by,
        basis=plan.basis,
        recipients=plan.reporting.recipients,
        tasks={t.id: t.text for t in plan.tasks},
        kinds={code: kind.label for code, kind in plan.kinds.items()},
    )


@documents_router.get("/reports/{org_unit}/{period}/document", response_model=DocumentsRead, responses=DOC_ERRORS)
async def read_document(org_unit: str, period: str, reads: Reads, principal: Caller):
    """The commune's report document for a plan period: its current version (narrative, status, sign-off) and every
    version, newest first; `newer_revision` says when newer figures than the version's exist."""
    return await signoff.read_documents(reads.uow.session, reads.hierarchy, reads.plans, org_unit, period, principal)


@documents_router.put("/reports/{org_unit}/{period}/document", response_model=DocumentRead, responses=DOC_ERRORS)
async def write_draft(org_unit: str, period: str, reads: Reads, principal: Caller, body: DraftWrite):
    """The cp_officer writes the draft's narrative (sections not given keep their text) and number. The first write
    starts version 1; after a version was sent, a write starts the next version when newer figures exist."""
    return await signoff.save_draft(
        reads.uow, reads.hierarchy, reads.plans, org_unit, period, principal, body.model_dump(exclude_unset=True), reads.now
    )


async def _act(reads: Summaries, org_unit: str, period: str, principal: Principal, action: str, body: dict[str, Any] | None = None):
    return await signoff.act(reads.uow, reads.hierarchy, reads.plans, org_unit, period, principal, action, reads.now, body)


@documents_router.post("/reports/{org_unit}/{period}/document/submit", response_model=DocumentRead, responses=DOC_ERRORS)
async def submit_document(org_unit: str, period: str, reads: Reads, principal: Caller):
    """The cp_officer submits the draft to the chairman for signature (every narrative section written)."""
    return await _act(reads, org_unit, period, principal, "submit")


@documents_router.post("/reports/{org_unit}/{period}/document/return", response_model=DocumentRead, responses=DOC_ERRORS)
async def return_document(org_unit: str, period: str, reads: Reads, principal: Caller):
    """The chairman returns a submitted document to the cp_officer as a draft."""
    return await _act(reads, org_unit, period, principal, "return")


@documents_router.post("/reports/{org_unit}/{period}/document/approve", response_model=DocumentRead, responses=DOC_ERRORS)
async def approve_document(org_unit: str, period: str, reads: Reads, principal: Caller, body: ApprovalWrite = Body(...)):
    """The chairman (signed_as chairman: TM. ỦY BAN NHÂN DÂN / CHỦ TỊCH) or a deputy (signed_as deputy: KT. CHỦ TỊCH /
    PHÓ CHỦ TỊCH) approves and signs, with the signer's name."""
    return await _act(reads, org_unit, period, principal, "approve", body.model_dump(exclude_unset=True))


@documents_router.post("/reports/{org_unit}/{period}/document/send", response_model=DocumentRead, responses=DOC_ERRORS)
async def send_document(org_unit: str, period: str, reads: Reads, principal: Caller):
    """The approved document is sent to the district: `report.submitted`; on time when sent by the due date (Vietnam)."""
    return await _act(reads, org_unit, period, principal, "send")


@documents_router.get(
    "/consolidated/{org_unit}/{period}",
    responses={**ERRORS, 200: {"description": "the district's consolidated report as DOCX or PDF"}},
    response_class=Response,
)
async def consolidated(
    org_unit: str,
    period: str,
    reads: Reads,
    principal: Caller,
    fmt: Literal["docx", "pdf"] = Query("pdf", alias="format"),
):
    """A district's consolidated report for a plan period: its communes' figures, a row per commune, and each
    commune's report status (drafted, submitted, approved, sent; on time or late). The numbers are the district's
    JSON summary of the same moment."""
    if len(org_unit) != 3:
        raise Invalid([{"loc": ["path", "org_unit"], "msg": "a consolidated report is a district's (3 digits)", "type": "value_error"}])
    signoff.plan_period_of(period, reads.plans)
    summary = await _summary(reads, org_unit, period, principal)
    context = documents.district_context(summary, exports.hamlet_names(reads.hierarchy), reads.now)
    content = await asyncio.to_thread(documents.to_docx if fmt == "docx" else documents.to_pdf, context)
    return _download(content, fmt, f"bao-cao-tong-hop-{org_unit}-{summary['period']['id']}.{fmt}")
