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
    if args.demo:
        _refuse_in_prod("baove up --demo")
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
          f"{CommonSettings().data_dir / DEMO_PEOPLE_FILE})", flush=True)

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


DEMO_PEOPLE_FILE = "demo-people.txt"
# Plausible officials' names for the demo people, in turn (NFC).
DEMO_NAMES = (
    "Nguyễn Thị Lan", "Trần Văn Hùng", "Lê Thị Hương", "Phạm Văn Dũng", "Hoàng Thị Mai", "Vũ Văn Nam", "Đặng Thị Thu",
    "Bùi Văn Long", "Đỗ Thị Ngọc", "Hồ Văn Tuấn", "Ngô Thị Trang", "Dương Văn Sơn", "Lý Thị Phương", "Phan Văn Quang",
    "Võ Thị Thảo", "Trương Văn Hải", "Đinh Thị Linh", "Lâm Văn Minh", "Mai Thị Yến", "Cao Văn Thành",
)


def _refuse_in_prod(what: str) -> None:
    if CommonSettings().env == "prod":
        sys.exit(f"baove: {what} refused: BAOVE_ENV=prod. The demo creates people with printed passwords; "
                 "in production add people with `baove user add`.")


def demo_people(units) -> list[tuple[str, str, str, str]]:
    """(username, full name, kind, subject): one person per demo unit, district 694's officer and an admin."""
    subjects = [("unit", u.id) for u in units] + [("district", "694"), ("admin", "admin")]
    out = []
    for n, (kind, subject) in enumerate(subjects):
        username = {"unit": subject.replace(".", "-"), "district": f"district-{subject}", "admin": "admin"}[kind]
        out.append((username, DEMO_NAMES[n % len(DEMO_NAMES)], kind, subject))
    return out


def cmd_demo(_args) -> None:
    from services.routing.service import load_units_into
    from shared.reference import load_demo_units

    _refuse_in_prod("the demo")
    units = load_demo_units()
    runtime = _runtime("routing")
    runtime.migrate()
    count = asyncio.run(load_units_into(runtime, units))
    print(f"demo: {count} units in communes 25339, 25348, 25349")
    created = asyncio.run(_add_demo_people(demo_people(units)))
    path = CommonSettings().data_dir / DEMO_PEOPLE_FILE
    if not created:
        print(f"demo people exist already (their passwords were printed once and are in {path})")
        return
    lines = [f"{username}\t{password}\t{label}" for username, password, label in created]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    os.chmod(path, 0o600)
    print(f"demo people (passwords shown once, also in {path}; sign in with POST /v1/sessions or the console):")
    for username, password, label in created:
        print(f"  {username:<34} {password}  ({label})")


async def _add_demo_people(wanted) -> list[tuple[str, str, str]]:
    """Create the demo people not there yet; (username, password, principal label) of those created."""
    from shared import auth, passwords, people

    created = []
    async with _auth_session() as session:
        for username, full_name, kind, subject in wanted:
            if await people.get_person(session, username) is not None:
                continue
            # Readable and strong; the demo's passwords need no change so the journey can be walked at once.
            password = passwords.one_time_password()
            while not passwords.acceptable(password, username, full_name):  # a random name part, once in a blue moon
                password = passwords.one_time_password()
            await people.add_person(session, username, full_name, kind, subject, password, created_by="demo")
            created.append((username, password, auth.principal_label(kind, subject)))
    return created


class _auth_session:
    """`async with _auth_session() as session:` one transaction on the token store, its engine disposed after."""

    async def __aenter__(self):
        from shared.db import make_engine, make_sessionmaker

        self._engine = make_engine(CommonSettings().auth_url())
        self._session = make_sessionmaker(self._engine)()
        await self._session.begin()
        return self._session

    async def __aexit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                await self._session.commit()
            else:
                await self._session.rollback()
            await self._session.close()
        finally:
            await self._engine.dispose()


def _migrate_auth() -> None:
    from shared import migrate
    from shared.runtime import AUTH_MIGRATIONS

    migrate.upgrade(AUTH_MIGRATIONS, CommonSettings().auth_url())


