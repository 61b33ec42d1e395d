"""The console's figures (printed for docs and the note): server time of the inbox, case and district pages
over 100 requests with 60 incidents in the commune, and the bytes of the first inbox load on a phone."""

from __future__ import annotations

import statistics
import time
from contextlib import closing

from tests.browser.conftest import PASSWORD, PHONE, console_url
from tests.browser.test_security import report, signed_in


def timed(client, path: str, n: int = 100) -> tuple[float, float]:
    """p50 and p95 in milliseconds of `n` GETs of `path` (after one warm-up)."""
    assert client.get(path).status_code == 200
    times = []
    for _ in range(n):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def test_page_times_and_first_inbox_bytes(console_system, browser):
    incident_ids = [report(console_system) for _ in range(60)]
    time.sleep(2)  # routed to the inbox by then
    figures = {}
    with closing(signed_in("b-police")) as police:
        figures["inbox"] = timed(police, "/inbox")
        figures["case"] = timed(police, f"/cases/{incident_ids[0]}")
    with closing(signed_in("b-district")) as district:
        figures["district"] = timed(district, "/districts/694?period=2025")

    # A first visit from a cold cache: the sign-in page, then the inbox; every response as sent (gzip).
    context = browser.new_context(viewport=PHONE, locale="vi-VN")
    page = context.new_page()
    sizes: list[tuple[str, int]] = []

    def count(request) -> None:
        size = request.sizes()
        sizes.append((request.url, size["responseBodySize"] + size["responseHeadersSize"]))

    page.on("requestfinished", count)
    page.goto(console_url("/login"))
    page.get_by_label("Tên đăng nhập").fill("b-police")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    signin_bytes = sum(n for _, n in sizes)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url("**/inbox")
    page.wait_for_load_state("networkidle")
    cold_bytes = sum(n for _, n in sizes)
    context.close()
    for name, (p50, p95) in figures.items():
        print(f"\n{name:<9} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  (100 requests)")
    print(f"first load from a cold cache: sign-in page {signin_bytes} bytes, then the inbox: {cold_bytes} bytes in all "
          f"({len(sizes)} responses)")
    assert cold_bytes < 150_000, f"{cold_bytes} bytes for the first load of the inbox"
