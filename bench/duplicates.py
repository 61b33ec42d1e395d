"""Possible duplicates measured (issue 17): precision and recall on a planted sample, and one check against 10,000.

The sample: 200 reports of one commune over 30 days, 160 distinct children and 40 planted second reports of one of
them (spelling variants, missing tones, swapped name order, an age instead of the birth date), each from the other
kind of reporter (a school's report names the school, a hamlet's the hamlet). Names come from the common Vietnamese
family, middle and given names, so unrelated children share family and middle names as they do in a commune.
Deterministic: a seed.

Run: .venv/bin/python -m bench.duplicates [--seed 17] [--window 10000] [--threshold 80] [--batch 100] [--db-url URL]

`with_database` times intake's own check (service.check_duplicates: the window read from the database, the JSON
of its children parsed, the match, the candidates and events written) for one new report against `--window`
reports of its commune in a scratch database (SQLite in a temporary folder unless --db-url names an empty one);
`with_database_batch` the same for `--batch` new reports checked in one call, as the background loop does when
reports arrive faster than it checks them (a load test), with the time per report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from services.intake.duplicates import DEFAULT_THRESHOLD, ChildKey, candidates, child_keys

FAMILY = ["Nguyễn"] * 6 + ["Trần"] * 2 + ["Lê"] * 2 + ["Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý"]
MIDDLE = {"male": ["Văn", "Văn", "Minh", "Đức", "Hoàng", "Gia", "Quốc", "Thanh"], "female": ["Thị", "Thị", "Ngọc", "Thanh", "Thu", "Bảo", "Minh", "Kim"]}
GIVEN = {
    "male": ["An", "Bình", "Dũng", "Duy", "Hải", "Hiếu", "Hùng", "Huy", "Khang", "Khoa", "Long", "Minh", "Nam", "Phúc", "Quân", "Quang", "Sơn", "Tâm", "Thắng", "Trung", "Tuấn", "Việt", "Đạt", "Đức"],
    "female": ["Anh", "Châu", "Giang", "Hà", "Hạnh", "Hoa", "Hương", "Lan", "Linh", "Mai", "My", "Ngân", "Ngọc", "Nhi", "Phương", "Quỳnh", "Thảo", "Thu", "Trang", "Uyên", "Vy", "Yến", "Diệp", "Đào"],
}
HAMLETS = [f"25349.hamlet.ap-{i}" for i in range(1, 7)]
SCHOOLS = ["25349.school.th-minh-tam-a", "25349.school.th-minh-tam-b", "25349.school.thcs-minh-tam"]
# Spelling a clerk or a teacher may use for the same name: a letter swapped for its sound-alike, or dropped.
SOUND_ALIKE = [("y", "i"), ("i", "y"), ("gi", "d"), ("d", "gi"), ("ng", "n"), ("uy", "ui"), ("qu", "kw"), ("c", "k"), ("ph", "f"), ("tr", "ch")]
START = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)
VARIANTS = ("spelling", "no_tones", "swapped", "age_only")


@dataclass(frozen=True)
class Report:
    incident_id: str
    received_at: datetime
    hamlet: str | None
    child: dict


def strip_tones(name: str) -> str:
    import unicodedata

    bare = "".join(c for c in unicodedata.normalize("NFD", name) if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", bare)  # đ stays: a keyboard without tones still types it, or not


def misspell(name: str, rng: random.Random) -> str:
    words = name.split()
    k = rng.randrange(len(words))
    word = words[k]
    for old, new in rng.sample(SOUND_ALIKE, len(SOUND_ALIKE)):
        if old in word.lower():
            words[k] = word.lower().replace(old, new, 1).capitalize()
            return " ".join(words)
    words[k] = word[:-1] if len(word) > 3 else word + "h"  # a letter dropped, or one too many
    return " ".join(words)


def vary(child: dict, variant: str, received_at: datetime, rng: random.Random) -> dict:
    again = dict(child)
    name = child["full_name"]
    if variant == "spelling":
        again["full_name"] = misspell(name, rng)
    elif variant == "no_tones":
        again["full_name"] = strip_tones(name)
    elif variant == "swapped":
        family, *rest = name.split()
        again["full_name"] = " ".join([*rest, family])  # given name first, as on a form in Western order
    elif variant == "age_only":
        birth = date.fromisoformat(child["birth_date"])
        age = (received_at.date() - birth).days // 365 + rng.choice((-1, 0, 0, 1))  # an estimate, off by one at times
        again["birth_date"], again["age_years"] = None, max(0, min(17, age))
    return again


def sample(seed: int = 17, reports: int = 200, planted: int = 40) -> tuple[list[Report], set[frozenset[str]]]:
    """The reports in the order received, and the planted pairs of incident ids."""
    rng = random.Random(seed)
    distinct = reports - planted
    originals = []
    for i in range(distinct):
        sex = rng.choice(("male", "female"))
        birth = date(2010, 1, 1) + timedelta(days=rng.randrange(365 * 14))
        child = {
            "full_name": f"{rng.choice(FAMILY)} {rng.choice(MIDDLE[sex])} {rng.choice(GIVEN[sex])}",
            "sex": sex,
            "birth_date": birth.isoformat(),
            "age_years": None,
            "school": rng.choice(SCHOOLS) if rng.random() < 0.5 else None,
        }
        at = START + timedelta(minutes=rng.randrange(60 * 24 * 20))
        hamlet = rng.choice(HAMLETS) if child["school"] is None or rng.random() < 0.3 else None
        originals.append(Report(f"r{i:03d}", at, hamlet, child))
    pairs = set()
    dupes = []
    for j, original in enumerate(rng.sample(originals, planted)):
        at = original.received_at + timedelta(hours=rng.randrange(1, 24 * 9))
        child = vary(original.child, VARIANTS[j % len(VARIANTS)], at, rng)
        # The other reporter: the school's report names the school, the hamlet's the hamlet.
        hamlet = rng.choice(HAMLETS) if original.child["school"] else None
        child["school"] = None if original.child["school"] else rng.choice(SCHOOLS)
        dupe = Report(f"d{j:03d}", at, hamlet if rng.random() < 0.7 else original.hamlet, child)
        dupes.append(dupe)
        pairs.add(frozenset((original.incident_id, dupe.incident_id)))
    return sorted(originals + dupes, key=lambda r: r.received_at), pairs


def keys(report: Report) -> list[ChildKey]:
    return child_keys(report.incident_id, [report.child], report.hamlet, report.received_at)


def precision_recall(seed: int = 17, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Each report checked, as intake does, against the reports received before it."""
    reports, truth = sample(seed)
    seen: list[ChildKey] = []
    found = set()
    for report in reports:
        new = keys(report)
        found |= {frozenset((report.incident_id, c.incident_id)) for c in candidates(new, seen, threshold)}
        seen += new
    hits = len(found & truth)
    return {
        "reports": len(reports),
        "planted": len(truth),
        "candidates": len(found),
        "true_candidates": hits,
        "precision": round(hits / len(found), 3) if found else 1.0,
        "recall": round(hits / len(truth), 3),
        "missed": sorted(sorted(p) for p in truth - found),
        "false": sorted(sorted(p) for p in found - truth),
    }


