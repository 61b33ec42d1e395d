"""The commune's plan as data: Minh Tâm's 2025 plan loads, says what the seed says, and a wrong file is refused."""

import unicodedata
from pathlib import Path

import pytest
import yaml

from shared.plans import COUNT_FIELDS, PLANS, PlanNotFound, available_plans, load_plan, parse_plan

SEED = Path(__file__).resolve().parents[3] / "shared" / "seed" / "ke-hoach-cong-tac-tre-em-2025.txt"


def raw() -> dict:
    return yaml.safe_load((PLANS / "25349-2025.yaml").read_text(encoding="utf-8"))


class TestMinhTamPlan:
    def test_it_has_the_ten_tasks_of_section_iv_in_order(self):
        plan = load_plan("25349", 2025)
        assert [t.id for t in plan.tasks] == [f"IV.{n}" for n in range(1, 11)]
        assert plan.commune == "25349" and plan.year == 2025 and plan.version

    def test_each_unit_of_section_iv_has_its_tasks(self):
        plan = load_plan("25349", 2025)
        assert [t.id for t in plan.tasks_of("police")] == ["IV.7", "IV.8"]  # its own, and the radio's as support
        assert [t.id for t in plan.tasks_of("school")] == ["IV.5", "IV.9"]
        assert [t.id for t in plan.tasks_of("hamlet")] == ["IV.10"]
        assert plan.task("IV.9").responsible == ("fatherland_front", "youth_union", "womens_union")
        assert plan.task("IV.7").role_of("radio") == "supporting"
        assert plan.tasks_of("chairman") == []

    def test_the_finance_task_is_listed_but_takes_no_activity(self):
        task = load_plan("25349", 2025).task("IV.2")
        assert task.unit == "Công chức Tài chính - Kế toán xã" and task.kinds == () and task.responsible == ()

    def test_the_kinds_say_which_counts_they_take(self):
        plan = load_plan("25349", 2025)
        assert "participants_female" in plan.kinds["communication"].fields
        assert plan.kinds["inspection"].fields == ("sessions", "sites_inspected", "violations_found")
        assert set(plan.task("IV.6").kinds) == {"communication", "inspection"}
        assert {f for k in plan.kinds.values() for f in k.fields} <= set(COUNT_FIELDS)

    def test_section_v_gives_the_reports_and_their_due_dates(self):
        reporting = load_plan("25349", 2025).reporting
        assert [(r.period, r.due.isoformat()) for r in reporting.reports] == [("6M", "2025-05-10"), ("12M", "2025-11-10")]
        assert reporting.compiled_by == "cp_officer"

    def test_the_task_texts_are_the_plans_own_words_in_nfc(self):
        plan = load_plan("25349", 2025)
        for task in plan.tasks:
            assert unicodedata.is_normalized("NFC", task.text) and "\ufffd" not in task.text
        if SEED.is_file():
            seed = " ".join(SEED.read_text(encoding="utf-8").split())
            for task in plan.tasks:
                for paragraph in task.text.splitlines():
                    assert paragraph.rstrip(".")[:60] in seed, paragraph[:60]


class TestLoading:
    def test_a_commune_or_year_without_a_plan_is_not_found(self):
        with pytest.raises(PlanNotFound):
            load_plan("25339", 2025)
        with pytest.raises(PlanNotFound):
            load_plan("25349", 2024)

    def test_the_files_are_listed(self):
        assert ("25349", 2025) in available_plans()

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            (lambda d: d["tasks"][6].update(kinds=["communication", "juggling"]), "unknown activity kinds"),
            (lambda d: d["tasks"][6].update(responsible=["police", "spaceship"]), "spaceship"),
            (lambda d: d["tasks"][6].update(id="IV.1"), "repeated"),
            (lambda d: d["kinds"]["media"].update(counts=["likes"]), "unknown counts"),
            (lambda d: d["kinds"]["media"].update(required=["sessions"]), "not among its counts"),
            (lambda d: d["tasks"][6].update(supporting=["police"]), "both responsible and supporting"),
            (lambda d: d.update(commune="2534"), "5 digits"),
        ],
    )
    def test_a_wrong_plan_is_refused_naming_the_fault(self, change, message):
        data = raw()
        change(data)
        with pytest.raises(ValueError, match=message):
            parse_plan(data, "test.yaml")

    def test_a_file_must_hold_the_plan_its_name_says(self, tmp_path):
        (tmp_path / "25339-2025.yaml").write_text((PLANS / "25349-2025.yaml").read_text(encoding="utf-8"), encoding="utf-8")
        with pytest.raises(ValueError, match="not 25339 for 2025"):
            load_plan("25339", 2025, tmp_path)
