"""Working days in Vietnam (issue 17, point 3): what Decree 56/2017's deadlines in working days count.

A working day is a Monday to Friday that is no public holiday or compensatory day off, or a Saturday or Sunday
the government made a working day (làm bù), all in Asia/Ho_Chi_Minh. The holidays are reference data,
shared/reference/holidays.yaml (or the file BAOVE_HOLIDAYS_FILE names), one entry per year the government has
announced; a day in a year the calendar does not hold is refused (`UncoveredYear`), never guessed.

A period of n working days is counted as the Civil Code counts periods in days (Bộ luật Dân sự 2015, Điều
147-148): from the day after the event's day (a report at 17:00 on a Friday and one at 08:00 count alike), and
it ends at 24:00 of its last day. `add_working_days` returns that end as an instant (00:00 of the next calendar
day, Vietnam time: the first moment the deadline is missed); `nth_working_day` the last day itself.
Pure: no I/O but `load_calendar`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CALENDAR_FILE = Path(__file__).parent / "reference" / "holidays.yaml"
SATURDAY, SUNDAY = 5, 6
LONGEST_BREAK = 15  # days: no holiday entry is longer (Tết with its weekends is 9 or 10); a longer one is a typo


class UncoveredYear(ValueError):
    """The calendar does not hold the year of a day asked about: the operator adds it once it is announced."""

    def __init__(self, year: int) -> None:
        super().__init__(f"the working-day calendar has no holidays for {year}: add them to the holidays file")
        self.year = year


@dataclass(frozen=True)
class WorkCalendar:
    """The years covered, and the exceptions to Monday-Friday: days off (holidays, nghỉ bù, swaps) and làm bù days."""

    years: frozenset[int]
    days_off: Mapping[date, str]
    working_days: Mapping[date, str]

    def covers(self, day: date) -> bool:
        return day.year in self.years


def local_date(moment: date | datetime) -> date:
    """A day as it is in Vietnam: an aware datetime converted to Asia/Ho_Chi_Minh, a date as it is."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("a moment without a timezone: its day in Vietnam is unknown")
        return moment.astimezone(VN).date()
    return moment


def is_working_day(day: date | datetime, calendar: WorkCalendar) -> bool:
    """Whether offices work that day in Vietnam (a moment: the day it is in Asia/Ho_Chi_Minh)."""
    day = local_date(day)
    if not calendar.covers(day):
        raise UncoveredYear(day.year)
    if day in calendar.working_days:
        return True
    return day not in calendar.days_off and day.weekday() not in (SATURDAY, SUNDAY)


def nth_working_day(start: date | datetime, n: int, calendar: WorkCalendar) -> date:
    """The n-th working day after the day of `start` (that day itself never counts), n ≥ 1."""
    if n < 1:
        raise ValueError("a period of working days is at least one day")
    day, counted = local_date(start), 0
    while counted < n:
        day += timedelta(days=1)
        counted += is_working_day(day, calendar)
    return day


def add_working_days(start: datetime, n: int, calendar: WorkCalendar) -> datetime:
    """The end of a period of n working days from `start` (an aware moment): 24:00 of its last working day, that is
    00:00 Asia/Ho_Chi_Minh of the next calendar day, as an aware datetime in Vietnam's time."""
    if start.tzinfo is None:
        raise ValueError("a moment without a timezone: its day in Vietnam is unknown")
    last = nth_working_day(start, n, calendar)
    return datetime.combine(last + timedelta(days=1), time(0), tzinfo=VN)


# -- the file ----------------------------------------------------------------------------------------------------


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class _DaysOff(_Entry):
    first: date = Field(alias="from")
    last: date = Field(alias="to")
    name: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> _DaysOff:
        if self.last < self.first:
            raise ValueError(f"{self.name}: ends ({self.last}) before it starts ({self.first})")
        if (self.last - self.first).days >= LONGEST_BREAK:
            raise ValueError(f"{self.name}: {self.first} to {self.last} is longer than {LONGEST_BREAK} days")
        return self

    def days(self) -> list[date]:
        return [self.first + timedelta(days=k) for k in range((self.last - self.first).days + 1)]


class _WorkingDay(_Entry):
    day: date
    name: str = Field(min_length=1)


class _Year(_Entry):
    days_off: list[_DaysOff]
    working_days: list[_WorkingDay] = []


class _File(_Entry):
    timezone: Literal["Asia/Ho_Chi_Minh"]
    years: dict[int, _Year] = Field(min_length=1)


def parse_calendar(data: object) -> WorkCalendar:
    """The calendar of a holidays file's content; ValueError naming what is wrong."""
    try:
        parsed = _File.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"holidays file: {exc}") from None
    days_off: dict[date, str] = {}
    working: dict[date, str] = {}
    for year, entries in parsed.years.items():
        for entry in entries.days_off:
            for day in entry.days():
                if day.year != year:
                    raise ValueError(f"holidays file: {entry.name} ({day}) is listed under {year}")
                if day in days_off:
                    raise ValueError(f"holidays file: {day} is listed twice ({days_off[day]}, {entry.name})")
                days_off[day] = entry.name
        for entry in entries.working_days:
            if entry.day.year != year:
                raise ValueError(f"holidays file: {entry.name} ({entry.day}) is listed under {year}")
            if entry.day.weekday() not in (SATURDAY, SUNDAY):
                raise ValueError(f"holidays file: {entry.day} is a weekday, it needs no làm bù ({entry.name})")
            if entry.day in days_off or entry.day in working:
                raise ValueError(f"holidays file: {entry.day} is listed twice ({entry.name})")
            working[entry.day] = entry.name
    return WorkCalendar(frozenset(parsed.years), MappingProxyType(days_off), MappingProxyType(working))


@lru_cache(maxsize=4)
@functools.lru_cache(maxsize=8)
def load_calendar(path: Path | None = None) -> WorkCalendar:
    """The calendar of a holidays file (default: the one shipped, shared/reference/holidays.yaml), read once."""
    path = path or CALENDAR_FILE
    return parse_calendar(yaml.safe_load(path.read_text(encoding="utf-8")))
