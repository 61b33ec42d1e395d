"""Intake's subscribers: the case timeline follows routing's events."""

from __future__ import annotations

from shared.runtime import Runtime
from shared.topology import INTAKE_TIMELINE

from .service import record_timeline, record_timelines


def register(runtime: Runtime) -> None:
    runtime.subscriber(INTAKE_TIMELINE, record_timeline, record_timelines)
