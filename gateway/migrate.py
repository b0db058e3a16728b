"""Numbered SQL migrations (migrations/NNNN_name.sql) and their runner.

- One advisory lock for the whole run: concurrent runners serialize.
- Each file is applied in one transaction together with its bookkeeping row.
- The SHA-256 of each applied file is stored; a changed applied file stops the run.
- The first failing file stops the run, named in the error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
ADVISORY_LOCK_KEY = 0x42617967  # "Bayg"
_NAME_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    sha256: str


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    applied: bool
    changed: bool


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME_RE.match(path.name)
        if m is None:
            raise MigrationError(f"{path.name}: name must look like 0001_description.sql")
        data = path.read_bytes()
        found.append(
            Migration(int(m.group(1)), path.name, data.decode("utf-8"), hashlib.sha256(data).hexdigest())
        )
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration numbers in {directory}")
    return found


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


async def _applied(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    rows = await conn.fetch("SELECT version, name, sha256 FROM schema_migrations")
    return {r["version"]: r for r in rows}


def _compare(migrations: list[Migration], applied: dict[int, asyncpg.Record]) -> list[MigrationState]:
    states = []
    for m in migrations:
        row = applied.get(m.version)
        states.append(MigrationState(m, row is not None, row is not None and row["sha256"] != m.sha256))
    return states


async def status(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[MigrationState]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied = await _applied(conn) if exists else {}
    return _compare(discover(directory), applied)


async def is_current(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> bool:
    return all(s.applied and not s.changed for s in await status(conn, directory))


async def upgrade(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations in order; return the names applied."""
    migrations = discover(directory)
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await conn.execute(_BOOKKEEPING)
        states = _compare(migrations, await _applied(conn))
        changed = [s.migration.name for s in states if s.changed]
        if changed:
            raise MigrationError(
                f"applied migration changed since it was applied: {', '.join(changed)}"
            )
        done: list[str] = []
        for s in states:
            if s.applied:
                continue
            m = s.migration
            try:
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                        m.version, m.name, m.sha256,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"{m.name}: {type(exc).__name__}: {exc}") from exc
            done.append(m.name)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
