"""Run the three services as processes on their own vhost and data folder (for benchmarks and chaos tests)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("intake", "routing", "reporting")


def rabbitmqctl(*args: str) -> None:
    subprocess.run([shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl", *args], check=True, capture_output=True)


@contextmanager
def vhost(base_url: str = "amqp://guest:guest@127.0.0.1:5672/") -> Iterator[str]:
    """A throw-away vhost, so a run never touches a live system's queues."""
    name = f"baove-run-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield base_url.rstrip("/") + "/" + name
    finally:
        subprocess.run([shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl", "delete_vhost", name], capture_output=True)


class System:
    """The three services as child processes, with their tokens."""

    def __init__(self, data_dir: Path, amqp_url: str, ports: dict[str, int], extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.ports = ports
        self.env = {
            **os.environ,
            "BAOVE_DATA_DIR": str(data_dir),
            "BAOVE_AMQP_URL": amqp_url,
            "BAOVE_LOG_LEVEL": os.environ.get("BAOVE_LOG_LEVEL", "WARNING"),
            # One token posts thousands of reports here: lift the per-principal limit.
            "BAOVE_INTAKE_RATE_LIMIT_PER_MINUTE": "0",
            **{f"BAOVE_{s.upper()}_PORT": str(p) for s, p in ports.items()},
            **(extra_env or {}),
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.tokens: dict[str, str] = {}

    def cli(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", *args], env={**self.env, **(env or {})}, cwd=ROOT,
            capture_output=True, text=True, timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"baove {' '.join(args)} failed: {done.stderr[-2000:]}")
        return done.stdout

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.cli("migrate")
        out = self.cli("demo")
        self.tokens = dict(re.findall(r"^\s+(\S+)\s+(bv_\S+)$", out, re.M))

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, service: str, env: dict[str, str] | None = None) -> None:
        log = open(self.data_dir / f"{service}.log", "ab")
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", service, "--no-migrate"],
            env={**self.env, **(env or {})}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )

    def start_all(self) -> None:
        for service in SERVICES:
            self.start(service)
        for service in SERVICES:
            self.wait_ready(service)

    def wait_ready(self, service: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            process = self.processes[service]
            if process.poll() is not None:
                raise RuntimeError(f"{service} exited ({process.returncode}): {self.log(service)[-2000:]}")
            try:
                last = httpx.get(self.url(service) + "/readyz", timeout=2)
                if last.status_code == 200:
                    return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.1)
        raise RuntimeError(f"{service} not ready within {timeout}s: {getattr(last, 'text', last)}")

    def kill(self, service: str) -> None:
        """SIGKILL: no shutdown, no draining, as a crash."""
        process = self.processes.pop(service)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self, service: str) -> None:
        process = self.processes.pop(service)
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for service in list(self.processes):
            self.stop(service)

    def peak_rss_mb(self, service: str) -> float:
        """Peak resident memory of a running service (VmHWM)."""
        status = Path(f"/proc/{self.processes[service].pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024

    def log(self, service: str) -> str:
        path = self.data_dir / f"{service}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def db(self, service: str) -> str:
        return f"sqlite+aiosqlite:///{self.data_dir / f'{service}.db'}"


async def post_incidents(
    system: System, payloads: list[dict], *, concurrency: int = 32, unit: str = "25349.police", rate: float | None = None,
    refusals: list[float] | None = None,
) -> list[tuple[str | None, float, int]]:
    """Post reports as a careful client would: retry 503 and lost connections with the same report_id.

    Returns (incident id or None, time of the answer, status) per report; `rate` paces an open loop
    (per second); each 503 met on the way is noted in `refusals`.
    """
    results: list[tuple[str | None, float, int]] = [(None, 0.0, 0)] * len(payloads)
    headers = {"Authorization": f"Bearer {system.tokens[unit]}"}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(payloads)):
        queue.put_nowait(i)
    start = time.monotonic()

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            if rate:
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            while True:
                try:
                    answer = await http.post("/v1/incidents", json=payloads[i], headers=headers)
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
                    continue
                if answer.status_code == 503:
                    if refusals is not None:
                        refusals.append(time.time())
                    await asyncio.sleep(float(answer.headers.get("retry-after", "1")) / 5)
                    continue
                break
            incident_id = answer.json().get("incident_id") if answer.status_code == 202 else None
            results[i] = (incident_id, time.time(), answer.status_code)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=system.url("intake"), limits=limits, timeout=30) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return results
