"""Configuration: common settings (`BAOVE_*`) and one class per service (`BAOVE_<SERVICE>_*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BAOVE_", extra="ignore")

    env: Literal["dev", "prod"] = "dev"
    data_dir: Path = Path("./var")
    amqp_url: SecretStr = SecretStr(DEV_AMQP_URL)
    auth_database_url: SecretStr | None = Field(
        None, description="the security store as the services reach it: on PostgreSQL a service's restricted role"
    )
    auth_admin_database_url: SecretStr | None = Field(
        None, description="the security store's owner (migrations, `baove user|token|audit`); default: BAOVE_AUTH_DATABASE_URL"
    )
    amqp_ca_file: Path | None = Field(
        None,
        description="the CA certificate (PEM) an amqps:// broker's certificate must be signed by; default: the system's CAs",
    )
    log_level: str = "INFO"
    session_hours: float = Field(12.0, gt=0, description="a sign-in session's lifetime (BAOVE_SESSION_HOURS)")
    session_idle_minutes: float = Field(30.0, gt=0, description="a session unused this long is refused")
    trusted_proxies: str = Field(
        "",
        description="comma-separated addresses whose X-Baove-Client-Address header intake believes, and whose "
        "X-Forwarded-Proto the console believes (the TLS proxy in front); loopback always",
    )
    broker_users: dict[str, str] | None = Field(
        None,
        description="each service's broker user as JSON, e.g. "
        '{"intake": "intake", "routing": "routing", "reporting": "reporting"}: a consumer believes an event only when its '
        "AMQP user_id is its producer's user; default: every service is the user of BAOVE_AMQP_URL (one user in development)",
    )
    dlq_ttl_days: float = Field(14.0, gt=0, description="a dead letter is dropped after this many days (the broker's dead-letter-queues policy)")
    dlq_max_length: int = Field(10_000, ge=1, description="a dead-letter queue keeps at most this many letters, the oldest dropped first")
    holidays_file: Path | None = Field(
        None,
        description="Vietnam's holidays, days off and làm bù days as YAML (the working days deadlines count, issue 17); "
        "default: shared/reference/holidays.yaml",
    )

    def database_url(self, name: str, override: SecretStr | None) -> str:
        """The service's database: its own URL when given, else a SQLite file under the data folder."""
        if override is not None:
            return normalise_url(override.get_secret_value())
        private_folder(self.data_dir)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{name}.db').resolve()}"

    def auth_url(self) -> str:
        return self.database_url("auth", self.auth_database_url)

    def broker_user(self, service: str) -> str | None:
        """The broker user `service` publishes as (its events' AMQP user_id), or None when BAOVE_BROKER_USERS omits it."""
        if self.broker_users is not None:
            return self.broker_users.get(service)
        return amqp_user(self.amqp_url.get_secret_value())

    def auth_admin_url(self) -> str:
        """The security store as its owner: what migrates it and issues people and tokens (the CLI), never a service."""
        return self.database_url("auth", self.auth_admin_database_url or self.auth_database_url)

    def broker_url(self, url: SecretStr | None = None) -> str:
        """The broker URL to connect with (`url`, else BAOVE_AMQP_URL); an amqps:// one verifies the broker's certificate
        against BAOVE_AMQP_CA_FILE, passed as aiormq's `cafile` option unless the URL names its own."""
        plain = (url or self.amqp_url).get_secret_value()
        parts = urlsplit(plain)
        query = parse_qsl(parts.query, keep_blank_values=True)
        if parts.scheme != "amqps" or self.amqp_ca_file is None or any(k == "cafile" for k, _ in query):
            return plain
        query.append(("cafile", str(self.amqp_ca_file.resolve())))
        return urlunsplit(parts._replace(query=urlencode(query)))

    def check_secrets(self, amqp_url: SecretStr | None = None, name: str = "BAOVE_AMQP_URL") -> None:
        """Refuse to run outside development with the broker's well-known default credentials (a service's own URL if given),
        or with the broker's certificate left unchecked."""
        url = (amqp_url or self.amqp_url).get_secret_value()
        if self.env == "dev":
            return
        if "guest:guest@" in url:
            raise SystemExit(
                f"{name} uses the default guest credentials; set a service user's URL "
                "(or BAOVE_ENV=dev for development)"
            )
        if dict(parse_qsl(urlsplit(url).query)).get("no_verify_ssl", "0") != "0":
            raise SystemExit(f"{name} turns off the broker's certificate check (no_verify_ssl); set BAOVE_AMQP_CA_FILE instead")


def amqp_user(url: str) -> str:
    """The user an AMQP URL logs in as (RabbitMQ's default, guest, when it names none)."""
    user = urlsplit(url).username
    return unquote(user) if user else "guest"


