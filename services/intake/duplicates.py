"""Possible duplicates worked out without I/O (issue 17, point 5): is a new report about a child already reported?

A school and a hamlet often report the same child. Each child of a new report is compared with the children of
the commune's reports of the last 30 days: the names folded (no tones, đ→d, lower case, one space) and compared
with rapidfuzz's token_sort_ratio (a swapped name order scores as the same), a bonus when the names agree
tone-exact, the birth date or the age (±1; an age is derived at the report's date when only a birth date is
known), the sex, the school and the hamlet. A pair above the threshold is a candidate; nothing is merged.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from rapidfuzz import fuzz, process

from .incidents import age_on, vn_date

WINDOW = timedelta(days=30)
DEFAULT_THRESHOLD = 80.0
# A name below this (0-100, folded) is not worth scoring: the prefilter rapidfuzz applies to the whole window.
NAME_CUTOFF = 70.0
# Per new report, the best ones (BAOVE_INTAKE_DUPLICATE_MAX_CANDIDATES): a child reported 40 times needs no 40 links at once.
MAX_CANDIDATES = 5

# The score: the folded names' similarity weighs most; the rest agree or disagree.
NAME_WEIGHT = 0.7
TONE_EXACT = 5.0
SAME_BIRTH_DATE = 20.0
AGE_WITHIN_ONE = 15.0
AGE_APART = -30.0
SEX_DIFFERS = -50.0
SAME_SCHOOL = 5.0
SAME_HAMLET = 5.0


def fold(name: str | None) -> str:
    """A Vietnamese name compared without tones or case: NFD, combining marks dropped, đ→d, lower, one space."""
    if not name:
        return ""
    decomposed = unicodedata.normalize("NFD", name.replace("đ", "d").replace("Đ", "D"))
    # After NFD a Vietnamese letter is an ASCII letter and its marks: dropping what is not ASCII, in C, drops the marks.
    bare = decomposed.encode("ascii", "ignore").decode("ascii")
    if not bare.strip():  # a name in another script: its marks dropped one by one instead
        bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.lower().split())


def exact(name: str | None) -> str:
    """The name tone-exact, only case and spaces set aside (NFC, so composed and decomposed input agree)."""
    return " ".join(unicodedata.normalize("NFC", name or "").lower().split())


@dataclass(frozen=True)
class ChildKey:
    """What a child is matched on: the incident it belongs to, its names, age on the report's day, and places."""

    incident_id: str
    name: str  # tone-exact
    folded: str
    sex: str
    birth_date: date | None
    age: int | None
    school: str | None
    hamlet: str | None
    reported_on: date


def child_keys(incident_id: str, children: Iterable[dict], hamlet: str | None, received_at: datetime) -> list[ChildKey]:
    """The keys of an incident's children (as stored: dicts with full_name, sex, birth_date, age_years, school)."""
    day = vn_date(received_at)
    keys = []
    for child in children:
        if not child.get("full_name"):
            continue  # an unnamed child is not matched: sex and age alone say nothing
        birth = child.get("birth_date")
        birth = date.fromisoformat(birth) if isinstance(birth, str) else birth
        age = age_on(birth, day) if birth is not None else child.get("age_years")
        keys.append(
            ChildKey(
                incident_id, exact(child["full_name"]), fold(child["full_name"]), str(child.get("sex") or ""), birth, age,
                child.get("school"), hamlet, day,
            )
        )
    return keys


def name_score(a: str, b: str) -> float:
    """Folded names compared in their order (a misspelt first letter) and with their words sorted (a swapped order)."""
    return max(fuzz.ratio(a, b), fuzz.token_sort_ratio(a, b))


def score(new: ChildKey, old: ChildKey, name_similarity: float | None = None) -> float:
    """0 to 100: how likely two children of two reports are the same child."""
    similarity = name_score(new.folded, old.folded) if name_similarity is None else name_similarity
    points = NAME_WEIGHT * similarity
    if new.name == old.name or sorted(new.name.split()) == sorted(old.name.split()):
        points += TONE_EXACT
    if new.birth_date is not None and old.birth_date is not None:
        # Two birth dates written down: equal, or two children (an age ±1 would not tell them apart).
        points += SAME_BIRTH_DATE if new.birth_date == old.birth_date else 0.0
    elif new.age is not None and old.age is not None:
        # Ages taken at each report's date: a birthday between the two reports moves one of them by a year.
        points += AGE_WITHIN_ONE if abs(new.age - old.age) <= 1 else AGE_APART
    if new.sex and old.sex and new.sex != old.sex and "unknown" not in (new.sex, old.sex):
        points += SEX_DIFFERS
    if new.school and new.school == old.school:
        points += SAME_SCHOOL
    if new.hamlet and new.hamlet == old.hamlet:
        points += SAME_HAMLET
    return max(0.0, min(100.0, round(points, 1)))


def _may_be(new: ChildKey, old: ChildKey) -> bool:
    """The cheap prefilter before any name is compared: another incident, in the window, ages not far apart."""
    if old.incident_id == new.incident_id or abs((new.reported_on - old.reported_on).days) > WINDOW.days:
        return False
    return new.age is None or old.age is None or abs(new.age - old.age) <= 2


@dataclass(frozen=True)
class Candidate:
    incident_id: str  # the earlier report
    score: float


def candidates(
    new: Sequence[ChildKey], window: Sequence[ChildKey], threshold: float = DEFAULT_THRESHOLD, limit: int = MAX_CANDIDATES
) -> list[Candidate]:
    """The window's incidents whose children score at or above the threshold with one of the new report's: the best
    `limit` of them, best first (ties by incident id).

    rapidfuzz's `process.extract` with a score cutoff compares the names over the whole window, in C; the cheap
    prefilter (another incident, the window, ages) and the score are then worked out for the few names it keeps."""
    if limit < 1:
        raise ValueError("at least one candidate is kept")
    best: dict[str, float] = {}
    names = [old.folded for old in window]
    for child in new:
        similar: dict[int, float] = {}
        for scorer in (fuzz.ratio, fuzz.token_sort_ratio):  # name_score's two, each over the whole window in C
            for _, similarity, i in process.extract(child.folded, names, scorer=scorer, score_cutoff=NAME_CUTOFF, limit=None):
                similar[i] = max(similarity, similar.get(i, 0.0))
        for i, similarity in similar.items():
            old = window[i]
            if not _may_be(child, old):
                continue
            points = score(child, old, similarity)
            if points >= threshold and points > best.get(old.incident_id, -1.0):
                best[old.incident_id] = points
    ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [Candidate(incident_id, points) for incident_id, points in ranked]
