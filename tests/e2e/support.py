"""What the end-to-end tests share: the routing table written out by hand, and posting and reading over HTTP."""

from __future__ import annotations

from typing import Any

from tests.support import incident_payload

COMMUNE = "25349"
SCHOOL = "25349.school.th-minh-tam-a"
HAMLET = "25349.hamlet.ap-2"
CP_OFFICER = "25349.cp_officer"
CHAIRMAN = "25349.chairman"

# domain.md section 4, written out by hand for an incident of urgency "high" with a known hamlet and school.
EXPECTED_HIGH = {
    "sexual_abuse": {"police": "lead", "health": "support", SCHOOL: "support"},
    "violence": {"cp_officer": "lead", "police": "support", "health": "support", "womens_union": "support"},
    "school_violence": {SCHOOL: "lead", "police": "support"},
    "exploitation": {"police": "lead", "womens_union": "support"},
    "trafficking": {"police": "lead", "chairman": "support"},
    "abandonment": {"cp_officer": "lead", "justice": "support", "health": "support", "police": "support"},
    "neglect": {"cp_officer": "lead", "womens_union": "support"},
    "online_abuse": {"police": "lead", "radio": "support"},
    "injury": {"health": "lead"},
    "drowning": {"health": "lead", "police": "support"},
    "malnutrition": {"health": "lead"},
    "conflict_with_law": {"police": "lead", "justice": "support", "youth_union": "support"},
    "child_marriage": {"justice": "lead", "womens_union": "support"},
    "unsafe_environment": {"culture_info": "lead"},
    "special_circumstance": {"cp_officer": "lead", "justice": "support"},
    "other": {"cp_officer": "lead"},
}


def expected_units(category: str) -> dict[str, str]:
    """Unit id -> role: the category's own units plus the focal point and the hamlet as support."""
    table = {(u if "." in u else f"{COMMUNE}.{u}"): role for u, role in EXPECTED_HIGH[category].items()}
    table.setdefault(f"{COMMUNE}.cp_officer", "support")
    table.setdefault(HAMLET, "support")
    return table


def inbox(system, unit_id: str, **params: Any) -> list[dict]:
    with system.http("routing", unit_id) as http:
        answer = http.get(f"/v1/agencies/{unit_id}/assignments", params={"limit": 500, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def post(system, commune: str = COMMUNE, **overrides) -> str:
    with system.http("intake", f"{commune}.police") as http:
        answer = http.post("/v1/incidents", json=incident_payload(commune_code=commune, **overrides))
    assert answer.status_code == 202, answer.text
    system.posted[commune] += 1
    return answer.json()["incident_id"]
