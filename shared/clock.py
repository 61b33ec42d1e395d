"""The services' clock: UTC now, moved by a development-only offset (the settings refuse one outside dev)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from shared.db import utcnow

Clock = Callable[[], datetime]


def offset_clock(offset_seconds: float = 0.0) -> Clock:
    """The system's clock, or one running `offset_seconds` ahead (behind, when negative) to test deadlines and due reports."""
    if not offset_seconds:
        return utcnow
    offset = timedelta(seconds=offset_seconds)
    return lambda: utcnow() + offset
