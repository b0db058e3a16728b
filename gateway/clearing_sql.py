"""SQL of the clearing store (gateway/clearing_store.py), kept apart so the logic reads on a screen.

Lock order, the same in every transaction so that none can deadlock another:
clearing_window_current -> clearing_transfers (by id) -> clearing_window_totals (by key) ->
clearing_positions (by participant, currency) -> clearing_corridor_usage (by key). Operator
actions (close, confirm, abort) also take one transaction-level advisory lock first. Position
rows are taken as late as possible (just before COMMIT) because a hot payer's row is the one
every batch queues for.

Transfers are written before the position rows are locked (a refused one is deleted again in
the same transaction): the hot rows are then held only for the decision and its update.
Large id lists are joined through unnest() rather than `= ANY(array)`, which the planner may
turn into a scan comparing every row with every element.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clearing.twophase import TRANSITIONS

_PARAM_RE = re.compile(r"\$(\d+)")


@dataclass(frozen=True, slots=True)
class Ctes:
    """Named (data-modifying) CTEs, `name AS (...)` separated by commas, numbering their own
    parameters from $1. Several are run as one statement (`statement`): each round trip saved
    while a transaction holds the hot position rows or the audit head shortens everyone's wait."""

    sql: str
    args: tuple[Any, ...]


@functools.lru_cache(maxsize=256)
def _shift(sql: str, offset: int) -> str:
    return _PARAM_RE.sub(lambda m: f"${int(m.group(1)) + offset}", sql.strip())


def statement(parts: Sequence[Ctes], select: str) -> tuple[str, list[Any]]:
    """One `WITH RECURSIVE ... <select>` from `parts`, parameters renumbered in order.

    `select` may name any CTE of any part; CTEs it does not read still run to completion
    (PostgreSQL runs every data-modifying CTE exactly once). CTE names must differ."""
    ctes: list[str] = []
    args: list[Any] = []
    for part in parts:
        ctes.append(_shift(part.sql, len(args)))
        args.extend(part.args)
    return "WITH RECURSIVE " + ",\n".join(ctes) + "\n" + select, args


OPS_LOCK_KEY = 0x42474331  # "BGC1": serializes window closes and settlement changes

PARTICIPANTS = """
SELECT p.id, p.status, p.role FROM unnest($1::text[]) AS k(id) JOIN participants p ON p.id = k.id
"""

# Locks the payers' rows in (participant, currency) order and returns their values after any
# wait, with the caps (read, not locked: operators never block). Rows exist for every payer
# with limits (migrations/0003); a payer without a row has no cap and needs no lock.
LOCK_POSITIONS = """
SELECT p.participant_id, p.currency, p.net, p.reserved,
       coalesce(l.net_debit_cap, 0) AS net_debit_cap,
       coalesce(l.liquidity_cover, 0) AS liquidity_cover
  FROM unnest($1::text[], $2::text[]) AS k(participant_id, currency)
  JOIN clearing_positions p ON p.participant_id = k.participant_id AND p.currency = k.currency
  LEFT JOIN participant_limits l
         ON l.participant_id = p.participant_id AND l.currency = p.currency
 ORDER BY p.participant_id, p.currency
   FOR UPDATE OF p
"""

# The payers' position rows, then the corridor usage rows (created when missing), locked in
# one statement: the usage upsert waits for `pos` to be complete (its one-time filter reads
# it), so lock order holds. Rows come back as (kind 0 = position: participant, currency, -,
# net, reserved, cap, cover) and (kind 1 = usage: group, identity hash, period, used).
LOCK_POSITIONS_USAGE = """
WITH pos AS (
{lock_positions}
), usage AS (
    INSERT INTO clearing_corridor_usage AS u (limit_group, identity_hash, period)
    SELECT k.g, k.h, k.p FROM unnest($3::text[], $4::text[], $5::text[]) AS k(g, h, p)
     WHERE (SELECT count(*) FROM pos) >= 0
     ORDER BY k.g, k.h, k.p
    ON CONFLICT (limit_group, identity_hash, period) DO UPDATE SET used = u.used
    RETURNING u.limit_group, u.identity_hash, u.period, u.used
)
SELECT 0 AS kind, participant_id, currency, NULL::text AS period, net, reserved, net_debit_cap,
       liquidity_cover
  FROM pos
UNION ALL
SELECT 1, limit_group, identity_hash, period, used, NULL, NULL, NULL FROM usage
""".replace("{lock_positions}", LOCK_POSITIONS.strip())

