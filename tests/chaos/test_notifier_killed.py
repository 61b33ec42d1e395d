"""The notifier SIGKILLed in the middle of 500 notifications: a receiver that dedupes by webhook-id gets each exactly once.

Routing (and with it the notifier) is killed by the receiver itself while a batch is on the wire. The request that
triggers the kill is lost with it (neither kept nor answered): only a resend brings that notification. The rest of
the batch arrived but the dead notifier never recorded it, so it is sent again after restart. The contract is at
least once with the same webhook-id, never a second id for the same notification.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from standardwebhooks import Webhook, WebhookVerificationError

from tests.chaos.conftest import db_urls, payloads, scalar_rows, settle
from tests.harness import Receiver, post_incidents
from tests.support import eventually

N = 500
KILL_AT = 200  # the receiver kills routing when this request arrives, and loses the request
UNIT = "25349.cp_officer"  # assigned in every incident of the commune (rules.yaml: always), so one notification each
NOTIFY = {
    "BAOVE_NOTIFY_ALLOW_PRIVATE": "true",  # the receiver listens on 127.0.0.1
    "BAOVE_NOTIFY_INTERVAL_SECONDS": "0.2",
    # A delivery leased by the killed notifier is sent again after timeout + 30 s.
    "BAOVE_NOTIFY_TIMEOUT_SECONDS": "5",
}


class Deduping:
    """What a receiver keeping one row per webhook-id makes of the requests: every signature checked first."""

    def __init__(self, secret: str, requests: list[tuple[dict[str, str], bytes]]) -> None:
        self.by_id: dict[str, dict] = {}
        self.forged = 0
        for headers, body in requests:
            try:
                message = Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                self.forged += 1
                continue
            assert message["notification_id"] == headers["webhook-id"]
            self.by_id.setdefault(headers["webhook-id"], message)
        self.raw = len(requests)

    def per_assignment(self) -> Counter[str]:
        """Distinct webhook-ids per assignment told of: 1 each when nothing is lost or doubled."""
        return Counter(m["assignment_id"] for m in self.by_id.values())


class TestNotifierKilled:
    async def test_killed_mid_batch_each_notification_arrives_exactly_once_after_dedupe(self, chaos_system):
        system = await asyncio.to_thread(chaos_system, NOTIFY)
        killed = asyncio.Event()

        def kill_mid_batch(number: int) -> bool:
            """The request that kills the sender is lost with it: only a resend can bring its notification."""
            if number != KILL_AT or killed.is_set():
                return True
            system.kill("routing")
            killed.set()
            return False

        async with Receiver(on_request=kill_mid_batch) as receiver:
            async with httpx.AsyncClient(base_url=system.url("routing"), timeout=10) as http:
                answer = await http.post(
                    "/v1/subscriptions",
                    json={"unit_id": UNIT, "channel": "webhook", "target": receiver.url, "events": ["assignment.created"]},
                    headers={"Authorization": f"Bearer {system.tokens[UNIT]}"},
                )
            assert answer.status_code == 201, answer.text
            secret = answer.json()["secret"]

            async def attack() -> None:
                await killed.wait()
                await asyncio.sleep(1)
                system.start("routing")
                await asyncio.to_thread(system.wait_ready, "routing")

            sent = payloads(N, "notify")
            answered, _ = await asyncio.gather(post_incidents(system, sent, concurrency=16), attack())
            accepted = {incident_id for incident_id, _, status in answered if status == 202}
            assert len(accepted) == N
            db = db_urls(system)
            outcome = await settle(system, accepted, db)
            assert (outcome.lost, outcome.duplicates) == (0, 0)
            # Every delivery settled: the ones the dead notifier had leased came back after their lease.
            await eventually(lambda: _all_delivered(db["routing"], N), timeout=180, interval=1, what="no notification pending")
            await asyncio.sleep(2)  # a stray second send would arrive now
            requests = list(receiver.requests)

        told = dict(await scalar_rows(db["routing"], f"SELECT id, incident_id FROM assignment WHERE unit_id = '{UNIT}'"))
        assert set(told.values()) == accepted  # one assignment (so one notification) per incident
        deduped = Deduping(secret, requests)
        per_assignment = deduped.per_assignment()
        lost = set(told) - set(per_assignment)
        doubled = {a for a, n in per_assignment.items() if n > 1}
        stray = set(per_assignment) - set(told)
        redelivered = deduped.raw - len(deduped.by_id)
        print(
            f"\nnotifier SIGKILL at request {KILL_AT}: {len(told)} notifications expected, {deduped.raw} requests, "
            f"{len(deduped.by_id)} distinct webhook-ids, {redelivered} redeliveries deduped, "
            f"lost {len(lost)}, doubled {len(doubled)}, stray {len(stray)}, forged {deduped.forged}"
        )
        assert killed.is_set()
        assert deduped.forged == 0
        assert (len(lost), len(doubled), len(stray)) == (0, 0, 0)
        assert len(deduped.by_id) == len(told) == N
        # The kill landed mid-batch: what the dead notifier had sent was sent again, with the same webhook-ids.
        assert redelivered >= 1
        for message in deduped.by_id.values():
            assert message["unit_id"] == UNIT and message["type"] == "assignment.created"
        # Thin messages: no report's description (every one reads "chaos notify N") in any body.
        assert not any(b"chaos notify" in body for _, body in requests)


async def _all_delivered(db: str, n: int) -> bool:
    [(delivered, total)] = await scalar_rows(
        db, "SELECT sum(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END), count(*) FROM notify_delivery"
    )
    return total >= n and delivered == total
