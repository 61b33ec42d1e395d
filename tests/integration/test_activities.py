"""Activities under the commune's plan: recorded, corrected and withdrawn over HTTP on a real database, their events
through intake's outbox on a real RabbitMQ into reporting's summary."""

import json

import aio_pika
import pytest
from sqlalchemy import func, select

from services.intake.models import outbox_message
from services.reporting.models import inbox_message as reporting_inbox
from shared import topology
from tests.support import bearer, client, eventually, issue_token, make_runtime, migrate


def activity(**overrides):
    body = {
        "unit_id": "25349.police",
        "task_id": "IV.7",
        "kind": "communication",
        "held_on": "2025-03-02",
        "counts": {"sessions": 2, "participants_total": 80, "participants_male": 30, "participants_female": 50,
                   "participants_under_16": 60, "participants_adult": 20},
        "note": "Tuyên truyền phòng chống xâm hại tại Ấp 2",
    }
    body.update(overrides)
    return body


async def tokens(runtime) -> dict[str, str]:
    return {
        "police": await issue_token(runtime, "unit", "25349.police"),
        "police_colleague": await issue_token(runtime, "unit", "25349.police", label="another member"),
        "cp": await issue_token(runtime, "unit", "25349.cp_officer"),
        "school": await issue_token(runtime, "unit", "25349.school.th-minh-tam-a"),
        "other_cp": await issue_token(runtime, "unit", "25339.cp_officer"),
    }


@pytest.fixture
async def intake(tmp_path, database_url):
    runtime = make_runtime("intake", tmp_path, database_url)
    await migrate(runtime)
    runtime.tokens = await tokens(runtime)
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def events(runtime) -> list[dict]:
    async with runtime.sessionmaker() as session:
        rows = (await session.execute(select(outbox_message).order_by(outbox_message.c.id))).all()
    return [json.loads(r.body) for r in rows if r.event_type.startswith("activity.")]


class TestRecordingAnActivity:
    async def test_it_is_stored_and_published_without_its_note(self, intake):
        async with client(intake) as http:
            answer = await http.post("/v1/activities", json=activity(), headers=bearer(intake.tokens["police"]))
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body["status"] == "recorded" and body["revision"] == 1 and body["yours"] and body["plan_version"] == "2025.1"
        [event] = await events(intake)
        assert event["event_type"] == "activity.recorded" and event["correlation_id"] == body["activity_id"]
        assert event["payload"]["counts"]["participants_female"] == 50 and event["payload"]["task_id"] == "IV.7"
        assert "Ấp 2" not in json.dumps(event, ensure_ascii=False)

    async def test_the_cp_officer_records_for_a_unit_of_the_commune(self, intake):
        body = activity(unit_id="25349.school.th-minh-tam-a", task_id="IV.5", kind="inspection",
                        counts={"sessions": 1, "sites_inspected": 2}, note=None)
        async with client(intake) as http:
            answer = await http.post("/v1/activities", json=body, headers=bearer(intake.tokens["cp"]))
        assert answer.status_code == 201, answer.text
        assert answer.json()["recorded_by"] == "25349.cp_officer"

    @pytest.mark.parametrize(
        ("who", "body", "status", "says"),
        [
            ("police", activity(unit_id="25349.radio"), 403, "its own unit"),
            ("other_cp", activity(), 403, "its own unit"),
            ("police", activity(task_id="IV.4"), 422, "not a police unit"),
            ("police", activity(kind="media"), 422, "implies the activity kinds"),
            ("police", activity(counts={"sessions": 1, "participants_total": 5, "participants_male": 6}), 422, "exceed participants_total"),
            ("police", activity(counts={"sessions": -1}), 422, "greater than or equal to 0"),
            ("police", activity(note="gọi chị Lan 0912 345 678"), 422, "no personal data"),
            ("police", activity(held_on="2024-06-01"), 422, "no children's-work plan for 2024"),
            ("police", activity(held_on="2999-01-01"), 422, "in the future"),
        ],
    )
    async def test_what_the_plan_does_not_allow_is_refused_naming_why(self, intake, who, body, status, says):
        async with client(intake) as http:
            answer = await http.post("/v1/activities", json=body, headers=bearer(intake.tokens[who]))
        assert answer.status_code == status and says in answer.text, answer.text
        assert await events(intake) == []


