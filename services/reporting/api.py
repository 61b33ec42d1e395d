"""Reporting's HTTP routes: parse, compute the summary in one read, answer as JSON, CSV or XLSX;
and the generated plan-period reports, revision by revision."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from shared.auth import Principal
from shared.deps import AppHierarchy, Caller, Now, Uow, from_state
from shared.metrics import ReportingMetrics

from . import exports, revisions, summaries
from .periods import PERIOD_FORMS, PlanConfig
from .schemas import GeneratedReportItem, GeneratedReportPage, GeneratedReportRead, SummaryRead

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


@reports_router.get("/reports/{org_unit}/{period}/{revision}/export", **_as_table("the revision"))
async def export_report(
    org_unit: str,
    period: str,
    reads: Reads,
    principal: Caller,
    revision: str = REVISION,
    fmt: Literal["csv", "xlsx"] = Query("xlsx", alias="format"),
):
    """A stored revision as CSV or XLSX: what was sent to the district, number for number."""
    stored = await _stored(reads, org_unit, period, revision, principal)
    # Through the response model, so dates and instants are objects again, as the exporters expect.
    summary = SummaryRead.model_validate(stored["summary"]).model_dump()
    filename = f"baove-{stored['org_unit']}-{stored['period']}-r{stored['revision']}.{fmt}"
    return _export(reads, summary, fmt, filename)
