"""The gateway's connection pool (gateway/db.create_pool): a release sends nothing to the
server, yet leaves the next user a clean session."""

from __future__ import annotations

from gateway.config import Settings
from gateway.db import create_pool


async def test_a_release_sends_no_query_and_rolls_back_what_was_left_open(db_dsn: str) -> None:
    settings = Settings(db_pool_min=1, db_pool_max=1)
    pool = await create_pool(settings, db_dsn)
    try:
        sent: list[str] = []
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE pool_probe (n int)")
            conn.add_query_logger(lambda record: sent.append(record.query))
            await conn.execute("SELECT 1")
        assert sent == ["SELECT 1"]  # the release itself ran nothing

        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await conn.execute("INSERT INTO pool_probe VALUES (1)")
            # released with the transaction open (a bug in a caller): the pool rolls it back
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM pool_probe") == 0
    finally:
        await pool.close()

