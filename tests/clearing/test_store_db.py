"""The store on the real database: ledger constraints, exactly-once transitions under races,
late accepts, caps changed without blocking, identities never stored in clear."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from clearing.corridors import identity_hash
from clearing.fx import convert
from clearing.model import TransferState
from clearing.money import Money
from clearing.ports import Leg, Outcome, ReserveRequest
from clearing.reasons import Reason
from gateway.clearing_sql import LEDGER_COLUMNS
from gateway.clearing_store import ClearingStore
from tests.clearing.conftest import IDENTITY_KEY, T0, Clock, seed

BIG = 10**12


def _req(
    tid: str, payer: str, payee: str, minor: int, clock: Clock, timeout_s: int = 30
) -> ReserveRequest:
    exp = clock.now + timedelta(seconds=timeout_s)
    return ReserveRequest(tid, (Leg(payer, payee, Money(minor, "HKD")),), "hk-fps", "hk-fps", exp)


async def _ledger_rows(conn: asyncpg.Connection, rows: list[tuple[str, str, int]]) -> None:
    await conn.executemany(
        "INSERT INTO clearing_ledger_entries (journal_id, leg_no, participant_id, currency,"
        " amount, posted_at) VALUES ($1, 1, $2, 'HKD', $3, now())",
        rows,
    )


async def test_database_refuses_unbalanced_journals_and_changes_to_entries(
    db_pool: asyncpg.Pool,
) -> None:
    async with db_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO clearing_ledger_entries (journal_id, leg_no, participant_id, currency,"
            " amount, posted_at) VALUES ('j1', 1, 'a', 'HKD', 5, now()), ('j1', 1, 'b', 'HKD', -5, now()),"
            " ('j2', 1, 'a', 'CNY', 7, now()), ('j2', 1, 'c', 'CNY', -7, now())"
        )
        with pytest.raises(asyncpg.CheckViolationError, match="unbalanced journal j3 in HKD"):
            await conn.execute(
                "INSERT INTO clearing_ledger_entries (journal_id, leg_no, participant_id, currency,"
                " amount, posted_at) VALUES ('j3', 1, 'a', 'HKD', 5, now()), ('j3', 1, 'b', 'HKD', -4, now())"
            )
        with pytest.raises(asyncpg.CheckViolationError, match="unbalanced journal j4 in"):
            # balanced in total but not per currency
            await conn.execute(
                "INSERT INTO clearing_ledger_entries (journal_id, leg_no, participant_id, currency,"
                " amount, posted_at) VALUES ('j4', 1, 'a', 'HKD', 5, now()), ('j4', 1, 'b', 'CNY', -5, now())"
            )
        with pytest.raises(asyncpg.CheckViolationError):
            # half a journal in one statement and the other half in the next: the first is refused
            async with conn.transaction():
                await _ledger_rows(conn, [("j5", "a", 5)])
        with pytest.raises(asyncpg.CheckViolationError, match="unbalanced journal j6"):
            await conn.copy_records_to_table(  # the store's own write path: COPY
                "clearing_ledger_entries",
                records=[("j6", 1, "a", "HKD", 9, None, T0), ("j6", 1, "b", "HKD", -8, None, T0)],
                columns=LEDGER_COLUMNS,
            )
        for sql in (
            "UPDATE clearing_ledger_entries SET amount = amount * 2",
            "DELETE FROM clearing_ledger_entries WHERE journal_id = 'j1'",
            "TRUNCATE clearing_ledger_entries",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
        assert await conn.fetchval("SELECT count(*) FROM clearing_ledger_entries") == 4


async def test_racing_commit_abort_and_expiry_end_each_transfer_exactly_once(
    db_pool: asyncpg.Pool, store: ClearingStore, clock: Clock
) -> None:
    await seed(db_pool, [("pa", "provider"), ("pb", "provider")], [("pa", "HKD", BIG, BIG)])
    n = 120
    decisions = await store.reserve([_req(f"t{i}", "pa", "pb", 100 + i, clock) for i in range(n)])
    assert all(d.ok for d in decisions)
    clock.advance(10)  # commits and aborts come before expiry, the sweep runs "later"
    calls = []
    for i in range(n):
        tid = f"t{i}"
        calls += [store.commit(tid), store.abort(tid, "AC01"), store.commit(tid)]
    expiry = asyncio.ensure_future(store.expire_due(now=clock.now + timedelta(seconds=60), limit=n))
    outcomes: list[Outcome] = await asyncio.gather(*calls)  # racing the expiry sweep
    expired = await expiry
    by_id: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_id.setdefault(o.transfer_id, []).append(o)
    for tid, outs in by_id.items():
        changed = [o for o in outs if o.changed]
        assert len(changed) + (tid in expired) == 1, (tid, outs, tid in expired)
        final = TransferState.EXPIRED if tid in expired else changed[0].state
        assert all(o.state is final for o in outs)
    committed = {tid for tid, outs in by_id.items() if outs[0].state is TransferState.COMMITTED}
    want_net = sum(100 + int(t[1:]) for t in committed)
    (pos,) = [p for p in await store.positions("pa") if p.currency == "HKD"]
    assert (pos.net, pos.reserved) == (want_net, 0)
    async with db_pool.acquire() as conn:
        journals = await conn.fetch("SELECT DISTINCT journal_id FROM clearing_ledger_entries")
        assert {r[0] for r in journals} == committed
        assert await conn.fetchval("SELECT count(*) FROM clearing_ledger_entries") == 2 * len(
            committed
        )


async def test_a_late_accept_after_the_timeout_does_not_commit(
    db_pool: asyncpg.Pool, store: ClearingStore, clock: Clock
) -> None:
    await seed(db_pool, [("pa", "provider"), ("pb", "provider")], [("pa", "HKD", BIG, BIG)])
    (d,) = await store.reserve([_req("t1", "pa", "pb", 500, clock, timeout_s=30)])
    assert d.ok
    clock.advance(29.999)
    assert await store.expire_due() == []
    clock.advance(0.001)  # exactly at expires_at
    late = await store.commit("t1")
    assert (late.state, late.changed, late.window_id) == (TransferState.EXPIRED, True, None)
    again = await store.commit("t1")
    assert (again.state, again.changed) == (TransferState.EXPIRED, False)
    assert (await store.abort("t1", "AC01")).state is TransferState.EXPIRED
    assert await store.expire_due() == []
    (pos,) = [p for p in await store.positions("pa") if p.currency == "HKD"]
    assert (pos.net, pos.reserved) == (0, 0)
    assert (await store.commit("never-reserved")).state is None


async def test_caps_change_while_a_reservation_holds_the_position_row(
    db_pool: asyncpg.Pool, store: ClearingStore, clock: Clock
) -> None:
    await seed(db_pool, [("pa", "provider"), ("pb", "provider")], [("pa", "HKD", 1_000, 1_000)])
    async with db_pool.acquire() as conn:
        async with conn.transaction():
            (d,) = await store.reserve_batch(conn, [_req("t1", "pa", "pb", 1_000, clock)])
            assert d.ok  # the position row of pa is locked until this transaction ends
            view = await asyncio.wait_for(store.set_limits("pa", "HKD", 5_000, 3_000), timeout=5)
            assert view.effective_cap == 3_000
        (ok, over) = await store.reserve(
            [_req("t2", "pa", "pb", 2_000, clock), _req("t3", "pa", "pb", 1, clock)]
        )
    assert ok.ok and not over.ok and over.rejection is not None
    assert over.rejection.code is Reason.AM04
    assert "effective cap 3000" in over.rejection.message


async def test_rejected_reservations_leave_no_trace(
    db_pool: asyncpg.Pool, store: ClearingStore, clock: Clock
) -> None:
    await seed(db_pool, [("pa", "provider"), ("pb", "provider")], [("pa", "HKD", 100, 100)])
    (d,) = await store.reserve([_req("t1", "pa", "pb", 101, clock)])
    assert not d.ok and d.rejection is not None and d.rejection.code is Reason.AM04
    async with db_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM clearing_transfers") == 0
        assert (
            await conn.fetchval(
                "SELECT reserved FROM clearing_positions WHERE participant_id = 'pa'"
            )
            == 0
        )
    dup = await store.reserve(
        [_req("t2", "pa", "pb", 50, clock), _req("t2", "pa", "pb", 50, clock)]
    )
    assert [x.ok for x in dup] == [True, False] and dup[1].rejection.code is Reason.AM05  # type: ignore[union-attr]
    (again,) = await store.reserve([_req("t2", "pa", "pb", 1, clock)])
    assert not again.ok and "already known" in again.rejection.message  # type: ignore[union-attr]


async def test_debtor_identity_is_only_stored_as_a_keyed_hash(
    db_pool: asyncpg.Pool, store: ClearingStore, clock: Clock
) -> None:
    await seed(
        db_pool,
        [("hk1", "provider"), ("cn1", "provider"), ("fx", "fx_provider")],
        [("hk1", "HKD", BIG, BIG), ("fx", "CNY", BIG, BIG)],
    )
    q = await store.create_quote("HKD", "CNY", ttl_s=60)
    src = Money(900_000, "HKD")
    legs = (Leg("hk1", "fx", src), Leg("fx", "cn1", convert(src, q.rate, "CNY")))
    raw = "K123456(7)"
    exp = clock.now + timedelta(seconds=30)
    reqs = [
        ReserveRequest("n1", legs, "hk-fps", "cn-ibps", exp, raw, q.id),
        ReserveRequest("n2", legs, "hk-fps", "cn-ibps", exp, raw, q.id),
    ]
    ok, over = await store.reserve(reqs)
    assert ok.ok and not over.ok and over.rejection.code is Reason.AM02  # type: ignore[union-attr]
    async with db_pool.acquire() as conn:
        dump = await conn.fetchval(
            "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM clearing_transfers) t"
        ) + await conn.fetchval(
            "SELECT string_agg(u::text, ' ') FROM (SELECT * FROM clearing_corridor_usage) u"
        )
        usage = await conn.fetch("SELECT identity_hash, period, used FROM clearing_corridor_usage")
    assert "123456" not in dump
    assert {r["identity_hash"] for r in usage} == {identity_hash(IDENTITY_KEY, raw)}
    assert {r["used"] for r in usage} == {900_000}
    clock.advance(61)
    (late,) = await store.reserve(
        [
            ReserveRequest(
                "n3", legs, "hk-fps", "cn-ibps", clock.now + timedelta(seconds=30), "other", q.id
            )
        ]
    )
    assert not late.ok and "expired" in late.rejection.message  # type: ignore[union-attr]
