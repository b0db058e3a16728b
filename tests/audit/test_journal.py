"""The journal on a real PostgreSQL: what `append` stores, what the database refuses, how
concurrent appenders line up, and what `verify` finds after tampering with triggers off."""

from __future__ import annotations

import asyncio
import io
import json
import random
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import audit
from gateway.audit import AuditError, AuditEvent, ChainHead
from tests.audit.reference import GENESIS, events, reference_chain

T0 = datetime(2025, 7, 1, 1, 0, tzinfo=UTC)


def _events(n: int, subject: str = "T", offset: int = 0) -> list[AuditEvent]:
    return [
        AuditEvent(
            audit.KIND_TRANSFER_STATE,
            f"{subject}{offset + i}",
            T0 + timedelta(seconds=offset + i),
            {"state": "RESERVED", "amount_minor": 1000 + i, "currency": "HKD", "i": offset + i},
        )
        for i in range(n)
    ]


async def _append(pool: asyncpg.Pool, evs: list[AuditEvent]) -> ChainHead:
    async with pool.acquire() as conn, conn.transaction():
        return await audit.append(conn, evs)


async def _rows(conn: asyncpg.Connection) -> list[dict]:
    rows = await conn.fetch(
        "SELECT seq, prev_hash, hash, kind, subject, at, data::text FROM audit_journal ORDER BY seq"
    )
    return [
        {
            "seq": r[0],
            "prev_hash": r[1].hex(),
            "hash": r[2].hex(),
            "kind": r[3],
            "subject": r[4],
            "at": r[5],
            "data": json.loads(r[6]),
        }
        for r in rows
    ]


async def test_append_stores_the_reference_chain_and_moves_the_head(db_pool) -> None:
    first, second = _events(3), _events(4, offset=3)
    h1 = await _append(db_pool, first)
    h2 = await _append(db_pool, second)
    expected = reference_chain(first + second)
    async with db_pool.acquire() as conn:
        assert await _rows(conn) == expected
        assert await audit.head(conn) == h2 == ChainHead(7, expected[-1]["hash"])
    assert h1 == ChainHead(3, expected[2]["hash"])


async def test_an_empty_journal_has_the_genesis_head_and_verifies(db_pool) -> None:
    async with db_pool.acquire() as conn:
        assert await audit.head(conn) == ChainHead(0, GENESIS)
        assert await audit.append(conn, []) == ChainHead(0, GENESIS)
        result = await audit.verify(conn)
    assert result == audit.VerifyResult(True, 0, GENESIS, [])


async def test_a_rolled_back_append_leaves_no_trace_and_no_gap(db_pool) -> None:
    await _append(db_pool, _events(2))
    async with db_pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        assert (await audit.append(conn, _events(5, "X"))).seq == 7
        await tx.rollback()
    h = await _append(db_pool, _events(1, offset=2))
    async with db_pool.acquire() as conn:
        rows = await _rows(conn)
        result = await audit.verify(conn)
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert not any(r["subject"].startswith("X") for r in rows)
    assert h.seq == 3 and result.ok and result.records == 3


async def test_append_outside_a_transaction_is_refused(db_pool) -> None:
    async with db_pool.acquire() as conn:
        with pytest.raises(AuditError, match="transaction"):
            await audit.append(conn, _events(1))
        assert await audit.head(conn) == ChainHead(0, GENESIS)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_journal SET data = '{}'::jsonb WHERE seq = 2",
        "UPDATE audit_journal SET subject = subject",
        "DELETE FROM audit_journal WHERE seq = 3",
        "DELETE FROM audit_journal WHERE seq > 1000",
        "TRUNCATE audit_journal",
        "DELETE FROM audit_head",
        "TRUNCATE audit_head",
        "UPDATE audit_head SET seq = seq - 1",
        "UPDATE audit_head SET hash = decode(repeat('11', 32), 'hex')",
        "INSERT INTO audit_head (id, seq, hash) VALUES (FALSE, 9, decode(repeat('11', 32), 'hex'))",
    ],
)
async def test_the_database_refuses_changes_other_than_appends(db_pool, statement) -> None:
    await _append(db_pool, _events(3))
    async with db_pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute(statement)
        result = await audit.verify(conn)
    assert result.ok and result.records == 3


async def _wait_until_blocked(observer: asyncpg.Connection, pid: int) -> None:
    """Poll the server until the backend waits for a lock; a bounded number of polls."""
    for _ in range(3_000):
        waiting = await observer.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")


