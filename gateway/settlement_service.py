"""From a closed window in the database to its settlement files, and the finance steps after.

`build_window` reads what the clearing engine closed (running totals per participant and
currency, O(participants x currencies)) plus leg counts; `row_source` streams the window's
committed legs with the payment details from the gateway's records by COPY TO STDOUT in text
form, in booking order straight off the window index (migration 0050), a few socket reads
ahead of the formatting, so an export runs in constant memory. PostgreSQL formats the times
and reads the JSON on its own core; the exporter only splits lines into `sf.TransferRow`s
(no asyncpg Record, datetime or Money per leg). See docs/decisions/0010.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clearing import settlement_files as sf
from clearing.money import Money
from gateway.settlement_export import ExportResult, RowSource, default_window_dir, export_window

CHUNKS_AHEAD = 4  # COPY chunks (each the lines one socket read brought) waiting to be parsed


class UnknownWindow(LookupError):
    pass


# Every committed transfer of the window with the payment details of the gateway's record, in
# booking order, as COPY text: PostgreSQL formats the times (see sf.booking_time) and reads
# the JSON, so the exporter only splits lines. A transfer with a currency conversion carries
# its second leg (payee -> payee2) on the same line. The window index gives the order: no
# sort of a million wide rows (it spilled to disk and took seconds before the first row).
_LEGS_COPY = """
SELECT c.id, coalesce(t.end_to_end_id, c.id),
       to_char(coalesce(t.created_at, c.finished_at) AT TIME ZONE 'UTC', $3),
       to_char(c.finished_at AT TIME ZONE 'UTC', $3),
       c.payer, c.payee, c.amount, c.currency,
       coalesce(c.payee2, ''), coalesce(c.amount2, 0), coalesce(c.currency2, ''),
       coalesce(t.source_scheme, c.source_scheme),
       coalesce(t.destination_scheme, c.destination_scheme),
       coalesce(t.transfer->'debtor'->>'name', ''),
       coalesce(t.transfer->'debtor_account'->>'number',
                t.transfer->'debtor_account'->'proxy'->>'value', ''),
       coalesce(t.transfer->'creditor'->>'name', ''),
       coalesce(t.transfer->'creditor_account'->>'number',
                t.transfer->'creditor_account'->'proxy'->>'value', '')
  FROM clearing_transfers c
  LEFT JOIN transfers t ON t.id = c.id
 WHERE c.window_id = $1 AND c.state = 'COMMITTED'
   AND ($2::text[] IS NULL OR c.payer = ANY($2) OR c.payee = ANY($2) OR c.payee2 = ANY($2))
 ORDER BY c.finished_at, c.id
