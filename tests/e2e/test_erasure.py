"""Erasing an incident: the child's name, birth date and the reporter's phone leave every database file, queue
and log of the run, and the summaries keep their numbers (issue 15, point 3).

Two incidents with distinctive data flow through the three services as processes: one is worked, closed with an
outcome naming the child, and has a dead letter in routing's dead-letter queue (reporting's never sees the case:
it binds facts only); then it is
erased with `baove erase`. The other is the control: its data must still be found where the search looks.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import aio_pika

from shared.topology import CONSUMER_QUEUES, EVENTS
from tests.e2e.support import CP_OFFICER, expected_units, inbox, post
from tests.harness import rabbitmqctl
from tests.support import eventually

ERASED = {"name": "Quaxley Erasablechild", "birth": "2014-07-19", "phone": "0977123459"}
KEPT = {"name": "Brindlemoor Keptchild", "birth": "2013-08-23", "phone": "0966555432"}
HEALTH = "25349.health"


def report(person: dict) -> dict:
    return {
        "category": "injury",
        "description": f"{person['name']} fell from the roof; mother phoned from {person['phone']}",
        "children": [{"full_name": person["name"], "sex": "male", "birth_date": person["birth"], "special_circumstances": []}],
        "reporter": {"name": "Reporter Of The Erasure Test", "phone": person["phone"], "relation": "mother", "anonymous": False},
    }


def markers(person: dict) -> dict[str, bytes]:
    return {what: value.encode() for what, value in person.items()}


def act(system, unit: str, path: str, body: dict | None = None):
    with system.http("routing", unit) as http:
        answer = http.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def work_and_close(system, incident_id: str, person: dict) -> None:
    """Every assignment done with a note naming the child, then closed with an outcome naming the child."""
    units = expected_units("injury")

    def assigned() -> dict[str, list[dict]] | None:
        held = {unit: [a for a in inbox(system, unit) if a["incident_id"] == incident_id] for unit in units}
        return held if all(held.values()) else None

    for unit, assignments in eventually(assigned, what="the assignments in every inbox", timeout=30).items():
        for a in assignments:
            base = f"/v1/agencies/{unit}/assignments/{a['assignment_id']}"
            act(system, unit, f"{base}/acknowledge")
            act(system, unit, f"{base}/status", {"status": "in_progress"})
            act(system, unit, f"{base}/status", {"status": "done", "note": f"visited {person['name']} at home"})
    outcome = {"risk_level": "low", "outcome": f"{person['name']} is safe with his grandmother"}
    assert act(system, CP_OFFICER, f"/v1/incidents/{incident_id}/close", outcome)["status"] == "closed"


def incident(system, incident_id: str, as_unit: str = CP_OFFICER) -> dict:
    with system.http("intake", as_unit) as http:
        answer = http.get(f"/v1/incidents/{incident_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def summaries(system) -> dict:
    out = {}
    for unit, who in (("25349", CP_OFFICER), ("694", "district:694")):
        with system.http("reporting", who) as http:
            answer = http.get(f"/v1/summaries/{unit}", params={"period": "2025"})
        assert answer.status_code == 200, answer.text
        summary = answer.json()
        out[unit] = {"indicators": summary["indicators"], "communes": summary.get("communes")}
    return out


def vhost_of(system) -> str:
    return system.env["BAOVE_AMQP_URL"].rsplit("/", 1)[1]


async def _queue_bodies(url: str, names: list[str]) -> dict[str, list[bytes]]:
    """Every ready message of each queue, taken unacknowledged and returned when the channel closes."""
    bodies: dict[str, list[bytes]] = {}
    connection = await aio_pika.connect(url)
    try:
        for name in names:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
                bodies[name] = []
                while (message := await queue.get(fail=False, no_ack=False)) is not None:
                    bodies[name].append(message.body)
            finally:
                await channel.close()
    finally:
        await connection.close()
    return bodies


def queue_bodies(system) -> dict[str, list[bytes]]:
    listed = rabbitmqctl("list_queues", "-p", vhost_of(system), "name", "--no-table-headers", "--quiet").stdout.split()
    assert {q.dead_letter_name for q in CONSUMER_QUEUES} <= set(listed), listed
    return asyncio.run(_queue_bodies(system.env["BAOVE_AMQP_URL"], sorted(listed)))


def files_of(system) -> dict[str, bytes]:
    """Every database file (with its -wal and -shm) and every log of the run."""
    return {p.name: p.read_bytes() for p in sorted(system.data_dir.iterdir()) if p.is_file()}


def found(person: dict, places: dict[str, bytes | list[bytes]]) -> list[tuple[str, str]]:
    hits = []
    for place, content in places.items():
        blobs = content if isinstance(content, list) else [content]
        for what, needle in markers(person).items():
            if any(needle in blob for blob in blobs):
                hits.append((place, what))
    return hits


async def _dead_letter(url: str, incident_id: str, person: dict) -> None:
    """A report that cannot be parsed (no facts), carrying the child's data: routing dead-letters it (reporting's queue
    is not bound to incident.reported)."""
    envelope = {
        "event_id": str(uuid.uuid4()), "event_type": "incident.reported", "schema_version": 1,
        "emitted_at": datetime.now(UTC).isoformat(), "correlation_id": incident_id, "producer": "intake",
        "payload": {"incident_id": incident_id, "case": report(person)},
    }
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(EVENTS.name)
        await exchange.publish(
            aio_pika.Message(json.dumps(envelope).encode(), correlation_id=incident_id, message_id=envelope["event_id"],
                             type="incident.reported", delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id="guest"),
            routing_key="incident.reported",
        )
    finally:
        await connection.close()


def dead_letter_count(system, queue: str) -> int:
    return len(asyncio.run(_queue_bodies(system.env["BAOVE_AMQP_URL"], [queue]))[queue])


class TestErasingAnIncident:
    def test_the_child_and_reporter_leave_every_file_queue_and_log_and_the_summaries_stay(self, system):
        erased_id = post(system, **report(ERASED))
        kept_id = post(system, **report(KEPT))
        work_and_close(system, erased_id, ERASED)
        eventually(lambda: incident(system, erased_id)["status"] == "closed", what="the closing in intake", timeout=30)
        asyncio.run(_dead_letter(system.env["BAOVE_AMQP_URL"], erased_id, ERASED))
        eventually(lambda: dead_letter_count(system, "routing.incidents.dlq") == 1, what="the dead letter in routing.incidents.dlq", timeout=30)
        before = eventually(
            lambda: (s := summaries(system))["25349"]["indicators"]["incidents_total"] == system.posted["25349"] and s,
            what="both incidents counted", timeout=30,
        )
        # The search finds what is there: both children are in the files and the dead letters before the erasure.
        assert {what for _, what in found(ERASED, files_of(system))} == {"name", "birth", "phone"}
        holding = {q for q, _ in found(ERASED, queue_bodies(system))}
        assert "routing.incidents.dlq" in holding and "reporting.events.dlq" not in holding, holding

        said = system.cli("erase", "--incident", erased_id, "--reason", "request ref PA-2026-17 from the guardian")
        assert "erased" in said

        gone = incident(system, erased_id)
        assert gone["status"] == "erased" and gone["description"] == "" and gone["reporter"] is None
        assert gone["children"] == [{"sex": "male", "age_band": "6-10", "special_circumstances": []}]
        assert gone["timeline"][-1]["kind"] == "erased"

        def routing_blanked() -> bool:
            mine = [a for a in inbox(system, HEALTH, status="done") if a["incident_id"] == erased_id]
            return bool(mine) and all(ERASED["name"] not in json.dumps(a) for a in mine)

        eventually(routing_blanked, what="routing's case blanked", timeout=30)

        def everywhere() -> dict:
            return {**files_of(system), **queue_bodies(system), "cli": said.encode()}

        eventually(lambda: not found(ERASED, everywhere()), what=lambda: f"the erased data gone (still in {found(ERASED, everywhere())})", timeout=30)
        # The control: the other child's data is still where it was.
        still = {place for place, _ in found(KEPT, everywhere())}
        assert {"intake.db", "routing.db"} <= {p.removesuffix("-wal") for p in still}, still
        assert incident(system, kept_id)["children"][0]["full_name"] == KEPT["name"]

        assert summaries(system) == before

        with system.http("intake", "admin") as http:
            answer = http.get("/v1/audit", params={"incident_id": erased_id, "limit": 500})
        [entry] = [e for e in answer.json()["items"] if e["action"] == "erased"]
        assert entry["principal"] == "admin" and entry["detail"].startswith("request ref PA-2026-17")


class TestTheErasureEndpoint:
    def test_only_an_admin_may_erase_and_a_second_erasure_changes_nothing(self, system):
        incident_id = post(system)
        with system.http("intake", CP_OFFICER) as http:
            refused = http.post(f"/v1/incidents/{incident_id}/erasure", json={"reason": "asked by the family"})
        assert refused.status_code == 403
        with system.http("intake", "admin") as http:
            first = http.post(f"/v1/incidents/{incident_id}/erasure", json={"reason": "asked by the family"})
            second = http.post(f"/v1/incidents/{incident_id}/erasure", json={"reason": "asked by the family"})
            missing = http.post(f"/v1/incidents/{uuid.uuid4()}/erasure", json={"reason": "asked by the family"})
        assert first.status_code == 200 and first.json()["already_erased"] is False, first.text
        assert second.status_code == 200 and second.json()["already_erased"] is True
        assert missing.status_code == 404
        assert incident(system, incident_id)["children"][0].get("full_name") is None


class TestSubjectAccess:
    def test_the_communes_cp_officer_gets_everything_held_and_who_read_it_and_the_read_is_audited(self, system):
        incident_id = post(system, **report({"name": "Subjectaccess Child", "birth": "2012-01-02", "phone": "0911000222"}))
        incident(system, incident_id, "25349.police")  # a read to be listed
        with system.http("intake", CP_OFFICER) as http:
            answer = http.get(f"/v1/incidents/{incident_id}/subject-access")
        assert answer.status_code == 200, answer.text
        export = answer.json()
        assert export["incident"]["children"][0]["full_name"] == "Subjectaccess Child"
        assert export["incident"]["reporter"]["phone"] == "0911000222"
        assert [e["principal"] for e in export["accesses"] if e["action"] == "read"][-1] == "25349.police"
        assert set(export["held_elsewhere"]) >= {"routing", "reporting"}
        for other in ("25349.police", "25348.cp_officer"):
            with system.http("intake", other) as http:
                assert http.get(f"/v1/incidents/{incident_id}/subject-access").status_code == 404
        with system.http("intake", "admin") as http:
            reads = http.get("/v1/audit", params={"incident_id": incident_id}).json()["items"]
        assert reads[0]["endpoint"] == "GET /v1/incidents/{incident_id}/subject-access" and reads[0]["principal"] == CP_OFFICER
