"""Routing's notifier over a real RabbitMQ and database: an incident routed to a subscribed unit reaches its
webhook signed (Standard Webhooks), is retried with the same webhook-id until accepted, a 410 disables the
subscription, a loopback target is refused unless allowed, and no message carries the child's data."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
from contextlib import asynccontextmanager

import aio_pika
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from standardwebhooks import Webhook

from services.routing.models import Delivery, Subscription, outbox_message
from shared import topology
from shared.settings import NotifySettings
from tests.harness import Receiver
from tests.routing_support import reported, routing_runtime
from tests.support import bearer, client, delete_topology_queues, eventually, issue_token

CP_OFFICER = "25349.cp_officer"


def quick(**overrides) -> NotifySettings:
    values = {"interval_seconds": 0.05, "measure_seconds": 0.0, "retry_seconds": [0.2, 0.2, 0.2, 0.2], "jitter": 0.1, "timeout_seconds": 3.0, "allow_private": True}
    return NotifySettings(**(values | overrides))


@pytest.fixture
async def vhost(amqp_url):
    """A clean slate on the test vhost: delete every queue the topology knows."""
    return await delete_topology_queues(amqp_url)


@asynccontextmanager
async def routing(tmp_path, database_url, amqp_url, notify: NotifySettings):
    """Routing running (broker, relay, notify consumer and delivery loop) with the demo units."""
    runtime = await routing_runtime(tmp_path, database_url, amqp_url=amqp_url, notify=notify)
    runtime.run_migrations = False
    runtime.cp_officer = await issue_token(runtime, "unit", CP_OFFICER)
    try:
        async with runtime.api.router.lifespan_context(runtime.api):
            yield runtime
    finally:
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()


async def subscribe(runtime, target: str, channel: str = "webhook", events=("assignment.created",), **extra) -> dict:
    async with client(runtime) as http:
        answer = await http.post(
            "/v1/subscriptions",
            json={"unit_id": CP_OFFICER, "channel": channel, "target": target, "events": list(events), **extra},
            headers=bearer(runtime.cp_officer),
        )
    assert answer.status_code == 201, answer.text
    return answer.json()


async def delivery_log(runtime, subscription_id: str) -> list[dict]:
    async with client(runtime) as http:
        answer = await http.get(f"/v1/subscriptions/{subscription_id}/deliveries", headers=bearer(runtime.cp_officer))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def emergency(runtime):
    """An emergency reported as intake publishes it: routing consumes it, routes it, and its notifier is told."""
    event = reported(category="injury", urgency="emergency", description="Em bị đánh gãy tay ở nhà, cần cấp cứu")
    envelope = event.envelope(correlation_id=event.incident_id, producer="intake")
    await runtime.broker.publish(
        envelope.model_dump_json().encode(), exchange=topology.EVENTS, routing_key=event.event_type, content_type="application/json", user_id="guest"
    )
    return event


def personal_data(event) -> list[str]:
    child, reporter = event.case.children[0], event.case.reporter
    return [child.full_name, child.birth_date, reporter.name, reporter.phone, event.case.description, child.school]


class TestWebhooks:
    async def test_an_emergency_assignment_reaches_the_receiver_signed_and_without_the_childs_data(self, tmp_path, database_url, vhost):
        async with Receiver() as receiver, routing(tmp_path, database_url, vhost, quick()) as runtime:
            sub = await subscribe(runtime, receiver.url)
            assert sub["secret"].startswith("whsec_")
            event = await emergency(runtime)
            await eventually(receiver.received, timeout=15, what="the webhook")
            headers, body = receiver.requests[0]
            message = Webhook(sub["secret"]).verify(body, headers)
            assert message["type"] == "assignment.created"
            assert message["incident_id"] == event.incident_id
            assert message["unit_id"] == CP_OFFICER
            assert message["urgency"] == "emergency" and message["category"] == "injury"
            assert message["due_at"] and message["console_url"].endswith(f"/cases/{event.incident_id}")
            assert headers["webhook-id"] == message["notification_id"]
            text = body.decode()
            for value in personal_data(event):
                assert value not in text
            log = await eventually(
                lambda: _delivered(runtime, sub["subscription_id"]), timeout=5, what="the delivery recorded as delivered"
            )
            assert log[0]["attempts"] == 1

    async def test_a_receiver_failing_three_times_gets_it_once_more_with_the_same_webhook_id_and_no_more(
        self, tmp_path, database_url, vhost
    ):
        async with Receiver([500, 503, 502]) as receiver, routing(tmp_path, database_url, vhost, quick()) as runtime:
            sub = await subscribe(runtime, receiver.url)
            await emergency(runtime)
            log = await eventually(lambda: _delivered(runtime, sub["subscription_id"]), timeout=20, what="the delivery")
            await asyncio.sleep(1.0)  # several loop ticks and retry delays: nothing more is sent
            assert len(receiver.requests) == 4
            assert {h["webhook-id"] for h, _ in receiver.requests} == {log[0]["delivery_id"]}
            for headers, body in receiver.requests:
                Webhook(sub["secret"]).verify(body, headers)
            assert log[0]["attempts"] == 4 and log[0]["status"] == "delivered"

    async def test_a_new_delivery_is_sent_at_once_not_at_the_loops_next_tick(self, tmp_path, database_url, vhost):
        """The consumer wakes the delivery loop after its commit: with a loop ticking once a minute, the emergency still
        arrives within seconds."""
        async with Receiver() as receiver, routing(tmp_path, database_url, vhost, quick(interval_seconds=60.0)) as runtime:
            await subscribe(runtime, receiver.url)
            await asyncio.sleep(0.5)  # the loop's first tick (at start) is behind us: the next would be a minute away
            await emergency(runtime)
            await eventually(receiver.received, timeout=10, what="the webhook, woken by the commit")

    async def test_an_emergency_waiting_for_a_failing_receiver_shows_in_its_own_gauge(self, tmp_path, database_url, vhost):
        """The operator's alert on emergencies not delivered within minutes reads this gauge (deploy/prometheus/alerts.yml);
        a high-urgency notification waiting does not move it."""
        gauges = ("baove_notifications_oldest_pending_age_seconds", "baove_notifications_oldest_pending_emergency_age_seconds")

        def read(runtime) -> tuple[float, float]:
            return tuple(runtime.registry.get_sample_value(name) or 0.0 for name in gauges)

        async with Receiver([500] * 8) as receiver, routing(tmp_path, database_url, vhost, quick(retry_seconds=[0.3] * 6)) as runtime:
            sub = await subscribe(runtime, receiver.url)
            high = reported(category="injury", urgency="high")
            await runtime.broker.publish(
                high.envelope(correlation_id=high.incident_id, producer="intake").model_dump_json().encode(),
                exchange=topology.EVENTS, routing_key=high.event_type, content_type="application/json", user_id="guest",
            )

            async def high_waiting():
                oldest, oldest_emergency = read(runtime)
                return (oldest, oldest_emergency) if receiver.requests and oldest > 0 else None

            assert (await eventually(high_waiting, timeout=15, what="the high-urgency notification pending"))[1] == 0
            await emergency(runtime)

            async def emergency_waiting():
                return read(runtime)[1] > 0

            await eventually(emergency_waiting, timeout=15, what="the emergency's own gauge")

            async def both_delivered():
                log = await delivery_log(runtime, sub["subscription_id"])
                return len(log) == 2 and all(d["status"] == "delivered" for d in log) and read(runtime) == (0.0, 0.0)

            await eventually(both_delivered, timeout=30, what="both delivered and the gauges back to 0")

    async def test_a_receiver_answering_410_disables_the_subscription(self, tmp_path, database_url, vhost):
        async with Receiver([410]) as receiver, routing(tmp_path, database_url, vhost, quick()) as runtime:
            sub = await subscribe(runtime, receiver.url)
            await emergency(runtime)
            await eventually(lambda: _status(runtime, sub["subscription_id"], "dropped"), timeout=15, what="the delivery dropped")
            async with client(runtime) as http:
                listed = (await http.get("/v1/subscriptions", headers=bearer(runtime.cp_officer))).json()
            assert [(s["active"], "410" in s["disabled_reason"]) for s in listed] == [(False, True)]
            await emergency(runtime)  # a later assignment is not even tried
            await asyncio.sleep(1.0)
            assert len(receiver.requests) == 1
            async with runtime.sessionmaker() as session:
                assert (await session.scalar(select(Subscription.active))) is False
                assert len((await session.execute(select(Delivery))).all()) == 1

    async def test_a_target_resolving_to_loopback_is_refused_unless_allowed(self, tmp_path, database_url, vhost):
        async with Receiver() as receiver, routing(tmp_path, database_url, vhost, quick(allow_private=False)) as runtime:
            sub = await subscribe(runtime, receiver.url.replace("127.0.0.1", "localhost"))
            await emergency(runtime)
            log = await eventually(lambda: _attempted(runtime, sub["subscription_id"]), timeout=15, what="an attempt")
            assert "private, loopback or link-local" in log[0]["last_error"]
            assert receiver.requests == []


async def _delivered(runtime, subscription_id):
    log = await delivery_log(runtime, subscription_id)
    return log if log and log[0]["status"] == "delivered" else None


async def _status(runtime, subscription_id, status):
    log = await delivery_log(runtime, subscription_id)
    return log if log and log[0]["status"] == status else None


async def _attempted(runtime, subscription_id):
    log = await delivery_log(runtime, subscription_id)
    return log if log and log[0]["attempts"] >= 1 else None


class Mailbox:
    """A local SMTP server (aiosmtpd) keeping each message it is given."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's handler name
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    async def received(self) -> list:
        return self.messages


