"""Possible duplicates (issue 17): Vietnamese names folded and scored, and the planted sample's precision and recall."""

from datetime import UTC, datetime

from bench.duplicates import precision_recall
from services.intake.duplicates import DEFAULT_THRESHOLD, candidates, child_keys, fold, score

AT = datetime(2025, 3, 10, 3, 0, tzinfo=UTC)


def key(name, *, incident="a", sex="female", birth="2014-06-02", age=None, school=None, hamlet=None, at=AT):
    child = {"full_name": name, "sex": sex, "birth_date": birth, "age_years": age, "school": school}
    [k] = child_keys(incident, [child], hamlet, at)
    return k


class TestFolding:
    def test_tones_case_spaces_and_d_bar_are_set_aside(self):
        assert fold("  Đặng  Thị   Ngọc Ánh ") == "dang thi ngoc anh"
        assert fold("Nguyễn Văn Đức") == fold("NGUYEN VAN DUC") == "nguyen van duc"

    def test_composed_and_decomposed_input_fold_alike(self):
        import unicodedata

        name = "Trần Thị Hương"
        assert fold(unicodedata.normalize("NFD", name)) == fold(unicodedata.normalize("NFC", name))


class TestScore:
    def test_the_same_child_written_without_tones_is_a_candidate(self):
        assert score(key("Nguyễn Thị Hương", incident="b"), key("Nguyen Thi Huong")) >= DEFAULT_THRESHOLD

    def test_a_swapped_name_order_is_a_candidate(self):
        assert score(key("Thị Hương Nguyễn", incident="b"), key("Nguyễn Thị Hương")) >= DEFAULT_THRESHOLD

    def test_a_misspelt_name_with_the_same_birth_date_is_a_candidate(self):
        assert score(key("Fạm Thanh Linh", incident="b"), key("Phạm Thanh Linh")) >= DEFAULT_THRESHOLD

    def test_an_age_instead_of_the_birth_date_counts_within_one_year(self):
        # Born 2014-06-02: 10 on 10 March 2025; a hamlet's estimate of 11 still agrees.
        assert score(key("Lê Thị Mai", incident="b", birth=None, age=11), key("Lê Thị Mai")) >= DEFAULT_THRESHOLD
        assert score(key("Lê Thị Mai", incident="b", birth=None, age=14), key("Lê Thị Mai")) < DEFAULT_THRESHOLD

    def test_tone_exact_names_score_higher_than_folded_ones(self):
        old = key("Trần Văn Hùng", sex="male")
        assert score(key("Trần Văn Hùng", incident="b", sex="male"), old) > score(key("Tran Van Hung", incident="b", sex="male"), old)

    def test_different_children_of_one_family_are_not_candidates(self):
        # Same family and middle name, different given names and birth dates: siblings, not one child.
        assert score(key("Đỗ Văn Minh", incident="b", sex="male", birth="2010-10-16"), key("Đỗ Minh Quân", sex="male", birth="2010-05-10")) < DEFAULT_THRESHOLD
        assert score(key("Nguyễn Thị Lan", incident="b"), key("Nguyễn Văn Lan", sex="male")) < DEFAULT_THRESHOLD

    def test_school_and_hamlet_add_to_the_score(self):
        old = key("Võ Thị Thảo", school="25349.school.th-minh-tam-a", hamlet="25349.hamlet.ap-2")
        same = key("Vo Thi Thao", incident="b", school="25349.school.th-minh-tam-a", hamlet="25349.hamlet.ap-2")
        other = key("Vo Thi Thao", incident="b", school="25349.school.th-minh-tam-b", hamlet="25349.hamlet.ap-3")
        assert score(same, old) > score(other, old)


class TestCandidates:
    def test_the_best_incidents_above_the_threshold_come_first_and_never_the_report_itself(self):
        window = [key("Phan Thị Yến", incident="x"), key("Phan Thi Yen", incident="y", birth=None, age=10), key("Bùi Văn Nam", incident="z", sex="male")]
        new = [key("Phan Thị Yến", incident="n")]
        found = candidates(new, [*window, *new])
        assert [c.incident_id for c in found] == ["x", "y"] and found[0].score > found[1].score

    def test_a_report_older_than_30_days_is_not_compared(self):
        old = key("Phan Thị Yến", incident="x", at=datetime(2025, 1, 1, tzinfo=UTC))
        assert candidates([key("Phan Thị Yến", incident="n")], [old]) == []

    def test_an_unnamed_child_is_not_matched(self):
        assert child_keys("a", [{"full_name": None, "sex": "male", "age_years": 5}], None, AT) == []


class TestPlantedSample:
    def test_precision_and_recall_meet_the_issue_s_targets(self):
        """200 reports, 40 planted duplicates (spelling, no tones, swapped order, age only), a fixed seed."""
        result = precision_recall(seed=17)
        assert result["planted"] == 40 and result["reports"] == 200
        assert result["recall"] >= 0.9, result["missed"]
        assert result["precision"] >= 0.8, result["false"]


class TestTheCap:
    def test_at_most_the_limit_the_best_ones(self):
        window = [
            key("Phạm Thị Lan", incident="a", school="s"),
            key("Pham Thi Lan", incident="b"),
            key("Phạm Thị Lanh", incident="c"),
            key("Lan Phạm Thị", incident="d", school="s"),
            key("Pham Thi Lanh", incident="e"),
        ]
        new = [key("Phạm Thị Lan", incident="n", school="s")]
        every = candidates(new, window, limit=100)
        assert len(every) == 5 and [c.score for c in every] == sorted((c.score for c in every), reverse=True)
        assert candidates(new, window, limit=2) == every[:2]
        assert [c.incident_id for c in every[:2]] == ["a", "d"]

    def test_the_default_is_the_setting_s_default(self, monkeypatch):
        from services.intake.duplicates import MAX_CANDIDATES
        from shared.settings import IntakeSettings

        assert IntakeSettings().duplicate_max_candidates == MAX_CANDIDATES == 5
        monkeypatch.setenv("BAOVE_INTAKE_DUPLICATE_MAX_CANDIDATES", "3")
        assert IntakeSettings().duplicate_max_candidates == 3
