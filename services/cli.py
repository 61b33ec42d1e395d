"""The `baove` command line: run the services, manage tokens and routing rules, migrate, load the demo."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from services.cli_ops import (
    PROCESSES,
    SERVICES,
    checked_broker_url,
    cmd_agency_access,
    cmd_contracts,
    cmd_dlq,
    cmd_erase,
    cmd_migrate,
    cmd_rules,
    require_broker,
    service_runtime,
)
from services.cli_people import DEMO_PEOPLE_FILE, cmd_audit, cmd_demo, cmd_token, cmd_user, refuse_in_prod
from shared.settings import CommonSettings, ConsoleSettings
from shared.supervision import LeaveDown, Restart, RestartPolicy, describe_exit, failed

# The commands live by concern: people (demo, user, token, audit) in cli_people, operations (migrate, dlq, rules,
# contracts) in cli_ops; this module is the entry point, the parser and the `run`/`up` process supervision.


def cmd_run(args) -> None:
    import uvicorn

    from shared import logging as baove_logging

    settings = PROCESSES[args.service]()
    baove_logging.configure(args.service, settings.common.log_level)
    runtime = service_runtime(args.service)
    runtime.run_migrations = not args.no_migrate
    uvicorn.run(
        runtime.api,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_config=None,
        timeout_graceful_shutdown=int(settings.graceful_timeout),
        forwarded_allow_ips=forwarded_allow_ips(settings.common) if args.service == "console" else None,
    )


def forwarded_allow_ips(common: CommonSettings) -> str | None:
    """Whose X-Forwarded-Proto the console believes: loopback and BAOVE_TRUSTED_PROXIES (the TLS proxy in front).

    The console marks its session cookie Secure when the request came over HTTPS; behind a proxy that terminates TLS
    that is known only from the proxy's X-Forwarded-Proto, which uvicorn takes from these addresses alone (None:
    uvicorn's default, $FORWARDED_ALLOW_IPS or 127.0.0.1)."""
    listed = [p.strip() for p in common.trusted_proxies.split(",") if p.strip()]
    return ",".join(["127.0.0.1", "::1", *listed]) if listed else None


def cmd_up(args) -> None:
    if args.demo:
        refuse_in_prod("baove up --demo")
    for url in dict.fromkeys(checked_broker_url(name) for name in SERVICES):
        require_broker(url)
    cmd_migrate(args)
    if args.demo:
        cmd_demo(args)
    supervisor = Supervisor({name: [sys.executable, "-m", "services.cli", "run", name, "--no-migrate"] for name in PROCESSES})
    supervisor.start_all()
    ports = ", ".join(f"{n} :{PROCESSES[n]().port}" for n in PROCESSES)
    console = ConsoleSettings()
    print(f"baove is up: {ports}. Ctrl-C stops it.", flush=True)
    print(f"Console: http://{console.host}:{console.port}/ (sign in with a person from `baove user add`, or the demo's "
          f"{CommonSettings().data_dir / DEMO_PEOPLE_FILE})", flush=True)

    def stop(*_):
        supervisor.stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    sys.exit(supervisor.watch())


