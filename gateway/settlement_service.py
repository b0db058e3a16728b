"""From a closed window in the database to its settlement files, and the finance steps after.

`build_window` reads what the clearing engine closed (running totals per participant and
currency, O(participants x currencies)) plus leg counts; `row_source` streams the window's
committed legs with the payment details from the gateway's records by COPY TO STDOUT in text
form, in booking order straight off the window index (migration 0050), a few socket reads
ahead of the formatting, so an export runs in constant memory. On its own core PostgreSQL
reads the JSON, formats the times and, for an export (`masking` given), masks person data and
formats most of each line (`sf.FormattedLines`); the exporter splits lines and routes them
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
from clearing.money import CURRENCY_EXPONENTS, Money
from gateway.settlement_export import ExportResult, RowSource, default_window_dir, export_window

# COPY data comes in pieces of some 10 KB (a socket read); they are joined into chunks of
# CHUNK_BYTES before parsing, and at most CHUNKS_AHEAD chunks wait: a few megabytes let
# PostgreSQL run on while the exporter writes, and each chunk's fixed costs (queue, split,
# batch) are paid 25 times less often.
CHUNK_BYTES = 256 * 1024
CHUNKS_AHEAD = 16


class UnknownWindow(LookupError):
    pass


# Every committed transfer of the window with the payment details of the gateway's record, in
# booking order, as COPY text: PostgreSQL formats the times (see sf.booking_time) and reads
# the JSON. A transfer with a currency conversion carries its second leg (payee -> payee2) on
# the same line. The window index gives the order: no sort of a million wide rows (it spilled
# to disk and took seconds before the first row).
_TRANSFERS = """
SELECT c.id AS tid, coalesce(t.end_to_end_id, c.id) AS e2e,
       to_char(coalesce(t.created_at, c.finished_at) AT TIME ZONE 'UTC', $3) AS created,
       to_char(c.finished_at AT TIME ZONE 'UTC', $3) AS committed,
       c.payer, c.payee, c.amount, c.currency,
       coalesce(c.payee2, '') AS payee2, coalesce(c.amount2, 0) AS amount2,
       coalesce(c.currency2, '') AS currency2,
       coalesce(t.source_scheme, c.source_scheme) AS src,
       coalesce(t.destination_scheme, c.destination_scheme) AS dst,
       coalesce(t.transfer->'debtor'->>'name', '') AS dn,
       coalesce(t.transfer->'debtor_account'->>'number',
                t.transfer->'debtor_account'->'proxy'->>'value', '') AS da,
       coalesce(t.transfer->'creditor'->>'name', '') AS cn,
       coalesce(t.transfer->'creditor_account'->>'number',
                t.transfer->'creditor_account'->'proxy'->>'value', '') AS ca,
       c.finished_at
  FROM clearing_transfers c
  LEFT JOIN transfers t ON t.id = c.id
 WHERE c.window_id = $1 AND c.state = 'COMMITTED'
   AND ($2::text[] IS NULL OR c.payer = ANY($2) OR c.payee = ANY($2) OR c.payee2 = ANY($2))
 ORDER BY c.finished_at, c.id
