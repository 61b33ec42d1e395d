"""Rule sets: the routing table kept as versioned data in routing's database (SQLite and PostgreSQL),
changed by an officer with `baove rules load` and shown with `baove rules show`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from services import cli
from services.routing import rulesets
from services.routing.models import Assignment, RuleSet
from services.routing.rules import DEFAULT_RULES, RulesError
from tests.routing_support import reported, route, routing_runtime

DEFAULT_TEXT = DEFAULT_RULES.read_text(encoding="utf-8")
NOW = datetime(2025, 3, 2, 1, tzinfo=UTC)


def changed(version: str, *, injury_lead: str = "police") -> str:
    """The default table under another version, with injuries led by another unit."""
    text = DEFAULT_TEXT.replace('version: "2025.1"', f'version: "{version}"')
    return text.replace("  injury:\n    lead: health", f"  injury:\n    lead: {injury_lead}")


@pytest.fixture
async def routing(tmp_path, database_url):
    runtime = await routing_runtime(tmp_path, database_url)
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def activate(runtime, text: str, by: str = "tester") -> tuple[str, str | None]:
    async with runtime.sessionmaker() as session, session.begin():
        table, previous = await rulesets.activate_rule_set(session, text, "test.yaml", by, NOW)
    return table.version, previous


async def rule_sets(runtime) -> list[tuple[str, bool, str]]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(select(RuleSet.version, RuleSet.active, RuleSet.loaded_by).order_by(RuleSet.id))
        return [tuple(r) for r in rows]


async def lead_of(runtime, event) -> tuple[str, str]:
    await route(runtime, event)
    async with runtime.sessionmaker() as session:
        row = (
            await session.execute(
                select(Assignment.unit_id, Assignment.rules_version).where(Assignment.incident_id == event.incident_id, Assignment.role == "lead")
            )
        ).one()
    return tuple(row)


class TestTheFirstRuleSet:
    async def test_routing_loads_its_rules_file_at_first_start_and_only_then(self, routing):
        assert await rule_sets(routing) == [("2025.1", True, "routing:start")]
        for hook in routing.startup:
            await hook()
        assert await rule_sets(routing) == [("2025.1", True, "routing:start")]

    async def test_a_started_routing_keeps_a_table_loaded_later(self, routing):
        await activate(routing, changed("2025.2"))
        for hook in routing.startup:
            await hook()
        assert [(v, a) for v, a, _ in await rule_sets(routing)] == [("2025.1", False), ("2025.2", True)]


class TestLoadingANewVersion:
    async def test_the_next_incident_is_routed_by_it_and_each_assignment_names_its_version(self, routing):
        before = reported(category="injury")
        assert await lead_of(routing, before) == ("25349.health", "2025.1")
        assert await activate(routing, changed("2025.2")) == ("2025.2", "2025.1")
        after = reported(category="injury")
        assert await lead_of(routing, after) == ("25349.police", "2025.2")
        assert await lead_of(routing, before) == ("25349.health", "2025.1")  # a redelivery changes nothing

    async def test_a_version_loaded_before_is_refused_and_nothing_changes(self, routing):
        with pytest.raises(rulesets.RuleSetExists, match="'2025.1' was loaded"):
            await activate(routing, changed("2025.1"))
        assert await rule_sets(routing) == [("2025.1", True, "routing:start")]

    async def test_a_table_with_errors_is_refused_naming_the_line(self, routing):
        bad = changed("2025.3", injury_lead="doctor")
        line = bad.splitlines().index("    lead: doctor") + 1
        with pytest.raises(RulesError, match=rf"test.yaml:{line}: categories.injury.lead: unknown unit type 'doctor'"):
            await activate(routing, bad)
        assert [v for v, _, _ in await rule_sets(routing)] == ["2025.1"]

    async def test_exactly_one_rule_set_is_active_whatever_is_loaded(self, routing):
        for n in range(2, 5):
            await activate(routing, changed(f"2025.{n}"))
        async with routing.sessionmaker() as session:
            active = (await session.execute(select(func.count()).where(RuleSet.active.is_(True)))).scalar_one()
        assert active == 1 and (await rule_sets(routing))[-1][:2] == ("2025.4", True)


class TestTheCommandLine:
    @pytest.fixture
    def env(self, monkeypatch, tmp_path, database_url):
        monkeypatch.setenv("BAOVE_DATA_DIR", str(tmp_path / "cli"))
        monkeypatch.setenv("BAOVE_ROUTING_DATABASE_URL", database_url)
        return tmp_path

    def test_rules_load_activates_a_new_version_and_rules_show_prints_it(self, env, capsys):
        path = env / "rules-2025.2.yaml"
        path.write_text(changed("2025.2"), encoding="utf-8")
        cli.main(["rules", "load", str(path), "--by", "25349.cp_officer"])
        assert "rule set 2025.2 is active (was none)" in capsys.readouterr().out
        cli.main(["rules", "show"])
        out = capsys.readouterr().out
        assert out.startswith("# rule set 2025.2: active, loaded ") and "by 25349.cp_officer" in out
        assert 'version: "2025.2"' in out and "  injury:\n    lead: police" in out

    def test_rules_load_refuses_bad_tables_with_the_line_and_exit_code_2(self, env, capsys):
        bad = env / "bad.yaml"
        bad.write_text(changed("2025.2", injury_lead="doctor").replace("  emergency: 1h", "  urgent: 1h"), encoding="utf-8")
        with pytest.raises(SystemExit) as exit_:
            cli.main(["rules", "load", str(bad)])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"{bad}:" in err and "ack_deadlines.urgent: unknown urgency 'urgent'" in err
        good = env / "good.yaml"
        good.write_text(changed("2025.2"), encoding="utf-8")
        cli.main(["rules", "load", str(good)])
        with pytest.raises(SystemExit) as exit_:
            cli.main(["rules", "load", str(good)])
        assert exit_.value.code == 2 and "'2025.2' was loaded" in capsys.readouterr().err

    def test_rules_show_before_any_rule_set_says_so(self, env):
        with pytest.raises(SystemExit) as exit_:
            cli.main(["rules", "show"])
        assert "no active rule set" in str(exit_.value.code)
