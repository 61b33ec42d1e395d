"""A named official on the running system: added with the CLI, signs in, reads a case, is named in the audit,
and once disabled is refused by all three services within a second."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.e2e.support import post
from tests.harness import ROOT

pytestmark = pytest.mark.e2e
PASSWORD = "sông Hồng chảy mãi về xuôi"


def test_a_person_signs_in_reads_a_case_is_audited_by_name_and_once_disabled_is_refused_everywhere_within_a_second(system):
    subprocess.run([sys.executable, "-m", "services.cli", "user", "add", "Hoa.Le", "--unit", "25349.cp_officer",
                    "--name", "Lê Thị Hoa", "--password-stdin"], input=PASSWORD + "\n", text=True, env=system.env, cwd=ROOT,
                   check=True, capture_output=True)
    with system.http("intake") as http:
        session = http.post("/v1/sessions", json={"username": "hoa.le", "password": PASSWORD}).json()
    token = {"Authorization": f"Bearer {session['token']}"}
    incident_id = post(system, category="neglect", urgency="medium")
    calls = {"intake": f"/v1/incidents/{incident_id}", "routing": "/v1/units?commune=25349", "reporting": "/v1/reports/25349"}
    for service, path in calls.items():
        with system.http(service) as http:
            assert http.get(path, headers=token).status_code == 200, service

    line = system.cli("audit", "--incident", incident_id, "--user", "hoa.le").strip()
    assert "hoa.le" in line and session["token_id"] in line and "25349.cp_officer" in line

    system.cli("user", "disable", "hoa.le")
    disabled_at = time.monotonic()
    refused: dict[str, float] = {}
    while len(refused) < len(calls) and time.monotonic() - disabled_at < 3:
        for service, path in calls.items():
            if service not in refused:
                with system.http(service) as http:
                    if http.get(path, headers=token).status_code == 401:
                        refused[service] = time.monotonic() - disabled_at
        time.sleep(0.02)
    assert set(refused) == set(calls) and max(refused.values()) < 1.0, refused