def _refused(exc) -> None:
    detail = exc.detail["message"] if isinstance(exc.detail, dict) else exc.detail
    print(f"baove: {detail}", file=sys.stderr)
    sys.exit(2)


def _principal_of(args) -> tuple[str, str]:
    return ("unit", args.unit) if args.unit else ("district", args.district) if args.district else ("admin", "admin")


def cmd_user(args) -> None:
    from shared import errors, people

    _migrate_auth()
    by = _login()

    async def run():
        async with _auth_session() as session:
            if args.user_command == "add":
                kind, subject = _principal_of(args)
                password = None
                if args.password_stdin:
                    password = sys.stdin.readline().rstrip("\r\n")
                one_time = await people.add_person(session, args.username, args.name, kind, subject, password, created_by=by)
                return await people.get_person(session, args.username), one_time
            if args.user_command == "list":
                return await people.list_people(session, args.commune), None
            if args.user_command in ("disable", "enable"):
                return await people.set_state(session, args.username, "disabled" if args.user_command == "disable" else "active", by), None
            return await people.reset_password(session, args.username, by)

    try:
        result, one_time = asyncio.run(run())
    except errors.DomainError as exc:
        _refused(exc)
    if args.user_command == "list":
        if not result:
            print("no people")
        for p in result:
            print(f"{p['username']:<32} {p['state']:<9} {p['label']:<34} {p['full_name']}")
        return
    print(f"{result['username']}: {result['state']}, acts as {result['label']} ({result['full_name']})")
    if one_time:
        print(f"one-time password (shown once; to be changed at first sign-in): {one_time}")


def cmd_token(args) -> None:
    from shared import errors, people

    _migrate_auth()
    by = _login()

    async def run():
        async with _auth_session() as session:
            if args.token_command == "issue":
                if args.user:
                    return await people.issue_personal_token(session, args.user, args.days, by)
                if not args.name:
                    raise errors.Invalid('a machine token needs a name: --name "hotline gateway" (or --user USERNAME for a person\'s token)')
                kind, subject = _principal_of(args)
                return await people.issue_machine_token(session, kind, subject, args.name, args.days, by)
            if args.token_command == "list":
                return await people.list_tokens(session, args.user)
            which = {"token": args.token} if args.token else {"token_id": args.id} if args.id else \
                {"username": people.normalise_username(args.user)} if args.user else {"subject": args.subject}
            return await people.revoke(session, by, **which)

    try:
        result = asyncio.run(run())
    except errors.DomainError as exc:
        _refused(exc)
    if args.token_command == "issue":
        token, token_id = result
        print(token)
        print(f"token id {token_id}", file=sys.stderr)
    elif args.token_command == "list":
        if not result:
            print("no tokens")
        for t in result:
            owner = t["username"] or f"machine {t['label']!r}"
            print(f"{t['id']}  {t['purpose']:<8} {owner:<32} {t['kind']}:{t['subject']:<30} expires {t['expires_at'].isoformat()}")
    else:
        print(f"revoked {len(result)} token(s)")


