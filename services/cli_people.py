"""The `baove` commands about people: the demo's units and people, users, tokens, the audit."""

from __future__ import annotations

import asyncio
import os
import sys

from services.cli_ops import login, service_runtime
from shared.settings import CommonSettings

DEMO_PEOPLE_FILE = "demo-people.txt"
# Plausible officials' names for the demo people, in turn (NFC).
DEMO_NAMES = (
    "Nguyễn Thị Lan", "Trần Văn Hùng", "Lê Thị Hương", "Phạm Văn Dũng", "Hoàng Thị Mai", "Vũ Văn Nam", "Đặng Thị Thu",
    "Bùi Văn Long", "Đỗ Thị Ngọc", "Hồ Văn Tuấn", "Ngô Thị Trang", "Dương Văn Sơn", "Lý Thị Phương", "Phan Văn Quang",
    "Võ Thị Thảo", "Trương Văn Hải", "Đinh Thị Linh", "Lâm Văn Minh", "Mai Thị Yến", "Cao Văn Thành",
)


def refuse_in_prod(what: str) -> None:
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
    from services.routing.registry import load_units_into
    from shared.reference import load_demo_units

    refuse_in_prod("the demo")
    units = load_demo_units()
    runtime = service_runtime("routing")
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

        self._engine = make_engine(CommonSettings().auth_admin_url())
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

    migrate.upgrade(AUTH_MIGRATIONS, CommonSettings().auth_admin_url())


def _refused(exc) -> None:
    detail = exc.detail["message"] if isinstance(exc.detail, dict) else exc.detail
    print(f"baove: {detail}", file=sys.stderr)
    sys.exit(2)


def _principal_of(args) -> tuple[str, str]:
    return ("unit", args.unit) if args.unit else ("district", args.district) if args.district else ("admin", "admin")


def _in_auth_store(use_case):
    """Run `use_case(session, by)` in one transaction of the security store, as the operator at the keyboard;
    a refusal exits 2 naming the reason."""
    from shared import errors

    _migrate_auth()
    by = login()

    async def run():
        async with _auth_session() as session:
            return await use_case(session, by)

    try:
        return asyncio.run(run())
    except errors.DomainError as exc:
        _refused(exc)


def cmd_user(args) -> None:
    from shared import people

    async def use_case(session, by):
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

    result, one_time = _in_auth_store(use_case)
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

    async def use_case(session, by):
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

    result = _in_auth_store(use_case)
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
    if args.verify == "prune":
        _prune_audit(args.days)
        return
    if args.verify:
        _verify_audit()
        return
    username = people.normalise_username(args.user) if args.user else None

    async def entries() -> list[dict]:
        engine = make_engine(CommonSettings().auth_admin_url())
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




def _prune_audit(days: int | None) -> None:
    """`baove audit prune`: what intake's audit retention job does, as the store's owner (who alone may delete there)."""
    from datetime import timedelta

    from shared import audit
    from shared.db import utcnow
    from shared.settings import IntakeSettings

    days = days or IntakeSettings().audit_retention_days

    async def prune() -> int:
        async with _auth_session() as session:
            return await audit.prune(session, utcnow() - timedelta(days=days), principal="admin")

    print(f"removed {asyncio.run(prune())} audit entries older than {days} days")


def _verify_audit() -> None:
    """`baove audit verify`: OK with the count and the newest entry's hash, or the first broken entry and why (exit 1)."""
    from shared import audit

    async def check():
        async with _auth_session() as session:
            return await audit.verify(session), await audit.chain_head(session)

    (count, problem), (head_id, head_hash) = asyncio.run(check())
    if problem:
        print(f"audit chain BROKEN after {count} intact entries: {problem}")
        sys.exit(1)
    print(f"audit chain OK: {count} entries" + (f", newest {head_id} hash {head_hash}" if head_id is not None else ""))
