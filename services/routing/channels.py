"""The channels a notification goes out on: a signed webhook (Standard Webhooks) and email over SMTP.

A channel takes the subscription and the stored delivery and says how the attempt went; another channel
(a Zalo ZNS or SMS gateway) is one more class with `send` and an entry in `CHANNELS`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import aiosmtplib
import httpx
from faststream.rabbit import RabbitBroker
from standardwebhooks import Webhook

from shared.enums import LABELS_VI
from shared.labels_vi import STEP_OVERDUE
from shared.settings import NotifySettings
from shared.topology import AGENCIES, declare_agency_queue

from .models import Delivery, Subscription
from .notify import LOCAL


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    # The endpoint says it is gone for good (410): the subscription is disabled, nothing more is tried.
    gone: bool = False
    error: str | None = None


class Refused(Exception):
    """The target may not be sent to (a private address, a bad URL); retried like any failure."""


class Channel(Protocol):
    async def send(self, subscription: Subscription, delivery: Delivery) -> Outcome: ...


def body_of(delivery: Delivery) -> str:
    return json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def signature(secrets: list[str], msg_id: str, at: datetime, body: str) -> str:
    """The webhook-signature header: one `v1,` signature per valid secret (two during a rotation)."""
    return " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets)


async def public_address(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to, resolved now; refused when any address is not public (SSRF) and not allowed."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Refused(f"cannot resolve the host ({type(exc).__name__})") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise Refused("the host has no address")
    if not allow_private and any(not a.is_global or a.is_multicast for a in addresses):
        raise Refused("the host resolves to a private, loopback or link-local address")
    return str(addresses[0])


class WebhookChannel:
    def __init__(self, settings: NotifySettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        # No redirects: a 3xx is a failed attempt (a redirect could lead to an address we would refuse).
        self.client = client or httpx.AsyncClient(follow_redirects=False, trust_env=False)

    async def send(self, subscription: Subscription, delivery: Delivery) -> Outcome:
        url = urlsplit(subscription.target)
        if url.scheme not in ("http", "https") or not url.hostname:
            return Outcome(False, error="not an http(s) URL")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            address = await public_address(url.hostname, port, self.settings.allow_private)
        except Refused as exc:
            return Outcome(False, error=str(exc))
        # Connect to the address checked, not to a second resolution of the name (DNS rebinding).
        netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        pinned = urlunsplit((url.scheme, netloc, url.path or "/", url.query, ""))
        body = body_of(delivery)
        now = datetime.now(UTC)
        headers = {
            "host": url.netloc.rsplit("@", 1)[-1],
            "content-type": "application/json",
            "user-agent": "baove-notify/1",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature(subscription.secrets, delivery.id, now, body),
        }
        extensions = {"sni_hostname": url.hostname} if url.scheme == "https" else {}
        try:
            response = await self.client.post(
                pinned, content=body.encode(), headers=headers, extensions=extensions, timeout=self.settings.timeout_seconds
            )
        except httpx.TimeoutException:
            return Outcome(False, error="timed out")
        except httpx.HTTPError as exc:
            return Outcome(False, error=f"connection failed ({type(exc).__name__})")
        if 200 <= response.status_code < 300:
            return Outcome(True)
        if response.status_code == 410:
            return Outcome(False, gone=True, error="HTTP 410: the endpoint is gone")
        return Outcome(False, error=f"HTTP {response.status_code}")

    async def aclose(self) -> None:
        await self.client.aclose()


class AmqpChannel:
    """Publishes the thin message to `agency.{unit_id}` (declared and bound on first use), with publisher confirms."""

    def __init__(self, broker: RabbitBroker) -> None:
        self.broker = broker
        self.declared: set[str] = set()

    async def send(self, subscription: Subscription, delivery: Delivery) -> Outcome:
        unit_id = subscription.unit_id
        try:
            if unit_id not in self.declared:
                await declare_agency_queue(self.broker, unit_id)
                self.declared.add(unit_id)
            await self.broker.publish(
                body_of(delivery).encode(),
                exchange=AGENCIES,
                routing_key=f"{unit_id}.{delivery.event_type}",
                message_id=delivery.id,
                content_type="application/json",
                persist=True,
                mandatory=True,
            )
        except Exception as exc:  # the broker away or refusing: retried like a failed webhook
            return Outcome(False, error=f"broker refused ({type(exc).__name__})")
        return Outcome(True)


SUBJECTS = {
    "assignment.created": "Việc mới",
    "assignment.overdue": "Quá hạn xác nhận",
    "incident.escalated": "Vụ việc được chuyển lên",
    "incident.closed": "Vụ việc đã đóng",
    "report.due": "Sắp đến hạn gửi báo cáo",
    "incident.step_overdue": "Quá hạn một bước của quy trình bảo vệ trẻ em",
}
DOCUMENT_STATUS_VI = {"none": "Chưa soạn", "draft": "Đang soạn", "submitted": "Đã trình ký", "approved": "Đã ký, chưa gửi"}


def email_message(sender: str, to: str, delivery: Delivery) -> EmailMessage:
    """A Vietnamese email with the thin message's facts and the console link, nothing of the child."""
    p = delivery.payload
    subject, lines = report_due_text(p) if p["type"] == "report.due" else case_text(p)
    message = EmailMessage()
    message["Subject"] = f"[Bảo vệ trẻ em] {subject}"
    message["From"] = sender
    message["To"] = to
    message["Message-ID"] = f"<{delivery.id}@baove>"
    message.set_content("\n".join(lines))
    return message