@pytest.fixture
def mailbox():
    box = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.url = f"smtp+plain://127.0.0.1:{port}"
    yield box
    controller.stop()


class TestEmail:
    async def test_an_emergency_assignment_arrives_as_a_vietnamese_email_without_the_childs_data(
        self, tmp_path, database_url, vhost, mailbox
    ):
        async with routing(tmp_path, database_url, vhost, quick(smtp_url=mailbox.url)) as runtime:
            await subscribe(runtime, "congan.xa@example.vn", channel="email")
            event = await emergency(runtime)
            [message] = await eventually(mailbox.received, timeout=15, what="the email")
            assert message["To"] == "congan.xa@example.vn"
            assert message["Subject"] == "[Bảo vệ trẻ em] Việc mới - Khẩn cấp - Tai nạn thương tích"
            text = message.get_content()
            assert "Mức độ khẩn cấp: Khẩn cấp" in text and f"/cases/{event.incident_id}" in text
            for value in personal_data(event):
                assert value not in text and value not in message["Subject"]


class TestDeliveryYouCanTrust:
    async def test_a_redelivered_event_sends_nothing_more(self, tmp_path, database_url, vhost):
        async with Receiver() as receiver, routing(tmp_path, database_url, vhost, quick()) as runtime:
            sub = await subscribe(runtime, receiver.url)
            event = await emergency(runtime)
            await eventually(lambda: _delivered(runtime, sub["subscription_id"]), timeout=15, what="the delivery")
            async with runtime.sessionmaker() as session:
                body = await session.scalar(
                    select(outbox_message.c.body).where(
                        outbox_message.c.event_type == "incident.routed", outbox_message.c.correlation_id == event.incident_id
                    )
                )
            for _ in range(2):  # the broker delivers the same event again
                await runtime.broker.publish(body.encode(), exchange=topology.EVENTS, routing_key="incident.routed", user_id="guest")
            await asyncio.sleep(1.5)
            assert len(receiver.requests) == 1
            assert len(await delivery_log(runtime, sub["subscription_id"])) == 1

    async def test_a_delivery_pending_when_routing_stops_is_sent_once_after_it_starts_again(self, tmp_path, database_url, vhost):
        slow = quick(retry_seconds=[4.0, 0.2, 0.2], jitter=0)
        async with Receiver([503]) as receiver:
            async with routing(tmp_path, database_url, vhost, slow) as runtime:
                sub = await subscribe(runtime, receiver.url)
                await emergency(runtime)
                await eventually(lambda: _attempted(runtime, sub["subscription_id"]), timeout=15, what="the first attempt recorded")
            # Stopped with the delivery pending (its retry not yet due); a new process takes it up.
            async with routing(tmp_path, database_url, vhost, slow) as runtime:
                runtime.cp_officer = await issue_token(runtime, "unit", CP_OFFICER)
                log = await eventually(lambda: _delivered(runtime, sub["subscription_id"]), timeout=30, what="the delivery")
                await asyncio.sleep(1.0)
            assert len(receiver.requests) == 2
            assert {h["webhook-id"] for h, _ in receiver.requests} == {log[0]["delivery_id"]}
            assert log[0]["attempts"] == 2