"""
_TIME_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'
_COLUMNS = 17
_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_COPY_ESCAPE_RE = re.compile(r"\\(.)")


async def build_window(conn: asyncpg.Connection, window_id: int) -> sf.Window:
    w = await conn.fetchrow(
        "SELECT id, state, opened_at, closed_at FROM clearing_windows WHERE id = $1", window_id
    )
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
    n = {
        (r["participant_id"], r["currency"]): (int(r["debit_count"]), int(r["credit_count"]))
        for r in counts
    }
    parts = await conn.fetch(
        "SELECT id, name, clearing_system, clearing_code FROM participants ORDER BY id"
    )
    systems = await conn.fetch(
        "SELECT currency, code, name FROM settlement_systems ORDER BY currency"
    )
    involved = {r["participant_id"] for r in totals}
    return sf.Window(
        window_id=str(window_id),
        opened_at=w["opened_at"],
        closed_at=w["closed_at"],
        participants=tuple(
            sf.Participant(p["id"], p["name"], p["clearing_system"], p["clearing_code"])
            for p in parts
            if p["id"] in involved
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
        systems=tuple(
            sf.SettlementSystem(s["currency"], s["code"], s["name"])
            for s in systems
            if s["currency"] in {r["currency"] for r in totals}
        ),
    )


def row_source(pool: asyncpg.Pool, window_id: int, chunks_ahead: int = CHUNKS_AHEAD) -> RowSource:
    """The window's committed legs touching the participants (None: all), streamed with
    COPY TO STDOUT in chunks of whole lines; at most `chunks_ahead` chunks wait unparsed."""

    async def rows_for(members: frozenset[str] | None) -> AsyncGenerator[Sequence[sf.Leg], None]:
        async with (
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            # The window index gives booking order; a parallel plan would take the core the
            # exporter formats on.
            await conn.execute(
                "SET LOCAL enable_sort = off; SET LOCAL max_parallel_workers_per_gather = 0"
            )
            chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=chunks_ahead)

            async def copy() -> None:
                """COPY into the queue, then None; nothing more once cancelled (the consumer
                has stopped reading, and the queue may be full)."""
                try:
                    await conn.copy_from_query(
                        _LEGS_COPY,
                        window_id,
                        None if members is None else sorted(members),
                        _TIME_FORMAT,
                        output=chunks.put,
                    )
                except asyncio.CancelledError:
                    raise
                except BaseException:
                    await chunks.put(None)
                    raise
                await chunks.put(None)

            task = asyncio.create_task(copy())
            try:
                rest = ""
                while (data := await chunks.get()) is not None:
                    text, rest = _whole_lines(rest + data.decode())
                    yield _legs(text, members)
                if rest:
                    raise sf.SettlementInputError("the database stream ended inside a line")
                await task
            finally:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task

    return rows_for


def _whole_lines(text: str) -> tuple[str, str]:
    cut = text.rfind("\n") + 1
    return text[:cut], text[cut:]


def _legs(text: str, members: frozenset[str] | None) -> list[sf.Leg]:
    """COPY text lines to legs. The whole chunk is split at once and cut into lines of
    `_COLUMNS` fields (COPY escapes tabs and newlines inside values, so the count is exact):
    half the cost of splitting line by line."""
    fields = text.replace("\n", "\t").split("\t")
    if len(fields) % _COLUMNS != 1 or fields[-1]:
        raise sf.SettlementInputError(f"database lines of other than {_COLUMNS} fields")
    if "\\" in text:
        fields = [_COPY_ESCAPE_RE.sub(_unescape, v) if "\\" in v else v for v in fields]
    out: list[sf.Leg] = []
    append = out.append
    lines = zip(
        *[iter(fields)] * _COLUMNS, strict=False
    )  # the empty field after the last line stays
    for (
        tid,
        e2e,
        created,
        committed,
        payer,
        payee,
        minor,
        ccy,
        payee2,
        minor2,
        ccy2,
        *rest,
    ) in lines:
        src, dst, dn, da, cn, ca = rest
        if members is None or payer in members or payee in members:
            append(
                (
                    tid,
                    e2e,
                    created,
                    committed,
                    payer,
                    payee,
                    int(minor),
                    ccy,
                    src,
                    dst,
                    dn,
                    da,
                    cn,
                    ca,
                )
            )
        if payee2 and (members is None or payee in members or payee2 in members):
            append(
                (
                    tid,
                    e2e,
                    created,
                    committed,
                    payee,
                    payee2,
                    int(minor2),
                    ccy2,
                    src,
                    dst,
                    dn,
                    da,
                    cn,
                    ca,
                )
            )
    return out


def _unescape(m: re.Match[str]) -> str:
    c = m.group(1)
    return _COPY_ESCAPES.get(c, c)


async def export(
    pool: asyncpg.Pool,
    data_dir: Path,
    key: Ed25519PrivateKey,
    window_id: int,
    *,
    out_dir: Path | None = None,
    audit_chain_head: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    masking: sf.Masking | None = None,
    now: Callable[[], datetime] | None = None,
) -> ExportResult:
    """What `baygate settlement export` and the close of a window run."""
    async with pool.acquire() as conn:
        window = await build_window(conn, window_id)
    dest = out_dir if out_dir is not None else default_window_dir(data_dir, str(window_id))
    return await export_window(
        window,
        row_source(pool, window_id),
        dest,
        key=key,
        masking=masking,
        audit_chain_head=audit_chain_head,
        progress=progress,
        now=now,
    )


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
            not problems,
            "; ".join(p.message for p in problems[:3]),
        )
        async with pool.acquire() as conn:
            diffs = await reconcile(conn, window_id, folder)
            journal = await audit.verify(conn)
        manifest = json.loads((folder / "manifest.json").read_text())
        checks["audit journal chain intact; manifest carries its head at close"] = (
            journal.ok and bool(manifest.get("audit_chain_head")),
            "; ".join(journal.problems[:3]) or f"head {manifest.get('audit_chain_head')}",
        )
        checks["reconciliation: ledger, transfers, positions and files agree"] = (
            not diffs,
            "; ".join(diffs[:3]),
        )
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
            body = {
                "participant_id": line["participant_id"],
                "currency": line["currency"],
                "reference": f"RTGS{settlement_id:06d}{i:05d}",
            }
            async with s.post(base, json=body) as r:
                data = await r.json(content_type=None)
                if r.status >= 400:
                    return f"confirm failed: {r.status} {data}"
                state = data.get("state", state)
    return str(state)