"""
_LEGS_COPY = "SELECT tid, e2e, created, committed, payer, payee, amount, currency, payee2, "
_LEGS_COPY += "amount2, currency2, src, dst, dn, da, cn, ca FROM (" + _TRANSFERS + ") r"
_COLUMNS = 17

# The same transfers with most of their text formatted by PostgreSQL, on its own core (see
# sf.WindowStream.feed_lines for the columns and docs/decisions/0010 for why). Person data is
# masked as the exporter masks it, then the line is checked as `sf._plain` checks it, plus
# the length limits and two-decimal currencies: a leg passing the check is written from
# PostgreSQL's text; any other leg comes as its raw fields and takes the exporter's careful
# path. The check may only be stricter than the exporter's (a needless careful pass writes
# the same bytes).
_LINES_COPY = """
SELECT tid, payer, payee, amount, currency, payee2, amount2, currency2, committed,
       CASE WHEN src = dst THEN 'DMCT' ELSE 'XBCT' END, amt, amt2, e2e, created,
       CASE WHEN plain THEN ',' || src || ',' || dst || ',' || mdn || ',' || mda || ',' || mcn
                            || ',' || mca ELSE '' END,
       CASE WHEN plain THEN '<Refs><EndToEndId>' || e2e || '</EndToEndId><TxId>' || tid
            || '</TxId></Refs><RltdPties><Dbtr><Pty><Nm>' || mdn
            || '</Nm></Pty></Dbtr><DbtrAcct><Id><Othr><Id>' || mda
            || '</Id></Othr></Id></DbtrAcct><Cdtr><Pty><Nm>' || mcn
            || '</Nm></Pty></Cdtr><CdtrAcct><Id><Othr><Id>' || mca
            || '</Id></Othr></Id></CdtrAcct></RltdPties><RltdAgts>' ELSE '' END,
       CASE WHEN plain THEN '' ELSE src END, CASE WHEN plain THEN '' ELSE dst END,
       CASE WHEN plain THEN '' ELSE dn END, CASE WHEN plain THEN '' ELSE da END,
       CASE WHEN plain THEN '' ELSE cn END, CASE WHEN plain THEN '' ELSE ca END
  FROM (
    SELECT *,
           (amount / 100)::text || '.' || lpad((amount % 100)::text, 2, '0') AS amt,
           CASE WHEN payee2 = '' THEN ''
                ELSE (amount2 / 100)::text || '.' || lpad((amount2 % 100)::text, 2, '0')
           END AS amt2,
           currency IN ({two_decimals}) AND (payee2 = '' OR currency2 IN ({two_decimals}))
           AND octet_length(tid) <= 35 AND octet_length(e2e) <= 35 AND octet_length(da) <= 34
           AND octet_length(ca) <= 34 AND octet_length(dn) <= 140 AND octet_length(cn) <= 140
           AND '|' || tid || '|' || e2e || '|' || mdn || '|' || mda || '|' || mcn || '|' || mca
               || '|' || src || '|' || dst || '|' !~ $4 AS plain
      FROM (SELECT *, {dn} AS mdn, {da} AS mda, {cn} AS mcn, {ca} AS mca
              FROM ({transfers} OFFSET 0) r OFFSET 0) m
    OFFSET 0) x
