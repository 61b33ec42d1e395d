"""Reporting's HTTP routes: parse, compute the summary in one read, answer as JSON, CSV or XLSX."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from shared.auth import Principal, require_principal

from . import exports, service
from .periods import PERIOD_FORMS
from .schemas import SummaryRead

router = APIRouter(prefix="/v1", tags=["summaries"])

ERRORS = {
    401: {"description": "missing or bad token"},
    403: {"description": "this principal may not read summaries"},
    404: {"description": "no such org unit, or not in the token's scope"},
    422: {"description": "bad period id"},
}
PERIOD = Query(description=f"period id: {PERIOD_FORMS}, e.g. 2025, 2025S1, 2025Q2, 202505, 2025-6M, 2025-12M")


async def _summary(request: Request, org_unit: str, period: str, principal: Principal) -> dict:
    state = request.app.state
    async with state.runtime.sessionmaker() as session:
        return await service.summary(session, state.hierarchy, state.plans, org_unit, period, principal)


def _rejected(exc: service.Rejected) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status)


@router.get("/summaries/{org_unit}", response_model=SummaryRead, responses=ERRORS)
async def read_summary(
    org_unit: str, request: Request, period: str = PERIOD, principal: Principal = Depends(require_principal)
):
    """Indicators of a commune (5 digits), district (3) or province (2) for a period; null indicators mean no data."""
    try:
        return await _summary(request, org_unit, period, principal)
    except service.Rejected as exc:
        return _rejected(exc)


@router.get(
    "/summaries/{org_unit}/export",
    responses={**ERRORS, 200: {"description": "the summary as a table with Vietnamese headings"}},
    response_class=Response,
)
async def export_summary(
    org_unit: str,
    request: Request,
    period: str = PERIOD,
    fmt: Literal["csv", "xlsx"] = Query("xlsx", alias="format"),
    principal: Principal = Depends(require_principal),
):
    """The same numbers as the JSON summary, as CSV or XLSX for the district office."""
    try:
        summary = await _summary(request, org_unit, period, principal)
    except service.Rejected as exc:
        return _rejected(exc)
    write, media_type = exports.EXPORTERS[fmt]
    hamlet_names = exports.hamlet_names(request.app.state.hierarchy)
    filename = f"baove-{summary['org_unit']}-{summary['period']['id']}.{fmt}"
    return Response(
        write(summary, hamlet_names),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
