"""The state collector on a real database: open window count, settlements, scheduled close.

The open-window count is checked against a reference model (what the test committed in each
window), through any sequence of commits, settlement postings, closes and collector restarts.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clearing.ports import PositionView
from gateway import clearing_windows, metrics
from gateway.collector import MANUAL_SCHEDULE_S, OpenWindowCounter, ScheduledClose, StateCollector

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
_ids = itertools.count(1)
LEDGER_COLUMNS = (
    "journal_id", "leg_no", "participant_id", "currency", "amount", "window_id", "posted_at",
)  # fmt: skip


class FakeClearing:
    def __init__(self, views: list[PositionView] | None = None) -> None:
        self.views = views or []

    async def positions(self, participant_id: str | None = None) -> list[PositionView]:
        return list(self.views)


@dataclass
class Ticks:
    """A monotonic clock the test moves by hand."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def _legs(window_id: int, n: int, two_legs: bool) -> list[tuple]:
    rows = []
    for _ in range(n):
        tid = f"t{next(_ids)}"
        rows += [
            (tid, 1, "hk-801", "HKD", 500, window_id, T0),
            (tid, 1, "cn-pearl", "HKD", -500, window_id, T0),
        ]
        if two_legs:  # a conversion: the FX provider pays the payee in another currency
            rows += [
                (tid, 2, "fx-1", "CNY", 450, window_id, T0),
                (tid, 2, "cn-pearl", "CNY", -450, window_id, T0),
            ]
    return rows


async def _commit(conn: asyncpg.Connection, n: int, two_legs: bool = False) -> None:
    """What a commit batch does to the ledger: entries stamped with the open window."""
    async with conn.transaction():
        wid = await conn.fetchval("SELECT window_id FROM clearing_window_current FOR SHARE")
        if n:
            await conn.copy_records_to_table(
                "clearing_ledger_entries", records=_legs(wid, n, two_legs), columns=LEDGER_COLUMNS
            )


async def _settlement_posting(conn: asyncpg.Connection) -> None:
    sid = next(_ids)
    rows = [(f"settlement:{sid}", 0, "hk-801", "HKD", 70, None, T0),
            (f"settlement:{sid}", 0, "cn-pearl", "HKD", -70, None, T0)]  # fmt: skip
    await conn.copy_records_to_table(
        "clearing_ledger_entries", records=rows, columns=LEDGER_COLUMNS
    )


def _collector(pool: asyncpg.Pool, ticks: Ticks, **kw) -> StateCollector:
    return StateCollector(
        pool, FakeClearing(), lambda: T0 + timedelta(hours=1),
        counter=OpenWindowCounter(lag_s=30, clock=ticks), **kw,
    )  # fmt: skip


ops = st.lists(
    st.one_of(
        st.tuples(st.just("commit"), st.integers(0, 4), st.booleans()),
        st.tuples(st.just("settlement"), st.none(), st.none()),
        st.tuples(st.just("close"), st.none(), st.none()),
        st.tuples(st.just("restart"), st.none(), st.none()),
        st.tuples(st.just("tick"), st.sampled_from([1, 29, 31, 120]), st.none()),
        st.tuples(st.just("collect"), st.none(), st.none()),
    ),
    max_size=25,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops)
@example(
    [
        ("commit", 1, False),
        ("collect", None, None),
        ("tick", 31, None),
        ("collect", None, None),
        ("close", None, None),
    ]
)  # a close forgets the settled count
@example(
    [("commit", 2, True), ("collect", None, None), ("close", None, None), ("commit", 3, False)]
)  # commits of the new window before its first pass
async def test_open_window_count_matches_the_transfers_committed_in_it(db_pool, steps) -> None:
    """One database for all examples: the ledger keeps growing across them, as in production."""
    ticks = Ticks()
    collector = _collector(db_pool, ticks)
    await clearing_windows.close_window(db_pool, T0, "operator")  # start from an empty window
    in_window = 0
    async with db_pool.acquire() as conn:
        for op, a, b in [*steps, ("collect", None, None)]:
            if op == "commit":
                await _commit(conn, a, b)
                in_window += a
            elif op == "settlement":
                await _settlement_posting(conn)
            elif op == "close":
                await clearing_windows.close_window(db_pool, T0, "operator")
                in_window = 0
            elif op == "restart":
                collector = _collector(db_pool, ticks)
            elif op == "tick":
                ticks.now += a
            else:
                snap = await collector.collect()
                assert snap.window is not None
                assert snap.window.open_transfers == in_window


async def test_a_batch_committed_after_a_younger_one_is_still_counted(db_pool) -> None:
    """Ledger ids are allocated before commit: a slow batch's ids are below a fast batch's."""
    ticks = Ticks()
    collector = _collector(db_pool, ticks)
    async with db_pool.acquire() as slow, db_pool.acquire() as fast:
        assert (await collector.collect()).window.open_transfers == 0
        tx = slow.transaction()
        await tx.start()
        wid = await slow.fetchval("SELECT window_id FROM clearing_window_current FOR SHARE")
        await slow.copy_records_to_table(
            "clearing_ledger_entries", records=_legs(wid, 3, False), columns=LEDGER_COLUMNS
        )
        await _commit(fast, 2)
        ticks.now += 5
        assert (await collector.collect()).window.open_transfers == 2
        await tx.commit()
        ticks.now += 5
        assert (await collector.collect()).window.open_transfers == 5
        ticks.now += 60  # both batches now lie below the settled horizon
        await _commit(fast, 1)
        assert (await collector.collect()).window.open_transfers == 6
        assert (await collector.collect()).window.open_transfers == 6


