"""Migration runner: applies in order, re-run is a no-op, changed files and bad SQL refused."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import asyncpg
import pytest

from gateway import migrate


def _copy_migrations(tmp_path: Path) -> Path:
    d = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, d)
    return d


async def test_upgrade_applies_all_then_rerun_is_noop(empty_db_dsn: str) -> None:
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        applied = await migrate.upgrade(conn)
        assert applied == [m.name for m in migrate.discover()]
        assert await migrate.upgrade(conn) == []
        assert await migrate.is_current(conn)
        rows = await conn.fetch("SELECT name, sha256 FROM schema_migrations ORDER BY version")
        assert [(r["name"], r["sha256"]) for r in rows] == [
            (m.name, m.sha256) for m in migrate.discover()
        ]
    finally:
        await conn.close()


async def test_changed_applied_file_is_refused(empty_db_dsn: str, tmp_path: Path) -> None:
    d = _copy_migrations(tmp_path)
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        await migrate.upgrade(conn, d)
        first = sorted(d.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        with pytest.raises(migrate.MigrationError, match=re.escape(first.name)):
            await migrate.upgrade(conn, d)
        assert not await migrate.is_current(conn, d)
    finally:
        await conn.close()


async def test_failing_file_stops_run_and_is_named(empty_db_dsn: str, tmp_path: Path) -> None:
    d = _copy_migrations(tmp_path)
    (d / "9998_broken.sql").write_text("CREATE TABLE ok_before (x int);\nSELECT no_such_column FROM nowhere;")
    (d / "9999_after.sql").write_text("CREATE TABLE never_created (x int);")
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        with pytest.raises(migrate.MigrationError, match=re.escape("9998_broken.sql")):
            await migrate.upgrade(conn, d)
        # The failing file's transaction rolled back whole; later files never ran.
        assert await conn.fetchval("SELECT to_regclass('ok_before')") is None
        assert await conn.fetchval("SELECT to_regclass('never_created')") is None
        versions = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        assert 9998 not in versions and 9999 not in versions
    finally:
        await conn.close()


async def test_concurrent_runners_serialize(empty_db_dsn: str) -> None:
    conns = [await asyncpg.connect(empty_db_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate.upgrade(c) for c in conns))
        names = [n for r in results for n in r]
        # Every file applied exactly once across all runners.
        assert sorted(names) == sorted(m.name for m in migrate.discover())
    finally:
        for c in conns:
            await c.close()
