"""The `baove` commands about the running system: migrations, dead letters, routing rules, published contracts."""

from __future__ import annotations

import asyncio
import getpass
import importlib
import json
import shlex
import sys
from urllib.parse import unquote, urlsplit, urlunsplit

from shared.settings import CommonSettings, ConsoleSettings, IntakeSettings, ReportingSettings, RoutingSettings

SERVICES = {"intake": IntakeSettings, "routing": RoutingSettings, "reporting": ReportingSettings}
# The processes `baove up` starts: the three services, then the console that calls them.
PROCESSES = {**SERVICES, "console": ConsoleSettings}


def service_runtime(name: str):
    return importlib.import_module(f"services.{name}.app").create_runtime()


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def _broker_reachable(url: str, timeout: float = 5.0) -> str | None:
    import aio_pika

    try:
        connection = await asyncio.wait_for(aio_pika.connect(url), timeout)
    except Exception as exc:  # any failure is reported the same way: not reachable
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


def require_broker(url: str) -> None:
    problem = asyncio.run(_broker_reachable(url))
    if problem:
        sys.exit(
            f"baove: RabbitMQ is not reachable at {_safe_url(url)} ({problem}).\n"
            "  Start it:   rabbitmq-server -detached   (or: systemctl start rabbitmq-server)\n"
            "  Install it: apt-get install -y rabbitmq-server\n"
            "  Or point BAOVE_AMQP_URL at a running broker."
        )


def checked_broker_url(service: str) -> str:
    settings = SERVICES[service]()
    settings.check_secrets()
    return settings.broker_url()


def cmd_migrate(_args) -> None:
    for name in PROCESSES:
        service_runtime(name).migrate()
        print(f"migrated {name}")



def dead_letter_policy_command(settings: CommonSettings) -> list[str]:
    """`rabbitmqctl set_policy` for the dead-letter queues, on the vhost of BAOVE_AMQP_URL."""
    from shared.topology import dead_letter_policy

    policy = dead_letter_policy(settings.dlq_ttl_days, settings.dlq_max_length)
    vhost = unquote(urlsplit(settings.amqp_url.get_secret_value()).path[1:]) or "/"
    return [
        "rabbitmqctl", "set_policy", "-p", vhost, "--apply-to", policy["apply-to"], "--priority", str(policy["priority"]),
        policy["name"], policy["pattern"], json.dumps(policy["definition"]),
    ]


def cmd_dlq(args) -> None:
    from shared import deadletters

    settings = CommonSettings()
    if args.dlq_command == "policy":
        print(shlex.join(dead_letter_policy_command(settings)))
        return
    url = settings.broker_url()
    require_broker(url)
    try:
        if args.dlq_command == "list":
            letters = asyncio.run(deadletters.list_dead_letters(url, args.queue, args.limit))
            if not letters:
                print("no dead letters")
            for d in letters:
                when = d.first_death_at.isoformat() if d.first_death_at else "-"
                print(f"{d.queue:<20} {d.reason:<15} {d.event_type or '-':<26} event {d.message_id or '-'}  incident {d.correlation_id or '-'}  {when}  {d.size} B")
        else:
            for queue, n in asyncio.run(deadletters.replay(url, args.queue, args.limit)).items():
                print(f"{queue}: replayed {n}")
    except ValueError as exc:
        sys.exit(f"baove: {exc}")


def login() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in some containers
        return "cli"


