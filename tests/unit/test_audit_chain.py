"""The audit's hash chain and the budget of refused requests it records (shared/audit.py), without a database."""

from __future__ import annotations

from datetime import UTC, datetime

from shared import audit


def entry(**overrides):
    row = {"at": datetime(2026, 11, 29, 15, 0, 0, 123456, tzinfo=UTC), "principal": "25349.police", "action": "read",
           "incident_id": "i-1", "endpoint": "GET /v1/incidents/{id}", "service": "intake", "username": "lan",
           "token_id": "t-1", "detail": None}
    return row | overrides


class TestTheDigest:
    def test_every_hashed_field_and_the_link_change_the_hash(self):
        base = audit.entry_digest(audit.GENESIS, entry())
        for name, value in [(n, "changed") for n in audit.HASHED if n != "at"] + [("at", datetime(2026, 11, 29, tzinfo=UTC))]:
            assert audit.entry_digest(audit.GENESIS, entry(**{name: value})) != base, name
        assert audit.entry_digest("1" * 64, entry()) != base

    def test_the_same_instant_in_another_offset_hashes_the_same(self):
        from datetime import timedelta, timezone

        vn = entry()["at"].astimezone(timezone(timedelta(hours=7)))
        assert audit.entry_digest(audit.GENESIS, entry(at=vn)) == audit.entry_digest(audit.GENESIS, entry())


class TestTheDenialBudget:
    def test_unknown_callers_share_one_small_budget_and_the_next_entry_counts_those_left_out(self):
        now = [0.0]
        denials = audit.DenialLog(unknown_per_minute=2, unknown_burst=10, clock=lambda: now[0])
        admitted = [denials.admit(None) for _ in range(1000)]
        assert sum(a is not None for a in admitted) == 10  # 1000 refused, 10 entries
        now[0] += 30.0  # one more entry's worth of budget
        assert denials.admit(None) == 990

    def test_a_known_tokens_refusals_have_their_own_budget(self):
        now = [0.0]
        denials = audit.DenialLog(per_minute=6, burst=20, clock=lambda: now[0])
        for _ in range(100):
            denials.admit(None)
        assert [denials.admit("token-a") for _ in range(21)][-2:] == [0, None]
        assert denials.admit("token-b") == 0
