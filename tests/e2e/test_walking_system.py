"""An incident of every category, posted to intake, reaches exactly the inboxes the routing table names."""

from __future__ import annotations

import time

from shared.enums import Category
from tests.e2e.support import COMMUNE, HAMLET, expected_units, inbox, post
from tests.support import eventually


class TestEveryCategoryReachesItsInboxes:
    def test_each_incident_lands_in_exactly_the_named_inboxes_within_two_seconds(self, system):
        posted: dict[str, str] = {}
        latencies = []
        for category in Category:
            incident_id = post(system, category=category.value, urgency="high", hamlet=HAMLET)
            posted[category.value] = incident_id
            lead = next(u for u, role in expected_units(category.value).items() if role == "lead")
            start = time.monotonic()
            eventually(
                lambda: any(a["incident_id"] == incident_id for a in inbox(system, lead)),
                timeout=2.0, interval=0.02, what=f"{category} in {lead}'s inbox",
            )
            latencies.append(time.monotonic() - start)

        time.sleep(0.5)  # let any stray assignment arrive before we look for it
        units = [u for u in system.tokens if "." in u and not u.startswith("district")]
        seen: dict[str, dict[str, str]] = {incident_id: {} for incident_id in posted.values()}
        for unit in units:
            for item in inbox(system, unit):
                if item["incident_id"] in seen:
                    assert unit not in seen[item["incident_id"]], f"{unit} got {item['incident_id']} twice"
                    seen[item["incident_id"]][unit] = item["role"]
        for category, incident_id in posted.items():
            assert seen[incident_id] == expected_units(category), category
        assert max(latencies) < 2.0

    def test_an_emergency_also_reaches_the_chairman(self, system):
        incident_id = post(system, category="injury", urgency="emergency", hamlet=None)
        [assignment] = eventually(
            lambda: [a for a in inbox(system, f"{COMMUNE}.chairman") if a["incident_id"] == incident_id],
            timeout=2.0, interval=0.02, what="the emergency in the chairman's inbox",
        )
        assert assignment["role"] == "support" and assignment["status"] == "pending"

    def test_a_missing_school_falls_back_to_the_cp_officer_with_the_reason(self, system):
        children = [{"sex": "male", "age_years": 12}]
        incident_id = post(system, category="school_violence", urgency="medium", children=children)
        [assignment] = eventually(
            lambda: [a for a in inbox(system, f"{COMMUNE}.cp_officer") if a["incident_id"] == incident_id],
            timeout=2.0, interval=0.02, what="the school case in the cp_officer's inbox",
        )
        assert assignment["role"] == "lead" and "school" in assignment["reason"].lower()


class TestSummariesCountIt:
    def test_the_commune_and_the_district_summaries_count_the_incidents(self, system):
        for category in ("drowning", "injury"):
            post(system, category=category)
        post(system, "25348", hamlet="25348.hamlet.ap-1", children=[{"sex": "male", "age_years": 4}])

        def summaries():
            with system.http("reporting", f"{COMMUNE}.cp_officer") as http:
                commune = http.get(f"/v1/summaries/{COMMUNE}", params={"period": "2025"})
            with system.http("reporting", "district:694") as http:
                district = http.get("/v1/summaries/694", params={"period": "2025"})
            assert commune.status_code == 200, commune.text
            assert district.status_code == 200, district.text
            return commune.json(), district.json()

        # Every incident of this module happened on 2 March 2025 (the payload's default), in 2025.
        def counted():
            commune, district = summaries()
            rows = {row["code"]: row for row in district["communes"]}
            counts = {code: rows[code]["indicators"]["incidents_total"] for code in rows}
            done = commune["indicators"]["incidents_total"] == system.posted[COMMUNE] and counts["25348"] == system.posted["25348"]
            return (commune, district, counts) if done else None

        commune, district, counts = eventually(counted, interval=0.1, what=f"every posted incident counted ({dict(system.posted)})")
        assert counts == {"25339": 0, "25348": 1, "25349": system.posted[COMMUNE]}
        assert district["indicators"]["incidents_total"] == system.posted[COMMUNE] + 1
        assert district["indicators"]["by_age_band"]["0-5"] >= 1
        assert commune["indicators"]["by_category"]["drowning"] >= 1 and commune["indicators"]["by_category"]["injury"] >= 1
