"""Possible duplicates at intake over a real database (issue 17): the school and the hamlet report the same child."""

import json
import logging
from datetime import date

import pytest
from sqlalchemy import select

from services.intake import duplicates, service
from services.intake.models import DuplicateCandidate, Incident, outbox_message
from shared.db import utcnow
from tests.support import bearer, client, incident_payload, issue_token, make_runtime, migrate

SCHOOL = "25349.school.th-minh-tam-a"


@pytest.fixture
async def intake(tmp_path, database_url):
    runtime = make_runtime("intake", tmp_path, database_url)
    await migrate(runtime)
    runtime.tokens = {
        who: await issue_token(runtime, "unit", unit)
        for who, unit in (("school", SCHOOL), ("hamlet", "25349.hamlet.ap-2"), ("cp", "25349.cp_officer"), ("other_cp", "25339.cp_officer"))
    }
    runtime.tokens["admin"] = await issue_token(runtime, "admin", "admin")
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


def child(name, **fields):
    return {"full_name": name, "sex": "female", "birth_date": None, "age_years": None, "school": None, "special_circumstances": [], **fields}


async def report(runtime, who, *children):
    payload = incident_payload(children=list(children), occurred_at=None)
    async with client(runtime) as http:
        answer = await http.post("/v1/incidents", json=payload, headers=bearer(runtime.tokens[who]))
    assert answer.status_code == 202, answer.text
    return answer.json()["incident_id"]


async def check(runtime):
    async with runtime.unit_of_work() as uow:
        return await service.check_duplicates(uow, 80.0, utcnow())


async def events(runtime, event_type):
    async with runtime.sessionmaker() as session:
        rows = (await session.execute(select(outbox_message).where(outbox_message.c.event_type == event_type))).all()
    return [row.body for row in rows]


async def school_then_hamlet(runtime):
    """The school reports Hương with her birth date; the hamlet, days later, writes her name without tones and an age."""
    first = await report(runtime, "school", child("Nguyễn Thị Hương", birth_date="2014-06-02", school=SCHOOL))
    other_child = await report(runtime, "school", child("Trần Văn Nam", sex="male", birth_date="2012-01-09", school=SCHOOL))
    assert await check(runtime) == 2
    age = (utcnow().date() - date(2014, 6, 2)).days // 365
    second = await report(runtime, "hamlet", child("Nguyen Thi Huong", age_years=age))
    assert await check(runtime) == 1
    return first, second, other_child


class TestAtIntake:
    async def test_a_second_report_of_the_same_child_creates_a_candidate_and_the_event(self, intake):
        first, second, other_child = await school_then_hamlet(intake)
        async with client(intake) as http:
            answer = await http.get(f"/v1/incidents/{second}/duplicates", headers=bearer(intake.tokens["cp"]))
            earlier = await http.get(f"/v1/incidents/{first}/duplicates", headers=bearer(intake.tokens["cp"]))
        assert answer.status_code == 200, answer.text
        [item] = answer.json()["items"]
        assert item["incident_id"] == first and item["status"] == "open" and item["score"] >= 80
        assert [i["incident_id"] for i in earlier.json()["items"]] == [second]  # seen from either report
        [body] = await events(intake, "incident.possible_duplicate")
        assert "Huong" not in body and "Hương" not in body and "2014" not in body  # ids and the score only
        payload = json.loads(body)["payload"]
        assert payload["incident_id"] == second and payload["duplicate_of"] == first and payload["commune_code"] == "25349"
        assert other_child not in body

    async def test_a_report_is_checked_once(self, intake):
        await school_then_hamlet(intake)
        assert await check(intake) == 0
        assert len(await events(intake, "incident.possible_duplicate")) == 1

    async def test_two_reports_checked_in_one_batch_make_one_pair(self, intake):
        first = await report(intake, "school", child("Lê Thị Mai", birth_date="2015-02-03", school=SCHOOL))
        second = await report(intake, "hamlet", child("Mai Lê Thị", birth_date="2015-02-03"))
        assert await check(intake) == 2
        [body] = await events(intake, "incident.possible_duplicate")
        assert json.loads(body)["payload"]["incident_id"] == second and json.loads(body)["payload"]["duplicate_of"] == first

    async def test_a_failing_match_never_holds_an_accepted_report_and_logs_no_data(self, intake, monkeypatch, caplog):
        def broken(*_args, **_kwargs):
            raise ValueError("Nguyễn Thị Hương")

        await report(intake, "school", child("Nguyễn Thị Hương", birth_date="2014-06-02"))
        monkeypatch.setattr(duplicates, "candidates", broken)
        await report(intake, "hamlet", child("Nguyễn Thị Hương", birth_date="2014-06-02"))
        with caplog.at_level(logging.WARNING, logger="baove.intake.duplicates"):
            assert await check(intake) == 2
        assert "Hương" not in caplog.text and any(getattr(r, "error", None) == "ValueError" for r in caplog.records)
        async with intake.sessionmaker() as session:
            assert not (await session.execute(select(Incident.id).where(Incident.duplicates_pending))).all()
            assert not (await session.execute(select(DuplicateCandidate))).all()


# Eight earlier reports that may all be Phạm Thị Lan: tones, school, birth date or age, spelling and order vary.
SIMILAR = [
    ("Phạm Thị Lan", {"birth_date": "2014-06-02", "school": SCHOOL}),
    ("Pham Thi Lan", {"birth_date": "2014-06-02", "school": SCHOOL}),
    ("Phạm Thị Lan", {"birth_date": "2014-06-02"}),
    ("Pham Thi Lan", {"birth_date": "2014-06-02"}),
    ("Lan Phạm Thị", {"birth_date": "2014-06-02", "school": SCHOOL}),
    ("Phạm Thị Lanh", {"birth_date": "2014-06-02", "school": SCHOOL}),
    ("Pham Thi Lanh", {"birth_date": "2014-06-02"}),
    ("Phạm Thi Lan", {"age_years": None}),
]