def cmd_rules(args) -> None:
    from sqlalchemy.exc import IntegrityError

    from services.routing import rulesets
    from services.routing.models import RuleSet
    from services.routing.rules import RulesError
    from shared.db import utcnow

    runtime = service_runtime("routing")
    runtime.migrate()

    async def show() -> RuleSet | None:
        async with runtime.sessionmaker() as session:
            active = await rulesets.active_rule_set(session)
        await runtime.engine.dispose()
        return active

    async def load(text: str) -> tuple[str, str | None]:
        try:
            async with runtime.sessionmaker() as session, session.begin():
                table, previous = await rulesets.activate_rule_set(session, text, args.file, args.by or login(), utcnow())
        finally:
            await runtime.engine.dispose()
        return table.version, previous

    if args.rules_command == "show":
        active = asyncio.run(show())
        if active is None:
            sys.exit("baove: no active rule set yet: routing loads its rules file at first start (or run `baove rules load FILE`)")
        print(f"# rule set {active.version}: active, loaded {active.loaded_at.isoformat()} by {active.loaded_by}")
        print(active.source, end="" if active.source.endswith("\n") else "\n")
        return
    try:
        with open(args.file, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"baove: rules refused: cannot read {args.file}: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        version, previous = asyncio.run(load(text))
    except (RulesError, rulesets.RuleSetExists) as exc:
        print(f"baove: rules refused: {exc}", file=sys.stderr)
        sys.exit(2)
    except IntegrityError:
        # The one-active-table and unique-version constraints caught another load committing meanwhile.
        print("baove: rules refused: another rule set was loaded at the same time; look with `baove rules show` and try again", file=sys.stderr)
        sys.exit(2)
    print(f"rule set {version} is active (was {previous or 'none'}); new incidents are routed by it")


def cmd_erase(args) -> None:
    """Erase one incident's personal data, as the operator at the keyboard (acting as admin): intake's rows at once,
    then the other services when intake's relay publishes incident.erased (intake must be running for that)."""
    from services.intake import erasure
    from shared import errors

    runtime = service_runtime("intake")
    runtime.migrate()

    async def run():
        try:
            done = await erasure.erase(
                runtime, args.incident, principal="admin", username=None, token_id=None,
                reason=f"{args.reason} (by {login()})", endpoint="cli erase",
            )
            await runtime.forget({args.incident})  # this process's share: intake's files (its dead letters: intake's)
            return done
        finally:
            await runtime.engine.dispose()
            await runtime.auth_engine.dispose()

    try:
        done = asyncio.run(run())
    except errors.DomainError as exc:
        sys.exit(f"baove: {exc.detail}")
    if done.new:
        print(f"incident {args.incident} erased; incident.erased is in intake's outbox for routing and reporting")
    else:
        print(f"incident {args.incident} was already erased; nothing changed (the request is audited)")


def contract_documents() -> dict[str, str]:
    """The published contracts: each service's OpenAPI, the AsyncAPI of the subscribers, the event schemas."""
    import json
    import tempfile

    from pydantic import TypeAdapter

    from shared import asyncapi
    from shared.events import EVENT_TYPES, Envelope

    documents: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        from pathlib import Path

        runtimes = {
            name: importlib.import_module(f"services.{name}.app").create_runtime(
                settings(common=CommonSettings(data_dir=Path(scratch)))
            )
            for name, settings in SERVICES.items()
        }
        for name, runtime in runtimes.items():
            documents[f"openapi-{name}.json"] = json.dumps(runtime.api.openapi(), indent=2, ensure_ascii=False, sort_keys=True)
    documents["asyncapi.json"] = json.dumps(asyncapi.document(), indent=2, ensure_ascii=False, sort_keys=True)
    schemas = {"envelope": Envelope.model_json_schema()}
    schemas |= {key: TypeAdapter(model).json_schema() for key, model in sorted(EVENT_TYPES.items())}
    documents["events.schema.json"] = json.dumps(schemas, indent=2, ensure_ascii=False, sort_keys=True)
    from services.routing.notify import notification_contract

    documents["notifications.schema.json"] = json.dumps(notification_contract(), indent=2, ensure_ascii=False, sort_keys=True)
    return {name: text + "\n" for name, text in documents.items()}


def cmd_contracts(args) -> None:
    from pathlib import Path

    folder = Path(args.dir)
    stale = []
    for name, text in contract_documents().items():
        path = folder / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        sys.exit("baove: out of date (run `baove contracts`): " + ", ".join(stale))



def broker_vhost(settings: CommonSettings) -> str:
    return unquote(urlsplit(settings.amqp_url.get_secret_value()).path[1:]) or "/"


def agency_user(unit_id: str) -> str:
    """The default broker user of an agency: named as its queue."""
    from shared.topology import agency_queue

    return agency_queue(unit_id).name


def agency_grant_commands(vhost: str, user: str, unit_id: str) -> list[list[str]]:
    """The rabbitmqctl arguments that leave `user` able to consume `agency.{unit_id}` and nothing else (after its password
    is set): no tags (no management UI or HTTP API), the three regexes, no topic permissions."""
    from shared.topology import agency_permissions

    configure, write, read = agency_permissions(unit_id)
    return [
        ["set_user_tags", user],
        ["set_permissions", "-p", vhost, user, configure, write, read],
        ["clear_topic_permissions", "-p", vhost, user],
    ]


class BrokerCtl:
    """rabbitmqctl, run as the operator's prefix says (e.g. `kubectl exec -i -n baove rabbitmq-0 -- rabbitmqctl`).

    A password goes on standard input, never on the command line (where `ps` and error messages would show it)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = shlex.split(prefix)

    def run(self, *args: str, stdin: str | None = None, check: bool = True):
        import subprocess

        try:
            done = subprocess.run([*self.prefix, *args], input=stdin, capture_output=True, text=True, timeout=180)
        except (OSError, subprocess.TimeoutExpired) as exc:
            sys.exit(f"baove: {shlex.join(self.prefix)} {args[0]} failed: {exc}")
        if check and done.returncode != 0:
            sys.exit(f"baove: {shlex.join(self.prefix)} {args[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done


def _read_password(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            password = f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        sys.exit(f"baove: cannot read the password file {path}: {exc}")
    if len(password) < 16:
        sys.exit(f"baove: the password in {path} is shorter than 16 characters")
    return password


def cmd_agency_access(args) -> None:
    """Give one agency's own system a broker user that may consume its queue `agency.{unit_id}` and nothing else,
    or take it away (--revoke). Run where rabbitmqctl reaches the broker as its administrator."""
    import secrets

    from faststream.rabbit import RabbitBroker

    from shared.auth import parse_unit_id
    from shared.topology import agency_permissions, agency_queue, declare_agency_queue

    try:
        parse_unit_id(args.unit)
    except ValueError as exc:
        sys.exit(f"baove: {exc}")
    settings = CommonSettings()
    vhost = broker_vhost(settings)
    user = args.user or agency_user(args.unit)
    queue = agency_queue(args.unit).name
    ctl = BrokerCtl(args.rabbitmqctl)

    def say(text: str) -> None:
        print(f"baove agency-access: {text}", file=sys.stderr, flush=True)

    if args.revoke:
        done = ctl.run("delete_user", user, check=False)
        if done.returncode != 0 and "does not exist" not in done.stderr:
            sys.exit(f"baove: rabbitmqctl delete_user failed ({done.returncode}): {done.stderr.strip()}")
        say(f"broker user {user} {'deleted' if done.returncode == 0 else 'did not exist'}; the queue {queue} is kept "
            f"(delete the unit's amqp subscription, then the queue, to stop its notifications)")
        return

    settings.check_secrets()
    password = _read_password(args.password_file) if args.password_file else secrets.token_urlsafe(24)

    async def declare() -> None:
        broker = RabbitBroker(settings.broker_url())
        try:
            await broker.connect()
            await declare_agency_queue(broker, args.unit)
        finally:
            await broker.stop()

    require_broker(settings.broker_url())
    try:
        asyncio.run(declare())
    except Exception as exc:  # ACCESS_REFUSED, PRECONDITION_FAILED...: nothing else is done
        sys.exit(f"baove: the broker refused declaring {queue} as the user of BAOVE_AMQP_URL ({type(exc).__name__}: {exc}); "
                 f"use an administrator's URL for the vhost (deploy/README.md). No broker user was made.")
    say(f"queue {queue} (vhost {vhost}) declared and bound to baove.agencies with {args.unit}.#")
    added = ctl.run("add_user", user, stdin=password, check=False)
    if added.returncode == 0:
        say(f"broker user {user} created")
    elif "already exists" in added.stderr:
        ctl.run("change_password", user, stdin=password)
        say(f"broker user {user} existed: its password was changed")
    else:
        sys.exit(f"baove: rabbitmqctl add_user failed ({added.returncode}): {added.stderr.strip() or added.stdout.strip()}")
    for command in agency_grant_commands(vhost, user, args.unit):
        ctl.run(*command)
    configure, write, read = agency_permissions(args.unit)
    say(f"permissions of {user} in vhost {vhost}: configure '{configure}', write '{write}', read '{read}'; no tags, "
        f"no topic permissions")
    if not args.password_file:
        say("its password (shown once) is on standard output")
        print(password)