async def test_window_age_schedule_and_settlements_by_state(db_pool) -> None:
    now = T0 + timedelta(hours=3)
    async with db_pool.acquire() as conn:
        await conn.execute("UPDATE clearing_windows SET opened_at = $1 WHERE state = 'OPEN'", T0)
        rows = [("PENDING_SETTLEMENT", now - timedelta(seconds=7201)),  # overdue
                ("PENDING_SETTLEMENT", now - timedelta(seconds=7199)),
                ("SETTLED", now - timedelta(days=3)), ("ABORTED", now - timedelta(days=3))]  # fmt: skip
        for state, at in rows:
            await conn.execute(
                "INSERT INTO clearing_settlements (state, created_at, updated_at) VALUES ($1, $2, $2)",
                state, at,
            )  # fmt: skip
    views = [PositionView("hk-801", "HKD", 1_000, 250, 10_000, 5_000)]
    manual = StateCollector(db_pool, FakeClearing(views), lambda: now, settlement_deadline_s=7200)
    snap = await manual.collect()
    assert snap.window == metrics.WindowRow(3 * 3600.0, 0, MANUAL_SCHEDULE_S)
    assert snap.settlements == metrics.SettlementRow(
        {"PENDING_SETTLEMENT": 2, "SETTLED": 1, "ABORTED": 1}, overdue=1
    )
    assert snap.positions == (metrics.PositionRow("hk-801", "HKD", 1_000, 250, 10_000, 5_000),)
    assert snap.outbox == metrics.OutboxRow(0, 0.0)
    assert snap.db_pool is not None and snap.db_pool.size_max == db_pool.get_max_size()
    scheduled = StateCollector(db_pool, FakeClearing(), lambda: now, window_close_interval_s=900)
    assert (await scheduled.collect()).window.schedule_s == 900.0


async def test_a_failing_pass_publishes_nothing_and_the_loop_goes_on(db_pool) -> None:
    class Flaky(FakeClearing):
        calls = 0

        async def positions(self, participant_id: str | None = None) -> list[PositionView]:
            self.calls += 1
            if self.calls == 1:
                raise OSError("database away")
            return [PositionView("mo-301", "MOP", 7, 0, 100, 100)]

    flaky = Flaky()
    collector = StateCollector(db_pool, flaky, lambda: T0, interval_s=0.1)
    collector.start()
    try:
        for _ in range(200):
            await asyncio.sleep(0.05)
            if flaky.calls >= 2 and metrics.REGISTRY.get_sample_value("baygate_db_ready") == 1:
                break
    finally:
        await collector.stop()
    assert flaky.calls >= 2
    assert (
        metrics.REGISTRY.get_sample_value(
            "baygate_position_minor", {"participant": "mo-301", "currency": "MOP"}
        )
        == 7.0
    )


class FakeGateway:
    """`Gateway.close_window` in the shape the schedule calls, on the real window tables."""

    def __init__(self, pool: asyncpg.Pool, clock) -> None:
        self.pool, self.clock, self.closes = pool, clock, []

        class Clearing:
            async def open_window(self):
                async with pool.acquire() as conn:
                    return await clearing_windows.open_window(conn)

        self.clearing = Clearing()

    async def close_window(self, actor: str):
        close = await clearing_windows.close_window(self.pool, self.clock(), actor)
        self.closes.append((close.window_id, actor))
        return close, "head"


async def test_scheduled_close_closes_each_window_when_due_as_the_scheduler(db_pool) -> None:
    now = [T0]
    async with db_pool.acquire() as conn:
        await conn.execute("UPDATE clearing_windows SET opened_at = $1 WHERE state = 'OPEN'", T0)
        first, _ = await clearing_windows.open_window(conn)
    gw = FakeGateway(db_pool, lambda: now[0])
    schedule = ScheduledClose(gw, 60, lambda: now[0], poll_s=0.02)
    schedule.start()
    try:
        await asyncio.sleep(0.1)
        assert gw.closes == []  # not due
        now[0] = T0 + timedelta(seconds=60)
        for _ in range(250):
            await asyncio.sleep(0.02)
            if gw.closes:
                break
        assert gw.closes == [(first, "scheduler")]
        now[0] = T0 + timedelta(seconds=121)
        for _ in range(250):
            await asyncio.sleep(0.02)
            if len(gw.closes) == 2:
                break
        assert gw.closes == [(first, "scheduler"), (first + 1, "scheduler")]
    finally:
        await schedule.stop()
    async with db_pool.acquire() as conn:
        closed_by = await conn.fetchval(
            "SELECT closed_by FROM clearing_windows WHERE id = $1", first
        )
    assert closed_by == "scheduler"
