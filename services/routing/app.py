"""Routing: composition of the inbox API, the outbox relay, the incident subscriber and the deadline watcher."""

from __future__ import annotations

from pathlib import Path

from shared.clock import offset_clock
from shared.metrics import NotifyMetrics, RoutingMetrics
from shared.reference import load_hierarchy
from shared.runtime import Runtime
from shared.settings import RoutingSettings
from shared.workdays import load_calendar

from . import api, consumers, deadlines, erasure, notifier, rulesets
from .models import metadata
from .rules import DEFAULT_RULES, parse_rules

MIGRATIONS = Path(__file__).parent / "migrations"

def create_runtime(settings: RoutingSettings | None = None) -> Runtime:
    settings = settings or RoutingSettings()
    runtime = Runtime(
        "routing",
        settings,
        metadata,
        MIGRATIONS,
        description="Routes each reported incident to the units that must act and serves one inbox per unit.",
    )
    state = runtime.api.state
    state.clock = offset_clock(settings.clock_offset_seconds)
    state.metrics = RoutingMetrics.create(runtime.registry)
    state.rule_sets = rulesets.RuleSets()
    # The working days the process's deadlines count (issue 17); a broken holidays file stops the service here.
    state.calendar = load_calendar(settings.common.holidays_file)
    # The commune's name as its printed forms bear it (documents.py), on the day of each record.
    state.hierarchy = load_hierarchy()
    # Checked here, at start: a rules file the service does not understand stops it before it consumes.
    # It becomes the first rule set when none is active; later versions come from `baove rules load`.
    rules_file = settings.rules_file or DEFAULT_RULES
    rules_text = Path(rules_file).read_text(encoding="utf-8")
    parse_rules(rules_text, str(rules_file))
    runtime.startup.append(lambda: rulesets.seed_rule_set(runtime, rules_text, str(rules_file), state.clock()))
    state.watcher = deadlines.DeadlineWatcher(
        runtime, state.rule_sets, state.clock, state.metrics, interval=settings.watch_interval_seconds
    )
    runtime.background["deadline-watcher"] = state.watcher.run
    state.notifier = notifier.Notifier(runtime, settings.notify, NotifyMetrics.create(runtime.registry), state.clock)
    runtime.background["notifier"] = state.notifier.run
    runtime.api.include_router(api.router)
    runtime.personal_tables = erasure.PERSONAL_TABLES
    consumers.register(runtime)
    return runtime
