"""Each HTTP request is counted under the template of the route that answered it, never the raw path."""

from __future__ import annotations

import re

import pytest

from tests.support import client, make_runtime


def v1_routes(runtime) -> list[tuple[str, str]]:
    """(method, template) of each /v1 operation the service publishes (included routers are not in `app.routes`)."""
    paths = runtime.api.openapi()["paths"]
    return sorted((method.upper(), path) for path, operations in paths.items() if path.startswith("/v1/") for method in operations)


@pytest.mark.parametrize("service", ["intake", "routing", "reporting"])
async def test_every_v1_route_is_labelled_with_its_template(service, tmp_path):
    runtime = make_runtime(service, tmp_path)
    routes = v1_routes(runtime)
    assert routes, f"{service} serves no /v1 route"
    async with client(runtime) as http:
        for method, template in routes:
            # Placeholders stand for ids; without a token (or, for sign-in, without a body) each answer is a 4xx
            # from the route itself: 401 from its token dependency or 422 from its body's validation, never 404/405.
            answer = await http.request(method, re.sub(r"\{(\w+)\}", r"\1-1", template))
            assert answer.status_code in (401, 422), (method, template, answer.status_code)
        await http.get("/v1/no-such-route")
        text = (await http.get("/metrics")).text
    labelled = set(re.findall(r'baove_http_requests_total\{method="(\w+)",route="([^"]*)",status="4xx"\}', text))
    assert labelled == {*routes, ("GET", "unmatched")}, "each request under its route's template, the unknown path as unmatched"
    assert 'route="other"' not in text


async def test_an_inbox_read_is_labelled_with_the_inbox_template(tmp_path):
    runtime = make_runtime("routing", tmp_path)
    async with client(runtime) as http:
        await http.get("/v1/agencies/25349.police/assignments")
        text = (await http.get("/metrics")).text
    assert 'baove_http_requests_total{method="GET",route="/v1/agencies/{unit_id}/assignments",status="4xx"} 1.0' in text
    assert "25349.police" not in text