@pytest.mark.parametrize("first_outcome", ["commit", "rollback"])
async def test_a_second_appender_waits_and_continues_from_what_the_first_left(
    db_pool, first_outcome
) -> None:
    """B started its transaction before A, but A took the head first: B waits for A's end
    and then chains after A's records, or from the genesis if A rolled back."""
    async with db_pool.acquire() as a, db_pool.acquire() as b, db_pool.acquire() as observer:
        tx_b = b.transaction()
        await tx_b.start()
        await b.execute("SELECT 1")
        tx_a = a.transaction()
        await tx_a.start()
        head_a = await audit.append(a, _events(3, "A"))
        b_append = asyncio.create_task(audit.append(b, _events(2, "B")))
        await _wait_until_blocked(observer, b.get_server_pid())
        assert not b_append.done()
        await (tx_a.commit() if first_outcome == "commit" else tx_a.rollback())
        head_b = await b_append
        await tx_b.commit()
        rows = await _rows(observer)
        result = await audit.verify(observer)
    if first_outcome == "commit":
        assert [r["subject"] for r in rows] == ["A0", "A1", "A2", "B0", "B1"]
        assert rows[3]["prev_hash"] == head_a.hash
        assert head_b.seq == 5
    else:
        assert [r["subject"] for r in rows] == ["B0", "B1"]
        assert rows[0]["prev_hash"] == GENESIS
        assert head_b.seq == 2
    assert result.ok and result.head_hash == head_b.hash


async def test_concurrent_appenders_build_one_chain_and_readers_never_see_a_hole(db_pool) -> None:
    """Several connections append batches in their own transactions, with other work between
    the append and the commit, some rolling back. A reader meanwhile checks that what is
    committed is always a prefix 1..n of the chain (the chain order is the commit order) and
    that verify, run concurrently, is clean."""
    rng = random.Random(7)
    workers, rounds = 6, 8
    committed: list[tuple[str, ChainHead, int]] = []

    async def worker(w: int) -> None:
        for r in range(rounds):
            n = rng.randint(1, 40)
            async with db_pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                h = await audit.append(conn, _events(n, f"w{w}r{r}-"))
                await asyncio.sleep(rng.random() * 0.005)
                if rng.random() < 0.2:
                    await tx.rollback()
                else:
                    await tx.commit()
                    committed.append((f"w{w}r{r}-", h, n))

    tasks = [asyncio.create_task(worker(w)) for w in range(workers)]
    checks = 0
    async with db_pool.acquire() as reader:
        while not all(t.done() for t in tasks) or checks < 3:
            count, top = await reader.fetchrow(
                "SELECT count(*), coalesce(max(seq), 0) FROM audit_journal"
            )
            assert count == top
            result = await audit.verify(reader, batch_rows=50)
            assert result.ok, result.problems
            checks += 1
        await asyncio.gather(*tasks)
        rows = await _rows(reader)
        final = await audit.verify(reader)
    assert final.ok and final.records == sum(n for _, _, n in committed) == len(rows)
    for prefix, h, n in committed:
        block = rows[h.seq - n : h.seq]
        assert [r["subject"] for r in block] == [f"{prefix}{i}" for i in range(n)]
        assert block[-1]["hash"] == h.hash


# ---- tampering by someone who can switch the trigger off ---------------------------------


async def _tamper(conn: asyncpg.Connection, *statements: str) -> None:
    await conn.execute("ALTER TABLE audit_journal DISABLE TRIGGER audit_journal_append_only")
    try:
        for s in statements:
            await conn.execute(s)
    finally:
        await conn.execute("ALTER TABLE audit_journal ENABLE TRIGGER audit_journal_append_only")


_FORGED = """
INSERT INTO audit_journal (seq, prev_hash, hash, kind, subject, at, data)
SELECT 5, hash, decode(repeat('ab', 32), 'hex'), 'transfer.state', 'FORGED', now(), '{}'
  FROM audit_journal WHERE seq = 4
"""


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        pytest.param(
            [
                "UPDATE audit_journal SET data = jsonb_set(data, '{amount_minor}', '1') WHERE seq = 4"
            ],
            ["seq 4: hash does not match"],
            id="edit-data",
        ),
        pytest.param(
            ["UPDATE audit_journal SET at = at + interval '1 microsecond' WHERE seq = 9"],
            ["seq 9: hash does not match"],
            id="edit-time",
        ),
        pytest.param(
            ["DELETE FROM audit_journal WHERE seq = 5"],
            ["seq 5: missing"],
            id="delete-middle",
        ),
        pytest.param(
            ["DELETE FROM audit_journal WHERE seq >= 9"],
            ["journal ends at seq 8 but the head row is at seq 10: tail truncated"],
            id="delete-tail",
        ),
        pytest.param(
            [
                "DELETE FROM audit_journal WHERE seq = 5",
                "UPDATE audit_journal SET seq = seq + 1000 WHERE seq > 5",
                "UPDATE audit_journal SET seq = seq - 1001 WHERE seq > 1000",
            ],
            ["seq 5: prev_hash", "tail truncated"],
            id="delete-and-renumber",
        ),
        pytest.param(
            [
                "UPDATE audit_journal SET seq = seq + 1000 WHERE seq >= 5",
                "UPDATE audit_journal SET seq = seq - 999 WHERE seq > 1000",
                _FORGED,
            ],
            ["seq 5: hash does not match", "seq 6: prev_hash", "beyond the head row"],
            id="insert-forged",
        ),
    ],
)
async def test_verify_reports_tampering_done_with_the_trigger_off(
    db_pool, statements, expected
) -> None:
    await _append(db_pool, _events(10))
    async with db_pool.acquire() as conn:
        await _tamper(conn, *statements)
        result = await audit.verify(conn, batch_rows=3)
    assert not result.ok
    for e in expected:
        assert any(e in p for p in result.problems), (e, result.problems)


