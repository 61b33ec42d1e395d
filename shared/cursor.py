"""Opaque page cursors, one format for every listing: URL-safe base64 of a compact JSON object, unpadded.

A listing puts where its page ended in the cursor; the next call hands it back unchanged. Anything else
(tampered, truncated, from another listing) is refused as an invalid `cursor` query parameter.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from shared.errors import Invalid


class InvalidCursor(Invalid):
    """The cursor is not one this listing gave out; answered as FastAPI answers a bad query parameter."""

    def __init__(self) -> None:
        super().__init__([{"loc": ["query", "cursor"], "msg": "cursor is not valid: pass next_cursor unchanged", "type": "value_error"}])


def encode_cursor(values: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, **fields: type) -> dict[str, Any]:
    """The values of a cursor with exactly these fields, each of its type; InvalidCursor otherwise."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidCursor() from None
    if not isinstance(values, dict) or set(values) != set(fields):
        raise InvalidCursor()
    if not all(isinstance(values[name], kind) and not isinstance(values[name], bool) for name, kind in fields.items()):
        raise InvalidCursor()
    # A forged integer past 64 bits would reach the database and fail there (a 500): no listing gives one out.
    if any(isinstance(v, int) and not -(2**63) <= v < 2**63 for v in values.values()):
        raise InvalidCursor()
    return values
