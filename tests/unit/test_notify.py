"""The notifier's pure parts: quiet hours, the retry schedule, the SSRF refusal, the thin message."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from services.routing.channels import Refused, public_address, signature
from services.routing.models import Subscription
from services.routing.notify import Notification, first_attempt_at, in_quiet_hours, retry_delay
from shared.enums import Urgency
from shared.settings import NotifySettings

# 23:30 in Vietnam (UTC+7).
LATE = datetime(2026, 11, 29, 16, 30, tzinfo=UTC)
NOON = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)


def subscription(**quiet) -> Subscription:
    return Subscription(quiet_start=quiet.get("start"), quiet_end=quiet.get("end"))


class TestQuietHours:
    def test_overnight_quiet_hours_hold_a_message_until_they_end(self):
        until = in_quiet_hours("22:00", "06:00", LATE)
        assert until == datetime(2026, 11, 29, 23, 0, tzinfo=UTC)  # 06:00 the next morning, local
        assert first_attempt_at(subscription(start="22:00", end="06:00"), Urgency.high, LATE) == until

    def test_an_emergency_never_waits(self):
        assert first_attempt_at(subscription(start="22:00", end="06:00"), Urgency.emergency, LATE) == LATE

    def test_outside_them_or_without_them_it_goes_at_once(self):
        assert in_quiet_hours("22:00", "06:00", NOON) is None
        assert first_attempt_at(subscription(), Urgency.low, LATE) == LATE


class TestRetries:
    def test_the_default_schedule_spans_about_a_day_then_gives_up(self):
        settings = NotifySettings(jitter=0)
        delays = [retry_delay(settings, n) for n in range(1, 9)]
        assert delays[-1] is None
        assert 20 * 3600 < sum(delays[:-1]) < 30 * 3600

    def test_jitter_spreads_each_wait(self):
        settings = NotifySettings(retry_seconds=[100.0], jitter=0.2)
        draws = {round(retry_delay(settings, 1, random.Random(seed)), 3) for seed in range(20)}
        assert len(draws) > 10 and all(80 <= d <= 120 for d in draws)


class TestTargets:
    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "169.254.169.254", "::1", "192.168.0.10"])
    async def test_private_loopback_and_link_local_are_refused(self, host):
        with pytest.raises(Refused):
            await public_address(host, 443, allow_private=False)

    async def test_allowed_when_the_operator_says_so(self):
        assert await public_address("127.0.0.1", 80, allow_private=True) == "127.0.0.1"

    async def test_a_public_address_passes(self):
        assert await public_address("93.184.215.14", 443, allow_private=False) == "93.184.215.14"


def test_both_secrets_sign_during_a_rotation():
    old, new = "whsec_" + "a" * 44, "whsec_" + "b" * 44
    at = datetime.now(UTC)
    header = signature([old, new], "msg_1", at, "{}")
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": header}
    Webhook(old).verify("{}", headers)
    Webhook(new).verify("{}", headers)


def test_the_message_has_no_field_for_personal_data():
    fields = set(Notification.model_fields)
    assert not fields & {"full_name", "name", "birth_date", "school", "phone", "description", "case", "children", "reporter"}
    assert Notification.model_config["extra"] == "forbid"
