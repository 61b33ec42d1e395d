"""Acknowledgement deadlines (pure): what is overdue as the clock moves, and the escalation it causes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from services.routing import deadlines
from services.routing.deadlines import Pending, overdue, plan_escalation
from services.routing.rules import load_rules
from shared.clock import offset_clock
from shared.db import utcnow
from shared.enums import Role, UnitType, Urgency
from shared.settings import CommonSettings, RoutingSettings

RECEIVED = datetime(2025, 3, 2, 1, 0, tzinfo=UTC)
TABLE = load_rules()
COMMUNE = "25349"
CP_OFFICER, CHAIRMAN = "25349.cp_officer", "25349.chairman"
REGISTERED = frozenset({CP_OFFICER, CHAIRMAN})


def pending(assignment_id: str, unit: str, role: Role = Role.support, *, due: timedelta = timedelta(hours=1), origin: str = "routing") -> Pending:
    return Pending(assignment_id, unit, role, RECEIVED + due, origin)


def plan(late, now, *, holders=frozenset(), registered=REGISTERED, urgency=Urgency.emergency):
    return plan_escalation(COMMUNE, urgency, late, holders, registered, now, TABLE)


EMERGENCY = [
    pending("a-lead", "25349.health", Role.lead),
    pending("b-cp", CP_OFFICER),
    pending("c-chair", CHAIRMAN),
    pending("d-hamlet", "25349.hamlet.ap-2"),
]


class TestWhatIsOverdue:
    def test_nothing_is_overdue_before_the_deadline(self):
        assert overdue(EMERGENCY, RECEIVED + timedelta(minutes=59)) == ()

    def test_at_the_deadline_itself_it_is_not_yet_overdue(self):
        assert overdue(EMERGENCY, RECEIVED + timedelta(hours=1)) == ()

    def test_past_the_deadline_every_pending_assignment_is_overdue_the_lead_first(self):
        late = overdue(list(reversed(EMERGENCY)), RECEIVED + timedelta(hours=1, seconds=1))
        assert [p.assignment_id for p in late] == ["a-lead", "b-cp", "c-chair", "d-hamlet"]

    def test_only_those_past_their_own_deadline_are_overdue(self):
        later = pending("e-late-lead", "25349.cp_officer", Role.lead, due=timedelta(hours=5))
        late = overdue([*EMERGENCY[1:], later], RECEIVED + timedelta(hours=2))
        assert [p.assignment_id for p in late] == ["b-cp", "c-chair", "d-hamlet"]
        assert [p.assignment_id for p in overdue([later], RECEIVED + timedelta(hours=6))] == ["e-late-lead"]


class TestTheEscalation:
    NOW = RECEIVED + timedelta(hours=1, minutes=5)

    def test_it_goes_to_the_cp_officer_and_the_chairman_once_each_named_after_the_lead(self):
        escalation = plan(overdue(EMERGENCY, self.NOW), self.NOW)
        assert escalation.trigger.assignment_id == "a-lead"
        assert escalation.escalated_to == (CP_OFFICER, CHAIRMAN)
        assert {a.origin for a in escalation.assignments} == {"escalation:a-lead"}
        assert {a.unit_type for a in escalation.assignments} == {UnitType.cp_officer, UnitType.chairman}

    def test_its_deadline_is_the_urgency_deadline_counted_from_now(self):
        escalation = plan(overdue(EMERGENCY, self.NOW), self.NOW, urgency=Urgency.high)
        assert {a.due_at for a in escalation.assignments} == {self.NOW + timedelta(hours=4)}

    def test_its_reason_names_the_late_units_without_personal_data(self):
        [first, *_] = plan(overdue(EMERGENCY, self.NOW), self.NOW).assignments
        assert "25349.health" in first.reason and "escalated" in first.reason and len(first.reason) <= 500

    def test_a_long_list_of_late_units_is_shortened(self):
        many = [pending(f"s-{i}", f"25349.school.s{i}") for i in range(40)]
        [first, *_] = plan(overdue(many, self.NOW), self.NOW).assignments
        assert "(+37)" in first.reason and len(first.reason) <= 500

    def test_a_target_that_already_holds_an_open_escalation_gets_no_second(self):
        escalation = plan(overdue(EMERGENCY, self.NOW), self.NOW, holders=frozenset({CP_OFFICER}))
        assert escalation.escalated_to == (CHAIRMAN,)
        assert any("already holds" in note for note in escalation.notes)

    def test_when_every_target_holds_one_there_is_no_escalation(self):
        assert plan(overdue(EMERGENCY, self.NOW), self.NOW, holders=frozenset({CP_OFFICER, CHAIRMAN})) is None

    def test_a_late_escalation_is_flagged_but_goes_no_higher(self):
        late_escalation = pending("x", CP_OFFICER, origin=deadlines.escalation_origin("a-lead"))
        assert overdue([late_escalation], self.NOW) == (late_escalation,)
        assert plan(overdue([late_escalation], self.NOW), self.NOW) is None

    def test_a_commune_without_a_registered_chairman_escalates_to_the_cp_officer_with_a_note(self):
        escalation = plan(overdue(EMERGENCY, self.NOW), self.NOW, registered=frozenset())
        assert escalation.escalated_to == (CP_OFFICER,)
        assert any(CHAIRMAN in note for note in escalation.notes)

    def test_nothing_late_plans_nothing(self):
        assert plan((), self.NOW) is None

    def test_the_same_input_plans_the_same_escalation(self):
        one = plan(overdue(EMERGENCY, self.NOW), self.NOW)
        two = plan(overdue(list(reversed(EMERGENCY)), self.NOW), self.NOW)
        assert one == two


class TestTheClock:
    def test_without_an_offset_it_is_the_system_clock(self):
        assert offset_clock(0) is utcnow

    def test_an_offset_moves_it_ahead(self):
        moved = offset_clock(3600)()
        assert timedelta(minutes=59) < moved - utcnow() <= timedelta(hours=1)
        assert moved.tzinfo is not None

    def test_an_offset_is_refused_outside_development(self):
        prod = CommonSettings(env="prod", amqp_url=SecretStr("amqp://baove:secret@rabbit/"))
        with pytest.raises(ValidationError, match="refused outside BAOVE_ENV=dev"):
            RoutingSettings(clock_offset_seconds=3600, common=prod)
        assert RoutingSettings(common=prod).clock_offset_seconds == 0
