"""The three services as processes on their own vhost and data folder: for the e2e and chaos tests and the benchmark.

The benchmark imports this module; nothing here imports from bench/.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("intake", "routing", "reporting")
AMQP_BASE = "amqp://guest:guest@127.0.0.1:5672/"


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_pid() -> int | None:
    """The RabbitMQ node's Erlang VM (beam.smp), for its CPU time."""
    found = subprocess.run(["pgrep", "-f", "beam.smp.*rabbit"], capture_output=True, text=True).stdout.split()
    return int(found[0]) if found else None


def rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    return subprocess.run([ctl, *args], capture_output=True, text=True, check=check, timeout=180)


@contextmanager
def vhost(base_url: str = AMQP_BASE) -> Iterator[str]:
    """A throw-away vhost, so a run never touches a live system's queues."""
    name = f"baove-run-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield base_url.rstrip("/") + "/" + name
    finally:
        rabbitmqctl("delete_vhost", name, check=False)


def free_ports() -> dict[str, int]:
    """Ports nothing listens on, so a run may go on beside another run of the suite."""
    sockets = [socket.socket() for _ in SERVICES]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return {service: sock.getsockname()[1] for service, sock in zip(SERVICES, sockets, strict=True)}
    finally:
        for sock in sockets:
            sock.close()


class System:
    """The three services as child processes, with the demo units' tokens."""

    def __init__(
        self, data_dir: Path, amqp_url: str, ports: dict[str, int], extra_env: dict[str, str] | None = None, log_level: str = "WARNING"
    ) -> None:
        self.data_dir = data_dir
        self.ports = ports
        self.env = {
            **os.environ,
            "BAOVE_DATA_DIR": str(data_dir),
            "BAOVE_AMQP_URL": amqp_url,
            # Load runs keep their logs short; the e2e tests read the services' INFO lines.
            "BAOVE_LOG_LEVEL": os.environ.get("BAOVE_LOG_LEVEL", log_level),
            # One token posts thousands of reports here; the limit itself is tested in tests/integration.
            "BAOVE_INTAKE_RATE_LIMIT_PER_MINUTE": "0",
            # The e2e tests sign every demo person in at once; the sign-in limits are tested in tests/integration.
            "BAOVE_INTAKE_SIGN_IN_PER_MINUTE": "0",
            **{f"BAOVE_{s.upper()}_PORT": str(p) for s, p in ports.items()},
            **(extra_env or {}),
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.overrides: dict[str, dict[str, str]] = {}  # a service's own environment, kept across restarts
        self.tokens: dict[str, str] = {}
        self.posted: Counter[str] = Counter()  # incidents accepted per commune, for the summaries

    def run_cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """`baove ARGS` in this system's environment, whatever its exit code."""
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )

    def cli(self, *args: str) -> str:
        """The output of `baove ARGS`, which must succeed."""
        done = self.run_cli(*args)
        if done.returncode != 0:
            raise RuntimeError(f"baove {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def prepare(self) -> None:
        """Migrate the databases and register the demo units, keeping their tokens."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.cli("migrate")
        self.cli("demo")
        self.issue_tokens()

    def issue_tokens(self) -> None:
        """Keep a machine token per demo principal (the demo units must be loaded: `baove demo` or `up --demo`)."""
        # In a thread of its own: this is also called from async tests, inside a running loop.
        with ThreadPoolExecutor(1) as pool:
            self.tokens = pool.submit(asyncio.run, self._machine_tokens()).result()

    async def _machine_tokens(self) -> dict[str, str]:
        """A machine token named "bench" per demo principal (the demo itself mints none), by principal label."""
        from shared import people
        from shared.auth import principal_label
        from shared.db import make_engine, make_sessionmaker
        from shared.reference import load_demo_units
        from shared.settings import normalise_url

        subjects = [("unit", u.id) for u in load_demo_units()] + [("district", "694"), ("admin", "admin")]
        url = self.env.get("BAOVE_AUTH_DATABASE_URL")
        engine = make_engine(normalise_url(url) if url else f"sqlite+aiosqlite:///{(self.data_dir / 'auth.db').resolve()}")
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                return {
                    principal_label(kind, subject): (await people.issue_machine_token(session, kind, subject, "bench", 1))[0]
                    for kind, subject in subjects
                }
        finally:
            await engine.dispose()

    def sign_in_demo_people(self) -> dict[str, str]:
        """A session per demo person, signed in as an official would (POST /v1/sessions), by the principal they act as."""
        tokens = {}
        with httpx.Client(base_url=self.url("intake"), timeout=30) as http:
            for line in (self.data_dir / "demo-people.txt").read_text(encoding="utf-8").splitlines():
                username, password, label = line.split("\t")
                answer = http.post("/v1/sessions", json={"username": username, "password": password})
                assert answer.status_code == 201, answer.text
                tokens[label] = answer.json()["token"]
        return tokens

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def http(self, service: str, token_of: str | None = None) -> httpx.Client:
        """A client for one service, with the bearer token of `token_of` when given."""
        headers = {"Authorization": f"Bearer {self.tokens[token_of]}"} if token_of else {}
        return httpx.Client(base_url=self.url(service), headers=headers, timeout=10)

    def start(self, service: str) -> None:
        with open(self.data_dir / f"{service}.log", "ab") as log:
            self.processes[service] = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "run", service, "--no-migrate"],
                env={**self.env, **self.overrides.get(service, {})}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
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

    def restart(self, service: str, **env_overrides: str) -> None:
        """Stop the service, start it again with these variables (kept for later starts) and wait until ready."""
        if service in self.processes:
            self.stop(service)
        self.overrides[service] = env_overrides
        self.start(service)
        self.wait_ready(service)

    def kill(self, service: str) -> None:
        """SIGKILL: no shutdown, no draining, as a crash or an OOM kill would end it."""
        process = self.processes.pop(service)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

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

    def cpu_seconds(self, service: str) -> float:
        """CPU time (user + system) the service has used so far."""
        return process_cpu_seconds(self.processes[service].pid)

    def log(self, service: str) -> str:
        path = self.data_dir / f"{service}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def db(self, service: str) -> str:
        """The service's database URL: its BAOVE_<SERVICE>_DATABASE_URL when set (PostgreSQL), else its SQLite file."""
        return self.env.get(f"BAOVE_{service.upper()}_DATABASE_URL") or f"sqlite+aiosqlite:///{self.data_dir / f'{service}.db'}"


class Receiver:
    """A local webhook endpoint: answers each request with the next scripted status (then 204), keeps what came and when.

    `on_request`, given the request's number, runs before it is kept and answered (the chaos test kills the sender
    there, mid-batch); when it returns False the request is lost: neither kept nor answered. The notifier's tests,
    the chaos test and the notification benchmark use it.
    """

    def __init__(self, statuses: list[int] | None = None, on_request: Callable[[int], bool | None] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.on_request = on_request
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.arrived: list[float] = []  # time.time() of each request, in the order of `requests`
        self.server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hooks/baove"

    async def received(self) -> list:
        """(For `eventually`: an async check lets the loop serve while it waits.)"""
        return self.requests

    async def __aenter__(self) -> Receiver:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=512)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")[1:]
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return  # the sender went away before the request was whole: nothing arrived
        if self.on_request and self.on_request(len(self.requests) + 1) is False:
            writer.close()
            return  # lost on the way in: neither kept nor answered
        self.requests.append((headers, body))
        self.arrived.append(time.time())
        status = self.statuses.pop(0) if self.statuses else 204
        with suppress(ConnectionError):
            writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode())
            await writer.drain()
        writer.close()


