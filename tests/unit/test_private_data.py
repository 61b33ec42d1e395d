"""Children's data stays out of exception messages and debug logs, and the data folder is the service's user's alone."""

from __future__ import annotations

import logging
import os
import stat

import pytest
from sqlalchemy import text

from shared.db import make_engine
from shared.logging import configure
from shared.settings import CommonSettings

CHILD = "Nguyễn Thị Bí Mật"
BORN = "2013-05-01"


class TestAFailingInsert:
    async def test_its_error_does_not_carry_the_childs_name_or_birth_date(self, tmp_path):
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE child (full_name TEXT UNIQUE, birth_date TEXT)"))
            await conn.execute(text("INSERT INTO child VALUES (:n, :b)"), {"n": CHILD, "b": BORN})
        with pytest.raises(Exception) as failure:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO child VALUES (:n, :b)"), {"n": CHILD, "b": BORN})
        await engine.dispose()
        assert type(failure.value).__name__ == "IntegrityError"
        assert CHILD not in str(failure.value) and BORN not in str(failure.value)


class TestDebugLogging:
    def test_does_not_print_sqlites_statements_with_their_parameters(self):
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            configure("test", "DEBUG")
            assert not logging.getLogger("aiosqlite").isEnabledFor(logging.DEBUG)
        finally:
            root.handlers[:], root.level = handlers, level
            logging.getLogger("aiosqlite").setLevel(logging.NOTSET)


class TestTheDataFolder:
    def test_is_created_for_the_services_user_only_and_its_databases_too(self, tmp_path):
        folder = tmp_path / "var"
        loose = os.umask(0o022)  # the usual default: folders 0755, files 0644
        try:
            make_engine(CommonSettings(data_dir=folder).database_url("routing", None)).sync_engine.dispose()
        finally:
            os.umask(loose)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE((folder / "routing.db").stat().st_mode) == 0o600

    async def test_sqlites_side_files_follow_the_database(self, tmp_path):
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.glob("x.db*")}
        await engine.dispose()
        assert "x.db-wal" in modes and set(modes.values()) == {0o600}

    def test_an_existing_folder_and_file_are_tightened(self, tmp_path):
        folder = tmp_path / "var"
        folder.mkdir(mode=0o755)
        (folder / "routing.db").touch(mode=0o644)
        folder.chmod(0o755)
        (folder / "routing.db").chmod(0o644)
        make_engine(CommonSettings(data_dir=folder).database_url("routing", None)).sync_engine.dispose()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE((folder / "routing.db").stat().st_mode) == 0o600
