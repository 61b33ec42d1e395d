"""The report document's pure parts: who may take which step, in which order; the narrative as stored; the words and
numbers as a Vietnamese administrative document writes them."""

import unicodedata
from datetime import UTC, datetime

import pytest

from services.reporting import documents, signoff
from shared.auth import Principal
from shared.errors import Conflict, Invalid


def unit(subject: str) -> Principal:
    return Principal("unit", subject, "t")


class TestWhoAndWhen:
    def test_the_officer_drafts_submits_and_sends_the_chairman_approves_returns_and_may_send(self):
        officer, chairman, police = unit("25349.cp_officer"), unit("25349.chairman"), unit("25349.police")
        assert [signoff.may_act(officer, "25349", a) for a in ("draft", "submit", "approve", "return", "send")] == [True, True, False, False, True]
        assert [signoff.may_act(chairman, "25349", a) for a in ("draft", "submit", "approve", "return", "send")] == [False, False, True, True, True]
        assert not any(signoff.may_act(police, "25349", a) for a in ("draft", "submit", "approve", "return", "send"))
        assert not signoff.may_act(unit("25348.chairman"), "25349", "approve"), "another commune's chairman"
        assert not signoff.may_act(Principal("district", "694", "t"), "25349", "approve")

    def test_steps_follow_draft_submitted_approved_sent_and_a_wrong_one_says_what_is_possible(self):
        assert signoff.next_status("draft", "submit") == "submitted"
        assert signoff.next_status("submitted", "approve") == "approved"
        assert signoff.next_status("submitted", "return") == "draft"
        assert signoff.next_status("approved", "send") == "sent"
        with pytest.raises(Conflict, match="possible now: return, approve"):
            signoff.next_status("submitted", "send")
        with pytest.raises(Conflict, match="possible now: nothing"):
            signoff.next_status("sent", "approve")


class TestNarrative:
    def test_stored_as_nfc_trimmed_and_a_section_not_given_keeps_its_text(self):
        decomposed = "Tình hình ổn định"  # typed with combining marks (NFD)

        stored = signoff.clean_narrative({"situation": "  " + unicodedata.normalize("NFD", decomposed) + "\r\n"}, {"results": "Cũ"})
        assert stored["situation"] == decomposed and unicodedata.is_normalized("NFC", stored["situation"])
        assert stored["results"] == "Cũ" and set(stored) == set(signoff.NARRATIVE)
        assert signoff.missing_sections(stored) == ["incidents", "assessment", "next_tasks", "recommendations"]

    def test_unknown_sections_and_overlong_text_are_refused(self):
        with pytest.raises(Invalid, match="unknown narrative sections"):
            signoff.clean_narrative({"children_names": "x"})
        with pytest.raises(Invalid, match="longer than"):
            signoff.clean_narrative({"situation": "x" * (signoff.MAX_SECTION + 1)})


class TestWords:
    def test_place_and_date_in_vietnam_or_blanks_before_signing(self):
        assert documents.place_date("Minh Tâm", datetime(2025, 5, 9, 17, 30, tzinfo=UTC), 2025) == "Minh Tâm, ngày 10 tháng 5 năm 2025"
        assert documents.place_date("Minh Tâm", None, 2025) == "Minh Tâm, ngày      tháng      năm 2025"

    def test_the_subject_period_and_numbers_as_written(self):
        assert documents.period_words({"id": "2025-6M"}) == "6 tháng đầu năm 2025"
        assert documents.period_words({"id": "2025-12M"}) == "năm 2025"
        assert (documents.n(1234567), documents.n(0), documents.n(None)) == ("1.234.567", "0", "")

    def test_recipients_name_the_district_and_leave_out_the_issuer_itself(self):
        lines = documents.recipients_of(("Văn phòng HĐND - UBND huyện", "Ủy ban nhân dân xã"), "Minh Tâm", "Hớn Quản")
        assert lines[0] == "- Văn phòng HĐND - UBND huyện Hớn Quản (b/c);" and lines[-1] == "- Lưu: VT."
        assert not any("Ủy ban nhân dân xã" in line for line in lines)

    def test_a_long_task_is_cut_at_a_word(self):
        words = documents.PlanWords(tasks={"IV.7": "Phối hợp với Công chức Văn hóa - Xã hội tổ chức tuyên truyền phòng, chống xâm hại trẻ em trên địa bàn"})
        text = documents.task_words("IV.7", words)
        assert text.startswith("IV.7. Phối hợp") and text.endswith("…") and len(text) < 90
        assert documents.task_words("IV.99", words) == "IV.99"
