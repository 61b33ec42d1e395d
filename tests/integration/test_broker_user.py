"""A service with its own broker URL connects with it, not with the common one."""

from pydantic import SecretStr

from services.intake.app import create_runtime
from shared.settings import CommonSettings, IntakeSettings


async def test_the_runtime_connects_with_the_services_own_url(tmp_path, amqp_url):
    # The common URL points where no broker listens: only the service's own URL can connect.
    common = CommonSettings(data_dir=tmp_path, amqp_url=SecretStr("amqp://guest:guest@127.0.0.1:1/"))
    runtime = create_runtime(IntakeSettings(amqp_url=SecretStr(amqp_url), common=common, graceful_timeout=5.0))
    try:
        await runtime.broker.connect()
        assert await runtime.broker.ping(timeout=5)
    finally:
        await runtime.broker.stop()
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()
