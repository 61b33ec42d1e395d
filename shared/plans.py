"""A commune's children's-work plan as data (issue 16): its tasks per unit, the activities they imply, its reports.

One YAML file per commune and year under shared/reference/plans/ (`25349-2025.yaml`), loaded and validated
like the administrative units. `parse_plan` is pure; `load_plan` reads the file once per process.
The counts an activity may carry are fixed here (`COUNT_FIELDS`): a plan chooses which of them each kind takes.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.enums import UnitType

PLANS = Path(__file__).parent / "reference" / "plans"
TASK_ID = re.compile(r"^[IVX]+\.\d{1,2}(\.[a-z])?$")

# The participants of a session: their total, by sex and by age group (children under 16 by law, 16-17, adults).
PARTICIPANT_FIELDS = (
    "participants_total",
    "participants_male",
    "participants_female",
    "participants_under_16",
    "participants_16_17",
    "participants_adult",
)
COUNT_FIELDS = (
    "sessions",
    *PARTICIPANT_FIELDS,
    "children_supported",
    "households_visited",
    "sites_inspected",
    "violations_found",
    "items_published",
)
# In a plan file `participants` stands for every participant field.
GROUPS = {"participants": PARTICIPANT_FIELDS}
COUNT_LABELS_VI = {
    "sessions": "Số buổi, lượt",
    "participants_total": "Số người tham dự",
    "participants_male": "Nam",
    "participants_female": "Nữ",
    "participants_under_16": "Trẻ em dưới 16 tuổi",
    "participants_16_17": "Từ 16 đến dưới 18 tuổi",
    "participants_adult": "Người lớn (từ 18 tuổi)",
    "children_supported": "Số trẻ em được hỗ trợ",
    "households_visited": "Số hộ gia đình được thăm",
    "sites_inspected": "Số cơ sở, điểm được kiểm tra",
    "violations_found": "Số vi phạm phát hiện",
    "items_published": "Số tin bài, phóng sự",
}


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ActivityCounts(Frozen):
    """What an activity counts; nothing that identifies anyone. A count a kind does not take stays 0."""

    sessions: int = Field(0, ge=0, le=100_000, description="sessions, events, inspections or visits held")
    participants_total: int = Field(0, ge=0, le=1_000_000)
    participants_male: int = Field(0, ge=0, le=1_000_000)
    participants_female: int = Field(0, ge=0, le=1_000_000)
    participants_under_16: int = Field(0, ge=0, le=1_000_000, description="children (Law on Children Art. 1)")
    participants_16_17: int = Field(0, ge=0, le=1_000_000)
    participants_adult: int = Field(0, ge=0, le=1_000_000)
    children_supported: int = Field(0, ge=0, le=1_000_000)
    households_visited: int = Field(0, ge=0, le=1_000_000)
    sites_inspected: int = Field(0, ge=0, le=100_000)
    violations_found: int = Field(0, ge=0, le=100_000)
    items_published: int = Field(0, ge=0, le=100_000)


def expand(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(field for name in names for field in GROUPS.get(name, (name,))))


class ActivityKind(Frozen):
    code: str
    label: str
    counts: tuple[str, ...]
    required: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _known_counts(self) -> ActivityKind:
        unknown = [c for c in expand(self.counts) if c not in COUNT_FIELDS]
        if unknown:
            raise ValueError(f"kind {self.code}: unknown counts {unknown}; known: {list(COUNT_FIELDS)} or 'participants'")
        outside = [c for c in expand(self.required) if c not in expand(self.counts)]
        if outside:
            raise ValueError(f"kind {self.code}: required counts {outside} are not among its counts")
        return self

    @property
    def fields(self) -> tuple[str, ...]:
        """The count fields this kind takes, `participants` expanded."""
        return expand(self.counts)


class PlanTask(Frozen):
    id: str
    unit: str = Field(description="the plan's heading for the unit(s), in Vietnamese")
    text: str
    responsible: tuple[UnitType, ...] = ()
    supporting: tuple[UnitType, ...] = ()
    kinds: tuple[str, ...] = ()

    @field_validator("id")
    @classmethod
    def _task_id(cls, value: str) -> str:
        if not TASK_ID.match(value):
            raise ValueError(f"task id {value!r} must look like IV.3 (section.item)")
        return value

    @model_validator(mode="after")
    def _kinds_need_units(self) -> PlanTask:
        if self.kinds and not self.responsible:
            raise ValueError(f"task {self.id}: activity kinds without a responsible unit")
        both = set(self.responsible) & set(self.supporting)
        if both:
            raise ValueError(f"task {self.id}: {sorted(both)} both responsible and supporting")
        return self

    def role_of(self, unit_type: str) -> Literal["responsible", "supporting"] | None:
        if unit_type in self.responsible:
            return "responsible"
        if unit_type in self.supporting:
            return "supporting"
        return None


class Signer(Frozen):
    on_behalf: str | None = None
    title: str
    name: str


class PlanReport(Frozen):
    period: str = Field(description="the plan period's suffix: 6M, 12M")
    label: str
    due: date


class Reporting(Frozen):
    compiled_by: UnitType
    text: str
    recipients: tuple[str, ...]
    reports: tuple[PlanReport, ...]


class Plan(Frozen):
    version: str
    commune: str
    commune_name: str
    year: int = Field(ge=2000, le=2100)
    title: str
    issued_by: str
    basis: tuple[str, ...] = ()
    signer: Signer | None = None
    kinds: dict[str, ActivityKind]
    tasks: tuple[PlanTask, ...]
    reporting: Reporting

    @model_validator(mode="before")
    @classmethod
    def _kind_codes(cls, data):
        # In the file a kind is keyed by its code; the model carries the code too.
        if isinstance(data, dict) and isinstance(data.get("kinds"), dict):
            data = {**data, "kinds": {k: {"code": k, **(v or {})} for k, v in data["kinds"].items()}}
        return data

    @field_validator("commune")
    @classmethod
    def _commune(cls, value: str) -> str:
        if not re.fullmatch(r"\d{5}", value):
            raise ValueError(f"commune code {value!r} must be 5 digits")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        ids = [t.id for t in self.tasks]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"task ids repeated: {repeated}")
        for task in self.tasks:
            unknown = [k for k in task.kinds if k not in self.kinds]
            if unknown:
                raise ValueError(f"task {task.id}: unknown activity kinds {unknown}; the plan's kinds: {sorted(self.kinds)}")
        return self

    def task(self, task_id: str) -> PlanTask | None:
        return next((t for t in self.tasks if t.id == task_id), None)

    def tasks_of(self, unit_type: str) -> list[PlanTask]:
        """The tasks a unit type may record activities for (responsible or supporting), in the plan's order."""
        return [t for t in self.tasks if t.kinds and t.role_of(unit_type) is not None]


