"""/readyz answers in time even when the broker does not: right after a reconnection to another cluster node the
connection may still be restoring its channels (or a quorum queue electing its leader), and a passive declare
waits. Kubernetes gives the probe 5 s; a probe that times out learns nothing (tests/cluster measured it)."""

from __future__ import annotations

import asyncio
import time

from tests.support import make_runtime


class _HangingConnection:
    """A broker connection that says it is connected but never opens a channel."""

    def __init__(self) -> None:
        self.asked = 0

    async def channel(self):
        self.asked += 1
        await asyncio.Event().wait()


async def test_readiness_names_the_stuck_broker_checks_within_the_probes_timeout(tmp_path):
    runtime = make_runtime("routing", tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'routing.db'}")
    hanging = _HangingConnection()

    async def connected(timeout=None) -> bool:
        return True

    runtime.broker.ping = connected
    runtime.broker._connection = hanging  # noqa: SLF001 - the probe's throwaway channels come from here
    try:
        started = time.monotonic()
        checks = await asyncio.wait_for(runtime.readiness(), 10)
        took = time.monotonic() - started
    finally:
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()
    assert took < 4.5, took
    assert checks["database"] == "ok" and checks["broker"] == "ok"
    # routing has two queues: both checked (side by side: the answer came within one check's bound), both stuck.
    assert {k: v for k, v in checks.items() if k.startswith("consumer:")} == {
        "consumer:routing.incidents": "unknown: TimeoutError",
        "consumer:routing.notify": "unknown: TimeoutError",
    }
    assert hanging.asked == 2 and took < 2 * 2.0
