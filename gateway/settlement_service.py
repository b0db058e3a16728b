"""From a closed window in the database to its settlement files, and the finance steps after.

`build_window` reads what the clearing engine closed (running totals per participant and
currency, O(participants x currencies)) plus leg counts; `row_source` streams the window's
committed legs with the payment details from the gateway's records, in batches through a
server-side cursor, so an export runs in constant memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clearing import settlement_files as sf
from clearing.money import Money
from gateway.settlement_export import ExportResult, RowSource, default_window_dir, export_window

ROWS_PER_BATCH = 5_000


class UnknownWindow(LookupError):
    pass


_LEGS_SQL = """
SELECT l.transfer_id, t.end_to_end_id, t.created_at, c.finished_at AS committed_at, l.payer, l.payee,
       l.amount, l.currency, t.source_scheme, coalesce(t.destination_scheme, c.destination_scheme) AS destination_scheme,
       coalesce(t.transfer->'debtor'->>'name', '') AS debtor_name,
       coalesce(t.transfer->'debtor_account'->>'number', t.transfer->'debtor_account'->'proxy'->>'value', '') AS debtor_account,
       coalesce(t.transfer->'creditor'->>'name', '') AS creditor_name,
       coalesce(t.transfer->'creditor_account'->>'number', t.transfer->'creditor_account'->'proxy'->>'value', '') AS creditor_account
  FROM clearing_legs l
  JOIN clearing_transfers c ON c.id = l.transfer_id
  LEFT JOIN transfers t ON t.id = l.transfer_id
 WHERE l.window_id = $1 AND l.state = 'COMMITTED'
   AND (l.payer = ANY($2::text[]) OR l.payee = ANY($2::text[]))
 ORDER BY c.finished_at, l.transfer_id, l.leg_no
