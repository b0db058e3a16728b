"""Fixtures for the clearing tests: a settable clock, seeded participants, a store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from gateway.clearing_store import ClearingStore

IDENTITY_KEY = b"test-identity-key"
T0 = datetime(2025, 7, 1, 4, 0, tzinfo=UTC)  # 12:00 in Hong Kong
SCHEME_OF_CCY = {"HKD": "hk-fps", "CNY": "cn-ibps", "MOP": "mo-fps"}


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def seed(
    pool: asyncpg.Pool,
    participants: Iterable[tuple[str, str]],
    limits: Iterable[tuple[str, str, int, int]] = (),
) -> None:
    """Participants as (id, role) and limits as (id, currency, net debit cap, cover)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO settlement_systems (currency, code, name) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            [
                ("HKD", "CHATS", "HK CHATS"),
                ("CNY", "HVPS", "CNAPS HVPS"),
                ("MOP", "RTGS", "Macau RTGS"),
            ],
        )
        await conn.executemany(
            "INSERT INTO participants (id, name, scheme, clearing_system, clearing_code, role,"
            " public_key_ed25519) VALUES ($1, $1, 'hk-fps', 'HKNCC', $2, $3, 'AAAA')",
            [(pid, f"{i:06d}", role) for i, (pid, role) in enumerate(participants)],
        )
        await conn.executemany(
            "INSERT INTO participant_limits (participant_id, currency, net_debit_cap,"
            " liquidity_cover) VALUES ($1, $2, $3, $4)",
            list(limits),
        )


@pytest.fixture
async def store(db_pool: asyncpg.Pool, clock: Clock) -> AsyncIterator[ClearingStore]:
    s = ClearingStore(db_pool, clock, identity_key=IDENTITY_KEY, end_linger_ms=0.5)
    try:
        yield s
    finally:
        await s.aclose()