async def test_a_forged_record_with_a_correct_hash_still_breaks_the_chain(db_pool) -> None:
    """Insert a record whose own hash is right (the forger knows the encoding) in the middle,
    renumbering the rest: the next record still names the old predecessor."""
    await _append(db_pool, _events(6))
    async with db_pool.acquire() as conn:
        prev = (await conn.fetchval("SELECT hash FROM audit_journal WHERE seq = 3")).hex()
        (forged,) = reference_chain(
            [AuditEvent("transfer.state", "FORGED", T0, {"state": "COMMITTED"})], 3, prev
        )
        await _tamper(
            conn,
            "UPDATE audit_journal SET seq = seq + 1000 WHERE seq >= 4",
            "UPDATE audit_journal SET seq = seq - 999 WHERE seq > 1000",
        )
        await conn.execute("ALTER TABLE audit_journal DISABLE TRIGGER audit_journal_append_only")
        await conn.execute(
            "INSERT INTO audit_journal VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
            4,
            bytes.fromhex(prev),
            bytes.fromhex(forged["hash"]),
            forged["kind"],
            forged["subject"],
            forged["at"],
            json.dumps(forged["data"]),
        )
        await conn.execute("ALTER TABLE audit_journal ENABLE TRIGGER audit_journal_append_only")
        result = await audit.verify(conn)
    assert not result.ok
    assert not any(p.startswith("seq 4:") for p in result.problems)
    assert any(p.startswith("seq 5: prev_hash") for p in result.problems)


async def test_a_rewrite_of_every_hash_and_the_head_is_caught_by_an_earlier_head(db_pool) -> None:
    """Edit a record, recompute the rest of the chain and move the head: the journal is then
    consistent with itself, and only the head published before (settlement manifest) differs."""
    published = await _append(db_pool, _events(5))
    async with db_pool.acquire() as conn:
        records = await _rows(conn)
        records[1]["data"]["amount_minor"] = 1
        rewritten = reference_chain(
            [AuditEvent(r["kind"], r["subject"], r["at"], r["data"]) for r in records]
        )
        statements = [
            f"UPDATE audit_journal SET data = '{json.dumps(r['data'])}'::jsonb,"
            f" prev_hash = decode('{r['prev_hash']}', 'hex'), hash = decode('{r['hash']}', 'hex')"
            f" WHERE seq = {r['seq']}"
            for r in rewritten
        ]
        await _tamper(conn, *statements)
        await conn.execute("ALTER TABLE audit_head DISABLE TRIGGER audit_head_forward_only")
        await conn.execute("UPDATE audit_head SET hash = $1", bytes.fromhex(rewritten[-1]["hash"]))
        await conn.execute("ALTER TABLE audit_head ENABLE TRIGGER audit_head_forward_only")
        assert (await audit.verify(conn)).ok
        caught = await audit.verify(conn, anchors=[published])
    assert not caught.ok
    assert caught.problems == [
        f"seq 5: hash {rewritten[-1]['hash'][:16]} differs from anchor {published.hash[:16]}"
    ]


async def test_verify_cli_prints_problems_or_the_ok_line(db_pool, db_dsn) -> None:
    h = await _append(db_pool, _events(4))
    out = io.StringIO()
    assert await audit.verify_cli(db_dsn, anchors=[str(h)], out=out) == 0
    assert out.getvalue() == f"OK 4 records, head {h.hash}\n"
    async with db_pool.acquire() as conn:
        await _tamper(conn, "DELETE FROM audit_journal WHERE seq = 2")
    out = io.StringIO()
    assert await audit.verify_cli(db_dsn, out=out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == "seq 2: missing (deleted records)"
    assert lines[-1].startswith("FAILED 3 records read")
    out = io.StringIO()
    assert await audit.verify_cli(db_dsn, anchors=["not-a-head"], out=out) == 2
    assert out.getvalue().startswith("ERROR")


async def test_verify_inside_a_read_committed_transaction_is_refused(db_pool) -> None:
    async with db_pool.acquire() as conn, conn.transaction():
        with pytest.raises(AuditError, match="REPEATABLE READ"):
            await audit.verify(conn)
    async with db_pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        assert (await audit.verify(conn)).ok


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(st.lists(events, max_size=15), st.booleans()), max_size=5))
async def test_verify_is_ok_after_any_sequence_of_appends(db_pool, batches) -> None:
    """One database for all examples: the chain keeps growing across them, as in production."""
    async with db_pool.acquire() as conn:
        before = await audit.head(conn)
        committed = []
        for evs, keep in batches:
            tx = conn.transaction()
            await tx.start()
            await audit.append(conn, evs)
            await (tx.commit() if keep else tx.rollback())
            committed += evs if keep else []
        result = await audit.verify(conn, batch_rows=7)
        rows = (await _rows(conn))[before.seq :]
    assert result.ok, result.problems
    assert result.records == before.seq + len(committed)
    assert rows == reference_chain(committed, before.seq, before.hash)