def cmd_audit(args) -> None:
    from shared import audit, people
    from shared.db import make_engine, make_sessionmaker

    _migrate_auth()
    username = people.normalise_username(args.user) if args.user else None

    async def entries() -> list[dict]:
        engine = make_engine(CommonSettings().auth_url())
        try:
            async with make_sessionmaker(engine)() as session:
                items, _ = await audit.query(
                    session, incident_id=args.incident, principal=args.principal, username=username, action=args.action,
                    limit=args.limit,
                )
        finally:
            await engine.dispose()
        return items

    items = asyncio.run(entries())
    if not items:
        print("no audit entries")
    for e in items:
        who = e["username"] or (f"machine:{e['token_name']}" if e["token_name"] else "-")
        what = f"incident {e['incident_id']}" if e["incident_id"] else (e["detail"] or "")
        print(f"{e['at'].isoformat()}  {e['principal']:<28} {who:<26} {e['action']:<14} {what}  "
              f"{e['service']:<9} {e['endpoint']}  token {e['token_id'] or '-'}")


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
    up.add_argument("--demo", action="store_true", help="also load the demo units and people (refused when BAOVE_ENV=prod)")
    up.set_defaults(func=cmd_up)

    run = sub.add_parser("run", help="run one service in the foreground")
    run.add_argument("service", choices=sorted(PROCESSES))
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.add_argument("--no-migrate", action="store_true", help="do not migrate the database at start")
    run.set_defaults(func=cmd_run)

    mig = sub.add_parser("migrate", help="bring every service's database to the newest schema")
    mig.set_defaults(func=cmd_migrate)

    demo = sub.add_parser("demo", help=f"load the demo units and one person per unit (passwords printed once, kept in "
                                       f"$BAOVE_DATA_DIR/{DEMO_PEOPLE_FILE}); refused when BAOVE_ENV=prod")
    demo.set_defaults(func=cmd_demo)

    user = sub.add_parser("user", help="add, list, disable, enable people; reset a password")
    usub = user.add_subparsers(dest="user_command", required=True)
    uadd = usub.add_parser("add", help="add a person; prints a one-time password to be changed at first sign-in")
    uadd.add_argument("username", help="unique whatever the case, e.g. lan.nguyen")
    as_who = uadd.add_mutually_exclusive_group(required=True)
    as_who.add_argument("--unit", help="the unit they act as, e.g. 25349.police")
    as_who.add_argument("--district", help="the district they act for, e.g. 694")
    as_who.add_argument("--admin", action="store_true")
    uadd.add_argument("--name", required=True, help='full name, e.g. "Nguyễn Thị Lan"')
    uadd.add_argument("--password-stdin", action="store_true", help="read their password from standard input (no change needed)")
    ulist = usub.add_parser("list", help="everyone, by username")
    ulist.add_argument("--commune", help="only people of this commune's units")
    for name, text in (("disable", "refuse their sessions and tokens at once (all revoked)"), ("enable", "let them sign in again"),
                       ("reset-password", "print a new one-time password; their sessions end")):
        usub.add_parser(name, help=text).add_argument("username")
    user.set_defaults(func=cmd_user)

    token = sub.add_parser("token", help="issue, list or revoke API tokens (each a person's, or a named machine token)")
    tsub = token.add_subparsers(dest="token_command", required=True)
    issue = tsub.add_parser("issue", help="print a new token once (its id on stderr)")
    who = issue.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a person's own API token, acting as their unit, district or admin")
    who.add_argument("--unit", help="a machine token of a unit, e.g. 25349.police (with --name)")
    who.add_argument("--district", help="a machine token of a district, e.g. 694 (with --name)")
    who.add_argument("--admin", action="store_true", help="an admin machine token (with --name)")
    issue.add_argument("--name", help='a machine token\'s name, e.g. "hotline gateway"')
    issue.add_argument("--days", type=int, help="expire after this many days (default 90, at most 365)")
    tlist = tsub.add_parser("list", help="tokens in force (never the tokens themselves)")
    tlist.add_argument("--user", help="only this person's")
    revoke = tsub.add_parser("revoke", help="revoke a token, or every token of a person or a subject")
    what = revoke.add_mutually_exclusive_group(required=True)
    what.add_argument("--token", help="the token itself")
    what.add_argument("--id", help="the token's id (from `baove token list` or the audit)")
    what.add_argument("--user", help="every token of this person")
    what.add_argument("--subject", help="e.g. 25349.police, 694 or admin")
    token.set_defaults(func=cmd_token)

    aud = sub.add_parser("audit", help="print the audit, newest first: who read which incident, who signed in, who changed people")
    aud.add_argument("--incident", help="only reads of this incident id")
    aud.add_argument("--principal", help="only entries of this principal, e.g. 25349.police, district:694 or admin")
    aud.add_argument("--user", help="only entries of this person")
    aud.add_argument("--action", help="only this action: read, sign_in, sign_in_failed, lockout, sign_out, user_added, ...")
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