def case_text(p: dict) -> tuple[str, list[str]]:
    urgency = LABELS_VI.get(p["urgency"], p["urgency"])
    category = LABELS_VI.get(p["category"], p["category"])
    lines = [
        f"Thông báo: {SUBJECTS[p['type']]}",
        f"Đơn vị: {p['unit_id']}",
        f"Loại vụ việc: {category}",
        f"Mức độ khẩn cấp: {urgency}",
        f"Mã vụ việc: {p['incident_id']}",
    ]
    if p.get("step"):
        lines.append(f"Bước quá hạn: {STEP_OVERDUE.get(p['step'], p['step'])}")
    if p.get("due_at"):
        due = datetime.fromisoformat(p["due_at"]).astimezone(LOCAL)
        lines.append(f"{'Hạn' if p.get('step') else 'Hạn xác nhận'}: {due:%H:%M %d/%m/%Y}")
    lines += ["", f"Đăng nhập để xem và xử lý: {p['console_url']}", "", "Thư này không chứa thông tin cá nhân của trẻ em."]
    return f"{SUBJECTS[p['type']]} - {urgency} - {category}", lines


def report_due_text(p: dict) -> tuple[str, list[str]]:
    """The reminder of a plan report due: the period, the due date, the days left and the document's status."""
    due = date.fromisoformat(p["due_date"])
    lines = [
        f"Thông báo: {SUBJECTS['report.due']}",
        f"Đơn vị: {p['unit_id']}",
        f"Kỳ báo cáo: {p['period']}",
        f"Hạn gửi: {due:%d/%m/%Y} (còn {p['days_left']} ngày)",
        f"Tình trạng văn bản: {DOCUMENT_STATUS_VI.get(p['document_status'], p['document_status'])}",
        "",
        f"Đăng nhập để soạn, trình ký và gửi báo cáo: {p['console_url']}",
    ]
    return f"{SUBJECTS['report.due']} {p['period']} - hạn {due:%d/%m/%Y}", lines


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    start_tls: bool
    use_tls: bool

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        """smtp://user:password@host:587 (STARTTLS required), smtps://host:465 (TLS), smtp+plain://host:25 (no TLS)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps", "smtp+plain") or not parts.hostname:
            raise ValueError("BAOVE_SMTP_URL must be smtp://, smtps:// or smtp+plain:// with a host")
        default = {"smtp": 587, "smtps": 465, "smtp+plain": 25}[parts.scheme]
        return cls(
            host=parts.hostname,
            port=parts.port or default,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            start_tls=parts.scheme == "smtp",
            use_tls=parts.scheme == "smtps",
        )


class EmailChannel:
    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self.server = SmtpServer.parse(settings.smtp_url.get_secret_value()) if settings.smtp_url else None

    async def send(self, subscription: Subscription, delivery: Delivery) -> Outcome:
        if self.server is None:
            return Outcome(False, error="no SMTP server configured (BAOVE_SMTP_URL)")
        s = self.server
        try:
            await aiosmtplib.send(
                email_message(self.settings.mail_from, subscription.target, delivery),
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=s.password,
                start_tls=s.start_tls,
                use_tls=s.use_tls,
                timeout=self.settings.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused:
            return Outcome(False, error="the SMTP server refused the address")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome(False, error=f"SMTP failed ({type(exc).__name__})")
        return Outcome(True)
