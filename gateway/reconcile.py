"""`baygate reconcile WINDOW`: four independent records of a window must tell the same story.

1. the double-entry ledger (entries stamped with the window; debits positive),
2. the clearing engine's running totals per participant and currency (what the close used),
3. the committed transfer legs themselves (recounted from clearing_transfers),
4. the settlement files (summary CSV per currency), when a folder is given.

Plus the gateway's own transfer records: every committed transfer in the window is COMMITTED
(ACSC) there too, and each per-currency net sums to zero in every record. Every difference is
reported; none means the window reconciles.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from clearing import settlement_files as sf

# (participant, currency) -> (debits, credits, debit count, credit count)
Totals = dict[tuple[str, str], tuple[int, int, int, int]]


async def _ledger(conn: asyncpg.Connection, window_id: int) -> dict[tuple[str, str], int]:
    rows = await conn.fetch(
        """SELECT participant_id, currency, sum(amount) AS net_debit FROM clearing_ledger_entries
            WHERE window_id = $1 AND journal_id NOT LIKE 'settlement:%' GROUP BY 1, 2""",
        window_id,
    )
    return {(r["participant_id"], r["currency"]): int(r["net_debit"]) for r in rows}


async def _running(conn: asyncpg.Connection, window_id: int) -> Totals:
    rows = await conn.fetch(
        """SELECT participant_id, currency, debits, credits, debit_count, credit_count
             FROM clearing_window_totals WHERE window_id = $1""",
        window_id,
    )
    return {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows if r["debits"] or r["credits"]}


async def _legs(conn: asyncpg.Connection, window_id: int) -> Totals:
    rows = await conn.fetch(
        """SELECT participant_id, currency, sum(d), sum(c), sum(sign(d)), sum(sign(c)) FROM (
               SELECT payer AS participant_id, currency, amount AS d, 0 AS c FROM clearing_legs
                WHERE window_id = $1 AND state = 'COMMITTED'
               UNION ALL
               SELECT payee, currency, 0, amount FROM clearing_legs WHERE window_id = $1 AND state = 'COMMITTED'
           ) x GROUP BY 1, 2""",
        window_id,
    )
    return {(r[0], r[1]): (int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows}


def _files(folder: Path) -> tuple[Totals, list[str]]:
    out: Totals = {}
    problems: list[str] = []
    summaries = sorted((folder / "summary").glob("*.csv"))
    if not summaries:
        problems.append(f"files: no summary CSV under {folder / 'summary'}")
    for path in summaries:
        check = sf.read_summary_csv(path.read_bytes())
        problems += [f"files {path.name}: {p}" for p in check.problems]
        for pid, t in check.positions.items():
            out[(pid, t.currency)] = (
                t.gross_debits.minor, t.gross_credits.minor, t.debit_count, t.credit_count,
            )  # fmt: skip
    return out, problems


def _compare(name_a: str, a: Totals, name_b: str, b: Totals) -> list[str]:
    diffs = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, (0, 0, 0, 0)), b.get(key, (0, 0, 0, 0))
        if va != vb:
            diffs.append(
                f"{key[0]} {key[1]}: {name_a} debits/credits/counts {va} but {name_b} {vb}"
            )
    return diffs


def _zero_sum(name: str, totals: Totals) -> list[str]:
    per_ccy: dict[str, int] = {}
    for (_pid, ccy), (d, c, _, _) in totals.items():
        per_ccy[ccy] = per_ccy.get(ccy, 0) + c - d
    return [
        f"{name}: nets in {ccy} sum to {v}, not zero" for ccy, v in sorted(per_ccy.items()) if v
    ]


async def reconcile(
    conn: asyncpg.Connection, window_id: int, folder: Path | None = None
) -> list[str]:
    """Every difference between the records of `window_id`; empty when they agree."""
    state = await conn.fetchval("SELECT state FROM clearing_windows WHERE id = $1", window_id)
    if state is None:
        return [f"window {window_id} does not exist"]
    running, legs, ledger = (
        await _running(conn, window_id),
        await _legs(conn, window_id),
        await _ledger(conn, window_id),
    )
    diffs = _compare("running totals", running, "transfer legs", legs)
    for key in sorted(set(ledger) | set(legs)):
        d, c, _, _ = legs.get(key, (0, 0, 0, 0))
        if ledger.get(key, 0) != d - c:
            diffs.append(
                f"{key[0]} {key[1]}: ledger net debit {ledger.get(key, 0)} but legs {d - c}"
            )
    diffs += _zero_sum("running totals", running) + _zero_sum("transfer legs", legs)
    gateway_mismatch = await conn.fetchval(
        """SELECT count(*) FROM clearing_transfers c LEFT JOIN transfers t ON t.id = c.id
            WHERE c.window_id = $1 AND c.state = 'COMMITTED'
              AND (t.id IS NULL OR t.state <> 'COMMITTED' OR t.tx_status <> 'ACSC')""",
        window_id,
    )
    if gateway_mismatch:
        diffs.append(
            f"{gateway_mismatch} transfers committed in the window are not ACSC in the gateway's records"
        )
    if folder is not None:
        files, problems = _files(folder)
        diffs += problems + _compare("settlement files", files, "running totals", running)
        diffs += _zero_sum("settlement files", files)
    return diffs
