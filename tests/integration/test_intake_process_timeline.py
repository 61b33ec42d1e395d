"""The case process on intake's timeline (issue 17) over a real RabbitMQ: routing's incident.step_overdue and
incident.step_changed, published on the events exchange, reach intake.timeline and become the case's "Diễn biến"
entries the console names."""

from datetime import UTC, datetime, timedelta

import pytest

from services.console import vi
from shared import topology
from shared.events import IncidentStepChanged, IncidentStepOverdue
from tests.integration.test_delivery import intake, vhost  # noqa: F401 (fixtures)
from tests.support import bearer, client, eventually, incident_payload


async def publish(runtime, event, incident_id: str) -> None:
    envelope = event.envelope(correlation_id=incident_id, producer="routing")
    await runtime.broker.publish(
        envelope.model_dump_json().encode(), exchange=topology.EVENTS, routing_key=event.event_type,
        persist=True, message_id=str(envelope.event_id), user_id="guest",
    )


@pytest.mark.usefixtures("vhost")
async def test_a_late_and_then_recorded_initial_assessment_is_on_the_case_timeline(intake):  # noqa: F811
    await intake.broker.connect()
    await topology.declare(intake.broker)
    await intake.broker.start()
    async with client(intake) as http:
        incident_id = (await http.post("/v1/incidents", json=incident_payload(), headers=bearer(intake.police))).json()["incident_id"]
    received = datetime.now(UTC) - timedelta(hours=13)
    due = received + timedelta(hours=12)
    late = due + timedelta(minutes=1)
    await publish(intake, IncidentStepOverdue(
        incident_id=incident_id, commune_code="25349", step="initial_assessment", due_at=due, escalated_to=("25349.chairman",), at=late,
    ), incident_id)
    await publish(intake, IncidentStepChanged(
        incident_id=incident_id, commune_code="25349", from_step="received", to_step="initial_assessment", record_id="r-1",
        by="25349.cp_officer", at=late + timedelta(minutes=30),
    ), incident_id)

    async def timeline() -> list[dict]:
        async with client(intake) as http:
            read = (await http.get(f"/v1/incidents/{incident_id}", headers=bearer(intake.police))).json()
        entries = [e for e in read["timeline"] if e["kind"].startswith("step")]
        return entries if len(entries) == 2 else []

    overdue, changed = await eventually(timeline, what="the two process entries on intake's timeline")
    assert (overdue["kind"], overdue["principal"]) == ("step_overdue.initial_assessment", "routing")
    assert overdue["detail"] == {"step": "initial_assessment", "due_at": due.isoformat(), "to": ["25349.chairman"]}
    assert (changed["kind"], changed["principal"], changed["detail"]) == (
        "step.initial_assessment", "25349.cp_officer", {"from": "received", "record_id": "r-1"}
    )
    assert vi.TIMELINE[overdue["kind"]] == "Quá hạn đánh giá ban đầu (12 giờ) — đã báo Chủ tịch UBND xã"
    assert vi.TIMELINE[changed["kind"]] == "Đã đánh giá ban đầu"
