"""`baove up --demo` under load: each of its four services SIGKILLed in turn comes back by itself within 10 s,
the others keep answering, and nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from tests.chaos.conftest import N, check, db_urls, payloads, settle, summary_total
from tests.harness import ROOT, System, post_incidents, vhost

PORTS = {"intake": 18221, "routing": 18222, "reporting": 18223, "console": 18224}
KILLED_IN_TURN = ("intake", "routing", "reporting", "console")
BACK_WITHIN = 10.0


def service_pids(up_pid: int) -> dict[str, int]:
    """The services `up` runs, by name, from its children's command lines."""
    found = {}
    for pid in Path(f"/proc/{up_pid}/task/{up_pid}/children").read_text().split():
        with suppress(FileNotFoundError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            if "run" in argv:
                found[argv[argv.index("run") + 1]] = int(pid)
    return found


async def answers(http: httpx.AsyncClient, service: str, probe: str) -> bool:
    try:
        return (await http.get(f"http://127.0.0.1:{PORTS[service]}{probe}", timeout=2)).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def up(tmp_path, amqp_url):
    """`baove up --demo` on a vhost and data folder of its own, in its own process group; stopped (or killed) after."""
    base = amqp_url.rsplit("/", 1)[0] + "/"
    with vhost(base) as own_url:
        system = System(tmp_path / "up", own_url, {s: PORTS[s] for s in ("intake", "routing", "reporting")},
                        {"BAOVE_CONSOLE_PORT": str(PORTS["console"]), "BAOVE_LOG_LEVEL": "INFO"})
        system.data_dir.mkdir(parents=True)
        with open(system.data_dir / "up.log", "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--demo"], env=system.env, cwd=ROOT,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield system, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(40)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # any service left behind


async def test_each_service_sigkilled_under_up_is_back_within_10_s_and_nothing_is_lost_or_doubled(up):
    system, process = up
    async with httpx.AsyncClient() as http:
        deadline = time.monotonic() + 120
        while not all([await answers(http, s, "/readyz") for s in PORTS]):
            assert process.poll() is None, system.log("up")[-3000:]
            assert time.monotonic() < deadline, system.log("up")[-3000:]
            await asyncio.sleep(0.2)
    await asyncio.to_thread(system.issue_tokens)
    recovery: dict[str, float] = {}
    respawned: dict[str, float] = {}
    others_refused: dict[str, int] = {}
    others_asked: dict[str, int] = {}

    async def attack() -> None:
        async with httpx.AsyncClient() as http:
            for victim in KILLED_IN_TURN:
                await asyncio.sleep(3)
                old = service_pids(process.pid)[victim]
                os.kill(old, signal.SIGKILL)
                killed_at = time.monotonic()
                others = [s for s in PORTS if s != victim]
                others_asked[victim] = others_refused[victim] = 0
                while True:
                    for other in others:  # liveness only: the console's readiness needs all three APIs
                        others_asked[victim] += 1
                        others_refused[victim] += not await answers(http, other, "/healthz")
                    if service_pids(process.pid).get(victim, old) != old:
                        respawned.setdefault(victim, time.monotonic() - killed_at)
                    if victim in respawned and await answers(http, victim, "/readyz"):
                        recovery[victim] = time.monotonic() - killed_at
                        break
                    assert time.monotonic() - killed_at < 60, f"{victim} not back: {system.log('up')[-3000:]}"
                    await asyncio.sleep(0.1)

    # An open loop of ~40 s, so that every kill falls while reports are being posted.
    answered, _ = await asyncio.gather(post_incidents(system, payloads(N, "up"), concurrency=16, rate=N / 40), attack())
    accepted = {incident_id for incident_id, _, status in answered if status == 202}
    outcome = await settle(system, accepted, db_urls(system))
    outcome.submitted = N
    print("\nSIGKILL under `baove up --demo`: " + ", ".join(
        f"{s} back in {recovery[s]:.1f} s (started again after {respawned[s]:.1f} s; others refused {others_refused[s]}/{others_asked[s]} health checks)" for s in KILLED_IN_TURN
    ))
    check(outcome, "baove up, each service SIGKILLed once")
    assert await summary_total(system) == outcome.accepted
    assert all(recovery[s] < BACK_WITHIN for s in KILLED_IN_TURN), recovery
    assert not any(others_refused.values()), others_refused

    process.send_signal(signal.SIGTERM)  # as systemd or Ctrl-C stops it: every service ends, `up` exits 0
    assert await asyncio.to_thread(process.wait, 40) == 0
    said = system.log("up")
    for service in KILLED_IN_TURN:
        assert f"baove up: {service} ended (signal SIGKILL); restart 1 in 0.5 s, the others keep serving" in said
        assert f"baove up: {service} restarted (restart 1, pid " in said
    assert "giving up" not in said
    assert "chaos up " not in said  # the reports' descriptions never reach the log
