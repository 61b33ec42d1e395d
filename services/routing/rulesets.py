"""The routing table as data an officer changes: the active rule set, loading a new one, seeding the first."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.runtime import Runtime

from . import rules
from .assignments import PRODUCER
from .models import RuleSet
from .rules import RuleTable

log = logging.getLogger("baove.routing")



class NoActiveRules(RuntimeError):
    """No rule set is active: routing loads its rules file at start, or an officer runs `baove rules load`."""



class RuleSetExists(ValueError):
    """A rule set with this version was loaded before: a changed table needs a new version."""



class RuleSets:
    """The active routing table. Its version is read on each use (one indexed row), the parsed table cached per version."""

    def __init__(self) -> None:
        self._tables: dict[str, RuleTable] = {}

    async def active(self, session: AsyncSession) -> RuleTable:
        cached = session.info.get("rule_table")
        if cached is not None:  # read once per transaction: a batch of reports shares it
            return cached
        version = (await session.execute(select(RuleSet.version).where(RuleSet.active.is_(True)))).scalar_one_or_none()
        if version is None:
            raise NoActiveRules("no active rule set: start routing once, or run `baove rules load FILE`")
        table = self._tables.get(version)
        if table is None:
            source = (await session.execute(select(RuleSet.source).where(RuleSet.version == version))).scalar_one()
            table = self._tables[version] = rules.parse_rules(source, f"rule set {version}")
        session.info["rule_table"] = table
        return table



async def active_rule_set(session: AsyncSession) -> RuleSet | None:
    return (await session.execute(select(RuleSet).where(RuleSet.active.is_(True)))).scalar_one_or_none()



async def activate_rule_set(session: AsyncSession, text: str, source: str, by: str, now: datetime) -> tuple[RuleTable, str | None]:
    """Make a rules document the active table, returning it and the version it replaces; RulesError, RuleSetExists."""
    table = rules.parse_rules(text, source)
    session.info.pop("rule_table", None)
    known = (await session.execute(select(RuleSet).where(RuleSet.version == table.version))).scalar_one_or_none()
    if known is not None:
        raise RuleSetExists(
            f"rule set version {table.version!r} was loaded on {known.loaded_at.isoformat()} by {known.loaded_by}: "
            "give the changed table a new version"
        )
    previous = await active_rule_set(session)
    if previous is not None:
        previous.active = False
        # The partial unique index allows one active row: retire the old one before the new one is written.
        await session.flush()
    session.add(RuleSet(version=table.version, source=text, loaded_at=now, loaded_by=by, active=True))
    await session.flush()
    log.info("rule set activated", extra={"rules_version": table.version, "previous": previous.version if previous else None, "by": by})
    return table, previous.version if previous else None



async def seed_rule_set(runtime: Runtime, text: str, source: str, now: datetime) -> None:
    """At start: the rules file becomes the first rule set when none is active; later ones come from `baove rules load`."""
    async with runtime.unit_of_work() as uow:
        if await active_rule_set(uow.session) is not None:
            return
    try:
        async with runtime.unit_of_work() as uow:
            await activate_rule_set(uow.session, text, source, f"{PRODUCER}:start", now)
    except IntegrityError:
        # Another replica starting at the same moment seeded it.
        log.info("rule set seeded by another instance")