QUOTES = """
SELECT id, source_currency, target_currency, rate, mid_rate, spread_bps, fx_provider,
       created_at, expires_at
  FROM clearing_fx_quotes WHERE id = ANY($1::text[])
"""

TRANSFER_COLUMNS = (
    "id", "state", "source_scheme", "destination_scheme", "payer", "payee", "currency", "amount",
    "payee2", "currency2", "amount2", "quote_id", "limit_group", "identity_hash", "usage_day",
    "usage_year", "counted", "reserved_at", "expires_at",
)  # fmt: skip

# The batch's clearing rows; an id already known is left alone (the pure core refuses it as
# a repeat) and not returned. One statement where a look-up and a COPY took three round trips.
INSERT_TRANSFERS = """
INSERT INTO clearing_transfers ({columns})
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::bigint[], $9::text[], $10::text[], $11::bigint[], $12::text[],
                     $13::text[], $14::text[], $15::text[], $16::text[], $17::bigint[],
                     $18::timestamptz[], $19::timestamptz[])
ON CONFLICT (id) DO NOTHING
RETURNING id
""".replace("{columns}", ", ".join(TRANSFER_COLUMNS))

# What a decided batch writes, positions still locked: refused rows deleted, reserved deltas
# and corridor usage added. CTEs, run in one statement with the caller's outcome and audit
# records (`statement`); `WRITTEN_POSITIONS` counts the position rows updated.
WRITE_DECISIONS = """
clr_deleted AS (
    DELETE FROM clearing_transfers t USING unnest($1::text[]) AS k(id) WHERE t.id = k.id
),
clr_reserved AS (
    UPDATE clearing_positions p SET reserved = p.reserved + d.delta
      FROM unnest($2::text[], $3::text[], $4::bigint[]) AS d(participant_id, currency, delta)
     WHERE p.participant_id = d.participant_id AND p.currency = d.currency
    RETURNING 1
),
clr_used AS (
    UPDATE clearing_corridor_usage u SET used = u.used + d.delta
      FROM unnest($5::text[], $6::text[], $7::text[], $8::bigint[]) AS d(g, h, p, delta)
     WHERE u.limit_group = d.g AND u.identity_hash = d.h AND u.period = d.p
)
"""
WRITTEN_POSITIONS = "(SELECT count(*) FROM clr_reserved)"

ADD_RESERVED = """
UPDATE clearing_positions p SET reserved = p.reserved + d.delta
  FROM unnest($1::text[], $2::text[], $3::bigint[]) AS d(participant_id, currency, delta)
 WHERE p.participant_id = d.participant_id AND p.currency = d.currency
"""


def _transition_case() -> str:
    """The two-phase state machine as a SQL CASE, generated from `twophase.TRANSITIONS`
    so that the store and the in-memory engine follow one table. NULL means no change."""
    whens = []
    for (state, event, expired), new in TRANSITIONS.items():
        due = "t.expires_at <= $4" if expired else "t.expires_at > $4"
        whens.append(
            f"WHEN t.state = '{state.value}' AND u.event = '{event.value}' AND {due}"
            f" THEN '{new.value}'"
        )
    return "CASE " + " ".join(whens) + " END"


