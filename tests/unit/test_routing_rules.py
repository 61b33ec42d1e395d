"""The routing table and the decision (pure): every category at every urgency, fallbacks, and file checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.routing.disclosure import view_of
from services.routing.rules import DEFAULT_RULES, RoutingInput, RulesError, decide, due_at, load_rules, parse_rules
from shared.enums import Category, Role, UnitType, Urgency

COMMUNE = "25349"
SCHOOL = "25349.school.th-minh-tam-a"
OTHER_SCHOOL = "25349.school.thcs-minh-tam"
HAMLET = "25349.hamlet.ap-2"
NEIGHBOUR_SCHOOL = "25339.school.th-an-phu"
RECEIVED = datetime(2025, 3, 2, 1, 0, tzinfo=UTC)
HIGH = ("emergency", "high")

# domain.md section 4, written out by hand: category -> (lead, [(support, urgencies or None for all)]).
# "school" is the child's school.
EXPECTED = {
    "sexual_abuse": ("police", [("health", None), ("school", None)]),
    "violence": ("cp_officer", [("police", HIGH), ("health", None), ("womens_union", None)]),
    "school_violence": ("school", [("police", HIGH)]),
    "exploitation": ("police", [("womens_union", None)]),
    "trafficking": ("police", [("chairman", None)]),
    "abandonment": ("cp_officer", [("justice", None), ("health", None), ("police", None)]),
    "neglect": ("cp_officer", [("womens_union", None)]),
    "online_abuse": ("police", [("radio", None)]),
    "injury": ("health", []),
    "drowning": ("health", [("police", None)]),
    "malnutrition": ("health", []),
    "conflict_with_law": ("police", [("justice", None), ("youth_union", None)]),
    "child_marriage": ("justice", [("womens_union", None)]),
    "unsafe_environment": ("culture_info", []),
    "special_circumstance": ("cp_officer", [("justice", None)]),
    "other": ("cp_officer", []),
}
DEADLINES = {"emergency": timedelta(hours=1), "high": timedelta(hours=4), "medium": timedelta(hours=24), "low": timedelta(hours=72)}

ALL_UNITS = frozenset(
    [f"{COMMUNE}.{t.value}" for t in UnitType if t not in (UnitType.school, UnitType.hamlet)] + [SCHOOL, OTHER_SCHOOL, HAMLET]
)


def unit_id(unit_type: str) -> str:
    return SCHOOL if unit_type == "school" else f"{COMMUNE}.{unit_type}"


def expected_for(category: str, urgency: str) -> dict[str, Role]:
    """Unit id -> role for an incident with a known hamlet and school, by the hand-written table."""
    lead, supports = EXPECTED[category]
    out = {unit_id(lead): Role.lead}
    for unit_type, only_at in supports:
        if only_at is None or urgency in only_at:
            out.setdefault(unit_id(unit_type), Role.support)
    out.setdefault(f"{COMMUNE}.cp_officer", Role.support)
    out.setdefault(HAMLET, Role.support)
    if urgency == "emergency":
        out.setdefault(f"{COMMUNE}.chairman", Role.support)
    return out


def incident(category="violence", urgency="medium", *, hamlet=HAMLET, schools=(SCHOOL,)) -> RoutingInput:
    return RoutingInput(COMMUNE, hamlet, Category(category), Urgency(urgency), RECEIVED, tuple(schools))


@pytest.fixture(scope="module")
def table():
    return load_rules(DEFAULT_RULES)


def roles(decision) -> dict[str, Role]:
    return {a.unit_id: a.role for a in decision.assignments}


class TestTheDefaultTable:
    @pytest.mark.parametrize("urgency", list(Urgency))
    @pytest.mark.parametrize("category", list(Category))
    def test_each_category_at_each_urgency_reaches_exactly_the_named_units(self, table, category, urgency):
        decision = decide(incident(category, urgency), ALL_UNITS, table)
        assert roles(decision) == expected_for(category.value, urgency.value)
        assert len(decision.assignments) == len({a.unit_id for a in decision.assignments})
        [lead] = decision.lead
        assert lead.rule == f"category.{category.value}.lead" and lead.reason
        assert decision.due_at == RECEIVED + DEADLINES[urgency.value]
        assert decision.rules_version == table.version

    def test_every_assignment_names_its_rule_and_a_reason(self, table):
        decision = decide(incident("violence", "high"), ALL_UNITS, table)
        rules = {a.unit_id: a.rule for a in decision.assignments}
        assert rules == {
            f"{COMMUNE}.cp_officer": "category.violence.lead",
            f"{COMMUNE}.police": "category.violence.support.police",
            f"{COMMUNE}.health": "category.violence.support.health",
            f"{COMMUNE}.womens_union": "category.violence.support.womens_union",
            HAMLET: "always.hamlet",
        }
        assert all(a.reason for a in decision.assignments)
        assert "Bạo lực" in decision.lead[0].reason

    def test_the_table_holds_every_category(self, table):
        assert set(table.categories) == set(Category)


class TestDeadlines:
    @pytest.mark.parametrize("urgency", list(Urgency))
    def test_acknowledgement_is_due_by_urgency(self, table, urgency):
        assert due_at(RECEIVED, urgency, table) - RECEIVED == DEADLINES[urgency.value]


class TestTheAlwaysRules:
    def test_an_emergency_also_goes_to_the_chairman(self, table):
        assert roles(decide(incident("injury", "emergency"), ALL_UNITS, table))[f"{COMMUNE}.chairman"] is Role.support

    @pytest.mark.parametrize("urgency", ["high", "medium", "low"])
    def test_a_non_emergency_does_not(self, table, urgency):
        assert f"{COMMUNE}.chairman" not in roles(decide(incident("injury", urgency), ALL_UNITS, table))

    def test_the_hamlet_supports_when_it_is_known(self, table):
        assert roles(decide(incident("injury"), ALL_UNITS, table))[HAMLET] is Role.support

    def test_without_a_hamlet_no_hamlet_unit_is_assigned_and_the_note_says_so(self, table):
        decision = decide(incident("injury", hamlet=None), ALL_UNITS, table)
        assert not any(".hamlet." in a.unit_id for a in decision.assignments)
        assert any("always.hamlet" in n and "no hamlet" in n for n in decision.notes)

    def test_the_cp_officer_is_on_every_incident(self, table):
        for category in Category:
            assert f"{COMMUNE}.cp_officer" in roles(decide(incident(category), ALL_UNITS, table))


class TestNoDuplicates:
    def test_a_lead_that_is_also_an_always_support_is_assigned_once_as_lead(self, table):
        decision = decide(incident("violence"), ALL_UNITS, table)
        cp = [a for a in decision.assignments if a.unit_id == f"{COMMUNE}.cp_officer"]
        assert [a.role for a in cp] == [Role.lead]

    def test_a_unit_named_twice_as_support_is_assigned_once(self, table):
        decision = decide(incident("trafficking", "emergency"), ALL_UNITS, table)
        chairman = [a for a in decision.assignments if a.unit_id == f"{COMMUNE}.chairman"]
        assert len(chairman) == 1 and chairman[0].rule == "category.trafficking.support.chairman"

    def test_two_children_of_one_school_give_one_assignment(self, table):
        decision = decide(incident("school_violence", schools=(SCHOOL, SCHOOL)), ALL_UNITS, table)
        assert [a.unit_id for a in decision.assignments].count(SCHOOL) == 1

    def test_children_of_two_schools_make_both_schools_lead(self, table):
        decision = decide(incident("school_violence", schools=(SCHOOL, OTHER_SCHOOL)), ALL_UNITS, table)
        assert {a.unit_id for a in decision.lead} == {SCHOOL, OTHER_SCHOOL}


class TestFallbacks:
    def test_no_school_given_makes_the_cp_officer_lead_and_says_why(self, table):
        decision = decide(incident("school_violence", schools=()), ALL_UNITS, table)
        [lead] = decision.lead
        assert lead.unit_id == f"{COMMUNE}.cp_officer" and lead.rule == "category.school_violence.lead.fallback"
        assert "no school" in lead.reason
        assert any("falls back" in n and "no school" in n for n in decision.notes)
        assert [a.unit_id for a in decision.assignments].count(f"{COMMUNE}.cp_officer") == 1

    def test_an_unknown_school_makes_the_cp_officer_lead_and_names_the_school(self, table):
        unknown = "25349.school.not-registered"
        decision = decide(incident("school_violence", schools=(unknown,)), ALL_UNITS, table)
        [lead] = decision.lead
        assert lead.unit_id == f"{COMMUNE}.cp_officer" and unknown in lead.reason
        assert unknown not in roles(decision)

    def test_one_registered_school_of_two_leads_and_the_other_is_noted(self, table):
        unknown = "25349.school.not-registered"
        decision = decide(incident("school_violence", schools=(unknown, SCHOOL)), ALL_UNITS, table)
        assert [a.unit_id for a in decision.lead] == [SCHOOL]
        assert any(unknown in n for n in decision.notes)

    def test_a_commune_without_police_gives_sexual_abuse_to_the_cp_officer(self, table):
        decision = decide(incident("sexual_abuse"), ALL_UNITS - {f"{COMMUNE}.police"}, table)
        [lead] = decision.lead
        assert lead.unit_id == f"{COMMUNE}.cp_officer" and f"{COMMUNE}.police" in lead.reason
        assert f"{COMMUNE}.police" not in roles(decision)

    def test_a_missing_support_unit_is_skipped_with_a_note(self, table):
        decision = decide(incident("abandonment"), ALL_UNITS - {f"{COMMUNE}.justice"}, table)
        assert f"{COMMUNE}.justice" not in roles(decision)
        assert any("category.abandonment.support.justice skipped" in n and f"{COMMUNE}.justice" in n for n in decision.notes)

    def test_the_school_support_is_skipped_with_a_note_when_no_school_is_known(self, table):
        decision = decide(incident("sexual_abuse", schools=()), ALL_UNITS, table)
        assert decision.lead[0].unit_id == f"{COMMUNE}.police"
        assert any("category.sexual_abuse.support.school skipped" in n for n in decision.notes)

    def test_a_school_in_another_commune_is_not_routed_there_by_default(self, table):
        """A child of 25349 at a school of 25339: 25349's incident does not reach that school (issue 15, point 8)."""
        decision = decide(incident("sexual_abuse", schools=(NEIGHBOUR_SCHOOL,)), ALL_UNITS | {NEIGHBOUR_SCHOOL}, table)
        assert NEIGHBOUR_SCHOOL not in roles(decision)
        assert any("support.school skipped" in n and NEIGHBOUR_SCHOOL in n and "another commune" in n for n in decision.notes)

    def test_a_school_in_another_commune_never_leads_and_the_fallback_says_why(self, table):
        decision = decide(incident("school_violence", schools=(NEIGHBOUR_SCHOOL, SCHOOL)), ALL_UNITS | {NEIGHBOUR_SCHOOL}, table)
        assert roles(decision)[SCHOOL] is Role.lead and NEIGHBOUR_SCHOOL not in roles(decision)
        assert any(NEIGHBOUR_SCHOOL in n and "another commune" in n for n in decision.notes)
        alone = decide(incident("school_violence", schools=(NEIGHBOUR_SCHOOL,)), ALL_UNITS | {NEIGHBOUR_SCHOOL}, table)
        assert [a.unit_id for a in alone.lead] == [f"{COMMUNE}.cp_officer"] and "another commune" in alone.lead[0].reason

    def test_a_rule_may_let_another_communes_school_support_with_the_minimal_view(self):
        allowing = parse_rules(broken("    support: [health, school]", "    support: [health, {unit: school, other_communes: true}]"))
        decision = decide(incident("sexual_abuse", schools=(NEIGHBOUR_SCHOOL,)), ALL_UNITS | {NEIGHBOUR_SCHOOL}, allowing)
        assignment = next(a for a in decision.assignments if a.unit_id == NEIGHBOUR_SCHOOL)
        assert assignment.role is Role.support and view_of(assignment.role, assignment.unit_type) == "minimal"

    @pytest.mark.parametrize(
        ("old", "new", "where"),
        [
            ("    lead: school\n", "    lead: {unit: school, other_communes: true}\n", "school_violence.lead.other_communes"),
            ("    support: [health, school]", "    support: [{unit: health, other_communes: true}, school]", "support[0].other_communes"),
            ("    support: [health, school]", "    support: [health, {unit: school, other_communes: 1}]", "support[1].other_communes"),
        ],
    )
    def test_only_a_school_support_entry_may_reach_another_commune(self, old, new, where):
        with pytest.raises(RulesError, match=where.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")):
            parse_rules(broken(old, new))

    def test_without_a_registered_cp_officer_the_case_still_reaches_its_id(self, table):
        decision = decide(incident("other"), frozenset(), table)
        [lead] = decision.lead
        assert lead.unit_id == f"{COMMUNE}.cp_officer"
        assert any("not in the unit registry: assigned anyway" in n for n in decision.notes)

    def test_an_empty_registry_keeps_only_the_cp_officer_as_lead(self, table):
        decision = decide(incident("sexual_abuse", "emergency"), frozenset(), table)
        assert roles(decision) == {f"{COMMUNE}.cp_officer": Role.lead}


class TestPurity:
    def test_the_same_input_gives_the_same_decision(self, table):
        first = decide(incident("violence", "emergency"), ALL_UNITS, table)
        assert decide(incident("violence", "emergency"), ALL_UNITS, table) == first


GOOD = DEFAULT_RULES.read_text(encoding="utf-8")


def broken(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


class TestLoadingARulesFile:
    def test_the_default_file_loads(self):
        assert load_rules().version == "2025.1"

    def test_an_unknown_category_is_named_with_its_line(self):
        text = broken("  other:\n    lead: cp_officer", "  other:\n    lead: cp_officer\n  bullying:\n    lead: police")
        with pytest.raises(RulesError, match=r"categories\.bullying: unknown category 'bullying'") as err:
            parse_rules(text, "rules.yaml")
        assert f"rules.yaml:{line_of(text, 'bullying:')}:" in str(err.value)

    def test_an_unknown_unit_type_is_named_with_its_line(self):
        text = broken("    support: [radio]", "    support: [radio, polise]")
        with pytest.raises(RulesError, match=r"categories\.online_abuse\.support\[1\]: unknown unit type 'polise'") as err:
            parse_rules(text, "rules.yaml")
        assert f"rules.yaml:{line_of(text, 'polise')}:" in str(err.value)

    def test_an_unknown_urgency_in_a_condition_is_named(self):
        text = broken("when: {urgency: [emergency]}", "when: {urgency: [emergncy]}")
        with pytest.raises(RulesError, match=r"always\.support\[2\]\.when\.urgency\[0\]: unknown urgency 'emergncy'"):
            parse_rules(text)

    def test_an_unknown_urgency_in_the_deadlines_is_named(self):
        with pytest.raises(RulesError, match=r"ack_deadlines\.urgent: unknown urgency 'urgent'"):
            parse_rules(broken("  low: 72h", "  low: 72h\n  urgent: 2h"))

    def test_an_unknown_role_is_named(self):
        with pytest.raises(RulesError, match=r"categories\.injury\.supprt: unknown role 'supprt'"):
            parse_rules(broken("  injury:\n    lead: health", "  injury:\n    lead: health\n    supprt: [police]"))

    def test_a_missing_category_is_named(self):
        with pytest.raises(RulesError, match="missing category 'other'"):
            parse_rules(broken("  other:\n    lead: cp_officer\n", ""))

    def test_a_missing_deadline_is_named(self):
        with pytest.raises(RulesError, match="missing urgency 'low'"):
            parse_rules(broken("  low: 72h\n", ""))

    def test_a_bad_duration_is_named(self):
        with pytest.raises(RulesError, match=r"ack_deadlines\.high: '4 hours' is not a duration"):
            parse_rules(broken("high: 4h", "high: 4 hours"))

    def test_a_lead_in_the_always_rules_is_refused(self):
        with pytest.raises(RulesError, match="always-rules cannot name a lead"):
            parse_rules(broken("always:\n", "always:\n  lead: police\n"))

    def test_a_key_given_twice_is_refused(self):
        with pytest.raises(RulesError, match=r"categories\.injury: key appears twice"):
            parse_rules(broken("  injury:\n    lead: health", "  injury:\n    lead: health\n  injury:\n    lead: police"))

    def test_an_unquoted_version_is_refused(self):
        with pytest.raises(RulesError, match="version: must be a non-empty string"):
            parse_rules(broken('version: "2025.1"', "version: 2025.1"))

    def test_a_changed_table_changes_the_routing(self, tmp_path: Path):
        path = tmp_path / "rules.yaml"
        path.write_text(broken("  injury:\n    lead: health", "  injury:\n    lead: health\n    support: [womens_union]"), encoding="utf-8")
        decision = decide(incident("injury"), ALL_UNITS, load_rules(path))
        assert roles(decision)[f"{COMMUNE}.womens_union"] is Role.support

    def test_a_lead_with_a_condition_that_does_not_hold_falls_back(self):
        table = parse_rules(broken("  injury:\n    lead: health", "  injury:\n    lead: {unit: health, when: {urgency: [emergency]}}"))
        [lead] = decide(incident("injury", "low"), ALL_UNITS, table).lead
        assert lead.unit_id == f"{COMMUNE}.cp_officer" and "does not apply at urgency low" in lead.reason