class TestSubscriptions:
    async def test_during_a_rotation_each_message_verifies_with_the_old_and_the_new_secret(self, tmp_path, database_url, vhost):
        async with Receiver() as receiver, routing(tmp_path, database_url, vhost, quick()) as runtime:
            sub = await subscribe(runtime, receiver.url)
            async with client(runtime) as http:
                rotated = await http.post(f"/v1/subscriptions/{sub['subscription_id']}/rotate", headers=bearer(runtime.cp_officer))
            assert rotated.status_code == 200, rotated.text
            new = rotated.json()["secret"]
            assert new.startswith("whsec_") and new != sub["secret"]
            await emergency(runtime)
            [(headers, body)] = await eventually(receiver.received, timeout=15, what="the webhook")
            assert len(headers["webhook-signature"].split(" ")) == 2
            Webhook(sub["secret"]).verify(body, headers)
            Webhook(new).verify(body, headers)

    async def test_only_the_communes_cp_officer_and_admins_manage_them(self, tmp_path, database_url):
        runtime = await routing_runtime(tmp_path, database_url)
        try:
            police = await issue_token(runtime, "unit", "25349.police")
            other_officer = await issue_token(runtime, "unit", "25350.cp_officer")
            admin = await issue_token(runtime, "admin", "admin")
            body = {"unit_id": "25349.police", "channel": "webhook", "target": "https://police.example.vn/hook", "events": ["assignment.created"]}
            async with client(runtime) as http:
                assert (await http.post("/v1/subscriptions", json=body, headers=bearer(police))).status_code == 403
                assert (await http.post("/v1/subscriptions", json=body, headers=bearer(other_officer))).status_code == 404
                created = await http.post("/v1/subscriptions", json=body, headers=bearer(admin))
                assert created.status_code == 201
                sid = created.json()["subscription_id"]
                assert (await http.get("/v1/subscriptions", headers=bearer(other_officer))).json() == []
                assert (await http.delete(f"/v1/subscriptions/{sid}", headers=bearer(other_officer))).status_code == 404
                assert (await http.delete(f"/v1/subscriptions/{sid}", headers=bearer(admin))).status_code == 204
                [row] = (await http.get("/v1/subscriptions?unit_id=25349.police", headers=bearer(admin))).json()
                assert row["active"] is False and "secret" not in row
                bad = body | {"target": "ftp://x"}
                assert (await http.post("/v1/subscriptions", json=bad, headers=bearer(admin))).status_code == 422
        finally:
            await runtime.engine.dispose()
            await runtime.auth_engine.dispose()