# Takes the open window (shared: a close waits for the batch) when the batch commits, then
# locks the requested transfers in id order (their lock waits for `w`: its one-time filter
# reads it), moves those the table allows, returns them; a committed one names the window.
# Params: ids, events, reasons, now, whether the batch holds a commit.
_END_TRANSFERS = """
WITH w AS (
    SELECT window_id FROM clearing_window_current WHERE $5::bool FOR SHARE
), u AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, event, reason)
), c AS (
    SELECT t.id, u.reason, {transition} AS new_state
      FROM u JOIN clearing_transfers t ON t.id = u.id
     WHERE (SELECT count(*) FROM w) >= 0
     ORDER BY t.id
       FOR UPDATE OF t
)
UPDATE clearing_transfers t
   SET state = c.new_state, finished_at = $4,
       window_id = CASE WHEN c.new_state = 'COMMITTED' THEN (SELECT window_id FROM w) END,
       reason = CASE WHEN c.new_state = 'ABORTED' THEN c.reason END
  FROM c
 WHERE t.id = c.id AND c.new_state IS NOT NULL
RETURNING t.id, t.state, t.payer, t.payee, t.currency, t.amount, t.payee2, t.currency2,
          t.amount2, t.limit_group, t.identity_hash, t.usage_day, t.usage_year, t.counted,
          t.window_id, t.reason
"""
END_TRANSFERS = _END_TRANSFERS.replace("{transition}", _transition_case())

STATES = """
SELECT t.id, t.state, t.window_id, t.reason
  FROM unnest($1::text[]) AS k(id) JOIN clearing_transfers t ON t.id = k.id
"""

# Rows for payees credited for the first time, created in a transaction of their own. (A
# proposed row must pass the table's checks even when it conflicts, so an upsert cannot carry
# a negative reserved delta; and creating rows inside a batch would lock them out of order.)
ENSURE_POSITIONS = """
INSERT INTO clearing_positions (participant_id, currency)
SELECT k.participant_id, k.currency
  FROM unnest($1::text[], $2::text[]) AS k(participant_id, currency)
 ORDER BY k.participant_id, k.currency
ON CONFLICT (participant_id, currency) DO NOTHING
"""

# Locks the rows in key order (Sort under LockRows), then applies the deltas.
APPLY_POSITIONS = """
WITH d AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
                  AS d(participant_id, currency, net, reserved)
), locked AS (
    SELECT p.participant_id, p.currency
      FROM clearing_positions p
      JOIN d ON d.participant_id = p.participant_id AND d.currency = p.currency
     ORDER BY p.participant_id, p.currency
       FOR UPDATE OF p
)
UPDATE clearing_positions p
   SET net = p.net + d.net, reserved = p.reserved + d.reserved
  FROM d JOIN locked l ON l.participant_id = d.participant_id AND l.currency = d.currency
 WHERE p.participant_id = d.participant_id AND p.currency = d.currency
RETURNING p.participant_id, p.currency
"""