def window_time(size: int = 10_000, checks: int = 50, seed: int = 17) -> dict:
    """Milliseconds to check one report against `size` children in the window (the matching alone, no database)."""
    rng = random.Random(seed)
    reports, _ = sample(seed, reports=size + checks, planted=0)
    rng.shuffle(reports)
    window = [k for r in reports[:size] for k in keys(r)]
    timings = []
    for report in reports[size:]:
        new = keys(report)
        started = time.perf_counter()
        candidates(new, window)
        timings.append((time.perf_counter() - started) * 1000)
    return {"window": len(window), "checks": checks, "median_ms": round(statistics.median(timings), 2), "max_ms": round(max(timings), 2)}


async def with_database(size: int = 10_000, checks: int = 5, seed: int = 17, db_url: str | None = None, batch: int = 1) -> dict:
    """Milliseconds for intake's check of `batch` new reports (one call, as the background loop makes it) against `size`
    reports of its commune in the database: per check, and per report checked."""
    from services.intake import service
    from services.intake.app import MIGRATIONS
    from services.intake.models import Incident, outbox_message
    from shared.db import make_engine, make_sessionmaker
    from shared.migrate import upgrade
    from shared.uow import UnitOfWork

    reports, _ = sample(seed, reports=size + checks * batch, planted=0)
    with tempfile.TemporaryDirectory() as scratch:
        url = db_url or f"sqlite+aiosqlite:///{scratch}/intake.db"
        await asyncio.to_thread(upgrade, MIGRATIONS, url)
        engine = make_engine(url)
        sessionmaker = make_sessionmaker(engine)
        now = max(r.received_at for r in reports)
        rows = [_row(r, now, pending=False) for r in reports[:size]]
        async with sessionmaker() as session, session.begin():
            for start in range(0, len(rows), 1000):
                await session.execute(Incident.__table__.insert(), rows[start : start + 1000])
        timings = []
        for start in range(size, size + checks * batch, batch):
            async with sessionmaker() as session, session.begin():
                await session.execute(Incident.__table__.insert(), [_row(report, now, pending=True) for report in reports[start : start + batch]])
            started = time.perf_counter()
            uow = UnitOfWork(sessionmaker, outbox_message, lambda: None)
            async with uow:
                assert await service.check_duplicates(uow, DEFAULT_THRESHOLD, now) == batch
            timings.append((time.perf_counter() - started) * 1000)
        await engine.dispose()
    median = statistics.median(timings)
    return {
        "database": url.split(":")[0], "window": size, "batch": batch, "checks": checks, "median_ms": round(median, 1),
        "max_ms": round(max(timings), 1), "median_ms_per_report": round(median / batch, 1),
    }


def _row(report: Report, now: datetime, *, pending: bool) -> dict:
    return {
        "id": str(uuid.uuid4()) if not pending else report.incident_id + "-" + uuid.uuid4().hex[:8], "report_id": None,
        "reported_by": "25349.school.th-minh-tam-a", "commune_code": "25349", "hamlet": report.hamlet, "category": "violence",
        "urgency": "high", "channel": "school", "occurred_at": None, "received_at": now if pending else report.received_at,
        "status": "received", "description": "bench", "children": [report.child], "reporter": None, "consent": None,
        "duplicates_pending": pending,
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--window", type=int, default=10_000)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--batch", type=int, default=100, help="reports checked in one call for with_database_batch (default 100)")
    parser.add_argument("--db-url", default=None, help="an empty intake database for the with_database timing (default: SQLite)")
    args = parser.parse_args()
    results = {
        "sample": precision_recall(args.seed, args.threshold),
        "one_check": window_time(args.window, seed=args.seed),
        "with_database": asyncio.run(with_database(args.window, seed=args.seed, db_url=args.db_url)),
        "with_database_batch": asyncio.run(with_database(args.window, seed=args.seed, db_url=args.db_url, batch=args.batch)),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    cli()
