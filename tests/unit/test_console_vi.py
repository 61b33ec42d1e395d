"""The console's pure parts: Vietnamese numbers, dates and due times; the report form to the intake API's body."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.console import forms, vi
from services.console.clients import ApiError
from services.console.notifications import health

pytestmark = pytest.mark.unit
NOW = datetime(2025, 3, 2, 1, 0, tzinfo=UTC)  # 08:00 in Vietnam


def test_numbers_and_dates_in_vietnamese_style():
    assert vi.number(1234) == "1.234"
    assert vi.number(1234567) == "1.234.567"
    assert vi.number(12.5) == "12,5"
    assert vi.number(None) == "—"
    assert vi.moment("2025-03-02T01:00:00Z") == "02/03/2025 08:00"
    assert vi.day("2025-03-02") == "02/03/2025"


def test_due_times_in_words():
    assert vi.due(NOW + timedelta(minutes=45, seconds=30), NOW) == ("còn 45 phút", False)
    assert vi.due(NOW - timedelta(hours=2), NOW) == ("quá hạn 2 giờ", True)
    assert vi.due(NOW - timedelta(hours=2, minutes=5), NOW) == ("quá hạn 2 giờ 5 phút", True)
    assert vi.due(NOW + timedelta(days=3), NOW) == ("còn 3 ngày", False)


def test_a_filled_form_becomes_the_api_body():
    form = {
        "report_id": "3f1c0d9e-2b7a-4c38-9a55-1d2e3f4a5b6c", "category": "sexual_abuse", "urgency": "emergency",
        "channel": "hamlet", "hamlet": "25349.hamlet.ap-2", "occurred_at": "2025-03-02T08:00",
        "description": "  Cháu bị sàm sỡ  ", "children_count": "2",
        "children-0-sex": "female", "children-0-age_years": "9", "children-0-school": "25349.school.th-minh-tam-a",
        "children-0-special_circumstances": ["sexually_abused", "orphan"],
        "children-1-sex": "male", "children-1-birth_date": "2015-01-02",
        "reporter-anonymous": "on", "consent-guardian": "yes",
    }
    body, errors = forms.incident_payload(form, "25349", NOW)
    assert errors == {}
    assert body["occurred_at"] == "2025-03-02T08:00:00+07:00"
    assert body["description"] == "Cháu bị sàm sỡ"
    assert body["children"] == [
        {"sex": "female", "age_years": 9, "school": "25349.school.th-minh-tam-a", "special_circumstances": ["sexually_abused", "orphan"]},
        {"sex": "male", "birth_date": "2015-01-02", "special_circumstances": []},
    ]
    assert body["reporter"] == {"name": None, "phone": None, "relation": None, "anonymous": True}
    assert body["consent"] == {"child": None, "guardian": True}


def test_form_errors_name_their_fields_in_vietnamese():
    _, errors = forms.incident_payload(
        {"category": "nope", "children-0-age_years": "19", "children-0-birth_date": "2099-01-01", "reporter-phone": "abc",
         "occurred_at": "2030-01-01T00:00"},
        "25349", NOW,
    )
    assert set(errors) == {"category", "urgency", "channel", "description", "occurred_at", "children-0-sex",
                           "children-0-age_years", "children-0-birth_date", "reporter-phone"}
    assert errors["children-0-age_years"] == "Tuổi ước tính là số từ 0 đến 17."


def test_api_errors_land_on_the_form_fields():
    exc = ApiError(422, [{"loc": ["body", "children", 0, "school"], "msg": "x", "type": "value_error"},
                         {"loc": ["body", "hamlet"], "msg": "x", "type": "value_error"}])
    assert set(forms.api_errors(exc)) == {"children-0-school", "hamlet"}
    assert "form" in forms.api_errors(ApiError(429, "slow down"))


def test_a_periods_months_are_listed_in_order_for_the_trend():
    from services.console.reports import _months

    assert _months({"start": "2024-11-01", "end": "2025-04-30"}) == [(2024, 11), (2024, 12), (2025, 1), (2025, 2), (2025, 3), (2025, 4)]
    assert len(_months({"start": "2024-11-01", "end": "2025-10-31"})) == 12
    assert _months({"start": "2025-03-01", "end": "2025-03-31"}) == []  # one month: no trend of its own


def test_a_webhook_shows_its_host_only_and_the_notifiers_errors_read_in_vietnamese():
    assert forms.shown_target("webhook", "https://user:pw@hooks.conganxa.vn:8443/baove/AbC123?key=x") == "https://hooks.conganxa.vn:8443/…"
    assert forms.shown_target("email", "treem@ubnd.vn") == "treem@ubnd.vn" and forms.shown_target("amqp", "agency.25349.police") == "agency.25349.police"
    assert vi.notify_error("HTTP 503") == "Địa chỉ nhận trả lời lỗi (HTTP 503)"
    assert vi.notify_error("HTTP 410: the endpoint is gone").startswith("Địa chỉ nhận trả lời 410")
    assert vi.notify_error("deleted by 25349.cp_officer") == "Đã ngừng bởi 25349.cp_officer"
    assert vi.notify_error("something new") == "Lỗi: something new" and vi.notify_error(None) == ""


def test_a_subscription_form_becomes_routings_body_or_errors_naming_the_field():
    units = {"25349.police"}
    body, errors = forms.subscription_payload({"unit_id": "25349.police", "channel": "amqp", "target": "", "events": "assignment.created"}, units)
    assert not errors and body["target"] == "agency.25349.police" and body["events"] == ["assignment.created"] and body["quiet_start"] is None
    _, errors = forms.subscription_payload({"unit_id": "25349.police", "channel": "email", "target": "a@b", "quiet_start": "25:00", "quiet_end": "06:00"}, units)
    assert set(errors) == {"target", "events", "quiet_start"} and errors["quiet_start"].startswith("Giờ yên lặng từ")
    _, errors = forms.subscription_payload({"unit_id": "25339.police", "channel": "sms", "target": "x", "events": ["x"]}, units)
    assert set(errors) == {"unit_id", "channel", "events"}


def test_an_endpoint_is_failing_when_its_newest_attempted_delivery_failed():
    active = {"active": True, "disabled_reason": None}
    waiting = {"status": "pending", "attempts": 0, "last_error": None}
    retried = {"status": "pending", "attempts": 2, "last_error": "HTTP 500"}
    delivered = {"status": "delivered", "attempts": 1, "last_error": None}
    assert health(active, [waiting, delivered, retried]) == "ok", "the newest attempted one was delivered"
    assert health(active, [waiting, retried, delivered]) == "failing"
    assert health(active, []) == "ok"
    assert health({"active": False, "disabled_reason": "HTTP 410: the endpoint is gone"}, []) == "gone"
    assert health({"active": False, "disabled_reason": "deleted by admin"}, []) == "stopped"