@contextmanager
def running(data_dir: Path, amqp_url: str, ports: dict[str, int], **options) -> Iterator[System]:
    """A prepared system with its three services ready (`options` as for `System`); stopped on leaving."""
    system = System(data_dir, amqp_url, ports, **options)
    system.prepare()
    try:
        system.start_all()
        yield system
    finally:
        system.stop_all()


async def paced(n: int, rate: float | None):
    """Job numbers 0..n-1 for several workers to take in turn; with `rate`, each no earlier than its slot (open loop)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    start = time.monotonic()

    async def take() -> int | None:
        if queue.empty():
            return None
        i = queue.get_nowait()
        if rate:
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        return i

    return take


async def post_incidents(
    system: System, payloads: list[dict], *, concurrency: int = 32, unit: str = "25349.police", rate: float | None = None,
    refusals: list[float] | None = None, intakes: list[str] | None = None,
) -> list[tuple[str | None, float, int]]:
    """Post reports as a careful client would: retry 503 and lost connections with the same report_id.

    Returns (incident id or None, time of the answer, status) per report; `rate` paces an open loop
    (per second); each 503 met on the way is noted in `refusals`. With several `intakes` (replicas' base URLs)
    the reports go to them in turn and each retry to the next one, as a load balancer would send them.
    """
    results: list[tuple[str | None, float, int]] = [(None, 0.0, 0)] * len(payloads)
    headers = {"Authorization": f"Bearer {system.tokens[unit]}"}
    take = await paced(len(payloads), rate)
    bases = intakes or [system.url("intake")]

    async def worker(http: httpx.AsyncClient) -> None:
        while (i := await take()) is not None:
            for attempt in itertools.count(i):
                try:
                    answer = await http.post(bases[attempt % len(bases)] + "/v1/incidents", json=payloads[i], headers=headers)
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
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return results