class Supervisor:
    """`baove up`'s child processes, restarted as systemd's `Restart=on-failure` would (shared/supervision.py decides)."""

    def __init__(self, commands: dict[str, list[str]], policy: RestartPolicy | None = None, poll: float = 0.2) -> None:
        self.commands = commands
        self.policy = policy or RestartPolicy()
        self.poll = poll
        self.children: dict[str, subprocess.Popen | None] = {}
        self.crashes: dict[str, list[float]] = {name: [] for name in commands}
        self.restarts: Counter[str] = Counter()
        self.restart_at: dict[str, float] = {}
        self.stopping = False  # set by Ctrl-C or SIGTERM

    @staticmethod
    def say(text: str) -> None:
        print(f"baove up: {text}", file=sys.stderr, flush=True)

    def start(self, name: str) -> None:
        self.children[name] = subprocess.Popen(self.commands[name], env=os.environ.copy())

    def start_all(self) -> None:
        for name in self.commands:
            self.start(name)

    def watch(self) -> int:
        """Supervise until Ctrl-C or SIGTERM (0), or until a process keeps crashing (1); every child is stopped on return."""
        code = 0
        while not self.stopping:
            code = self._step(time.monotonic())
            if code is not None:
                break
            time.sleep(self.poll)
        self.stop_all()
        return code or 0

    def _step(self, now: float) -> int | None:
        """Look at every child once; an exit code when `up` must end."""
        for name, child in self.children.items():
            if child is None or child.poll() is None or self.stopping:
                continue
            self.children[name] = None
            ended = describe_exit(child.returncode)
            if failed(child.returncode):
                self.crashes[name] = [*self.policy.recent(self.crashes[name], now), now]
            decision = self.policy.decide(child.returncode, self.crashes[name], now)
            if isinstance(decision, Restart):
                self.restart_at[name] = now + decision.delay
                self.say(f"{name} ended ({ended}); restart {self.restarts[name] + 1} in {decision.delay:g} s, "
                         f"the others keep serving")
            elif isinstance(decision, LeaveDown):
                self.say(f"{name} ended ({ended}); not restarted: {decision.reason}")
            else:
                self.say(f"giving up: {name} {decision.reason}; stopping everything")
                return 1
        for name, at in list(self.restart_at.items()):
            if now >= at and not self.stopping:
                del self.restart_at[name]
                self.restarts[name] += 1
                self.start(name)
                self.say(f"{name} restarted (restart {self.restarts[name]}, pid {self.children[name].pid})")
        if not self.restart_at and all(child is None for child in self.children.values()):
            self.say("every process has ended")
            return 0
        return None

    def stop_all(self, timeout: float = 30) -> None:
        self.restart_at.clear()
        running = [child for child in self.children.values() if child is not None and child.poll() is None]
        for child in running:
            child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in running:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="baove", description="Child-protection incident routing and reporting")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run intake, routing, reporting and the console as child processes, restarting one that crashes "
                                   "(Ctrl-C stops them; so does one crashing 5 times within 60 s)")
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

    aud = sub.add_parser("audit", help="print the audit, newest first: who read which incident, who signed in, who changed people; "
                         "`baove audit verify` checks its hash chain (exit 1 at the first broken entry); "
                         "`baove audit prune` removes the entries older than the retention period (as the store's owner)")
    aud.add_argument("verify", nargs="?", choices=["verify", "prune"],
                     help="verify: check the chain instead of printing entries; prune: remove the entries past retention")
    aud.add_argument("--days", type=int, help="prune: entries older than this many days (default BAOVE_INTAKE_AUDIT_RETENTION_DAYS)")
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
    dsub.add_parser(
        "policy",
        help="print the rabbitmqctl command that gives every dead-letter queue BAOVE_DLQ_TTL_DAYS and BAOVE_DLQ_MAX_LENGTH "
        "(the vhost of BAOVE_AMQP_URL); deployed brokers get it from their definitions",
    )
    dlq.set_defaults(func=cmd_dlq)

    erase = sub.add_parser("erase", help="erase one incident's personal data in every service, keeping the anonymous facts (audited)")
    erase.add_argument("--incident", required=True, help="the incident id")
    erase.add_argument("--reason", required=True, help="why, for the audit: a request's reference, never the child's name")
    erase.set_defaults(func=cmd_erase)

    contracts = sub.add_parser("contracts", help="write (or --check) the OpenAPI, AsyncAPI and event schema documents")
    contracts.add_argument("--dir", default="docs/contracts")
    contracts.add_argument("--check", action="store_true", help="fail if the committed documents are out of date")
    contracts.set_defaults(func=cmd_contracts)

    agency = sub.add_parser(
        "agency-access",
        help="give an agency's own system a broker user that can only consume its queue agency.UNIT (creates the queue and "
        "binding if missing; a new password is printed once unless --password-file), or --revoke it; run as the broker's "
        "administrator (rabbitmqctl), BAOVE_AMQP_URL naming the vhost",
    )
    agency.add_argument("--unit", required=True, help="the unit, e.g. 25349.police")
    agency.add_argument("--user", help="the broker user's name (default: agency.UNIT)")
    agency.add_argument("--password-file", help="set this password (first line, 16 characters or more) instead of a new one")
    agency.add_argument("--revoke", action="store_true", help="delete the broker user (the queue is kept)")
    agency.add_argument(
        "--rabbitmqctl", default=os.environ.get("BAOVE_RABBITMQCTL", "rabbitmqctl"),
        help='how to run rabbitmqctl (default $BAOVE_RABBITMQCTL or rabbitmqctl), e.g. "kubectl exec -i -n baove rabbitmq-0 -- rabbitmqctl"',
    )
    agency.set_defaults(func=cmd_agency_access)

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
