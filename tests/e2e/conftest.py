"""The three services as real processes on a test vhost and data folder, driven over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PORTS = {"intake": 18001, "routing": 18002, "reporting": 18003}


class System:
    def __init__(self, data_dir: Path, env: dict[str, str], tokens: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = env
        self.tokens = tokens
        self.processes: dict[str, subprocess.Popen] = {}
        self.overrides: dict[str, dict[str, str]] = {}  # a service's own environment, kept across restarts
        self.posted: Counter[str] = Counter()  # incidents accepted per commune, for the summaries

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{PORTS[service]}"

    def http(self, service: str, token_of: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[token_of]}"} if token_of else {}
        return httpx.Client(base_url=self.url(service), headers=headers, timeout=10)

    def start(self, service: str) -> None:
        log = open(self.data_dir / f"{service}.log", "ab")
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", service, "--no-migrate"],
            env={**self.env, **self.overrides.get(service, {})}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()

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
        process.kill()
        process.wait(10)

    def wait_ready(self, service: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.processes[service].poll() is not None:
                raise AssertionError(f"{service} exited: {self.log(service)[-2000:]}")
            try:
                last = httpx.get(self.url(service) + "/readyz", timeout=2)
                if last.status_code == 200:
                    return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.1)
        raise AssertionError(f"{service} not ready in {timeout}s: {last}")

    def stop(self, service: str) -> None:
        process = self.processes.pop(service)
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()

    def log(self, service: str) -> str:
        return (self.data_dir / f"{service}.log").read_text(errors="replace")


def sign_in_demo_people(system: System) -> dict[str, str]:
    """A session per demo person, signed in as an official would (POST /v1/sessions), by the principal they act as."""
    tokens = {}
    with httpx.Client(base_url=system.url("intake"), timeout=30) as http:
        for line in (system.data_dir / "demo-people.txt").read_text(encoding="utf-8").splitlines():
            username, password, label = line.split("\t")
            answer = http.post("/v1/sessions", json={"username": username, "password": password})
            assert answer.status_code == 201, answer.text
            tokens[label] = answer.json()["token"]
    return tokens


def baove(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def system(amqp_url, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("baove")
    env = {
        **os.environ,
        "BAOVE_DATA_DIR": str(data_dir),
        "BAOVE_AMQP_URL": amqp_url,
        # Tests post many reports with one token and sign every demo person in at once; the limits are tested in tests/integration.
        "BAOVE_INTAKE_RATE_LIMIT_PER_MINUTE": "0",
        "BAOVE_INTAKE_SIGN_IN_PER_MINUTE": "0",
        **{f"BAOVE_{s.upper()}_PORT": str(p) for s, p in PORTS.items()},
    }
    baove(env, "migrate")
    baove(env, "demo")
    running = System(data_dir, env, {})
    for service in PORTS:
        running.start(service)
    try:
        for service in PORTS:
            running.wait_ready(service)
        running.tokens.update(sign_in_demo_people(running))
        assert {"25349.police", "district:694", "admin"} <= set(running.tokens)
        yield running
    finally:
        for service in list(running.processes):
            running.stop(service)
