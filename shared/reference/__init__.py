"""Reference data: the administrative hierarchy with validity dates, and the demo units."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import yaml

HERE = Path(__file__).parent


@dataclass(frozen=True)
class OrgUnit:
    code: str
    level: str
    name: str
    parent: str | None


@dataclass(frozen=True)
class HierarchyVersion:
    id: str
    name: str
    valid_from: date
    valid_to: date | None  # inclusive
    units: dict[str, OrgUnit] = field(hash=False)

    def valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def communes_under(self, code: str) -> list[str]:
        """The communes of a unit in this version (itself, if it is a commune); [] if it did not exist."""
        if code not in self.units:
            return []
        found = []
        for unit in self.units.values():
            if unit.level != "commune":
                continue
            node: str | None = unit.code
            while node is not None:
                if node == code:
                    found.append(unit.code)
                    break
                node = self.units[node].parent
        return sorted(found)

    def end_exclusive(self) -> date | None:
        return None if self.valid_to is None else self.valid_to + timedelta(days=1)


@dataclass(frozen=True)
class Coverage:
    """Part of a period in which one hierarchy version held a unit."""

    version: HierarchyVersion
    start: date  # inclusive, Vietnam's date
    end: date  # exclusive
    communes: tuple[str, ...]


@dataclass(frozen=True)
class Hierarchy:
    levels: tuple[str, ...]
    versions: tuple[HierarchyVersion, ...]
    hamlets: dict[str, tuple[tuple[str, str], ...]] = field(hash=False)

    def version_on(self, day: date) -> HierarchyVersion | None:
        return next((v for v in self.versions if v.valid_on(day)), None)

    def unit(self, code: str) -> OrgUnit | None:
        """The newest record of a code in any version."""
        for version in reversed(self.versions):
            if code in version.units:
                return version.units[code]
        return None

    def commune_on(self, code: str, day: date) -> OrgUnit | None:
        version = self.version_on(day)
        unit = version.units.get(code) if version else None
        return unit if unit and unit.level == "commune" else None

    def coverage(self, code: str, start: date, end: date) -> list[Coverage]:
        """Each version's share of [start, end) in which `code` existed, with its communes then."""
        parts = []
        for version in self.versions:
            lo = max(start, version.valid_from)
            version_end = version.end_exclusive()
            hi = end if version_end is None else min(end, version_end)
            communes = version.communes_under(code)
            if lo < hi and communes:
                parts.append(Coverage(version, lo, hi, tuple(communes)))
        return parts

    def hamlet_unit_ids(self, commune: str) -> list[str]:
        return [f"{commune}.hamlet.{local}" for local, _ in self.hamlets.get(commune, ())]


def _date(value) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


@lru_cache(maxsize=4)
def load_hierarchy(path: Path = HERE / "admin_units.yaml") -> Hierarchy:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    versions = []
    for raw in data["versions"]:
        units = {
            str(u["code"]): OrgUnit(str(u["code"]), u["level"], u["name"], str(u["parent"]) if u.get("parent") else None)
            for u in raw["units"]
        }
        for unit in units.values():
            if unit.parent is not None and unit.parent not in units:
                raise ValueError(f"{path}: version {raw['id']}: {unit.code} has unknown parent {unit.parent}")
        versions.append(HierarchyVersion(raw["id"], raw["name"], _date(raw["valid_from"]), _date(raw["valid_to"]), units))
    versions.sort(key=lambda v: v.valid_from)
    hamlets = {
        str(commune): tuple((h["id"], h["name"]) for h in items) for commune, items in (data.get("hamlets") or {}).items()
    }
    return Hierarchy(tuple(data.get("aggregation_levels", ("commune", "district", "province"))), tuple(versions), hamlets)


@dataclass(frozen=True)
class UnitRecord:
    id: str
    commune_code: str
    unit_type: str
    name: str


def load_demo_units(path: Path = HERE / "demo_units.yaml") -> list[UnitRecord]:
    """Every unit type in each demo commune, with the hamlets of the hierarchy file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    hierarchy = load_hierarchy()
    units: list[UnitRecord] = []
    for commune in data["communes"]:
        commune = str(commune)
        commune_name = hierarchy.unit(commune).name
        for unit_type, name in data["single_units"].items():
            units.append(UnitRecord(f"{commune}.{unit_type}", commune, unit_type, f"{name} {commune_name}"))
        for school in data["schools"].get(commune, []):
            units.append(UnitRecord(f"{commune}.school.{school['id']}", commune, "school", school["name"]))
        for local, name in hierarchy.hamlets.get(commune, ()):
            units.append(UnitRecord(f"{commune}.hamlet.{local}", commune, "hamlet", name))
    return units
