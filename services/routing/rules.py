"""The routing table and the decision: incident + registered units + table -> assignments (pure).

The table is data (rules.yaml, domain.md section 4); `load_rules` is the only function here that
touches the disk. The format is described at the top of rules.yaml.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from shared.enums import LABELS_VI, Category, Role, UnitType, Urgency
from shared.events import IncidentReported

DEFAULT_RULES = Path(__file__).parent / "rules.yaml"

DURATION = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
TOP_KEYS = ("version", "ack_deadlines", "always", "categories")
ENTRY_KEYS = ("unit", "when", "reason", "other_communes")
CONDITION_KEYS = ("urgency",)


# -- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One line of the table: a unit type, the urgencies it applies at (None: all), and why; `other_communes`: the
    child's school is reached even in another commune (support only: it gets the minimal view)."""

    rule: str
    unit_type: UnitType
    urgencies: frozenset[Urgency] | None = None
    reason: str | None = None
    other_communes: bool = False

    def applies(self, urgency: Urgency) -> bool:
        return self.urgencies is None or urgency in self.urgencies


@dataclass(frozen=True)
class CategoryRules:
    lead: Entry
    support: tuple[Entry, ...]


@dataclass(frozen=True)
class RuleTable:
    version: str
    ack_deadlines: Mapping[Urgency, timedelta]
    always: tuple[Entry, ...]
    categories: Mapping[Category, CategoryRules]


# -- reading and checking the file -------------------------------------------------------------


class RulesError(ValueError):
    """The rules file is not understood; the message names the file, line, key and reason."""


def load_rules(path: Path = DEFAULT_RULES) -> RuleTable:
    """Read and check a rules file; RulesError names what is wrong and where."""
    return parse_rules(Path(path).read_text(encoding="utf-8"), str(path))


def parse_rules(text: str, source: str = "<rules>") -> RuleTable:
    """Check a rules document and build the table; RulesError names what is wrong and where."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise RulesError(f"{source}: not valid YAML: {exc}") from None
    lines: dict[tuple, int] = {}
    _index_lines(root, (), lines, source)
    return _Reader(source, lines).table(yaml.safe_load(text))


def _index_lines(node: yaml.Node | None, path: tuple, lines: dict[tuple, int], source: str) -> None:
    """Remember each key's line; refuse duplicate keys, which YAML would silently let win."""
    if node is None:
        return
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise RulesError(f"{source}:{key_node.start_mark.line + 1}: {_dotted(path + (key,))}: key appears twice")
            seen.add(key)
            _index_lines(value_node, path + (key,), lines, source)
            lines[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (i,), lines, source)


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def _known(values) -> str:
    return ", ".join(v.value for v in values)


