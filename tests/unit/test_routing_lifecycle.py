"""The assignment lifecycle (pure): every transition, legal and illegal, overdue, and decline handoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product

import pytest

from services.routing import lifecycle
from shared.enums import AssignmentStatus as S

LEGAL = {
    (S.pending, S.acknowledged),
    (S.pending, S.declined),
    (S.acknowledged, S.in_progress),
    (S.acknowledged, S.declined),
    (S.in_progress, S.done),
    (S.in_progress, S.declined),
}
ALL_PAIRS = list(product(S, S))
NOW = datetime(2025, 3, 2, 8, tzinfo=UTC)


class TestTransitions:
    @pytest.mark.parametrize(("current", "target"), sorted(LEGAL))
    def test_a_legal_move_gives_the_new_status(self, current, target):
        assert lifecycle.transition(current, target, note="why") is target

    @pytest.mark.parametrize(("current", "target"), [p for p in ALL_PAIRS if p not in LEGAL])
    def test_an_illegal_move_is_refused_naming_the_allowed_ones(self, current, target):
        with pytest.raises(lifecycle.IllegalTransition) as err:
            lifecycle.transition(current, target, note="why")
        assert err.value.current is current and err.value.target is target
        assert set(err.value.allowed) == {t for c, t in LEGAL if c is current}
        assert current.value in str(err.value) and target.value in str(err.value)

    @pytest.mark.parametrize("closed", [S.done, S.declined])
    def test_a_closed_assignment_allows_nothing(self, closed):
        assert lifecycle.allowed(closed) == ()

    @pytest.mark.parametrize("current", [S.pending, S.acknowledged, S.in_progress])
    @pytest.mark.parametrize("note", [None, "", "   "])
    def test_declining_needs_a_note(self, current, note):
        with pytest.raises(lifecycle.NoteRequired):
            lifecycle.transition(current, S.declined, note)

    def test_other_moves_need_no_note(self):
        assert lifecycle.transition(S.pending, S.acknowledged) is S.acknowledged
        assert lifecycle.transition(S.in_progress, S.done, None) is S.done


class TestOverdue:
    def test_a_pending_assignment_past_due_is_overdue(self):
        assert lifecycle.is_overdue(S.pending, NOW - timedelta(seconds=1), NOW)

    def test_a_pending_assignment_not_yet_due_is_not(self):
        assert not lifecycle.is_overdue(S.pending, NOW + timedelta(minutes=1), NOW)

    @pytest.mark.parametrize("status", [S.acknowledged, S.in_progress, S.done, S.declined])
    def test_only_pending_can_be_overdue(self, status):
        assert not lifecycle.is_overdue(status, NOW - timedelta(days=1), NOW)


class TestHandoff:
    def test_a_declined_lead_goes_to_the_cp_officer(self):
        assert lifecycle.handoff_unit("25349", "25349.police") == "25349.cp_officer"

    def test_a_lead_declined_by_the_cp_officer_goes_to_the_chairman(self):
        assert lifecycle.handoff_unit("25349", "25349.cp_officer") == "25349.chairman"

    def test_the_handoff_names_its_origin(self):
        assert lifecycle.handoff_origin("a-1") == "decline:a-1"


class TestClosingACase:
    def test_a_case_whose_assignments_are_done_or_declined_may_close(self):
        lifecycle.check_close(lifecycle.CaseStatus.open, [("a", "25349.police", S.done), ("b", "25349.health", S.declined)])

    @pytest.mark.parametrize("still_open", [S.pending, S.acknowledged, S.in_progress])
    def test_an_open_assignment_blocks_closing_and_is_named(self, still_open):
        with pytest.raises(lifecycle.CaseCannotMove) as err:
            lifecycle.check_close(lifecycle.CaseStatus.open, [("a", "25349.police", S.done), ("b", "25349.health", still_open)])
        assert err.value.detail["open_assignments"] == [{"assignment_id": "b", "unit_id": "25349.health", "status": still_open.value}]
        assert "25349.health" in err.value.detail["message"] and err.value.detail["current"] == "open"

    def test_a_closed_case_cannot_close_again_but_may_reopen(self):
        with pytest.raises(lifecycle.CaseCannotMove) as err:
            lifecycle.check_close(lifecycle.CaseStatus.closed, [])
        assert err.value.detail["allowed"] == ["reopen"]

    def test_only_a_closed_case_reopens(self):
        lifecycle.check_reopen(lifecycle.CaseStatus.closed)
        with pytest.raises(lifecycle.CaseCannotMove) as err:
            lifecycle.check_reopen(lifecycle.CaseStatus.open)
        assert err.value.detail == {"message": "the incident is not closed", "current": "open", "allowed": ["close"]}

    def test_a_reopened_case_names_its_origin(self):
        assert lifecycle.reopen_origin(7) == "reopen:7"