class TestAgencyQueue:
    async def test_an_emergency_assignment_reaches_the_units_own_queue_thin(self, tmp_path, database_url, vhost):
        connection = await aio_pika.connect(vhost)
        await (await connection.channel()).queue_delete(f"agency.{CP_OFFICER}")  # a clean slate
        await connection.close()
        async with routing(tmp_path, database_url, vhost, quick()) as runtime:
            await subscribe(runtime, f"agency.{CP_OFFICER}", channel="amqp")
            event = await emergency(runtime)
            connection = await aio_pika.connect(vhost)
            try:
                message = await eventually(
                    lambda: _first_message(connection, f"agency.{CP_OFFICER}"), timeout=15, what="a message on the agency queue"
                )
            finally:
                await connection.close()
            body = json.loads(message.body)
            assert body["type"] == "assignment.created" and body["incident_id"] == event.incident_id
            assert message.message_id == body["notification_id"]
            for value in personal_data(event):
                assert value not in message.body.decode()


async def _first_message(connection, name):
    channel = await connection.channel()
    try:
        message = await (await channel.declare_queue(name, passive=True)).get(fail=False)
    except aio_pika.exceptions.ChannelClosed:  # not declared yet
        return None
    if message is not None:
        await message.ack()
    await channel.close()
    return message


def report_due(commune: str = "25349", days_left: int = 7):
    """report.due as reporting's outbox publishes it (ids, dates and the document's status only)."""
    from shared.events import ReportDue

    event = ReportDue(org_unit=commune, period="2025-6M", due="2025-05-10", days_before=days_left, days_left=days_left, status="draft")
    return event.envelope(correlation_id=f"report:{commune}:2025-6M", producer="reporting")