class TestCorrectingAndWithdrawing:
    async def test_the_author_corrects_then_withdraws_and_each_change_is_published(self, intake):
        police = bearer(intake.tokens["police"])
        async with client(intake) as http:
            activity_id = (await http.post("/v1/activities", json=activity(), headers=police)).json()["activity_id"]
            change = {k: v for k, v in activity(counts={"sessions": 3}).items() if k != "unit_id"}
            corrected = await http.put(f"/v1/activities/{activity_id}", json=change, headers=police)
            withdrawn = await http.delete(f"/v1/activities/{activity_id}", headers=police)
            again = await http.delete(f"/v1/activities/{activity_id}", headers=police)
            late = await http.put(f"/v1/activities/{activity_id}", json={k: v for k, v in activity().items() if k != "unit_id"}, headers=police)
        assert corrected.status_code == 200 and corrected.json()["revision"] == 2 and corrected.json()["counts"]["sessions"] == 3
        assert withdrawn.json()["status"] == "withdrawn" and withdrawn.json()["revision"] == 3
        assert again.status_code == 200 and again.json()["revision"] == 3  # a repeat changes nothing
        assert late.status_code == 409
        assert [(e["event_type"], e["payload"]["revision"]) for e in await events(intake)] == [
            ("activity.recorded", 1), ("activity.corrected", 2), ("activity.withdrawn", 3),
        ]

    async def test_only_the_author_may_change_it(self, intake):
        async with client(intake) as http:
            activity_id = (await http.post("/v1/activities", json=activity(), headers=bearer(intake.tokens["police"]))).json()["activity_id"]
            change = {k: v for k, v in activity().items() if k != "unit_id"}
            colleague = await http.put(f"/v1/activities/{activity_id}", json=change, headers=bearer(intake.tokens["police_colleague"]))
            officer = await http.delete(f"/v1/activities/{activity_id}", headers=bearer(intake.tokens["cp"]))
            stranger = await http.delete(f"/v1/activities/{activity_id}", headers=bearer(intake.tokens["other_cp"]))
            school = await http.get(f"/v1/activities/{activity_id}", headers=bearer(intake.tokens["school"]))
        assert colleague.status_code == 403 and officer.status_code == 403
        assert stranger.status_code == 404 and school.status_code == 404
        assert len(await events(intake)) == 1


class TestListing:
    async def test_a_unit_sees_its_own_and_the_cp_officer_every_units(self, intake):
        async with client(intake) as http:
            await http.post("/v1/activities", json=activity(), headers=bearer(intake.tokens["police"]))
            school = activity(unit_id="25349.school.th-minh-tam-a", task_id="IV.5", kind="summer_activity", held_on="2025-04-01",
                              counts={"sessions": 1, "participants_total": 40})
            await http.post("/v1/activities", json=school, headers=bearer(intake.tokens["school"]))
            as_police = (await http.get("/v1/activities?commune=25349", headers=bearer(intake.tokens["police"]))).json()
            as_cp = (await http.get("/v1/activities?commune=25349&limit=1", headers=bearer(intake.tokens["cp"]))).json()
            page2 = (await http.get(f"/v1/activities?commune=25349&cursor={as_cp['next_cursor']}", headers=bearer(intake.tokens["cp"]))).json()
            other = await http.get("/v1/activities?commune=25349", headers=bearer(intake.tokens["other_cp"]))
        assert [a["unit_id"] for a in as_police["items"]] == ["25349.police"]
        assert [a["unit_id"] for a in as_cp["items"] + page2["items"]] == ["25349.school.th-minh-tam-a", "25349.police"]
        assert not as_cp["items"][0]["yours"] and page2["next_cursor"] is None
        assert other.status_code == 404


