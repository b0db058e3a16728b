"""Concurrency on the real database: many payers and one hot payer near its cap, reserved in
gateway-style batch transactions while commits, aborts and window closes run alongside."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

import asyncpg

from clearing.money import Money
from clearing.ports import Leg, ReserveDecision, ReserveRequest
from clearing.reasons import Reason
from gateway.batcher import MicroBatcher
from gateway.clearing_store import ClearingStore
from tests.clearing.conftest import Clock, seed

HOT = "hot"
OTHERS = [f"p{i:02d}" for i in range(30)]
HOT_CAP = 1_000_000
CLIENTS = 40
PER_CLIENT = 25


class Driver:
    def __init__(self, store: ClearingStore, pool: asyncpg.Pool, clock: Clock, seed_: int) -> None:
        self.store, self.pool, self.clock = store, pool, clock
        self.rng = random.Random(seed_)
        self.hot_accepted = 0
        self.hot_refused = 0
        self.n = 0
        self.reserver: MicroBatcher[ReserveRequest, ReserveDecision] = MicroBatcher(
            self._reserve, batch_max=64, linger_ms=1, concurrency=3, name="test-reserve"
        )

    async def _reserve(self, reqs: Sequence[ReserveRequest]) -> list[ReserveDecision]:
        async with self.pool.acquire() as conn, conn.transaction():
            return await self.store.reserve_batch(conn, reqs)

    async def client(self) -> None:
        for _ in range(PER_CLIENT):
            self.n += 1
            hot = self.rng.random() < 0.6
            payer = HOT if hot else self.rng.choice(OTHERS)
            payee = self.rng.choice([p for p in OTHERS if p != payer])
            amount = self.rng.randint(1, 50_000)
            req = ReserveRequest(
                f"t{self.n}", (Leg(payer, payee, Money(amount, "HKD")),), "hk-fps", "hk-fps",
                self.clock.now + timedelta(seconds=30),
            )  # fmt: skip
            d = await self.reserver.submit(req)
            if hot:
                if d.ok:
                    self.hot_accepted += amount
                else:
                    assert d.rejection is not None and d.rejection.code is Reason.AM04
                    self.hot_refused += 1
            if not d.ok:
                continue
            await asyncio.sleep(self.rng.random() * 0.005)  # the receiving provider thinks
            if hot or self.rng.random() < 0.8:  # the hot payer's transfers all commit
                out = await self.store.commit(req.transfer_id)
            else:
                out = await self.store.abort(req.transfer_id, "AC01")
            assert out.changed

    async def run(self, closer: bool = False) -> list[int]:
        closed: list[int] = []

        async def close_repeatedly() -> None:
            for _ in range(8):
                await asyncio.sleep(0.03)
                closed.append((await self.store.close_window("ops")).window_id)

        tasks = [self.client() for _ in range(CLIENTS)]
        await asyncio.gather(*tasks, *([close_repeatedly()] if closer else []))
        await self.reserver.aclose()
        return closed


async def _setup(pool: asyncpg.Pool) -> None:
    await seed(
        pool,
        [(HOT, "provider"), *((p, "provider") for p in OTHERS)],
        [(HOT, "HKD", HOT_CAP * 2, HOT_CAP), *((p, "HKD", 10**9, 10**9) for p in OTHERS)],
    )


async def _check_books(conn: asyncpg.Connection) -> None:
    """Positions equal the committed legs not yet settled, and the ledger says the same."""
    legs = await conn.fetch(
        "SELECT payer, payee, amount, state FROM clearing_legs WHERE state IN ('COMMITTED', 'RESERVED')"
    )
    net: dict[str, int] = defaultdict(int)
    reserved: dict[str, int] = defaultdict(int)
    for r in legs:
        if r["state"] == "COMMITTED":
            net[r["payer"]] += r["amount"]
            net[r["payee"]] -= r["amount"]
        else:
            reserved[r["payer"]] += r["amount"]
    settled = dict(
        await conn.fetch(
            "SELECT participant_id, sum(amount)::bigint FROM clearing_ledger_entries"
            " WHERE journal_id LIKE 'settlement:%' GROUP BY 1"
        )
    )
    ledger = dict(
        await conn.fetch(
            "SELECT participant_id, sum(amount)::bigint FROM clearing_ledger_entries GROUP BY 1"
        )
    )
    for r in await conn.fetch("SELECT participant_id, net, reserved FROM clearing_positions"):
        p = r["participant_id"]
        assert r["net"] == net[p] + settled.get(p, 0) == ledger.get(p, 0), p
        assert r["reserved"] == reserved[p], p


async def test_hot_payer_near_its_cap_is_never_over_it(
    db_pool: asyncpg.Pool, store: ClearingStore, clock: Clock
) -> None:
    await _setup(db_pool)
    driver = Driver(store, db_pool, clock, seed_=7)
    await driver.run()
    # The hot payer never receives and all its transfers commit: its exposure only grew, so
    # the sum of what was accepted is the highest it ever reached.
    assert driver.hot_accepted <= HOT_CAP
    assert driver.hot_refused > 0 and driver.hot_accepted > HOT_CAP - 50_000  # it was at the edge
    async with db_pool.acquire() as conn:
        hot = await conn.fetchrow(
            "SELECT net, reserved FROM clearing_positions WHERE participant_id = $1", HOT
        )
        assert (hot["net"], hot["reserved"]) == (driver.hot_accepted, 0)
        await _check_books(conn)


async def test_windows_closed_under_load_lose_nothing(
    db_pool: asyncpg.Pool, store: ClearingStore, clock: Clock
) -> None:
    await _setup(db_pool)
    driver = Driver(store, db_pool, clock, seed_=11)
    closed = await driver.run(closer=True)
    assert len(closed) == 8
    last = await store.close_window("ops")
    async with db_pool.acquire() as conn:
        per_window = await conn.fetch(
            """SELECT window_id, count(*) FROM clearing_transfers WHERE state = 'COMMITTED'
                GROUP BY 1 ORDER BY 1"""
        )
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM clearing_transfers WHERE (state = 'COMMITTED') <> (window_id IS NOT NULL)"
            )
            == 0
        )
        assert len([r for r in per_window if r[1] > 0]) >= 3  # closes really fell amid the traffic
        # Running totals and counts of every window equal the transfers stamped with it, exactly.
        from_legs = await conn.fetch(
            """SELECT window_id, participant_id, sum(d)::bigint AS debits, sum(c)::bigint AS credits,
                      sum(sign(d))::bigint, sum(sign(c))::bigint FROM (
                   SELECT window_id, payer AS participant_id, amount AS d, 0 AS c FROM clearing_legs
                    WHERE state = 'COMMITTED'
                   UNION ALL
                   SELECT window_id, payee, 0, amount FROM clearing_legs WHERE state = 'COMMITTED'
               ) x GROUP BY 1, 2 ORDER BY 1, 2"""
        )
        totals = await conn.fetch(
            """SELECT window_id, participant_id, debits, credits, debit_count, credit_count
                 FROM clearing_window_totals WHERE debits <> 0 OR credits <> 0 ORDER BY 1, 2"""
        )
        assert [tuple(r) for r in totals] == [tuple(r) for r in from_legs]
        # Each closed window's settlement nets exactly its transfers.
        lines = await conn.fetch(
            """SELECT w.id AS window_id, l.participant_id, l.net
                 FROM clearing_windows w JOIN clearing_settlement_lines l ON l.settlement_id = w.settlement_id
                ORDER BY 1, 2"""
        )
        want = {
            (r["window_id"], r["participant_id"]): r["credits"] - r["debits"] for r in from_legs
        }
        assert {(r["window_id"], r["participant_id"]): r["net"] for r in lines} == want
        assert max(r["window_id"] for r in from_legs) <= last.window_id
        await _check_books(conn)