class PlanNotFound(LookupError):
    """No plan file for that commune and year."""


def parse_plan(data: dict, source: str = "plan") -> Plan:
    """A plan from the file's mapping; ValueError naming the file and what is wrong."""
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{source}: {exc}") from None


def plan_path(commune: str, year: int, folder: Path = PLANS) -> Path:
    return folder / f"{commune}-{year}.yaml"


@lru_cache(maxsize=64)
def load_plan(commune: str, year: int, folder: Path = PLANS) -> Plan:
    """The plan of a commune for a year; PlanNotFound if it has none, ValueError if its file is wrong."""
    if not re.fullmatch(r"\d{5}", commune):
        raise PlanNotFound(f"commune code {commune!r} must be 5 digits")
    path = plan_path(commune, year, folder)
    if not path.is_file():
        raise PlanNotFound(f"no children's-work plan of commune {commune} for {year}")
    plan = parse_plan(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
    if (plan.commune, plan.year) != (commune, year):
        raise ValueError(f"{path}: holds the plan of {plan.commune} for {plan.year}, not {commune} for {year}")
    return plan


def available_plans(folder: Path = PLANS) -> list[tuple[str, int]]:
    """(commune, year) of every plan file."""
    found = []
    for path in sorted(folder.glob("*.yaml")):
        m = re.fullmatch(r"(\d{5})-(\d{4})", path.stem)
        if m:
            found.append((m[1], int(m[2])))
    return found


@lru_cache(maxsize=1)
def kind_labels(folder: Path = PLANS) -> dict[str, str]:
    """Every plan's activity kinds with their Vietnamese label (a later plan's wording wins)."""
    labels: dict[str, str] = {}
    for commune, year in available_plans(folder):
        labels.update({code: kind.label for code, kind in load_plan(commune, year, folder).kinds.items()})
    return labels