# -- through RabbitMQ into reporting ----------------------------------------------------------------


@pytest.fixture
async def system(tmp_path, amqp_url):
    intake = make_runtime("intake", tmp_path, amqp_url=amqp_url)
    reporting = make_runtime("reporting", tmp_path, amqp_url=amqp_url)
    await migrate(intake)
    await migrate(reporting)
    intake.tokens = await tokens(intake)
    await intake.broker.connect()
    await topology.declare(intake.broker)
    intake.relay.start()
    await reporting.broker.start()
    yield intake, reporting
    await intake.relay.stop()
    for runtime in (intake, reporting):
        await runtime.broker.stop()
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()


async def folded(reporting) -> int:
    async with reporting.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(reporting_inbox))).scalar_one()


class TestReportingCountsActivities:
    async def test_corrections_replace_withdrawals_remove_and_redelivery_changes_nothing(self, system, amqp_url):
        intake, reporting = system
        police, cp = bearer(intake.tokens["police"]), bearer(intake.tokens["cp"])
        change = {k: v for k, v in activity().items() if k != "unit_id"}
        async with client(intake) as http:
            first = (await http.post("/v1/activities", json=activity(), headers=police)).json()["activity_id"]
            await http.put(f"/v1/activities/{first}", json={**change, "counts": {**change["counts"], "sessions": 3}}, headers=police)
            gone = (await http.post("/v1/activities", json=activity(held_on="2025-04-02"), headers=police)).json()["activity_id"]
            await http.delete(f"/v1/activities/{gone}", headers=police)
            school = activity(unit_id="25349.school.th-minh-tam-a", task_id="IV.5", kind="inspection", note=None,
                              counts={"sessions": 1, "sites_inspected": 4, "violations_found": 1})
            assert (await http.post("/v1/activities", json=school, headers=cp)).status_code == 201
            outside = activity(held_on="2025-06-15")  # after the 6-month report's window (to 30 April)
            assert (await http.post("/v1/activities", json=outside, headers=police)).status_code == 201
        await eventually(lambda: _at_least(folded, reporting, 6), timeout=15, what="6 activity events folded by reporting")

        async def summary() -> dict:
            async with client(reporting) as http:
                answer = await http.get("/v1/summaries/25349?period=2025-6M", headers=cp)
            assert answer.status_code == 200, answer.text
            return answer.json()["activities"]

        before = await summary()
        assert [(r["unit_id"], r["task"], r["kind"], r["activities"]) for r in before["rows"]] == [
            ("25349.school.th-minh-tam-a", "IV.5", "inspection", 1),
            ("25349.police", "IV.7", "communication", 1),
        ]
        police_row = before["rows"][1]
        assert police_row["sessions"] == 3 and police_row["participants_total"] == 80  # the correction, not the first revision
        assert police_row["participants_female"] == 50 and police_row["participants_under_16"] == 60
        assert before["totals"]["activities"] == 2 and before["totals"]["sites_inspected"] == 4

        # Every event again (same event ids), and the first revision once more as if a late retry: nothing changes.
        async with intake.sessionmaker() as session:
            bodies = [r.body for r in (await session.execute(select(outbox_message).order_by(outbox_message.c.id))).all()]
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.EVENTS.name)
        for body in bodies:
            envelope = json.loads(body)
            await exchange.publish(
                aio_pika.Message(body.encode(), message_id=envelope["event_id"], delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=envelope["event_type"],
            )
        stale = json.loads(bodies[0])
        stale["event_id"] = "00000000-0000-4000-8000-000000000001"
        await exchange.publish(aio_pika.Message(json.dumps(stale).encode(), message_id=stale["event_id"]), routing_key="activity.recorded")
        await connection.close()
        await eventually(lambda: _at_least(folded, reporting, 7), timeout=15, what="the stale revision folded")
        assert await summary() == before


async def _at_least(count, runtime, n) -> bool:
    return await count(runtime) >= n
