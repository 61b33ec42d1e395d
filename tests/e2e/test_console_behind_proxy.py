"""The console behind the TLS proxy that deploy/README.md asks for: its cookies are Secure when that proxy, and only a
proxy listed in BAOVE_TRUSTED_PROXIES, says the browser came over HTTPS (X-Forwarded-Proto)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.harness import ROOT

PROXY, STRANGER = "127.0.0.2", "127.0.0.3"  # Linux answers the whole 127/8 on loopback: two "other hosts"


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path_factory.mktemp("console")
    env = {**os.environ, "BAOVE_DATA_DIR": str(data), "BAOVE_CONSOLE_PORT": str(port), "BAOVE_TRUSTED_PROXIES": PROXY}
    env.pop("FORWARDED_ALLOW_IPS", None)
    with (data / "console.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "services.cli", "run", "console"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (data / "console.log").read_text()[-2000:]
            time.sleep(0.3)
        yield port
    finally:
        process.terminate()
        process.wait(30)


def login_cookie(port: int, source: str, https: bool) -> str:
    """The Set-Cookie of the sign-in page, asked from `source` as if a proxy forwarded it."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), base_url=f"http://127.0.0.1:{port}") as client:
        answer = client.get("/login", headers={"X-Forwarded-Proto": "https"} if https else {})
    assert answer.status_code == 200
    return answer.headers["set-cookie"]


def test_https_at_the_trusted_proxy_makes_the_cookie_secure(console):
    assert "secure" in login_cookie(console, PROXY, https=True).lower()


def test_plain_http_or_an_untrusted_claim_of_https_is_not_believed(console):
    assert "secure" not in login_cookie(console, PROXY, https=False).lower()
    assert "secure" not in login_cookie(console, STRANGER, https=True).lower()
