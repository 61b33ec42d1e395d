"""Each service may connect to the broker as its own user (least privilege): BAOVE_<SERVICE>_AMQP_URL."""

import pytest
from pydantic import SecretStr

from shared.settings import CommonSettings, IntakeSettings, ReportingSettings, RoutingSettings

GUEST = "amqp://guest:guest@127.0.0.1:5672/"


def test_a_service_url_overrides_the_common_one_for_that_service_only(monkeypatch):
    monkeypatch.setenv("BAOVE_AMQP_URL", "amqp://shared:pw@rabbit/baove")
    monkeypatch.setenv("BAOVE_ROUTING_AMQP_URL", "amqp://routing:pw@rabbit/baove")
    assert RoutingSettings().broker_url() == "amqp://routing:pw@rabbit/baove"
    assert IntakeSettings().broker_url() == ReportingSettings().broker_url() == "amqp://shared:pw@rabbit/baove"


def test_the_service_url_is_a_secret_in_reprs(monkeypatch):
    monkeypatch.setenv("BAOVE_INTAKE_AMQP_URL", "amqp://intake:hunter2@rabbit/baove")
    assert "hunter2" not in repr(IntakeSettings())


def test_prod_accepts_guest_as_the_unused_common_url_when_the_service_has_its_own():
    IntakeSettings(amqp_url=SecretStr("amqp://intake:pw@rabbit/baove"), common=CommonSettings(env="prod", amqp_url=SecretStr(GUEST))).check_secrets()


@pytest.mark.parametrize(
    ("own", "common", "named"),
    [(GUEST, "amqp://shared:pw@rabbit/", "BAOVE_REPORTING_AMQP_URL"), (None, GUEST, "BAOVE_AMQP_URL")],
)
def test_prod_refuses_guest_credentials_naming_the_setting_in_use(own, common, named):
    settings = ReportingSettings(
        amqp_url=SecretStr(own) if own else None, common=CommonSettings(env="prod", amqp_url=SecretStr(common))
    )
    with pytest.raises(SystemExit) as exit_:
        settings.check_secrets()
    assert str(exit_.value.code).startswith(named)


def test_an_amqps_url_verifies_the_broker_against_the_ca_file(tmp_path):
    ca = tmp_path / "ca.pem"
    common = CommonSettings(amqp_url=SecretStr("amqps://svc:pw@rabbit:5671/baove"), amqp_ca_file=ca)
    assert common.broker_url() == f"amqps://svc:pw@rabbit:5671/baove?cafile={str(ca).replace('/', '%2F')}"
    own = IntakeSettings(amqp_url=SecretStr("amqps://intake:pw@rabbit/baove?heartbeat=30"), common=common)
    assert own.broker_url().startswith("amqps://intake:pw@rabbit/baove?heartbeat=30&cafile=")


@pytest.mark.parametrize(
    "url", ["amqp://svc:pw@rabbit/baove", "amqps://svc:pw@rabbit/baove?cafile=%2Fetc%2Fown.pem"]
)
def test_a_plain_url_or_one_naming_its_own_ca_is_left_as_it_is(tmp_path, url):
    assert CommonSettings(amqp_url=SecretStr(url), amqp_ca_file=tmp_path / "ca.pem").broker_url() == url


def test_prod_refuses_a_url_that_turns_the_certificate_check_off():
    settings = RoutingSettings(common=CommonSettings(env="prod", amqp_url=SecretStr("amqps://routing:pw@rabbit/baove?no_verify_ssl=1")))
    with pytest.raises(SystemExit) as exit_:
        settings.check_secrets()
    assert "no_verify_ssl" in str(exit_.value.code)
