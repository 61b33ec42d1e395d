"""Factories for routing's tests: reported incidents as intake would publish them, and a routing runtime."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.routing.consumers import incident_work
from services.routing.registry import load_units_into
from shared.enums import AgeBand
from shared.events import ChildCase, ChildFacts, IncidentCase, IncidentFacts, IncidentReported, Reporter
from shared.reference import load_demo_units
from tests.support import make_runtime, migrate

SCHOOL = "25349.school.th-minh-tam-a"
HAMLET = "25349.hamlet.ap-2"
_seq = itertools.count(1)


def reported(
    *,
    incident_id: str | None = None,
    category: str = "sexual_abuse",
    urgency: str = "high",
    commune_code: str = "25349",
    hamlet: str | None = HAMLET,
    school: str | None = SCHOOL,
    received_at: datetime | None = None,
    anonymous: bool = False,
    **case: Any,
) -> IncidentReported:
    """An incident.reported payload with one child."""
    n = next(_seq)
    received_at = received_at or datetime.now(UTC)
    return IncidentReported(
        incident_id=incident_id or str(uuid.uuid4()),
        reported_by=f"{commune_code}.police",
        facts=IncidentFacts(
            commune_code=commune_code,
            hamlet=hamlet,
            category=category,
            urgency=urgency,
            channel="hotline_111",
            occurred_at=received_at - timedelta(hours=2),
            received_at=received_at,
            children=(ChildFacts(sex="female", age_band=AgeBand.a11_15),),
        ),
        case=IncidentCase(
            description=case.get("description", f"A child was hurt, report {n}"),
            children=(ChildCase(full_name=f"Nguyễn Thị Test{n}", sex="female", birth_date="2013-05-01", school=school),),
            reporter=Reporter(name=f"Trần Văn Reporter{n}", phone=f"0912{n:06d}", relation="neighbour", anonymous=anonymous),
        ),
    )


async def routing_runtime(tmp_path, database_url: str | None = None, **settings: Any):
    """A migrated routing runtime with its first rule set and the demo units registered (its lifespan not started)."""
    runtime = make_runtime("routing", tmp_path, database_url, **settings)
    await migrate(runtime)
    for hook in runtime.startup:
        await hook()
    await load_units_into(runtime, load_demo_units())
    return runtime


async def route(runtime, event: IncidentReported) -> list:
    """Deliver one incident.reported to routing's handler, as the subscriber does, in one transaction."""
    async with runtime.sessionmaker() as session, session.begin():
        return await incident_work(runtime)(session, event, event.envelope(correlation_id=event.incident_id, producer="intake"))


class MovedClock:
    """A clock the test sets."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def close_runtime(runtime) -> None:
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()
