"""The `baove` command line: run the services, manage tokens and routing rules, migrate, load the demo."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

from shared.settings import CommonSettings, ConsoleSettings, IntakeSettings, ReportingSettings, RoutingSettings

SERVICES = {"intake": IntakeSettings, "routing": RoutingSettings, "reporting": ReportingSettings}
# The processes `baove up` starts: the three services, then the console that calls them.
PROCESSES = {**SERVICES, "console": ConsoleSettings}


def _runtime(name: str):
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


def _checked_broker_url(service: str) -> str:
    settings = SERVICES[service]()
    settings.check_secrets()
    return settings.broker_url()


def cmd_migrate(_args) -> None:
    for name in PROCESSES:
        _runtime(name).migrate()
        print(f"migrated {name}")


def cmd_run(args) -> None:
    import uvicorn

    from shared import logging as baove_logging

    settings = PROCESSES[args.service]()
    baove_logging.configure(args.service, settings.common.log_level)
    runtime = _runtime(args.service)
    runtime.run_migrations = not args.no_migrate
    uvicorn.run(
        runtime.api,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_config=None,
        timeout_graceful_shutdown=int(settings.graceful_timeout),
    )


def cmd_up(args) -> None:
    for url in dict.fromkeys(_checked_broker_url(name) for name in SERVICES):
        require_broker(url)
    cmd_migrate(args)
    if args.demo:
        cmd_demo(args)
    children: dict[str, subprocess.Popen] = {}
    for name in PROCESSES:
        children[name] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", name, "--no-migrate"], env=os.environ.copy()
        )
    ports = ", ".join(f"{n} :{PROCESSES[n]().port}" for n in PROCESSES)
    console = ConsoleSettings()
    print(f"baove is up: {ports}. Ctrl-C stops it.", flush=True)
    print(f"Console: http://{console.host}:{console.port}/ (sign in with a person from `baove user add`, or the demo's "
          f"{CommonSettings().data_dir / 'demo-people.txt'})", flush=True)

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"baove: {name} exited with {child.returncode}; stopping the others", file=sys.stderr)
                exit_code = 1
                stopping = True
        time.sleep(0.5)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    sys.exit(exit_code)


def cmd_demo(_args) -> None:
    from services.routing.service import load_units_into
    from shared.reference import load_demo_units

    units = load_demo_units()
    runtime = _runtime("routing")
    runtime.migrate()
    count = asyncio.run(load_units_into(runtime, units))
    print(f"demo: {count} units in communes 25339, 25348, 25349")
    tokens = asyncio.run(_issue_many([("unit", u.id) for u in units] + [("district", "694"), ("admin", "admin")]))
    print("demo tokens (shown once; keep them safe):")
    for (kind, subject), token in tokens:
        print(f"  {subject if kind != 'district' else 'district:' + subject:<40} {token}")


async def _issue_many(subjects: list[tuple[str, str]], ttl: timedelta | None = None) -> list[tuple[tuple[str, str], str]]:
    from shared import auth
    from shared.db import make_engine, make_sessionmaker

    common = CommonSettings()
    engine = make_engine(common.auth_url())
    out = []
    async with make_sessionmaker(engine)() as session, session.begin():
        for kind, subject in subjects:
            out.append(((kind, subject), await auth.issue_token(session, kind, subject, ttl=ttl)))
    await engine.dispose()
    return out


def _migrate_auth() -> None:
    from shared import migrate
    from shared.runtime import AUTH_MIGRATIONS

    migrate.upgrade(AUTH_MIGRATIONS, CommonSettings().auth_url())


def cmd_token(args) -> None:
    from shared import auth

    _migrate_auth()
    if args.token_command == "issue":
        kind, subject = ("unit", args.unit) if args.unit else ("district", args.district) if args.district else ("admin", "admin")
        ttl = timedelta(days=args.days) if args.days else None
        try:
            [(_, token)] = asyncio.run(_issue_many([(kind, subject)], ttl))
        except ValueError as exc:
            sys.exit(f"baove: {exc}")
        print(token)
    elif args.token_command == "revoke":

        async def revoke() -> int:
            from shared.db import make_engine, make_sessionmaker

            engine = make_engine(CommonSettings().auth_url())
            async with make_sessionmaker(engine)() as session, session.begin():
                n = await auth.revoke_tokens(session, token=args.token, subject=args.subject)
            await engine.dispose()
            return n

        print(f"revoked {asyncio.run(revoke())} token(s)")


def cmd_audit(args) -> None:
    from shared import audit
    from shared.db import make_engine, make_sessionmaker

    _migrate_auth()

    async def entries() -> list[dict]:
        engine = make_engine(CommonSettings().auth_url())
        try:
            async with make_sessionmaker(engine)() as session:
                items, _ = await audit.query(session, incident_id=args.incident, principal=args.principal, limit=args.limit)
        finally:
            await engine.dispose()
        return items

    items = asyncio.run(entries())
    if not items:
        print("no audit entries")
    for e in items:
        print(f"{e['at'].isoformat()}  {e['principal']:<32} {e['action']:<6} incident {e['incident_id']}  {e['service']:<9} {e['endpoint']}")


def cmd_dlq(args) -> None:
    from shared import deadletters

    url = CommonSettings().amqp_url.get_secret_value()
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


def _login() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in some containers
        return "cli"


def cmd_rules(args) -> None:
    from sqlalchemy.exc import IntegrityError

    from services.routing import service
    from services.routing.models import RuleSet
    from services.routing.rules import RulesError
    from shared.db import utcnow

    runtime = _runtime("routing")
    runtime.migrate()

    async def show() -> RuleSet | None:
        async with runtime.sessionmaker() as session:
            active = await service.active_rule_set(session)
        await runtime.engine.dispose()
        return active

    async def load(text: str) -> tuple[str, str | None]:
        try:
            async with runtime.sessionmaker() as session, session.begin():
                table, previous = await service.activate_rule_set(session, text, args.file, args.by or _login(), utcnow())
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
    except (RulesError, service.RuleSetExists) as exc:
        print(f"baove: rules refused: {exc}", file=sys.stderr)
        sys.exit(2)
    except IntegrityError:
        # The one-active-table and unique-version constraints caught another load committing meanwhile.
        print("baove: rules refused: another rule set was loaded at the same time; look with `baove rules show` and try again", file=sys.stderr)
        sys.exit(2)
    print(f"rule set {version} is active (was {previous or 'none'}); new incidents are routed by it")


def contract_documents() -> dict[str, str]:
    """The published contracts: each service's OpenAPI, the AsyncAPI of the subscribers, the event schemas."""
    import json
    import tempfile

    from faststream.specification import AsyncAPI
    from pydantic import TypeAdapter

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
        spec = AsyncAPI(*(r.broker for r in runtimes.values()), title="baove events", version="1",
                        description="Consumers of the baove.events topic exchange; payloads in events.schema.json")
        documents["asyncapi.json"] = json.dumps(json.loads(spec.to_specification().to_json()), indent=2, ensure_ascii=False, sort_keys=True)
    schemas = {"envelope": Envelope.model_json_schema()}
    schemas |= {key: TypeAdapter(model).json_schema() for key, model in sorted(EVENT_TYPES.items())}
    documents["events.schema.json"] = json.dumps(schemas, indent=2, ensure_ascii=False, sort_keys=True)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="baove", description="Child-protection incident routing and reporting")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run intake, routing, reporting and the console as child processes (Ctrl-C stops them)")
    up.add_argument("--demo", action="store_true", help="also load the demo units and print a token per unit")
    up.set_defaults(func=cmd_up)

    run = sub.add_parser("run", help="run one service in the foreground")
    run.add_argument("service", choices=sorted(PROCESSES))
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.add_argument("--no-migrate", action="store_true", help="do not migrate the database at start")
    run.set_defaults(func=cmd_run)

    mig = sub.add_parser("migrate", help="bring every service's database to the newest schema")
    mig.set_defaults(func=cmd_migrate)

    demo = sub.add_parser("demo", help="load the demo units and print a token for each")
    demo.set_defaults(func=cmd_demo)

    token = sub.add_parser("token", help="issue or revoke API tokens")
    tsub = token.add_subparsers(dest="token_command", required=True)
    issue = tsub.add_parser("issue", help="print a new token once")
    who = issue.add_mutually_exclusive_group(required=True)
    who.add_argument("--unit", help="a unit id, e.g. 25349.police")
    who.add_argument("--district", help="a district code, e.g. 694")
    who.add_argument("--admin", action="store_true")
    issue.add_argument("--days", type=int, help="expire after this many days")
    revoke = tsub.add_parser("revoke", help="revoke a token, or every token of a subject")
    what = revoke.add_mutually_exclusive_group(required=True)
    what.add_argument("--token")
    what.add_argument("--subject", help="e.g. 25349.police, 694 or admin")
    token.set_defaults(func=cmd_token)

    aud = sub.add_parser("audit", help="print the read audit, newest first: who read which incident, when, how")
    aud.add_argument("--incident", help="only reads of this incident id")
    aud.add_argument("--principal", help="only reads by this principal, e.g. 25349.police, district:694 or admin")
    aud.add_argument("--limit", type=int, default=50, help="at most this many entries (default 50)")
    aud.set_defaults(func=cmd_audit)

    dlq = sub.add_parser("dlq", help="inspect and replay dead-lettered messages")
    dsub = dlq.add_subparsers(dest="dlq_command", required=True)
    dlist = dsub.add_parser("list", help="show dead letters per queue with the reason")
    dlist.add_argument("--queue", help="e.g. routing.incidents (default: every queue)")
    dlist.add_argument("--limit", type=int, default=100)
    dreplay = dsub.add_parser("replay", help="send dead letters back to their queue once the cause is fixed")
    dreplay.add_argument("--queue")
    dreplay.add_argument("--limit", type=int)
    dlq.set_defaults(func=cmd_dlq)

    contracts = sub.add_parser("contracts", help="write (or --check) the OpenAPI, AsyncAPI and event schema documents")
    contracts.add_argument("--dir", default="docs/contracts")
    contracts.add_argument("--check", action="store_true", help="fail if the committed documents are out of date")
    contracts.set_defaults(func=cmd_contracts)

    rules = sub.add_parser("rules", help="show or change the routing table (rule sets kept in routing's database)")
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    rsub.add_parser("show", help="print the active rule set: its version and its YAML")
    rload = rsub.add_parser("load", help="check a rules file and make it the active rule set (exit 2 when refused)")
    rload.add_argument("file", help="a rules file in the format of services/routing/rules.yaml, with a new version")
    rload.add_argument("--by", help="who loads it, for the record (default: cli:<login name>)")
    rules.set_defaults(func=cmd_rules)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
