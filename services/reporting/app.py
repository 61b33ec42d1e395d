"""Reporting: composition of the read-model subscriber, the summaries API and the report scheduler."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from pathlib import Path

from shared.clock import offset_clock
from shared.metrics import ReportingMetrics
from shared.reference import load_hierarchy
from shared.runtime import Runtime
from shared.settings import ReportingSettings
from shared.workdays import load_calendar

from . import api, consumers, reminders, revisions, scheduler, summaries
from .models import metadata
from .periods import DEFAULT_PLANS, PlanConfig, PlanReport

MIGRATIONS = Path(__file__).parent / "migrations"


def plans_of(settings: ReportingSettings) -> PlanConfig:
    """The plan's reports from the settings; a configuration that cannot be a plan stops the service here."""
    if settings.plan_reports is None:
        return DEFAULT_PLANS
    reports = tuple(PlanReport(r.suffix, r.due_month, r.due_day, r.months) for r in settings.plan_reports)
    if len({r.suffix for r in reports}) != len(reports):
        raise ValueError("BAOVE_REPORTING_PLAN_REPORTS names a report suffix twice")
    return PlanConfig(reports)


def create_runtime(settings: ReportingSettings | None = None, *, plans: PlanConfig | None = None) -> Runtime:
    settings = settings or ReportingSettings()
    runtime = Runtime(
        "reporting",
        settings,
        metadata,
        MIGRATIONS,
        description="Keeps a read model without personal data, serves summaries per commune, district, province and "
        "period, and generates each commune's plan-period reports.",
    )
    state = runtime.api.state
    state.hierarchy = load_hierarchy()
    # The working days the plan indicator counts (issue 17), as routing counts them; a broken file stops the service here.
    summaries.use_calendar(load_calendar(settings.common.holidays_file))
    state.plans = plans or plans_of(settings)
    state.clock = offset_clock(settings.clock_offset_seconds)
    state.small_cells = settings.small_cell_threshold
    state.metrics = ReportingMetrics.create(runtime.registry)
    runtime.api.include_router(api.router)
    # Before the revisions' routes: /reports/{unit}/{period}/document is not a revision number.
    runtime.api.include_router(api.documents_router)
    runtime.api.include_router(api.reports_router)
    consumers.register(runtime, state.clock)
    generate = partial(
        revisions.generate_due_reports,
        runtime,
        state.hierarchy,
        state.plans,
        clock=state.clock,
        settle=timedelta(seconds=settings.revision_settle_seconds),
        metrics=state.metrics,
    )
    remind = partial(
        reminders.remind_due_reports, runtime.unit_of_work, state.hierarchy, state.plans, settings.report_due_days, clock=state.clock
    )
    runtime.background["report-scheduler"] = partial(
        scheduler.run_scheduler,
        generate,
        runtime.unit_of_work,
        state.hierarchy,
        interval=settings.schedule_interval_seconds,
        remind=remind,
    )
    return runtime
