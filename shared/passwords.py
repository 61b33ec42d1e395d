"""Passwords: argon2id hashes, the policy a new password must meet, one-time passwords.

argon2-cffi's default parameters are RFC 9106's low-memory profile (argon2id, 64 MiB, 3 passes,
4 lanes); they are written into every hash, so changing them later rehashes at the next sign-in.
Verifying costs about a tenth of a second of CPU: callers run it off the event loop.
"""

from __future__ import annotations

import secrets
import unicodedata
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
# Two-letter parts ("An", "Lê") and the middle names half the country shares would refuse ordinary
# words ("thì", "vẫn") without making a password harder to guess.
COMMON_NAME_PARTS = frozenset({"thi", "van"})
COMMON_PASSWORDS = Path(__file__).parent / "reference" / "common_passwords.txt"
HASHER = PasswordHasher()

MESSAGES = {
    "too_short": f"the new password must have at least {MIN_LENGTH} characters",
    "same_as_username": "the new password must not be the username",
    "contains_name": "the new password must not contain a part of the person's name or username",
    "common": "the new password is one of the commonly used passwords: choose another",
    "wrong_current_password": "the current password is wrong",
    "same_as_current": "the new password must differ from the current one",
}


class PasswordRefused(ValueError):
    """A password the policy refuses; `code` is one of MESSAGES' keys."""

    def __init__(self, code: str) -> None:
        super().__init__(MESSAGES[code])
        self.code = code
        self.message = MESSAGES[code]


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True when `password` matches; never raises for a mismatch or a damaged hash."""
    try:
        return HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return HASHER.check_needs_rehash(stored_hash)


@cache
def dummy_hash() -> str:
    """A hash of a random secret: verified against for unknown people so every failure costs the same time."""
    return HASHER.hash(secrets.token_urlsafe(24))


@cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(_fold(line) for line in lines if line and not line.startswith("#"))


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def _plain(text: str) -> str:
    """Folded and without diacritics, so `Nguyễn` is found in `nguyen2025`."""
    decomposed = unicodedata.normalize("NFD", _fold(text).replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def check_new_password(password: str, username: str, full_name: str, current: str | None = None) -> None:
    """Raise PasswordRefused naming the first rule `password` breaks."""
    if len(password) < MIN_LENGTH:
        raise PasswordRefused("too_short")
    folded, plain = _fold(password), _plain(password)
    if folded == _fold(username):
        raise PasswordRefused("same_as_username")
    parts = {_plain(p) for p in [*full_name.split(), *username.replace(".", "-").replace("_", "-").split("-"), username]}
    if any(len(p) >= 3 and p not in COMMON_NAME_PARTS and p in plain for p in parts):
        raise PasswordRefused("contains_name")
    if folded in common_passwords():
        raise PasswordRefused("common")
    if current is not None and password == current:
        raise PasswordRefused("same_as_current")


def acceptable(password: str, username: str, full_name: str) -> bool:
    try:
        check_new_password(password, username, full_name)
    except PasswordRefused:
        return False
    return True


ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def one_time_password() -> str:
    """16 characters without look-alikes (no 0/O, 1/l/I): easy to read aloud or type from paper."""
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(4)) for _ in range(4))
