"""A child's age on a day and report age band, and what is kept of a child once their case is erased (pure)."""

from __future__ import annotations

from datetime import date

from shared.enums import AgeBand


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def age_band(birth_date: date | None, age_years: int | None, on: date) -> AgeBand:
    """The report age band of a child on the day of the incident (Law on Children Art. 1: under 16)."""
    age = age_on(birth_date, on) if birth_date is not None else age_years
    if age is None or age < 0:
        return AgeBand.unknown
    if age <= 5:
        return AgeBand.a0_5
    if age <= 10:
        return AgeBand.a6_10
    if age <= 15:
        return AgeBand.a11_15
    if age <= 17:
        return AgeBand.a16_17
    raise ValueError(f"aged {age} on {on}: 18 or older is not a child")


def anonymous_child(child: dict, on: date) -> dict:
    """A stored child (name, birth date, age, school...) cut to what statistics need: sex, age band on the
    incident's day, special-circumstance codes. Idempotent: an already anonymous child stays as it is."""
    if "age_band" in child and "full_name" not in child:
        return {"sex": child["sex"], "age_band": child["age_band"], "special_circumstances": list(child.get("special_circumstances", ()))}
    birth = child.get("birth_date")
    try:
        band = age_band(date.fromisoformat(birth) if birth else None, child.get("age_years"), on)
    except ValueError:
        band = AgeBand.unknown
    return {"sex": child["sex"], "age_band": band.value, "special_circumstances": list(child.get("special_circumstances", ()))}


def erased_case(case: dict, on: date) -> dict:
    """A case record (routing's `case`, intake's incident.reported payload `case`) with its personal data blanked:
    no description, no reporter, each child an anonymous child; consent answers are kept (they name nobody)."""
    return {
        "description": "",
        "children": [anonymous_child(c, on) for c in case.get("children", ())],
        "reporter": None,
        "consent": case.get("consent") or {},
        "erased": True,
    }
