"""Pre-aggregated cells: one tally per commune and month, cached and kept honest by version numbers.

A summary over a year for a province would otherwise group every fact of the year at each read.
Instead, every fact written for an incident bumps the version of its cell (commune, month of the
incident's `local_date`) in the same transaction, and a cell's tally is cached with the version it
was computed at. A read takes the cached tallies whose version still matches and recomputes only
the others, from the facts, in the same snapshot as the versions it compares with.

Why no fact can slip past: a fact of an incident whose `incident.reported` has not arrived yet
bumps nothing, and counts nowhere either (summaries reach facts through their incident); when the
incident arrives, its cell is bumped. On PostgreSQL the events of one incident fold one at a time
(an advisory lock per incident), so that ordering holds across replicas too. SQLite has one writer.

The waits of acknowledged assignments are kept whole (packed doubles), so a total's median is
still the median of every wait, never a median of medians.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from operator import add
from typing import NamedTuple

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import dialect_insert
from shared.enums import AgeBand, Category, Channel, Sex, SpecialCircumstance, UnitType, Urgency
from shared.reference import Coverage

from .aggregates import Tally, UnitResponse
from .models import TallyCache, TallyCell
from .periods import add_months

# The stored form: every count whose code is known (an enum) in one flat vector, so that adding a
# thousand cells is a thousand C-level vector additions; hamlets and any unknown code beside it.
ENUM_COUNTERS = (
    ("by_category", Category),
    ("by_urgency", Urgency),
    ("by_channel", Channel),
    ("children_by_category", Category),
    ("children_by_urgency", Urgency),
    ("children_by_channel", Channel),
    ("by_sex", Sex),
    ("by_age_band", AgeBand),
    ("by_special_circumstance", SpecialCircumstance),
)
FREE_COUNTERS = ("by_hamlet", "children_by_hamlet", "abused_by_form_sex_age")
TOTALS = (
    "incidents_total",
    "cases_closed",
    "children_total",
    "children_in_special_circumstances",
    "children_in_special_circumstances_supported",
)
RESPONSE = ("assignments", "acknowledged", "acknowledged_within_deadline", "overdue", "escalations")
UNITS = tuple(u.value for u in UnitType)
_SLOTS = {name: i for i, name in enumerate(TOTALS)}
for _name, _enum in ENUM_COUNTERS:
    for _member in _enum:
        _SLOTS[f"{_name}:{_member.value}"] = len(_SLOTS)
for _unit in UNITS:
    for _field in RESPONSE:
        _SLOTS[f"response:{_unit}:{_field}"] = len(_SLOTS)
WIDTH = len(_SLOTS)
# What a cached tally means: bump it whenever the grouping (summaries.tallies, aggregates.tally_by_commune) changes.
TALLY_LOGIC = "2"
# Stored blobs begin with a fingerprint of the layout and of TALLY_LOGIC: any other blob is recomputed.
LAYOUT = hashlib.sha256("\n".join([TALLY_LOGIC, *_SLOTS]).encode()).digest()[:8]
# The same layout as lookups for the hot loop: (attribute, [(code, slot)]) and (unit, [slot per RESPONSE field]).
_COUNTER_SLOTS = [(name, [(m.value, _SLOTS[f"{name}:{m.value}"]) for m in enum]) for name, enum in ENUM_COUNTERS]
_RESPONSE_SLOTS = [(unit, [_SLOTS[f"response:{unit}:{f}"] for f in RESPONSE]) for unit in UNITS]


def month_of(day: date) -> date:
    return day.replace(day=1)


@dataclass(frozen=True)
class Split:
    """A set of coverages as whole months per commune (cached) and the rest (days at the edges, read from facts)."""

    cells: tuple[tuple[str, date], ...]
    partial: tuple[Coverage, ...]


def split(coverages: Sequence[Coverage]) -> Split:
    cells: list[tuple[str, date]] = []
    partial: list[Coverage] = []
    for cov in coverages:
        first_full = cov.start if cov.start.day == 1 else add_months(month_of(cov.start), 1)
        end_full = month_of(cov.end)
        if first_full >= end_full:
            partial.append(cov)
            continue
        if cov.start < first_full:
            partial.append(Coverage(cov.version, cov.start, first_full, cov.communes))
        if end_full < cov.end:
            partial.append(Coverage(cov.version, end_full, cov.end, cov.communes))
        month = first_full
        while month < end_full:
            cells.extend((commune, month) for commune in cov.communes)
            month = add_months(month, 1)
    return Split(tuple(dict.fromkeys(cells)), tuple(partial))


class Stored(NamedTuple):
    """A cell's tally as stored: small JSON (hamlets, codes outside the enums, wait counts per unit) and a blob
    (layout fingerprint, the count vector as int64, every unit's waits sorted as float64)."""

    text: str
    data: bytes


def encode(tally: Tally) -> Stored:
    vector = array("q", bytes(8 * WIDTH))
    extra: dict[str, dict[str, int]] = {}
    for i, name in enumerate(TOTALS):
        vector[i] = getattr(tally, name)
    for name, _ in ENUM_COUNTERS:
        for code, n in getattr(tally, name).items():
            slot = _SLOTS.get(f"{name}:{code}")
            if slot is None:
                extra.setdefault(name, {})[code] = n
            else:
                vector[slot] += n
    responses: dict[str, list[int]] = {}
    waits = array("d")
    lengths: dict[str, int] = {}  # each unit's share of the waits, in this order
    for unit, r in tally.response.items():
        counts = [getattr(r, f) for f in RESPONSE]
        if unit in UNITS:
            for f, n in zip(RESPONSE, counts):
                vector[_SLOTS[f"response:{unit}:{f}"]] = n
        else:
            responses[unit] = counts
        if r.seconds_to_acknowledge:
            waits.extend(sorted(r.seconds_to_acknowledge))
            lengths[unit] = len(r.seconds_to_acknowledge)
    text = json.dumps(
        {"f": [dict(getattr(tally, name)) for name in FREE_COUNTERS], "x": extra, "u": responses, "n": lengths},
        separators=(",", ":"),
    )
    return Stored(text, LAYOUT + vector.tobytes() + waits.tobytes())


def readable(stored: Stored) -> bool:
    return bytes(stored.data[:8]) == LAYOUT


class Sum:
    """Stored tallies added up: one per commune of a summary."""

    def __init__(self) -> None:
        self.vector = [0] * WIDTH
        self.free = [Counter() for _ in FREE_COUNTERS]
        self.extra: dict[str, Counter[str]] = {}
        self.responses: dict[str, list[int]] = {}
        self.waits: dict[str, list[array]] = {}

    def add(self, stored: Stored) -> None:
        data = json.loads(stored.text)
        blob = memoryview(stored.data)
        counts = array("q")
        counts.frombytes(blob[8 : 8 + 8 * WIDTH])
        self.vector = list(map(add, self.vector, counts))
        for counter, counts in zip(self.free, data["f"]):
            if counts:
                counter.update(counts)
        for name, counts in data["x"].items():
            self.extra.setdefault(name, Counter()).update(counts)
        for unit, counts in data["u"].items():
            self.responses[unit] = list(map(add, self.responses.get(unit, [0] * len(RESPONSE)), counts))
        if data["n"]:
            values = array("d")
            values.frombytes(blob[8 + 8 * WIDTH :])
            offset = 0
            for unit, length in data["n"].items():
                self.waits.setdefault(unit, []).append(values[offset : offset + length])
                offset += length

    def tally(self) -> Tally:
        v = self.vector
        tally = Tally(**{name: v[i] for i, name in enumerate(TOTALS)})
        for name, slots in _COUNTER_SLOTS:
            counter = getattr(tally, name)
            for code, slot in slots:
                if v[slot]:
                    counter[code] = v[slot]
            if name in self.extra:
                counter.update(self.extra[name])
        for name, counter in zip(FREE_COUNTERS, self.free):
            getattr(tally, name).update(counter)
        for unit, slots in _RESPONSE_SLOTS:
            counts = [v[slot] for slot in slots]
            if any(counts) or unit in self.waits:
                self._response(tally, unit, counts)
        for unit, counts in self.responses.items():
            self._response(tally, unit, counts)
        return tally

    def _response(self, tally: Tally, unit: str, counts: list[int]) -> None:
        r: UnitResponse = tally.unit(unit)
        for f, n in zip(RESPONSE, counts):
            setattr(r, f, getattr(r, f) + n)
        for values in self.waits.get(unit, ()):
            r.seconds_to_acknowledge.extend(values)
        # Sorted once here (runs of sorted cells merge fast): a median of it, or of several communes' lists put
        # together, then sorts runs that are already in order.
        r.seconds_to_acknowledge.sort()


def decode(*stored: Stored) -> Tally:
    total = Sum()
    for item in stored:
        total.add(item)
    return total.tally()


# -- the cell tables ------------------------------------------------------------------------------


async def bump_many(session: AsyncSession, days: Iterable[tuple[str, date]]) -> None:
    """The facts of these (commune, day)'s cells changed in this transaction: one version step per cell."""
    months = sorted({(commune, month_of(day)) for commune, day in days})
    if not months:
        return
    table = TallyCell.__table__
    stmt = dialect_insert(session)(table)
    stmt = stmt.on_conflict_do_update(index_elements=["commune_code", "month"], set_={"version": table.c.version + 1})
    await session.execute(stmt, [{"commune_code": c, "month": m, "version": 1} for c, m in months])


def _among(columns, cells: Iterable[tuple[str, date]]):
    """`(commune, month) IN cells`, as commune IN .. AND month range (an index range per commune), refined in Python."""
    cells = list(cells)
    communes = sorted({c for c, _ in cells})
    months = [m for _, m in cells]
    return and_(columns.commune_code.in_(communes), columns.month >= min(months), columns.month <= max(months))


async def versions(session: AsyncSession, cells: Sequence[tuple[str, date]]) -> dict[tuple[str, date], int]:
    if not cells:
        return {}
    t = TallyCell
    wanted = set(cells)
    rows = await session.execute(select(t.commune_code, t.month, t.version).where(_among(t, cells)))
    return {(c, m): v for c, m, v in rows if (c, m) in wanted}


async def cached(session: AsyncSession, cells: Sequence[tuple[str, date]]) -> dict[tuple[str, date], tuple[int, Stored]]:
    if not cells:
        return {}
    t = TallyCache
    wanted = set(cells)
    rows = await session.execute(select(t.commune_code, t.month, t.version, t.payload, t.data).where(_among(t, cells)))
    return {(c, m): (v, Stored(p, d)) for c, m, v, p, d in rows if (c, m) in wanted}


async def store(session: AsyncSession, entries: Sequence[tuple[str, date, int, Stored]]) -> bool:
    """Cache tallies (best effort: a concurrent reader storing the same cells wins, and that is fine)."""
    if not entries:
        return True
    table = TallyCache.__table__
    stmt = dialect_insert(session)(table).values(
        [{"commune_code": c, "month": m, "version": v, "payload": p.text, "data": p.data} for c, m, v, p in entries]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["commune_code", "month"],
        set_={"version": stmt.excluded.version, "payload": stmt.excluded.payload, "data": stmt.excluded.data},
        where=or_(table.c.version < stmt.excluded.version, table.c.version.is_(None)),
    )
    try:
        async with session.begin_nested():
            await session.execute(stmt)
    except DBAPIError:
        return False
    return True

