"""The routing table as data an officer changes: the active rule set, loading a new one, seeding the first."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.runtime import Runtime

from . import rules
from .assignments import PRODUCER
from .models import RuleSet
from .rules import RulesError, RuleTable

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
    except (IntegrityError, RuleSetExists):
        # Another replica starting at the same moment seeded it (between the look above and this write).
        async with runtime.unit_of_work() as uow:
            if await active_rule_set(uow.session) is None:
                raise
        log.info("rule set seeded by another instance")



def may_read_rules(principal: Principal) -> bool:
    """Admins and every commune's cp_officer: the table routes their commune's cases."""
    return principal.is_admin or principal.unit_type == "cp_officer"



async def read_active(session: AsyncSession, principal: Principal) -> tuple[RuleSet, RuleTable]:
    """The active rule set and its parsed table, for `GET /v1/rules`."""
    if not may_read_rules(principal):
        raise Forbidden("only admins and a commune's cp_officer may read the routing rules")
    active = await active_rule_set(session)
    if active is None:
        raise NotFound("no active rule set yet: routing loads its rules file at first start")
    return active, rules.parse_rules(active.source, f"rule set {active.version}")



async def load(session: AsyncSession, text: str, source: str, principal: Principal, now: datetime) -> tuple[RuleSet, RuleTable]:
    """An admin loads a new version (`POST /v1/rules`): the file's error as `baove rules load` names it, or a version seen before."""
    if not principal.is_admin:
        raise Forbidden("only admins may load routing rules")
    try:
        table, _ = await activate_rule_set(session, text, source, principal.username or principal.subject, now)
    except RulesError as exc:
        raise Invalid(str(exc)) from None
    except RuleSetExists as exc:
        raise Conflict(str(exc)) from None
    except IntegrityError:
        # The one-active-table and unique-version constraints caught another load committing meanwhile.
        raise Conflict("another rule set was loaded at the same time: read the active one and try again") from None
    return await active_rule_set(session), table