class TestReportDue:
    async def test_the_cp_officer_and_the_chairman_subscribed_to_it_are_told_and_a_subscription_without_it_is_not(
        self, tmp_path, database_url, vhost
    ):
        async with Receiver() as wanted, Receiver() as other, routing(tmp_path, database_url, vhost, quick()) as runtime:
            officer = await subscribe(runtime, wanted.url, events=("report.due",))
            chairman = await subscribe(runtime, wanted.url, events=("report.due", "incident.escalated"), unit_id="25349.chairman")
            without = await subscribe(runtime, other.url, events=("assignment.created", "incident.closed"))
            elsewhere = report_due("25348")  # another commune's reminder: none of these units
            envelope = report_due()
            for e in (elsewhere, envelope):
                await runtime.broker.publish(
                    e.model_dump_json().encode(), exchange=topology.EVENTS, routing_key="report.due",
                    content_type="application/json", message_id=str(e.event_id), user_id="guest",
                )
            await eventually(lambda: _delivered(runtime, officer["subscription_id"]), timeout=15, what="the officer's delivery")
            await eventually(lambda: _delivered(runtime, chairman["subscription_id"]), timeout=15, what="the chairman's delivery")
            messages = {}
            for headers, body in wanted.requests:
                secret = officer["secret"] if b"cp_officer" in body else chairman["secret"]
                message = Webhook(secret).verify(body, headers)
                messages[message["unit_id"]] = message
            assert sorted(messages) == ["25349.chairman", CP_OFFICER] and len(wanted.requests) == 2
            message = messages[CP_OFFICER]
            assert message["type"] == "report.due" and message["commune_code"] == "25349"
            assert (message["period"], message["due_date"], message["days_left"], message["document_status"]) == ("2025-6M", "2025-05-10", 7, "draft")
            assert message["incident_id"] is None and message["assignment_id"] is None
            assert message["console_url"].endswith("/reports/25349/document?period=2025-6M")
            async with runtime.sessionmaker() as session:
                rows = list((await session.execute(select(Delivery.subscription_id, Delivery.event_id))).all())
            assert sorted(s for s, _ in rows) == sorted([officer["subscription_id"], chairman["subscription_id"]])
            assert {e for _, e in rows} == {str(envelope.event_id)}, "only 25349's reminder, only to the subscriptions that chose it"
            assert other.requests == [] and await delivery_log(runtime, without["subscription_id"]) == []

    async def test_the_subscriptions_api_accepts_report_due(self, tmp_path, database_url):
        runtime = await routing_runtime(tmp_path, database_url)
        try:
            token = await issue_token(runtime, "unit", CP_OFFICER)
            async with client(runtime) as http:
                body = {"unit_id": CP_OFFICER, "channel": "email", "target": "vhxh@minhtam.gov.vn", "events": ["report.due"]}
                answer = await http.post("/v1/subscriptions", json=body, headers=bearer(token))
                assert answer.status_code == 201, answer.text
                assert answer.json()["events"] == ["report.due"]
                # The chairman told of a missed step of the case process (the notifier binds incident.step_overdue).
                step = {**body, "unit_id": "25349.chairman", "target": "ct@minhtam.gov.vn", "events": ["incident.step_overdue"]}
                answer = await http.post("/v1/subscriptions", json=step, headers=bearer(token))
                assert answer.status_code == 201 and answer.json()["events"] == ["incident.step_overdue"], answer.text
                wrong = await http.post("/v1/subscriptions", json={**body, "events": ["report.overdue"]}, headers=bearer(token))
                assert wrong.status_code == 422
        finally:
            await runtime.engine.dispose()
            await runtime.auth_engine.dispose()


def test_a_report_due_email_is_in_vietnamese_with_the_period_and_due_date():
    from services.routing.channels import email_message

    payload = {
        "type": "report.due", "notification_id": "d1", "incident_id": None, "assignment_id": None, "unit_id": "25349.chairman",
        "commune_code": "25349", "category": None, "urgency": "low", "due_at": None, "occurred_at": "2025-05-02T17:00:00Z",
        "console_url": "http://console/reports/25349/document?period=2025-6M", "period": "2025-6M", "due_date": "2025-05-10",
        "days_left": 7, "document_status": "none",
    }
    message = email_message("baove@localhost", "ct@minhtam.gov.vn", Delivery(id="d1", payload=payload))
    assert message["Subject"] == "[Bảo vệ trẻ em] Sắp đến hạn gửi báo cáo 2025-6M - hạn 10/05/2025"
    text = message.get_content()
    assert "Hạn gửi: 10/05/2025 (còn 7 ngày)" in text and "Chưa soạn" in text and payload["console_url"] in text


def test_a_missed_step_email_names_the_step_and_its_deadline():
    from services.routing.channels import email_message

    payload = {
        "type": "incident.step_overdue", "notification_id": "d2", "incident_id": "i-1", "assignment_id": None,
        "unit_id": "25349.chairman", "commune_code": "25349", "category": "violence", "urgency": "emergency",
        "due_at": "2026-03-09T17:00:00Z", "occurred_at": "2026-03-09T17:00:05Z", "console_url": "http://console/cases/i-1",
        "step": "plan",
    }
    message = email_message("baove@localhost", "chutich@minhtam.gov.vn", Delivery(id="d2", payload=payload))
    assert message["Subject"].startswith("[Bảo vệ trẻ em] Quá hạn một bước của quy trình bảo vệ trẻ em")
    text = message.get_content()
    assert "Quá hạn lập kế hoạch hỗ trợ, can thiệp (Mẫu 04" in text and "Hạn: 00:00 10/03/2026" in text