"""


async def build_window(conn: asyncpg.Connection, window_id: int) -> sf.Window:
    w = await conn.fetchrow("SELECT id, state, opened_at, closed_at FROM clearing_windows WHERE id = $1", window_id)
    if w is None or w["closed_at"] is None:
        raise UnknownWindow(f"window {window_id} is not a closed window")
    totals = await conn.fetch(
        """SELECT participant_id, currency, debits, credits FROM clearing_window_totals
            WHERE window_id = $1 AND (debits <> 0 OR credits <> 0) ORDER BY 1, 2""",
        window_id,
    )
    counts = await conn.fetch(
        """SELECT participant_id, currency, sum(d) AS debit_count, sum(c) AS credit_count FROM (
               SELECT payer AS participant_id, currency, 1 AS d, 0 AS c FROM clearing_legs
                WHERE window_id = $1 AND state = 'COMMITTED'
               UNION ALL
               SELECT payee, currency, 0, 1 FROM clearing_legs WHERE window_id = $1 AND state = 'COMMITTED'
           ) x GROUP BY 1, 2""",
        window_id,
    )
    n = {(r["participant_id"], r["currency"]): (int(r["debit_count"]), int(r["credit_count"])) for r in counts}
    parts = await conn.fetch("SELECT id, name, clearing_system, clearing_code FROM participants ORDER BY id")
    systems = await conn.fetch("SELECT currency, code, name FROM settlement_systems ORDER BY currency")
    involved = {r["participant_id"] for r in totals}
    return sf.Window(
        window_id=str(window_id),
        opened_at=w["opened_at"],
        closed_at=w["closed_at"],
        participants=tuple(
            sf.Participant(p["id"], p["name"], p["clearing_system"], p["clearing_code"])
            for p in parts if p["id"] in involved
        ),
        totals=tuple(
            sf.PositionTotal(
                r["participant_id"],
                Money(r["debits"], r["currency"]),
                Money(r["credits"], r["currency"]),
                Money(r["credits"] - r["debits"], r["currency"]),
                *n.get((r["participant_id"], r["currency"]), (0, 0)),
            )
            for r in totals
        ),
        systems=tuple(sf.SettlementSystem(s["currency"], s["code"], s["name"]) for s in systems
                      if s["currency"] in {r["currency"] for r in totals}),
    )


def row_source(pool: asyncpg.Pool, window_id: int, batch_rows: int = ROWS_PER_BATCH) -> RowSource:
    async def rows_for(participant_ids: frozenset[str]) -> AsyncIterator[Sequence[sf.TransferRow]]:
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            cur = await conn.cursor(_LEGS_SQL, window_id, sorted(participant_ids))
            while True:
                batch = await cur.fetch(batch_rows)
                if not batch:
                    return
                yield [
                    sf.TransferRow(
                        r["transfer_id"], r["end_to_end_id"] or r["transfer_id"], r["created_at"] or r["committed_at"],
                        r["committed_at"], r["payer"], r["payee"], Money(r["amount"], r["currency"]),
                        r["source_scheme"] or "", r["destination_scheme"] or "", r["debtor_name"],
                        r["debtor_account"], r["creditor_name"], r["creditor_account"],
                    )
                    for r in batch
                ]

    return rows_for


async def export(
    pool: asyncpg.Pool,
    data_dir: Path,
    key: Ed25519PrivateKey,
    window_id: int,
    *,
    out_dir: Path | None = None,
    audit_chain_head: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    async with pool.acquire() as conn:
        window = await build_window(conn, window_id)
    dest = out_dir if out_dir is not None else default_window_dir(data_dir, str(window_id))
    return await export_window(window, row_source(pool, window_id), dest, key=key,
                               audit_chain_head=audit_chain_head, progress=progress)


async def settle_closed_window(stack: Any, close: dict[str, Any]) -> dict[str, Any]:
    """Demo finance steps for a close: export files, verify, reconcile, confirm every payment."""
    import json

    from gateway import audit
    from gateway.reconcile import reconcile
    from gateway.settlement_export import verify_settlement_dir
    from gateway.signing_keys import load_or_create_signing_key

    checks: dict[str, tuple[bool, str]] = {}
    window_id = int(close["window_id"])
    settings = stack.settings
    key = load_or_create_signing_key(settings.data_dir)
    pool = await asyncpg.create_pool(stack.dsn, min_size=1, max_size=4)
    try:
        folder = await wait_for_files(settings.data_dir, window_id)
        problems = verify_settlement_dir(folder, key.public_key())
        checks["settlement files verify (hashes, signature, control totals)"] = (
            not problems, "; ".join(p.message for p in problems[:3]))
        async with pool.acquire() as conn:
            diffs = await reconcile(conn, window_id, folder)
            journal = await audit.verify(conn)
        manifest = json.loads((folder / "manifest.json").read_text())
        checks["audit journal chain intact; manifest carries its head at close"] = (
            journal.ok and bool(manifest.get("audit_chain_head")),
            "; ".join(journal.problems[:3]) or f"head {manifest.get('audit_chain_head')}")
        checks["reconciliation: ledger, transfers, positions and files agree"] = (
            not diffs, "; ".join(diffs[:3]))
        sid = close.get("settlement_id")
        if sid is not None:
            state = await _confirm_all(stack, int(sid))
            checks["settlement confirmed by finance and SETTLED"] = (state == "SETTLED", state)
        return {"dir": str(folder), "checks": checks}
    finally:
        await pool.close()


async def wait_for_files(data_dir: Path, window_id: int, timeout_s: float = 120.0) -> Path:
    """The window's settlement folder, once the background export has published it."""
    import asyncio
    import time

    folder = default_window_dir(data_dir, str(window_id))
    deadline = time.monotonic() + timeout_s
    while not (folder / "manifest.json").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no settlement files for window {window_id} after {timeout_s} s")
        await asyncio.sleep(0.1)
    return folder


async def _confirm_all(stack: Any, settlement_id: int) -> str:
    import aiohttp

    headers = {"Authorization": f"Bearer {stack.operator_token}"}
    base = f"{stack.base_url}/v1/operator/settlements/{settlement_id}/confirm"
    state = "PENDING_SETTLEMENT"
    async with aiohttp.ClientSession(headers=headers) as s:
        conn = await asyncpg.connect(stack.dsn)
        try:
            lines = await conn.fetch(
                "SELECT participant_id, currency, net FROM clearing_settlement_lines WHERE settlement_id = $1 AND net <> 0",
                settlement_id,
            )
        finally:
            await conn.close()
        for i, line in enumerate(lines):
            body = {"participant_id": line["participant_id"], "currency": line["currency"],
                    "reference": f"RTGS{settlement_id:06d}{i:05d}"}
            async with s.post(base, json=body) as r:
                data = await r.json(content_type=None)
                if r.status >= 400:
                    return f"confirm failed: {r.status} {data}"
                state = data.get("state", state)
    return str(state)