"""
# What `sf._plain` looks for, as a PostgreSQL regular expression (PostgreSQL text holds no NUL
# and no surrogates).
_CARE_RE = '[&<>",\x01-\x1f\x7f\ufffe\uffff]|\\|[=+@|-]'
_LINE_COLUMNS = 22
_TIME_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'
_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_COPY_ESCAPE_RE = re.compile(r"\\(.)")


def _lines_query(masking: sf.Masking) -> str:
    """_LINES_COPY masking as `masking` says (Masking.name_fn and account_fn in SQL)."""
    keep = int(masking.keep_chars)  # 0 to 8, checked by Masking

    def mask(column: str, on: bool) -> str:
        if not on:
            return column
        return (
            f"CASE WHEN length({column}) > {keep} THEN"
            f" lpad(right({column}, {keep}), length({column}), '*')"
            f" ELSE repeat('*', length({column})) END"
        )

    return _LINES_COPY.format(
        dn=mask("dn", masking.names),
        da=mask("da", masking.accounts),
        cn=mask("cn", masking.names),
        ca=mask("ca", masking.accounts),
        transfers=_TRANSFERS,
        two_decimals=", ".join(f"'{c}'" for c, e in sorted(CURRENCY_EXPONENTS.items()) if e == 2),
    )


async def build_window(conn: asyncpg.Connection, window_id: int) -> sf.Window:
    w = await conn.fetchrow(
        "SELECT id, state, opened_at, closed_at FROM clearing_windows WHERE id = $1", window_id
    )
    if w is None or w["closed_at"] is None:
        raise UnknownWindow(f"window {window_id} is not a closed window")
    totals = await conn.fetch(
        """SELECT participant_id, currency, debits, credits, debit_count, credit_count
             FROM clearing_window_totals
            WHERE window_id = $1 AND (debits <> 0 OR credits <> 0) ORDER BY 1, 2""",
        window_id,
    )
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
                r["debit_count"],
                r["credit_count"],
            )
            for r in totals
        ),
        systems=tuple(
            sf.SettlementSystem(s["currency"], s["code"], s["name"])
            for s in systems
            if s["currency"] in {r["currency"] for r in totals}
        ),
    )


def row_source(
    pool: asyncpg.Pool,
    window_id: int,
    chunks_ahead: int = CHUNKS_AHEAD,
    masking: sf.Masking | None = None,
) -> RowSource:
    """The window's committed legs touching the participants (None: all), streamed with
    COPY TO STDOUT in chunks of whole lines; at most `chunks_ahead` chunks wait unparsed.

    With `masking`, batches are `sf.FormattedLines`, their text formatted by PostgreSQL for
    an export masking as `masking` says; without, plain legs (`sf.Leg`)."""
    query = _LEGS_COPY if masking is None else _lines_query(masking)

    async def rows_for(members: frozenset[str] | None) -> AsyncGenerator[Sequence[Any], None]:
        args: list[Any] = [window_id, None if members is None else sorted(members), _TIME_FORMAT]
        if masking is not None:
            args.append(_CARE_RE)
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

            pieces: list[bytes] = []
            size_bytes = 0

            async def gather(data: bytes) -> None:
                nonlocal size_bytes
                pieces.append(data)
                size_bytes += len(data)
                if size_bytes >= CHUNK_BYTES:
                    chunk = b"".join(pieces)
                    pieces.clear()
                    size_bytes = 0
                    await chunks.put(chunk)

            async def copy() -> None:
                """COPY into the queue in chunks, then None; nothing more once cancelled (the
                consumer has stopped reading, and the queue may be full)."""
                try:
                    await conn.copy_from_query(query, *args, output=gather)
                except asyncio.CancelledError:
                    raise
                except BaseException:
                    await chunks.put(None)
                    raise
                if pieces:
                    await chunks.put(b"".join(pieces))
                await chunks.put(None)

            task = asyncio.create_task(copy())
            try:
                rest = ""
                while (data := await chunks.get()) is not None:
                    text, rest = _whole_lines(rest + data.decode())
                    if masking is None:
                        yield _legs(text, members)
                    else:
                        yield _formatted(text, members, masking)
                    # Let the loop read the socket: a waiting chunk is taken without a pause,
                    # and PostgreSQL stops once its socket buffer (some 200 KB) is full.
                    await asyncio.sleep(0)
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


def _fields(text: str, columns: int) -> list[str]:
    """A chunk of COPY text lines as one list of fields, unescaped. The whole chunk is split at
    once (COPY escapes tabs and newlines inside values, so the count is exact): half the cost
    of splitting line by line. The empty field after the last line stays."""
    fields = text.replace("\n", "\t").split("\t")
    if len(fields) % columns != 1 or fields[-1]:
        raise sf.SettlementInputError(f"database lines of other than {columns} fields")
    if "\\" in text:
        fields = [_COPY_ESCAPE_RE.sub(_unescape, v) if "\\" in v else v for v in fields]
    return fields


def _formatted(text: str, members: frozenset[str] | None, masking: sf.Masking) -> sf.FormattedLines:
    fields = _fields(text, _LINE_COLUMNS)
    return sf.FormattedLines(zip(*[iter(fields)] * _LINE_COLUMNS, strict=False), masking, members)


def _legs(text: str, members: frozenset[str] | None) -> list[sf.Leg]:
    """COPY text lines to legs, `_COLUMNS` fields a line."""
    fields = _fields(text, _COLUMNS)
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
    masking = masking or sf.Masking()
    return await export_window(
        window,
        row_source(pool, window_id, masking=masking),
        dest,
        key=key,
        masking=masking,
        audit_chain_head=audit_chain_head,
        progress=progress,
        now=now,
        settlements_root=out_dir is None,
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
