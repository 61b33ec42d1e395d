"""The password policy and hashing (shared/passwords.py), without I/O."""

from __future__ import annotations

import pytest

from shared import passwords
from shared.people import normalise_username


class TestThePolicy:
    @pytest.mark.parametrize(
        ("password", "code"),
        [
            ("ngắn quá", "too_short"),
            ("Lan.Nguyen.2025", "contains_name"),
            ("lan.nguyen", "same_as_username"),
            ("nguyen-thi-lan-2025", "contains_name"),
            ("NGUYỄN là họ tôi", "contains_name"),
            ("hello nguyen!!", "contains_name"),
            ("Password123", "common"),
            ("1234567890", "common"),
            ("matkhau@123", "common"),
            ("anhyeuem123", "common"),
        ],
    )
    def test_a_new_password_is_refused_naming_the_rule_it_breaks(self, password, code):
        with pytest.raises(passwords.PasswordRefused) as refused:
            passwords.check_new_password(password, "lan.nguyen", "Nguyễn Thị Lan")
        assert refused.value.code == code and refused.value.message == passwords.MESSAGES[code]

    def test_short_name_parts_do_not_refuse_ordinary_words(self):
        passwords.check_new_password("banana thì ngon lắm", "lan.nguyen", "Nguyễn Thị An")

    def test_the_new_password_must_differ_from_the_current_one(self):
        with pytest.raises(passwords.PasswordRefused) as refused:
            passwords.check_new_password("sông Hồng chảy mãi", "lan", "Lê Lan", current="sông Hồng chảy mãi")
        assert refused.value.code == "same_as_current"

    def test_the_shipped_list_is_read_and_compared_case_insensitively(self):
        assert len(passwords.common_passwords()) > 1000 and "qwertyuiop" in passwords.common_passwords()


class TestHashing:
    def test_hashes_are_argon2id_with_the_libraries_recommended_parameters_and_verify(self):
        stored = passwords.hash_password("sông Hồng chảy mãi")
        assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert passwords.verify_password(stored, "sông Hồng chảy mãi")
        assert not passwords.verify_password(stored, "sông Hồng chảy mãi ")
        assert not passwords.verify_password("not a hash", "x") and not passwords.needs_rehash(stored)

    def test_one_time_passwords_are_long_random_and_pass_the_policy(self):
        made = {passwords.one_time_password() for _ in range(50)}
        assert len(made) == 50 and all(len(p) == 19 for p in made)
        for p in list(made)[:5]:
            passwords.check_new_password(p, "lan", "Lê Lan")


def test_usernames_are_one_whatever_the_case_or_the_unicode_form():
    assert normalise_username(" Lan.NGUYEN ") == "lan.nguyen"
    assert normalise_username("Mo\u0302\u0301i") == normalise_username("MỐI") == "mối"


class TestUnicodeForms:
    """Vietnamese typed on another keyboard or phone may arrive decomposed (NFD): the same password all the same."""

    def test_a_password_hashed_composed_verifies_typed_decomposed_and_back(self):
        import unicodedata

        composed, decomposed = (unicodedata.normalize(form, "sông Hồng chảy mãi") for form in ("NFC", "NFD"))
        assert composed != decomposed
        assert passwords.verify_password(passwords.hash_password(composed), decomposed)
        assert passwords.verify_password(passwords.hash_password(decomposed), composed)

    def test_the_policy_counts_and_compares_the_composed_form(self):
        import unicodedata

        with pytest.raises(passwords.PasswordRefused) as refused:  # 9 letters composed, 13 code points decomposed
            passwords.check_new_password(unicodedata.normalize("NFD", "ắằẳẵặấầẩẫ"), "lan", "Lê Lan")
        assert refused.value.code == "too_short"
        with pytest.raises(passwords.PasswordRefused) as refused:
            passwords.check_new_password(unicodedata.normalize("NFD", "sông Hồng chảy mãi"), "lan", "Lê Lan",
                                         current="sông Hồng chảy mãi")
        assert refused.value.code == "same_as_current"


async def test_no_token_is_issued_for_more_than_a_year():
    from datetime import timedelta

    from shared import auth

    with pytest.raises(ValueError, match="365 days"):
        await auth.issue_token(None, "admin", "admin", label="integration", ttl=timedelta(days=366))
