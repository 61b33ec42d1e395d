"""Structured logs: one JSON object per line, with the incident id as correlation id.

Callers pass only codes and ids in `extra`; no names, phones, addresses or free text.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        cid = getattr(record, "correlation_id", None) or correlation_id.get()
        if cid:
            entry["correlation_id"] = cid
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in entry and key != "correlation_id":
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return json.dumps(entry, ensure_ascii=False)


class WithoutExceptionText(logging.Filter):
    """faststream logs a failing handler as "Type: str(exception)", and an exception's text may quote the event's
    values (a validation error's input, a driver's failing row): keep the type only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg, record.args = f"handler failed: {type(record.exc_info[1]).__name__}", ()
        return True


def broker_logger(service: str) -> logging.Logger:
    """The logger a service's broker writes to, without the text of a handler's exception."""
    logger = logging.getLogger(f"baove.{service}.broker")
    if not any(isinstance(f, WithoutExceptionText) for f in logger.filters):
        logger.addFilter(WithoutExceptionText())
    return logger


def configure(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log prints raw paths and query strings; ours logs route templates instead.
    logging.getLogger("uvicorn.access").disabled = True
    # aiosqlite's debug log prints every statement with its parameters: children's names, even at DEBUG.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
