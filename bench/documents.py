"""The report documents: how long the commune's report and the district's consolidated report take to produce.

Run: .venv/bin/python -m bench.documents [--runs 20] [--incidents 60] [--png docs]

Reporting runs in process (SQLite in a temporary folder, the API through httpx's ASGI transport, no broker): three
communes of district 694 get a 2025-6M of incidents and the units' activities, the figures are generated, Minh Tâm's
report is drafted, submitted, approved by a deputy chairman and sent. Then each document is asked for `--runs` times
over HTTP, as DOCX and as PDF (template filled, PDF laid out by WeasyPrint), and the p50 and p95 are printed. With
--png, the first page of each PDF is written as a PNG (pdftoppm, 60 dpi) into that folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx

from services.reporting import revisions
from services.reporting.app import MIGRATIONS, create_runtime
from services.reporting.fold import handle_events
from shared.auth import issue_token
from shared.db import make_sessionmaker
from shared.events import (
    ActivityRecorded,
    AssignmentAcknowledged,
    ChildCase,
    ChildFacts,
    IncidentCase,
    IncidentClosureRecorded,
    IncidentFacts,
    IncidentReported,
)
from shared.migrate import upgrade
from shared.plans import ActivityCounts, load_plan
from shared.runtime import AUTH_MIGRATIONS
from shared.settings import CommonSettings, ReportingSettings

VN = timezone(timedelta(hours=7))
COMMUNES = ("25339", "25348", "25349")
CATEGORIES = ("violence", "sexual_abuse", "school_violence", "neglect", "online_abuse", "injury", "drowning", "abandonment")
NARRATIVE = {
    "situation": "Toàn xã có 1.245 trẻ em dưới 16 tuổi, trong đó 38 trẻ em có hoàn cảnh đặc biệt. Tình hình trẻ em trên địa bàn "
                 "cơ bản ổn định; công tác bảo vệ, chăm sóc trẻ em được cấp ủy, chính quyền quan tâm chỉ đạo.",
    "results": "Các ban, ngành, đoàn thể và các ấp, sóc đã triển khai nhiệm vụ được giao theo Kế hoạch; kết quả cụ thể tại Bảng 1.",
    "incidents": "Các vụ việc được tiếp nhận qua Tổng đài 111, điện thoại và trực tiếp; được phân công xử lý, theo dõi đến khi kết thúc.",
    "assessment": "Ưu điểm: sự phối hợp giữa các đơn vị chặt chẽ, vụ việc được tiếp nhận kịp thời. Hạn chế: một số ấp báo cáo chậm; "
                  "kinh phí và nhân lực làm công tác trẻ em còn hạn chế.",
    "next_tasks": "Tiếp tục tuyên truyền phòng, chống xâm hại, tai nạn thương tích, đuối nước trẻ em; tổ chức các hoạt động hè.",
    "recommendations": "Đề nghị UBND huyện hỗ trợ kinh phí tập huấn kỹ năng cho cộng tác viên công tác trẻ em ở ấp, sóc.",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=20, help="requests per document and format")
    parser.add_argument("--incidents", type=int, default=60, help="incidents per commune in the period")
    parser.add_argument("--png", type=Path, default=None, help="folder for the first pages as PNG (e.g. docs)")


def events_of(commune: str, count: int, rng: random.Random) -> list:
    out = []
    for _ in range(count):
        day = datetime(2024, 11, 1, 8) + timedelta(days=rng.randrange(180), hours=rng.randrange(10))
        incident_id = str(uuid.uuid4())
        kids = [(rng.choice(("male", "female")), rng.choice(("0-5", "6-10", "11-15", "16-17"))) for _ in range(rng.choice((1, 1, 2)))]
        facts = IncidentFacts(
            commune_code=commune, hamlet=None, category=rng.choice(CATEGORIES), urgency=rng.choice(("emergency", "high", "medium", "low")),
            channel=rng.choice(("hotline_111", "phone", "in_person")), occurred_at=day.replace(tzinfo=VN),
            received_at=day.replace(tzinfo=VN) + timedelta(hours=1), children=tuple(ChildFacts(sex=s, age_band=a) for s, a in kids),
        )
        case = IncidentCase(description="x", children=tuple(ChildCase(full_name="x", sex=s) for s, _ in kids))
        event = IncidentReported(incident_id=incident_id, reported_by=f"{commune}.police", facts=facts, case=case)
        out.append((event, event.envelope(correlation_id=incident_id, producer="intake")))
        at = day.replace(tzinfo=VN) + timedelta(hours=2)
        ack = AssignmentAcknowledged(
            incident_id=incident_id, assignment_id=str(uuid.uuid4()), unit_id=f"{commune}.police", unit_type="police", role="lead",
            commune_code=commune, by=f"{commune}.police", at=at, due_at=at + timedelta(minutes=rng.choice((-30, 60))),
            assigned_at=at - timedelta(minutes=15),
        )
        out.append((ack, ack.envelope(correlation_id=incident_id, producer="routing")))
        if rng.random() < 0.6:
            closed = IncidentClosureRecorded(incident_id=incident_id, commune_code=commune, risk_level="low", at=at + timedelta(days=3))
            out.append((closed, closed.envelope(correlation_id=incident_id, producer="routing")))
    plan = load_plan("25349", 2025)
    for task in plan.tasks:
        for kind in task.kinds[:2]:
            counts = {f: rng.randrange(1, 40) for f in plan.kinds[kind].fields}
            if "participants_total" in counts:
                counts["participants_male"] = rng.randrange(counts["participants_total"] + 1)
                counts["participants_female"] = counts["participants_total"] - counts["participants_male"]
                counts["participants_under_16"], counts["participants_16_17"] = counts["participants_total"], 0
                counts["participants_adult"] = 0
            activity_id = str(uuid.uuid4())
            event = ActivityRecorded(
                activity_id=activity_id, revision=1, commune_code=commune, unit_id=f"{commune}.{task.responsible[0]}"
                + (".thcs-minh-tam" if task.responsible[0] == "school" else ""), unit_type=task.responsible[0], task_id=task.id,
                plan_version=plan.version, kind=kind, held_on=datetime(2025, 2, 3).date() + timedelta(days=rng.randrange(80)),
                counts=ActivityCounts(**counts), by=f"{commune}.{task.responsible[0]}", at=datetime(2025, 4, 20, tzinfo=UTC),
            )
            out.append((event, event.envelope(correlation_id=activity_id, producer="intake")))
    return out


def percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {"p50_ms": round(1000 * statistics.median(samples), 1), "p95_ms": round(1000 * samples[int(0.95 * (len(samples) - 1))], 1)}


async def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        common = CommonSettings(data_dir=Path(folder))
        database_url = f"sqlite+aiosqlite:///{folder}/reporting.db"
        await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
        await asyncio.to_thread(upgrade, AUTH_MIGRATIONS, common.auth_url())
        runtime = create_runtime(ReportingSettings(database_url=database_url, common=common))
        now = [datetime(2025, 5, 2, tzinfo=UTC)]
        runtime.api.state.clock = lambda: now[0]
        rng = random.Random(16)
        async with runtime.sessionmaker() as session, session.begin():
            for commune in COMMUNES:
                await handle_events(session, events_of(commune, args.incidents, rng), clock=lambda: now[0])
        state = runtime.api.state
        await revisions.generate_due_reports(runtime, state.hierarchy, state.plans, clock=lambda: now[0])
        subjects = {"cp": ("unit", "25349.cp_officer"), "chair": ("unit", "25349.chairman"), "district": ("district", "694")}
        async with make_sessionmaker(runtime.auth_engine)() as session, session.begin():
            tokens = {k: await issue_token(session, kind, subject, label="bench") for k, (kind, subject) in subjects.items()}
        results = {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.api), base_url="http://reporting", timeout=120) as client:

            async def call(method: str, path: str, who: str, **kwargs) -> httpx.Response:
                response = await client.request(method, path, headers={"Authorization": f"Bearer {tokens[who]}"}, **kwargs)
                response.raise_for_status()
                return response

            base = "/v1/reports/25349/2025-6M/document"
            await call("PUT", base, "cp", json={"narrative": NARRATIVE, "number": "45/BC-UBND"})
            await call("POST", f"{base}/submit", "cp")
            await call("POST", f"{base}/approve", "chair", json={"signer_name": "Nguyễn Quốc Trung", "signed_as": "deputy"})
            now[0] = datetime(2025, 5, 8, 2, tzinfo=UTC)
            await call("POST", f"{base}/send", "cp")
            now[0] = datetime(2025, 5, 11, 2, tzinfo=UTC)
            documents = {
                "commune": ("/v1/reports/25349/2025-6M/latest/export", "cp"),
                "district": ("/v1/consolidated/694/2025-6M", "district"),
            }
            for name, (path, who) in documents.items():
                for fmt in ("docx", "pdf"):
                    times, content = [], b""
                    for _ in range(args.runs):
                        started = time.perf_counter()
                        content = (await call("GET", path, who, params={"format": fmt})).content
                        times.append(time.perf_counter() - started)
                    results[f"{name}_{fmt}"] = {**percentiles(times), "bytes": len(content), "runs": args.runs}
                    if fmt == "pdf":
                        pdf = Path(folder) / f"{name}.pdf"
                        pdf.write_bytes(content)
                        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
                        results[f"{name}_pdf"]["pages"] = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
                        if args.png is not None:
                            target = args.png / f"report-{name}"
                            subprocess.run(["pdftoppm", "-r", "60", "-png", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(target)], check=True)
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))  # noqa: T201


if __name__ == "__main__":
    cli()