class _Reader:
    def __init__(self, source: str, lines: dict[tuple, int]) -> None:
        self.source = source
        self.lines = lines

    def fail(self, path: tuple, reason: str) -> RulesError:
        line = next((self.lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in self.lines), None)
        where = f"{self.source}:{line}" if line else self.source
        return RulesError(f"{where}: {_dotted(path)}: {reason}")

    def mapping(self, value: Any, path: tuple, allowed: tuple[str, ...], what: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a mapping with keys {', '.join(allowed)}")
        for key in value:
            if key not in allowed:
                raise self.fail(path + (key,), f"unknown {what} {key!r} (known: {', '.join(allowed)})")
        return value

    def table(self, data: Any) -> RuleTable:
        data = self.mapping(data, (), TOP_KEYS, "key")
        for key in TOP_KEYS:
            if key not in data:
                raise self.fail((), f"missing key {key!r}")
        version = data["version"]
        if not isinstance(version, str) or not version.strip():
            raise self.fail(("version",), "must be a non-empty string (quote it: version: \"2025.1\")")
        return RuleTable(
            version=version.strip(),
            ack_deadlines=self.deadlines(data["ack_deadlines"]),
            always=self.always(data["always"]),
            categories=self.categories(data["categories"]),
        )

    def deadlines(self, value: Any) -> dict[Urgency, timedelta]:
        path = ("ack_deadlines",)
        value = self.mapping(value, path, tuple(u.value for u in Urgency), "urgency")
        out = {}
        for urgency in Urgency:
            if urgency.value not in value:
                raise self.fail(path, f"missing urgency {urgency.value!r}: every urgency needs a deadline")
            m = DURATION.match(str(value[urgency.value]))
            if not m or int(m[1]) == 0:
                raise self.fail(path + (urgency.value,), f"{value[urgency.value]!r} is not a duration like 30m, 4h or 3d")
            out[urgency] = timedelta(**{DURATION_UNITS[m[2]]: int(m[1])})
        return out

    def always(self, value: Any) -> tuple[Entry, ...]:
        path = ("always",)
        if isinstance(value, dict) and "lead" in value:
            raise self.fail(path + ("lead",), "always-rules cannot name a lead: each category decides its lead")
        value = self.mapping(value, path, ("support",), "role")
        return self.entries(value.get("support"), path + ("support",), "always")

    def categories(self, value: Any) -> dict[Category, CategoryRules]:
        path = ("categories",)
        value = self.mapping(value, path, tuple(c.value for c in Category), "category")
        out = {}
        for category in Category:
            if category.value not in value:
                raise self.fail(path, f"missing category {category.value!r}: every category needs a lead")
            here = path + (category.value,)
            rules = self.mapping(value[category.value], here, tuple(r.value for r in Role), "role")
            if "lead" not in rules:
                raise self.fail(here, "missing 'lead'")
            if isinstance(rules["lead"], list):
                raise self.fail(here + ("lead",), "lead is one unit type (or one mapping), not a list")
            out[category] = CategoryRules(
                lead=self.entry(rules["lead"], here + ("lead",), f"category.{category.value}.lead", lead=True),
                support=self.entries(rules.get("support"), here + ("support",), f"category.{category.value}.support"),
            )
        return out

    def entries(self, value: Any, path: tuple, rule_prefix: str) -> tuple[Entry, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(path, "must be a list of unit types or mappings")
        # A support rule is named by its unit type too: `category.violence.support.police`.
        return tuple(self.entry(item, path + (i,), rule_prefix, name_type=True) for i, item in enumerate(value))

    def entry(self, value: Any, path: tuple, rule: str, *, name_type: bool = False, lead: bool = False) -> Entry:
        if isinstance(value, str):
            value = {"unit": value}
            unit_path = path
        else:
            value = self.mapping(value, path, ENTRY_KEYS, "entry key")
            if "unit" not in value:
                raise self.fail(path, "missing 'unit'")
            unit_path = path + ("unit",)
        unit_type = self.unit_type(value["unit"], unit_path)
        reason = value.get("reason")
        if reason is not None and (not isinstance(reason, str) or not reason.strip()):
            raise self.fail(path + ("reason",), "must be non-empty text")
        other_communes = value.get("other_communes", False)
        if not isinstance(other_communes, bool):
            raise self.fail(path + ("other_communes",), "must be true or false")
        if other_communes and (lead or unit_type is not UnitType.school):
            raise self.fail(
                path + ("other_communes",),
                "only a school support entry may reach another commune (it sees the minimal view; a lead sees the case file)",
            )
        return Entry(
            f"{rule}.{unit_type.value}" if name_type else rule,
            unit_type,
            self.condition(value["when"], path + ("when",)) if "when" in value else None,
            reason.strip() if reason else None,
            other_communes,
        )

    def unit_type(self, value: Any, path: tuple) -> UnitType:
        try:
            return UnitType(value)
        except ValueError:
            raise self.fail(path, f"unknown unit type {value!r} (known: {_known(UnitType)})") from None

    def condition(self, value: Any, path: tuple) -> frozenset[Urgency]:
        value = self.mapping(value, path, CONDITION_KEYS, "condition")
        urgencies = value.get("urgency")
        if not isinstance(urgencies, list) or not urgencies:
            raise self.fail(path + ("urgency",), "must be a non-empty list of urgencies")
        out = set()
        for i, item in enumerate(urgencies):
            try:
                out.add(Urgency(item))
            except ValueError:
                raise self.fail(path + ("urgency", i), f"unknown urgency {item!r} (known: {_known(Urgency)})") from None
        return frozenset(out)


# -- the decision ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutingInput:
    """What routing needs of an incident: the facts plus the children's schools."""

    commune_code: str
    hamlet: str | None
    category: Category
    urgency: Urgency
    received_at: datetime
    schools: tuple[str, ...] = ()

    @classmethod
    def from_event(cls, event: IncidentReported) -> RoutingInput:
        facts = event.facts
        return cls(
            commune_code=facts.commune_code,
            hamlet=facts.hamlet,
            category=facts.category,
            urgency=facts.urgency,
            received_at=facts.received_at,
            schools=tuple(dict.fromkeys(c.school for c in event.case.children if c.school)),
        )

    @property
    def cp_officer(self) -> str:
        return f"{self.commune_code}.{UnitType.cp_officer.value}"

    def named_units(self) -> tuple[str, ...]:
        """Unit ids the report names itself (they may lie outside the commune's own units)."""
        return self.schools + ((self.hamlet,) if self.hamlet else ())


@dataclass(frozen=True)
class PlannedAssignment:
    unit_id: str
    unit_type: UnitType
    role: Role
    rule: str
    reason: str


@dataclass(frozen=True)
class Decision:
    rules_version: str
    due_at: datetime
    assignments: tuple[PlannedAssignment, ...]
    notes: tuple[str, ...]

    @property
    def lead(self) -> tuple[PlannedAssignment, ...]:
        return tuple(a for a in self.assignments if a.role is Role.lead)


def due_at(start: datetime, urgency: Urgency, table: RuleTable) -> datetime:
    """When an assignment must be acknowledged, counted from `start` (the report's receipt)."""
    return start + table.ack_deadlines[urgency]


def resolve(unit_type: UnitType, incident: RoutingInput, other_communes: bool = False) -> tuple[tuple[str, ...], str]:
    """The unit ids a unit type means for this incident, or () and why there are none.

    A child's school in another commune is not the incident's commune's to involve: it is reached only by an entry
    with `other_communes: true` (support, minimal view)."""
    if unit_type is UnitType.school:
        if not incident.schools:
            return (), "the report gives no school for the child"
        own = incident.commune_code + "."
        schools = incident.schools if other_communes else tuple(s for s in incident.schools if s.startswith(own))
        outside = ", ".join(s for s in incident.schools if s not in schools)
        # Said even when another school of the child is reached: the decision's notes name the one left out.
        return schools, f"{outside} is in another commune (a support entry with other_communes: true may reach it)" if outside else ""
    if unit_type is UnitType.hamlet:
        return ((incident.hamlet,), "") if incident.hamlet else ((), "the report names no hamlet")
    return (f"{incident.commune_code}.{unit_type.value}",), ""


def decide(incident: RoutingInput, existing_units: Set[str], table: RuleTable) -> Decision:
    """The assignments for an incident: one per unit, lead before support, never without a lead."""
    # The commune's cp_officer is assigned even when missing from the registry, so that no case is
    # ever silently dropped; the decision's notes then say the unit must be registered.
    rules = table.categories[incident.category]
    urgency = incident.urgency
    cp_officer = incident.cp_officer
    chosen: dict[str, PlannedAssignment] = {}
    notes: list[str] = []

    def registered(unit_id: str) -> bool:
        return unit_id in existing_units or unit_id == cp_officer

    lead = rules.lead
    leads: tuple[str, ...] = ()
    if lead.applies(urgency):
        candidates, why = resolve(lead.unit_type, incident)  # a lead never reaches another commune
        leads = tuple(u for u in candidates if registered(u))
        missing = [u for u in candidates if not registered(u)]
        if leads and why:
            notes.append(f"{lead.rule}: {why}")
        if candidates and not leads:
            why = f"{', '.join(missing)} not in the unit registry"
        for unit_id in missing if leads else ():
            notes.append(f"{lead.rule}: {unit_id} is not in the unit registry; the other lead units act")
    else:
        why = f"{lead.rule} does not apply at urgency {urgency.value}"
    for unit_id in leads:
        chosen[unit_id] = PlannedAssignment(unit_id, lead.unit_type, Role.lead, lead.rule, _reason(lead, incident, Role.lead))
    if not leads:
        notes.append(f"lead falls back to {cp_officer}: {why}")
        chosen[cp_officer] = PlannedAssignment(
            cp_officer, UnitType.cp_officer, Role.lead, f"{lead.rule}.fallback", _fallback_reason(lead, incident, why)
        )

    for entry in rules.support + table.always:
        if not entry.applies(urgency):
            continue
        candidates, why = resolve(entry.unit_type, incident, entry.other_communes)
        if not candidates:
            notes.append(f"{entry.rule} skipped: {why}")
        elif why:
            notes.append(f"{entry.rule}: {why}")
        for unit_id in candidates:
            if unit_id in chosen:
                continue
            if not registered(unit_id):
                notes.append(f"{entry.rule} skipped: {unit_id} is not in the unit registry")
                continue
            chosen[unit_id] = PlannedAssignment(unit_id, entry.unit_type, Role.support, entry.rule, _reason(entry, incident, Role.support))

    if cp_officer in chosen and cp_officer not in existing_units:
        notes.append(f"{cp_officer} is not in the unit registry: assigned anyway so the case is not dropped; register the unit")
    return Decision(table.version, due_at(incident.received_at, urgency, table), tuple(chosen.values()), tuple(notes))


def _reason(entry: Entry, incident: RoutingInput, role: Role) -> str:
    if entry.reason:
        return entry.reason
    category = incident.category.value
    scope = f"{LABELS_VI[category]}" if entry.rule.startswith("category.") else "Mọi vụ việc"
    scope_en = f"{role.value} for {category}" if entry.rule.startswith("category.") else f"{role.value} for every incident"
    if entry.urgencies is not None:
        scope += f", mức độ {LABELS_VI[incident.urgency.value]}"
        scope_en += f" at urgency {incident.urgency.value}"
    return f"{'Chủ trì' if role is Role.lead else 'Phối hợp'}: {scope} ({scope_en})"


def _fallback_reason(lead: Entry, incident: RoutingInput, why: str) -> str:
    category = incident.category.value
    return (
        f"Chủ trì thay cho {LABELS_VI[lead.unit_type.value]}: {LABELS_VI[category]} "
        f"(fallback lead for {category}: {why})"
    )