def private_folder(path: Path) -> None:
    """Create the data folder readable by the service's user only (it holds children's records)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # an existing folder, or one made under a loose umask, is tightened too


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite:///` URLs and pick the async drivers."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+aiosqlite:///"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


class ServiceSettings(BaseSettings):
    """What every service has; subclasses set the env prefix and the default port."""

    host: str = "127.0.0.1"
    port: int
    database_url: SecretStr | None = None
    amqp_url: SecretStr | None = Field(None, description="this service's own broker user; overrides BAOVE_AMQP_URL")
    relay_batch_size: int = 200
    prefetch_count: int = 50
    graceful_timeout: float = 20.0
    common: CommonSettings = Field(default_factory=CommonSettings)

    def db_url(self, name: str) -> str:
        return self.common.database_url(name, self.database_url)

    def broker_url(self) -> str:
        """The service's own broker URL when given (least privilege: one broker user per service), else the common one."""
        return self.common.broker_url(self.amqp_url)

    def check_secrets(self) -> None:
        """The common refusal, applied to the URL this service connects with, naming its setting."""
        if self.amqp_url is None:
            self.common.check_secrets()
        else:
            self.common.check_secrets(self.amqp_url, f"{self.model_config['env_prefix']}AMQP_URL")

    def check_broker_user(self, service: str) -> None:
        """Refuse to start publishing as a user the other services would not believe (their events would be dead-lettered)."""
        if self.common.env != "dev" and self.common.broker_users is None:
            raise SystemExit("BAOVE_BROKER_USERS is not set: outside development each service has its own broker user, name them")
        connects_as, expected = amqp_user(self.broker_url()), self.common.broker_user(service)
        if connects_as != expected:
            raise SystemExit(
                f"{service} connects to the broker as {connects_as!r} but BAOVE_BROKER_USERS says its user is {expected!r}: "
                "the other services would dead-letter its events as forged"
            )


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BAOVE_INTAKE_", extra="ignore")

    port: int = 8001
    max_body_bytes: int = 64 * 1024
    rate_limit_per_minute: float = Field(600.0, ge=0, description="reports a principal may post per minute (0: no limit)")
    rate_limit_burst: int = Field(100, ge=1, description="reports a principal may post at once before the rate applies")
    sign_in_per_minute: float = Field(20.0, ge=0, description="sign-in attempts one address may make per minute (0: no limit)")
    sign_in_burst: int = Field(10, ge=1, description="sign-in attempts one address may make at once")
    sign_in_failure_delay_seconds: float = Field(1.0, ge=0, description="every failed sign-in answers after this delay")
    duplicate_threshold: float = Field(
        80.0, ge=0, le=100, description="score (0-100) from which two reports of a commune are a possible duplicate (issue 17)"
    )
    duplicate_max_candidates: int = Field(5, ge=1, le=100, description="possible duplicates kept per new report: the best ones (issue 17)")
    duplicate_settle_seconds: float = Field(
        1.0, ge=0, le=60, description="after a report is stored, the duplicate check waits this long for others to check them together"
    )
    retention_closed_case_days: int = Field(
        1825, ge=1, description="a closed case's personal data is erased this many days after it was last closed (docs/privacy.md)"
    )
    retention_interval_seconds: float = Field(3600.0, gt=0, description="how often the retention job looks for cases due")
    retention_batch_size: int = Field(100, ge=1, description="cases the retention job erases per transaction")
    audit_retention_days: int = Field(
        3650, ge=1, description="audit entries older than this many days are removed by intake's audit retention job (docs/privacy.md)"
    )


# The standard webhooks schedule: at once, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (about a day).
WEBHOOK_RETRY_SECONDS = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


class NotifySettings(BaseSettings):
    """Routing's notifier: who is told of assignments by webhook or email, and how hard it tries (`BAOVE_NOTIFY_*`)."""

    model_config = SettingsConfigDict(env_prefix="BAOVE_NOTIFY_", extra="ignore")

    interval_seconds: float = Field(1.0, gt=0, description="how often the delivery loop looks for due deliveries")
    measure_seconds: float = Field(
        2.0, ge=0, description="at most how often the delivery loop reads the pending gauges (it ticks on every commit's wake)"
    )
    retry_seconds: list[float] = Field(
        list(WEBHOOK_RETRY_SECONDS), min_length=1, description="the waits between attempts; after the last one a delivery fails"
    )
    jitter: float = Field(0.2, ge=0, le=1, description="each wait is drawn up to this fraction shorter or longer")
    timeout_seconds: float = Field(10.0, gt=0, description="a webhook or SMTP exchange taking longer counts as a failed attempt")
    allow_private: bool = Field(False, description="send to private, loopback and link-local addresses (tests, closed networks)")
    console_url: str = Field("http://127.0.0.1:8004", description="the console's address, for the link in each message")
    smtp_url: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("smtp_url", "BAOVE_SMTP_URL"),
        description="BAOVE_SMTP_URL: smtp://user:password@host:587 (STARTTLS), smtps:// (TLS) or smtp+plain:// (dev only)",
    )
    mail_from: str = Field("baove@localhost", description="the sender of notification emails")


class RoutingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BAOVE_ROUTING_", extra="ignore")

    port: int = 8002
    rules_file: Path | None = Field(None, description="the routing table loaded as the first rule set when none is active")
    watch_interval_seconds: float = Field(15.0, gt=0, description="how often the deadline watcher looks for overdue assignments")
    clock_offset_seconds: float = Field(0.0, description="dev only: run routing's clock this far ahead, to test deadlines")
    notify: NotifySettings = Field(default_factory=NotifySettings)

    @model_validator(mode="after")
    def _clock_offset_only_in_dev(self) -> RoutingSettings:
        if self.clock_offset_seconds and self.common.env != "dev":
            raise ValueError("BAOVE_ROUTING_CLOCK_OFFSET_SECONDS moves routing's clock: it is refused outside BAOVE_ENV=dev")
        return self


class PlanReportSetting(BaseModel):
    """One periodic report of the commune's plan: due on `due_day` of `due_month`, covering the `months` before it."""

    suffix: str = Field(description="the period id's suffix: 6M names 2025-6M")
    due_month: int
    due_day: int
    months: int


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BAOVE_REPORTING_", extra="ignore")

    port: int = 8003
    plan_reports: list[PlanReportSetting] | None = Field(
        None,
        description="the plan's reports as JSON, e.g. "
        '[{"suffix": "6M", "due_month": 5, "due_day": 10, "months": 6}]; default: the seed plan (6M by 10 May, 12M by 10 Nov)',
    )
    schedule_interval_seconds: float = Field(60.0, gt=0, description="how often the scheduler looks for reports to generate")
    revision_settle_seconds: float = Field(
        120.0, ge=0, description="how long an event's write may take to commit: facts this recent are checked again"
    )
    clock_offset_seconds: float = Field(0.0, description="dev only: run reporting's clock this far ahead (or behind)")
    report_due_days: Annotated[tuple[int, ...], NoDecode] = Field(
        (7, 1),
        description='days before each plan report\'s due date that report.due reminds the commune, e.g. "7,1" (empty: none)',
    )
    small_cell_threshold: int = Field(
        5, ge=0, le=100,
        description="in CSV/XLSX exports, counts below district level from 1 to this minus one show as \"<5\" (0: off)",
    )

    @field_validator("report_due_days", mode="before")
    @classmethod
    def _days(cls, value):
        if isinstance(value, str):
            value = [part for part in value.replace(" ", "").split(",") if part]
        days = tuple(sorted({int(d) for d in value}, reverse=True))
        if any(d < 0 or d > 366 for d in days):
            raise ValueError("BAOVE_REPORTING_REPORT_DUE_DAYS: days from 0 to 366, e.g. 7,1")
        return days

    @model_validator(mode="after")
    def _clock_offset_only_in_dev(self) -> ReportingSettings:
        if self.clock_offset_seconds and self.common.env != "dev":
            raise ValueError("BAOVE_REPORTING_CLOCK_OFFSET_SECONDS moves reporting's clock: it is refused outside BAOVE_ENV=dev")
        return self


class ConsoleSettings(BaseSettings):
    """The console: web pages for people, calling the three APIs with the signed-in person's token."""

    model_config = SettingsConfigDict(env_prefix="BAOVE_CONSOLE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8004
    database_url: SecretStr | None = Field(None, description="the session store; default: console.db under BAOVE_DATA_DIR")
    intake_url: str | None = Field(None, description="default: http://127.0.0.1:<BAOVE_INTAKE_PORT>")
    routing_url: str | None = Field(None, description="default: http://127.0.0.1:<BAOVE_ROUTING_PORT>")
    reporting_url: str | None = Field(None, description="default: http://127.0.0.1:<BAOVE_REPORTING_PORT>")
    session_hours: float = Field(12.0, gt=0, description="a browser session ends after this long whatever the API says")
    poll_seconds: int = Field(8, ge=2, le=120, description="how often an open inbox asks for news")
    api_timeout_seconds: float = Field(10.0, gt=0)
    graceful_timeout: float = 10.0
    common: CommonSettings = Field(default_factory=CommonSettings)

    def api_url(self, service: str) -> str:
        """The base URL of intake, routing or reporting."""
        own = getattr(self, f"{service}_url")
        if own:
            return own.rstrip("/")
        port = {"intake": IntakeSettings, "routing": RoutingSettings, "reporting": ReportingSettings}[service]().port
        return f"http://127.0.0.1:{port}"

    def db_url(self) -> str:
        return self.common.database_url("console", self.database_url)

    def check_secrets(self) -> None:
        """The console holds no broker credentials: nothing to refuse."""