class TestTheBestCandidatesOnly:
    async def many_then_one(self, runtime, limit=None):
        """The eight earlier reports (checked), then a new one: its candidates kept, and every candidate it has."""
        for name, fields in SIMILAR:
            await report(runtime, "school", child(name, **fields))
        async with runtime.unit_of_work() as uow:
            assert await service.check_duplicates(uow, 80.0, utcnow(), limit=100) == len(SIMILAR)
        new = await report(runtime, "school", child("Phạm Thị Lan", birth_date="2014-06-02", school=SCHOOL))
        async with runtime.unit_of_work() as uow:
            extra = {} if limit is None else {"limit": limit}
            assert await service.check_duplicates(uow, 80.0, utcnow(), **extra) == 1
        async with runtime.sessionmaker() as session:
            d = DuplicateCandidate
            kept = (await session.execute(select(d.other_id, d.score).where(d.incident_id == new))).all()
            rows = (await session.execute(select(Incident.id, Incident.hamlet, Incident.children, Incident.received_at))).all()
        keys = {row.id: duplicates.child_keys(row.id, row.children, row.hamlet, row.received_at) for row in rows}
        window = [k for incident_id, ks in keys.items() if incident_id != new for k in ks]
        every = duplicates.candidates(keys[new], window, 80.0, limit=100)
        return new, {(other, score) for other, score in kept}, every

    async def test_a_report_like_many_earlier_ones_keeps_the_five_best(self, intake):
        new, kept, every = await self.many_then_one(intake)
        assert len(every) > 5
        assert kept == {(c.incident_id, c.score) for c in every[:5]}
        assert min(score for _, score in kept) >= max(c.score for c in every[5:])
        assert len(await events(intake, "incident.possible_duplicate")) >= 5
        announced = [json.loads(body)["payload"] for body in await events(intake, "incident.possible_duplicate")]
        assert sorted(p["duplicate_of"] for p in announced if p["incident_id"] == new) == sorted(other for other, _ in kept)

    async def test_the_limit_is_the_setting_s(self, intake):
        new, kept, every = await self.many_then_one(intake, limit=2)
        assert kept == {(c.incident_id, c.score) for c in every[:2]}


class TestTheCpOfficerDecides:
    async def test_only_the_commune_s_cp_officer_sees_and_decides(self, intake):
        first, second, _ = await school_then_hamlet(intake)
        async with client(intake) as http:
            reporter = await http.get(f"/v1/incidents/{first}/duplicates", headers=bearer(intake.tokens["school"]))
            other_commune = await http.get(f"/v1/incidents/{first}/duplicates", headers=bearer(intake.tokens["other_cp"]))
            by_reporter = await http.post(f"/v1/incidents/{second}/duplicates/{first}/link", headers=bearer(intake.tokens["hamlet"]))
            by_other = await http.post(f"/v1/incidents/{second}/duplicates/{first}/link", headers=bearer(intake.tokens["other_cp"]))
            by_admin = await http.post(f"/v1/incidents/{second}/duplicates/{first}/link", headers=bearer(intake.tokens["admin"]))
        assert reporter.status_code == 403 and other_commune.status_code == 404
        assert by_reporter.status_code == 404 and by_other.status_code == 404 and by_admin.status_code == 403
        assert await events(intake, "incident.linked") == []

    async def test_a_link_is_recorded_and_announced_once_and_never_merges(self, intake):
        first, second, _ = await school_then_hamlet(intake)
        cp = bearer(intake.tokens["cp"])
        async with client(intake) as http:
            linked = await http.post(f"/v1/incidents/{first}/duplicates/{second}/link", headers=cp)
            again = await http.post(f"/v1/incidents/{second}/duplicates/{first}/link", headers=cp)
            dismiss = await http.post(f"/v1/incidents/{second}/duplicates/{first}/dismiss", headers=cp)
            case = await http.get(f"/v1/incidents/{first}", headers=cp)
            still = await http.get(f"/v1/incidents/{second}", headers=cp)
        assert linked.status_code == 200 and linked.json()["status"] == "linked" and linked.json()["incident_id"] == second
        assert linked.json()["decided_by"] == "25349.cp_officer"
        assert again.status_code == 200 and dismiss.status_code == 409
        [body] = await events(intake, "incident.linked")
        assert {json.loads(body)["payload"][k] for k in ("incident_id", "linked_to")} == {first, second}
        assert ("linked", {"other_incident_id": second}) in [(e["kind"], e["detail"]) for e in case.json()["timeline"]]
        assert still.status_code == 200 and still.json()["children"][0]["full_name"] == "Nguyen Thi Huong"  # both reports stay

    async def test_a_dismissed_candidate_is_no_link(self, intake):
        first, second, _ = await school_then_hamlet(intake)
        async with client(intake) as http:
            dismissed = await http.post(f"/v1/incidents/{second}/duplicates/{first}/dismiss", headers=bearer(intake.tokens["cp"]))
            listed = await http.get(f"/v1/incidents/{second}/duplicates", headers=bearer(intake.tokens["cp"]))
        assert dismissed.json()["status"] == "dismissed" and listed.json()["items"][0]["status"] == "dismissed"
        assert await events(intake, "incident.linked") == []
