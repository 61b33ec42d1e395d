"""What the operator sees: metrics that promtool accepts, JSON logs with the incident as correlation id, no personal data."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import eventually, incident_payload

ROOT = Path(__file__).resolve().parents[2]
CHILD = "Hoàng Thị Mẫu Vật"
REPORTER_PHONE = "0987654321"


def promtool() -> str:
    found = shutil.which("promtool") or str(ROOT / ".venv/deploy-tools/bin/promtool")
    if not os.path.exists(found):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("promtool is missing: scripts/validate-deploy installs it")
        pytest.skip("promtool is missing: run scripts/validate-deploy once")
    return found


@pytest.fixture(scope="module")
def incident(system):
    body = incident_payload(description=f"{CHILD} bị đánh, gọi {REPORTER_PHONE}")
    body["children"][0]["full_name"] = CHILD
    body["reporter"]["phone"] = REPORTER_PHONE
    with system.http("intake", "25349.police") as http:
        answer = http.post("/v1/incidents", json=body)
    assert answer.status_code == 202
    incident_id = answer.json()["incident_id"]

    def followed() -> bool:
        """Routing has routed it, intake's timeline says so and reporting has counted it: every log has its lines."""
        with system.http("routing", "25349.cp_officer") as http:
            inbox = http.get("/v1/agencies/25349.cp_officer/assignments", params={"limit": 500}).json()["items"]
        if not any(item["incident_id"] == incident_id for item in inbox):
            return False
        with system.http("intake", "25349.cp_officer") as http:
            timeline = http.get(f"/v1/incidents/{incident_id}").json()["timeline"]
        with system.http("reporting", "25349.cp_officer") as http:
            counted = http.get("/v1/summaries/25349", params={"period": "2025"}).json()["indicators"]["incidents_total"]
        return any(entry["kind"] == "routed" for entry in timeline) and counted >= 1

    eventually(followed, what="the incident routed, on intake's timeline and counted by reporting")
    return incident_id


class TestMetrics:
    @pytest.mark.parametrize("service", ["intake", "routing", "reporting"])
    def test_promtool_accepts_each_services_metrics(self, system, incident, service):
        with system.http(service) as http:
            text = http.get("/metrics").text
        checked = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "faststream_received_messages_total" in text or service == "intake"
        assert "baove_http_requests_total" in text and "baove_outbox_backlog" in text

    @pytest.mark.parametrize(
        ("service", "template"),
        [("intake", "/v1/incidents/{incident_id}"), ("routing", "/v1/agencies/{unit_id}/assignments"), ("reporting", "/v1/summaries/{org_unit}")],
    )
    def test_each_v1_request_is_counted_under_its_route_template(self, system, incident, service, template):
        with system.http(service) as http:
            text = http.get("/metrics").text
        routes = set(re.findall(r'baove_http_requests_total\{method="\w+",route="([^"]*)"', text))
        assert template in routes and 'route="other"' not in text, routes

    def test_intake_counts_incidents_by_codes_only(self, system, incident):
        with system.http("intake") as http:
            text = http.get("/metrics").text
        assert 'baove_incidents_reported_total{category="violence",channel="hotline_111",urgency="high"}' in text

    @pytest.mark.parametrize("service", ["intake", "routing", "reporting"])
    def test_no_personal_data_and_no_ids_in_metrics(self, system, incident, service):
        with system.http(service) as http:
            text = http.get("/metrics").text
        assert CHILD not in text and REPORTER_PHONE not in text and incident not in text


class TestLogs:
    @pytest.mark.parametrize("service", ["intake", "routing", "reporting"])
    def test_logs_are_json_lines_without_personal_data(self, system, incident, service):
        lines = [line for line in system.log(service).splitlines() if line.strip()]
        assert lines
        for line in lines:
            entry = json.loads(line)
            assert {"ts", "level", "service", "msg"} <= entry.keys()
        log = system.log(service)
        assert CHILD not in log and REPORTER_PHONE not in log and "bị đánh" not in log

    def test_the_incident_id_correlates_the_services_logs(self, system, incident):
        routing = [json.loads(line) for line in system.log("routing").splitlines() if line.strip()]
        assert any(entry.get("correlation_id") == incident for entry in routing)
