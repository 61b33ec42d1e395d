"""The three services as real processes on a test vhost and data folder, driven over HTTP."""

from __future__ import annotations

import pytest

from tests.harness import running

PORTS = {"intake": 18001, "routing": 18002, "reporting": 18003}


@pytest.fixture(scope="module")
def system(amqp_url, tmp_path_factory):
    with running(tmp_path_factory.mktemp("baove"), amqp_url, PORTS, log_level="INFO") as started:
        # The e2e tests act as the demo's people, signed in over HTTP, not with machine tokens.
        started.tokens.update(started.sign_in_demo_people())
        assert {"25349.police", "district:694", "admin"} <= started.tokens.keys()
        yield started
