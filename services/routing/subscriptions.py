"""A unit's notification subscriptions, managed by its commune's cp_officer and admins, and their delivery log."""

from __future__ import annotations

import base64
import secrets as random_secrets
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal
from shared.errors import Forbidden, NotFound

from .models import Delivery, Subscription, Unit
from .schemas import SubscriptionCreate

# During a rotation the newest two secrets sign every message; a third rotation drops the oldest.
VALID_SECRETS = 2


def new_secret() -> str:
    return "whsec_" + base64.b64encode(random_secrets.token_bytes(32)).decode()


def may_manage(principal: Principal, commune_code: str) -> bool:
    return principal.is_admin or principal.is_cp_officer_of(commune_code)


def _check(principal: Principal, commune_code: str) -> None:
    # Outside the commune the unit does not exist for the caller; inside it only the cp_officer manages.
    if not (principal.is_admin or principal.commune_code == commune_code):
        raise NotFound("no such unit")
    if not may_manage(principal, commune_code):
        raise Forbidden(f"only {commune_code}.cp_officer and admins manage notifications")


async def create(session: AsyncSession, body: SubscriptionCreate, principal: Principal, now: datetime) -> tuple[Subscription, str | None]:
    unit = await session.get(Unit, body.unit_id)
    if unit is None or not unit.active:
        raise NotFound("no such unit")
    _check(principal, unit.commune_code)
    secret = new_secret() if body.channel == "webhook" else None
    row = Subscription(
        id=str(uuid.uuid4()),
        unit_id=unit.id,
        commune_code=unit.commune_code,
        channel=body.channel,
        target=body.target,
        events=sorted(set(body.events)),
        secrets=[secret] if secret else [],
        quiet_start=body.quiet_start,
        quiet_end=body.quiet_end,
        active=True,
        created_at=now,
        created_by=principal.label,
    )
    session.add(row)
    await session.flush()
    return row, secret


async def listed(session: AsyncSession, principal: Principal, unit_id: str | None) -> list[Subscription]:
    stmt = select(Subscription).order_by(Subscription.created_at, Subscription.id)
    if not principal.is_admin:
        if principal.commune_code is None or not may_manage(principal, principal.commune_code):
            raise Forbidden("only a commune's cp_officer and admins manage notifications")
        stmt = stmt.where(Subscription.commune_code == principal.commune_code)
    if unit_id:
        stmt = stmt.where(Subscription.unit_id == unit_id)
    return list((await session.execute(stmt)).scalars())


async def one(session: AsyncSession, principal: Principal, subscription_id: str) -> Subscription:
    row = await session.get(Subscription, subscription_id)
    if row is None:
        raise NotFound("no such subscription")
    try:
        _check(principal, row.commune_code)
    except NotFound as exc:
        raise NotFound("no such subscription") from exc
    return row


async def delete(session: AsyncSession, principal: Principal, subscription_id: str) -> None:
    """Stop the subscription: it is kept (its delivery log stays readable) but inactive, its pending deliveries dropped."""
    row = await one(session, principal, subscription_id)
    row.active = False
    row.disabled_reason = f"deleted by {principal.label}"[:200]
    for d in (await session.execute(select(Delivery).where(Delivery.subscription_id == row.id, Delivery.status == "pending"))).scalars():
        d.status = "dropped"
        d.last_error = "the subscription was deleted"


async def rotate(session: AsyncSession, principal: Principal, subscription_id: str) -> str:
    row = await one(session, principal, subscription_id)
    if row.channel != "webhook":
        raise NotFound("only a webhook has a secret")
    secret = new_secret()
    row.secrets = [*row.secrets, secret][-VALID_SECRETS:]
    return secret


async def deliveries(session: AsyncSession, principal: Principal, subscription_id: str, limit: int) -> list[Delivery]:
    row = await one(session, principal, subscription_id)
    stmt = select(Delivery).where(Delivery.subscription_id == row.id).order_by(Delivery.created_at.desc(), Delivery.id).limit(limit)
    return list((await session.execute(stmt)).scalars())
