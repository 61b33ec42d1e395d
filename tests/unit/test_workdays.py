"""Working days in Vietnam (issue 17, point 3): the shipped calendar, periods across Tết, 30/4-1/5, weekends and swaps."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml

from shared.settings import CommonSettings
from shared.workdays import (
    CALENDAR_FILE,
    UncoveredYear,
    add_working_days,
    is_working_day,
    load_calendar,
    nth_working_day,
    parse_calendar,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CALENDAR = load_calendar()


def vn(*args):
    return datetime(*args, tzinfo=VN)


def end_of(day: date) -> datetime:
    """24:00 of a day in Vietnam: the instant a period ending that day is missed."""
    return datetime(day.year, day.month, day.day, tzinfo=VN) + timedelta(days=1)


class TestTheShippedCalendar:
    def test_it_covers_2024_to_2027(self):
        assert CALENDAR.years == {2024, 2025, 2026, 2027}

    @pytest.mark.parametrize(
        ("first", "last"),
        [(date(2024, 2, 8), date(2024, 2, 14)), (date(2025, 1, 25), date(2025, 2, 2)), (date(2026, 2, 14), date(2026, 2, 22))],
    )
    def test_tet_is_off_every_day_and_the_days_around_it_are_worked(self, first, last):
        day = first
        while day <= last:
            assert not is_working_day(day, CALENDAR), day
            day += timedelta(days=1)
        assert is_working_day(first - timedelta(days=1), CALENDAR)
        assert is_working_day(last + timedelta(days=1), CALENDAR)

    def test_the_other_holidays_are_off(self):
        for day in [
            "2024-01-01",
            "2024-04-18",
            "2024-04-30",
            "2024-05-01",
            "2024-09-02",
            "2024-09-03",
            "2025-04-07",
            "2025-04-30",
            "2025-05-01",
            "2025-09-01",
            "2025-09-02",
            "2026-01-01",
            "2026-04-30",
            "2026-05-01",
        ]:
            assert not is_working_day(date.fromisoformat(day), CALENDAR), day

    def test_a_holiday_on_a_sunday_is_made_up_on_the_monday(self):
        assert date(2026, 4, 26).weekday() == 6
        assert not is_working_day(date(2026, 4, 27), CALENDAR)
        assert is_working_day(date(2026, 4, 28), CALENDAR)

    def test_a_swapped_weekday_is_off_and_its_saturday_worked(self):
        assert not is_working_day(date(2024, 4, 29), CALENDAR) and is_working_day(date(2024, 5, 4), CALENDAR)
        assert not is_working_day(date(2025, 5, 2), CALENDAR) and is_working_day(date(2025, 4, 26), CALENDAR)

    def test_an_ordinary_weekend_is_off_and_a_weekday_worked(self):
        assert not is_working_day(date(2025, 3, 8), CALENDAR) and not is_working_day(date(2025, 3, 9), CALENDAR)
        assert is_working_day(date(2025, 3, 10), CALENDAR)

    def test_a_moment_is_judged_by_its_day_in_vietnam(self):
        # Sunday 9 March 2025 at 17:30 UTC is Monday 00:30 in Vietnam.
        assert is_working_day(datetime(2025, 3, 9, 17, 30, tzinfo=UTC), CALENDAR)
        assert not is_working_day(datetime(2025, 3, 9, 16, 59, tzinfo=UTC), CALENDAR)


class TestPeriods:
    def test_a_period_starts_the_next_day_and_skips_the_weekend(self):
        # Friday 7 March 2025: day 1 is Monday 10 March, ending at 24:00.
        assert add_working_days(vn(2025, 3, 7, 10, 0), 1, CALENDAR) == end_of(date(2025, 3, 10))
        assert add_working_days(vn(2025, 3, 5, 10, 0), 5, CALENDAR) == end_of(date(2025, 3, 12))

    def test_a_report_at_17_on_friday_counts_like_one_in_the_morning(self):
        friday = date(2025, 3, 7)
        late, early = vn(2025, 3, 7, 17, 0), vn(2025, 3, 7, 8, 0)
        assert add_working_days(late, 5, CALENDAR) == add_working_days(early, 5, CALENDAR) == end_of(friday + timedelta(days=7))

    def test_a_plan_due_over_tet_2026(self):
        # Thursday 12 Feb 2026: Friday 13 is day 1, 14-22 Feb are Tết, then 23, 24, 25, 26.
        assert nth_working_day(vn(2026, 2, 12, 9, 0), 5, CALENDAR) == date(2026, 2, 26)
        assert add_working_days(vn(2026, 2, 12, 9, 0), 5, CALENDAR) == end_of(date(2026, 2, 26))

    def test_a_plan_due_over_tet_2025_and_2024(self):
        assert nth_working_day(vn(2025, 1, 24, 16, 0), 5, CALENDAR) == date(2025, 2, 7)
        # Wednesday 7 Feb 2024: 8-14 Feb off, then Thursday 15 to Wednesday 21.
        assert nth_working_day(vn(2024, 2, 7, 9, 0), 5, CALENDAR) == date(2024, 2, 21)

    def test_across_30_4_and_1_5_with_the_worked_saturday(self):
        # 2025: Friday 25 Apr (1), Saturday 26 worked (2), Monday 28 (3), Tuesday 29 (4), 30 Apr-4 May off, Monday 5 May (5).
        assert nth_working_day(vn(2025, 4, 24, 10, 0), 5, CALENDAR) == date(2025, 5, 5)
        # 2024: from Friday 26 Apr, 27 Apr-1 May off, Thursday 2 (1), Friday 3 (2), Saturday 4 May worked (3).
        assert add_working_days(vn(2024, 4, 26, 10, 0), 3, CALENDAR) == end_of(date(2024, 5, 4))

    def test_across_hung_kings_day_made_up_on_monday(self):
        assert nth_working_day(vn(2026, 4, 24, 10, 0), 2, CALENDAR) == date(2026, 4, 29)

    def test_the_day_is_vietnam_s_not_utc_s(self):
        # Thursday 6 March 2025 at 17:30 UTC is Friday 00:30 in Vietnam: day 1 is Monday, not Friday.
        assert nth_working_day(datetime(2025, 3, 6, 17, 30, tzinfo=UTC), 1, CALENDAR) == date(2025, 3, 10)
        assert nth_working_day(datetime(2025, 3, 6, 16, 59, tzinfo=UTC), 1, CALENDAR) == date(2025, 3, 7)

    def test_the_end_is_an_aware_moment_at_midnight_in_vietnam(self):
        end = add_working_days(datetime(2025, 3, 7, 3, 0, tzinfo=UTC), 1, CALENDAR)
        assert end.utcoffset() == timedelta(hours=7)
        assert end.astimezone(UTC) == datetime(2025, 3, 10, 17, 0, tzinfo=UTC)

    def test_a_naive_moment_or_an_empty_period_is_refused(self):
        with pytest.raises(ValueError, match="timezone"):
            add_working_days(datetime(2025, 3, 7, 10, 0), 1, CALENDAR)
        with pytest.raises(ValueError, match="at least one day"):
            add_working_days(vn(2025, 3, 7, 10, 0), 0, CALENDAR)

    def test_a_period_into_a_year_the_calendar_lacks_is_refused(self):
        with pytest.raises(UncoveredYear) as caught:
            add_working_days(vn(2027, 12, 28, 10, 0), 5, CALENDAR)
        assert caught.value.year == 2028

    def test_2027_counts_over_the_tet_assumed_until_the_notice(self):
        # Thursday 4 February 2027: Tết Đinh Mùi off from Friday 5 to Thursday 11 February (verify: in the file).
        assert add_working_days(vn(2027, 2, 4, 9, 0), 5, CALENDAR) == vn(2027, 2, 19, 0, 0)


def calendar_file(**year):
    return {"timezone": "Asia/Ho_Chi_Minh", "years": {2030: {"days_off": [], **year}}}


class TestTheFile:
    def test_the_operator_s_file_replaces_the_shipped_one(self, tmp_path, monkeypatch):
        data = calendar_file(days_off=[{"from": date(2030, 3, 4), "to": date(2030, 3, 5), "name": "Nghỉ"}])
        path = tmp_path / "holidays.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        monkeypatch.setenv("BAOVE_HOLIDAYS_FILE", str(path))
        own = load_calendar(CommonSettings().holidays_file)
        assert own.years == {2030}
        assert nth_working_day(vn(2030, 3, 1, 9, 0), 1, own) == date(2030, 3, 6)

    def test_the_default_setting_is_the_shipped_file(self):
        assert CommonSettings().holidays_file is None and load_calendar(None) == load_calendar(CALENDAR_FILE)

    @pytest.mark.parametrize(
        ("year", "message"),
        [
            ({"working_days": [{"day": date(2030, 3, 4), "name": "x"}]}, "weekday"),
            ({"days_off": [{"from": date(2031, 1, 1), "to": date(2031, 1, 1), "name": "x"}]}, "listed under 2030"),
            ({"days_off": [{"from": date(2030, 3, 5), "to": date(2030, 3, 4), "name": "x"}]}, "before it starts"),
            ({"days_off": [{"from": date(2030, 1, 1), "to": date(2030, 3, 1), "name": "x"}]}, "longer than"),
            (
                {
                    "days_off": [{"from": date(2030, 3, 2), "to": date(2030, 3, 2), "name": "x"}],
                    "working_days": [{"day": date(2030, 3, 2), "name": "y"}],
                },
                "twice",
            ),
            ({"days_off": [{"from": date(2030, 1, 1), "to": date(2030, 1, 1), "name": "x", "extra": 1}]}, "holidays file"),
        ],
    )
    def test_a_wrong_file_is_refused_naming_the_mistake(self, year, message):
        with pytest.raises(ValueError, match=message):
            parse_calendar(calendar_file(**year))

    def test_only_vietnam_s_time_is_accepted(self):
        with pytest.raises(ValueError, match="holidays file"):
            parse_calendar({**calendar_file(), "timezone": "UTC"})
