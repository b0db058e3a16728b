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


async def test_window_total_counts_are_filled_in_for_windows_already_cleared(
    empty_db_dsn: str, tmp_path: Path
) -> None:
    """0060 adds running leg counts to the window totals and counts the legs already
    committed, conversion legs included, so exports of older windows keep their counts."""
    src = migrate.MIGRATIONS_DIR
    for f in sorted(src.glob("*.sql")):
        if f.name < "0060":
            shutil.copy(f, tmp_path / f.name)
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        await migrate.upgrade(conn, tmp_path)
        rows = [  # id, payer, payee, currency, amount, payee2, currency2, amount2
            ("t1", "A", "B", "HKD", 500, None, None, None),
            ("t2", "A", "B", "HKD", 700, None, None, None),
            ("t3", "B", "A", "HKD", 100, "C", "CNY", 90),
        ]
        await conn.executemany(
            """INSERT INTO clearing_transfers (id, state, source_scheme, destination_scheme,
                   payer, payee, currency, amount, payee2, currency2, amount2, reserved_at,
                   expires_at, finished_at, window_id)
               VALUES ($1, 'COMMITTED', 'hk-fps', 'hk-fps', $2, $3, $4, $5, $6, $7, $8,
                       now(), now(), now(), 1)""",
            rows,
        )
        await conn.executemany(
            """INSERT INTO clearing_window_totals (window_id, participant_id, currency, debits,
                   credits) VALUES (1, $1, $2, $3, $4)""",
            [("A", "HKD", 1200, 100), ("B", "HKD", 100, 1200), ("A", "CNY", 90, 0),
             ("C", "CNY", 0, 90)],
        )  # fmt: skip
        await migrate.upgrade(conn, src)
        got = await conn.fetch(
            """SELECT participant_id, currency, debit_count, credit_count
                 FROM clearing_window_totals ORDER BY 1, 2"""
        )
        assert [tuple(r) for r in got] == [
            ("A", "CNY", 1, 0), ("A", "HKD", 2, 1), ("B", "HKD", 1, 2), ("C", "CNY", 0, 1),
        ]  # fmt: skip
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE clearing_window_totals SET debit_count = 0 WHERE debits > 0")
    finally:
        await conn.close()
