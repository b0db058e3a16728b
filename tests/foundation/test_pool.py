"""The gateway's connection pool (gateway.db.create_pool) on a real PostgreSQL.

Releasing a connection sends no reset query (one round trip saved per release), yet the next
user of that connection still starts clean: no transaction left open, no transaction-level
setting or lock carried over.
"""

from __future__ import annotations

import asyncpg
import pytest

from gateway.config import Settings
from gateway.db import create_pool


def _settings(dsn: str) -> Settings:
    return Settings(DATABASE_URL=dsn, db_pool_min=1, db_pool_max=1)


async def test_release_sends_no_statement(db_dsn: str) -> None:
    pool = await create_pool(_settings(db_dsn), db_dsn)
    try:
        sent: list[str] = []
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda rec: sent.append(rec.query))
            assert await conn.fetchval("SELECT 41 + 1") == 42
        async with pool.acquire() as conn:  # the same connection: the pool holds one
            assert await conn.fetchval("SELECT 1") == 1
        assert sent == ["SELECT 41 + 1", "SELECT 1"]
    finally:
        await pool.close()


async def test_an_abandoned_transaction_does_not_reach_the_next_user(db_dsn: str) -> None:
    pool = await create_pool(_settings(db_dsn), db_dsn)
    other = await asyncpg.connect(db_dsn)
    try:
        await other.execute("CREATE TABLE pool_probe (id int PRIMARY KEY, n int NOT NULL)")
        await other.execute("INSERT INTO pool_probe VALUES (1, 0)")
        default_timeout = await other.fetchval("SHOW statement_timeout")
        with pytest.raises(RuntimeError):
            async with pool.acquire() as conn:
                await conn.execute("BEGIN")
                await conn.execute("SET LOCAL statement_timeout = 4321")
                await conn.execute("UPDATE pool_probe SET n = n + 1 WHERE id = 1")
                raise RuntimeError("the caller fails mid-transaction")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SHOW statement_timeout") == default_timeout
            assert await conn.fetchval("SELECT n FROM pool_probe WHERE id = 1") == 0
        # The row lock went with the rollback: another session takes it without waiting.
        async with other.transaction():
            await other.execute("SET LOCAL lock_timeout = 2000")
            await other.execute("UPDATE pool_probe SET n = n + 1 WHERE id = 1")
        assert await other.fetchval("SELECT n FROM pool_probe WHERE id = 1") == 1
    finally:
        await other.close()
        await pool.close()