# A batch of endings' effects in one statement, in lock order: the window totals, then the
# position rows (their lock waits for `eff_totals` to complete: its one-time filter reads it),
# then the corridor usage rows (after `eff_positions`, likewise). One round trip while the
# hot rows are held, where three statements took three. Params: window id (NULL without
# commits), totals (participant, currency, debits, credits, debit count, credit count),
# position deltas (participant, currency, net, reserved), usage deltas (group, identity
# hash, period, delta; a purged daily counter is left alone). Returns how many position rows
# it updated, and usage rows.
APPLY_EFFECTS = """
WITH eff_totals AS (
    INSERT INTO clearing_window_totals AS w
           (window_id, participant_id, currency, debits, credits, debit_count, credit_count)
    SELECT $1, d.participant_id, d.currency, d.debits, d.credits, d.debit_count, d.credit_count
      FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
           AS d(participant_id, currency, debits, credits, debit_count, credit_count)
     ORDER BY d.participant_id, d.currency
    ON CONFLICT (window_id, participant_id, currency) DO UPDATE
       SET debits = w.debits + EXCLUDED.debits, credits = w.credits + EXCLUDED.credits,
           debit_count = w.debit_count + EXCLUDED.debit_count,
           credit_count = w.credit_count + EXCLUDED.credit_count
    RETURNING 1
), eff_d AS (
    SELECT * FROM unnest($8::text[], $9::text[], $10::bigint[], $11::bigint[])
                  AS d(participant_id, currency, net, reserved)
), eff_locked AS (
    SELECT p.participant_id, p.currency
      FROM clearing_positions p
      JOIN eff_d d ON d.participant_id = p.participant_id AND d.currency = p.currency
     WHERE (SELECT count(*) FROM eff_totals) >= 0
     ORDER BY p.participant_id, p.currency
       FOR UPDATE OF p
), eff_positions AS (
    UPDATE clearing_positions p
       SET net = p.net + d.net, reserved = p.reserved + d.reserved
      FROM eff_d d JOIN eff_locked l
           ON l.participant_id = d.participant_id AND l.currency = d.currency
     WHERE p.participant_id = d.participant_id AND p.currency = d.currency
    RETURNING 1
), eff_usage_d AS (
    SELECT * FROM unnest($12::text[], $13::text[], $14::text[], $15::bigint[]) AS d(g, h, p, delta)
), eff_usage_locked AS (
    SELECT u.limit_group, u.identity_hash, u.period
      FROM clearing_corridor_usage u
      JOIN eff_usage_d d ON d.g = u.limit_group AND d.h = u.identity_hash AND d.p = u.period
     WHERE (SELECT count(*) FROM eff_positions) >= 0
     ORDER BY u.limit_group, u.identity_hash, u.period
       FOR UPDATE OF u
), eff_usage AS (
    UPDATE clearing_corridor_usage u SET used = u.used + d.delta
      FROM eff_usage_d d JOIN eff_usage_locked l
           ON l.limit_group = d.g AND l.identity_hash = d.h AND l.period = d.p
     WHERE u.limit_group = d.g AND u.identity_hash = d.h AND u.period = d.p
    RETURNING 1
)
SELECT (SELECT count(*) FROM eff_positions), (SELECT count(*) FROM eff_usage)
"""

# Which of the given position rows exist (a batch that updated fewer than it needed).
EXISTING_POSITIONS = """
SELECT p.participant_id, p.currency
  FROM unnest($1::text[], $2::text[]) AS k(participant_id, currency)
  JOIN clearing_positions p ON p.participant_id = k.participant_id AND p.currency = k.currency
"""

LEDGER_COLUMNS = (
    "journal_id", "leg_no", "participant_id", "currency", "amount", "window_id", "posted_at",
)  # fmt: skip

DUE = """
SELECT id FROM clearing_transfers
 WHERE state = 'RESERVED' AND expires_at <= $1
 ORDER BY expires_at, id
 LIMIT $2
"""

POSITIONS = """
SELECT coalesce(p.participant_id, l.participant_id) AS participant_id,
       coalesce(p.currency, l.currency) AS currency,
       coalesce(p.net, 0) AS net, coalesce(p.reserved, 0) AS reserved,
       coalesce(l.net_debit_cap, 0) AS net_debit_cap,
       coalesce(l.liquidity_cover, 0) AS liquidity_cover
  FROM clearing_positions p
  FULL JOIN participant_limits l
         ON l.participant_id = p.participant_id AND l.currency = p.currency
 WHERE $1::text IS NULL OR coalesce(p.participant_id, l.participant_id) = $1
 ORDER BY 1, 2
"""

SET_LIMITS = """
INSERT INTO participant_limits AS l (participant_id, currency, net_debit_cap, liquidity_cover,
                                     updated_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (participant_id, currency) DO UPDATE
   SET net_debit_cap = EXCLUDED.net_debit_cap, liquidity_cover = EXCLUDED.liquidity_cover,
       updated_at = EXCLUDED.updated_at
"""

TRANSFER_STATE = "SELECT id, state, window_id, reason FROM clearing_transfers WHERE id = $1"
