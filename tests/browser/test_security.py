"""What the console refuses: writes started by another site, a case of another unit, acts of a signed-out session."""

from __future__ import annotations

import re
from contextlib import closing

import httpx

from tests.browser.conftest import PASSWORD, PORTS, console_url, eventually, sign_in
from tests.support import incident_payload


def signed_in(username: str) -> httpx.Client:
    """A plain HTTP client with a console session, as a browser on our own pages would have."""
    client = httpx.Client(base_url=console_url(), headers={"Sec-Fetch-Site": "same-origin"}, timeout=10)
    form = client.get("/login").text
    answer = client.post("/login", data={"csrf_token": csrf_of(form), "username": username, "password": PASSWORD})
    assert answer.status_code == 303 and answer.headers["location"] == "/", answer.text
    return client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)


def report(system) -> str:
    with system.http("intake", "25349.police") as http:
        answer = http.post("/v1/incidents", json=incident_payload(commune_code="25349", category="violence"))
    assert answer.status_code == 202, answer.text
    return answer.json()["incident_id"]


def pending_of(system, unit: str, incident_id: str) -> dict:
    """The unit's assignment for the incident, once routing has made it."""

    def find():
        with system.http("routing", unit) as http:
            items = http.get(f"/v1/agencies/{unit}/assignments", params={"limit": 500}).json()["items"]
        return next((a for a in items if a["incident_id"] == incident_id), None)

    return eventually(find, what=f"the incident in {unit}'s inbox")


def test_headers_cookie_and_no_inline_code(console_system):
    with closing(signed_in("b-police")) as client:
        cookie = next(h for h in client.cookies.jar)
        assert cookie.name == "baove_session" and cookie.has_nonstandard_attr("HttpOnly")
        page = client.get("/inbox")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "an inline script"
    assert " style=" not in page.text and "<style" not in page.text, "an inline style"
    assert '<html lang="vi">' in page.text


def test_a_cross_site_post_is_refused(console_system, browser):
    incident_id = report(console_system)
    assignment = pending_of(console_system, "25349.police", incident_id)
    with closing(signed_in("b-police")) as client:
        token = csrf_of(client.get("/inbox").text)
        form = {"csrf_token": token, "assignment_id": assignment["assignment_id"], "action": "acknowledge"}
        for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}, {"Origin": "http://evil.example"}):
            answer = client.post(f"/cases/{incident_id}", data=form, headers=headers)
            assert answer.status_code == 403, headers
        # Without the form's token, even from our own origin.
        assert client.post(f"/cases/{incident_id}", data={**form, "csrf_token": "0" * 64}).status_code == 403
    # A real browser: a page of another site (localhost is not 127.0.0.1) posts a form to the console.
    context, page = sign_in(browser, "b-police")
    page.goto(f"http://localhost:{PORTS['console']}/login")
    with page.expect_navigation():
        page.evaluate(
            """([url, id]) => { const f = document.createElement('form'); f.method = 'post'; f.action = url;
               for (const [k, v] of [['action', 'acknowledge'], ['assignment_id', id]]) {
                 const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }
               document.body.appendChild(f); f.submit(); }""",
            [console_url(f"/cases/{incident_id}"), assignment["assignment_id"]],
        )
    assert "bị từ chối" in page.content()
    context.close()
    assert pending_of(console_system, "25349.police", incident_id)["status"] == "pending"


def test_another_units_case_answers_404(console_system):
    incident_id = report(console_system)
    with closing(signed_in("b-police-other")) as client:
        theirs = client.get(f"/cases/{incident_id}")
        missing = client.get("/cases/00000000-0000-0000-0000-000000000000")
    assert theirs.status_code == missing.status_code == 404
    assert "Không tìm thấy" in theirs.text and "violence" not in theirs.text


def test_a_signed_out_session_cannot_act(console_system):
    incident_id = report(console_system)
    assignment = pending_of(console_system, "25349.police", incident_id)
    client = signed_in("b-police")
    token = csrf_of(client.get("/inbox").text)
    old_cookie = client.cookies["baove_session"]
    assert client.post("/logout", data={"csrf_token": token}).headers["location"] == "/login?signed_out=1"
    client.cookies.set("baove_session", old_cookie)
    answer = client.post(f"/cases/{incident_id}", data={
        "csrf_token": token, "assignment_id": assignment["assignment_id"], "action": "acknowledge"})
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    assert client.get("/inbox").headers["location"].startswith("/login")
    client.close()
    assert pending_of(console_system, "25349.police", incident_id)["status"] == "pending"
