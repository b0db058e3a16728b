"""Acceptance: turn decoded, routed transactions into recorded, reserved transfers.

One database transaction per batch of concurrent submissions (see
docs/decisions/0002-batched-reservations.md):

1. insert every candidate into `transfers` (ON CONFLICT DO NOTHING on (sender, end-to-end id));
   a conflict is a replay (same payload hash: the stored outcome is returned, nothing is
   reserved again) or a duplicate (different hash: RJCT DUPL, nothing stored);
2. reserve the new, routable ones through the clearing store, inside the same transaction;
3. record each outcome (state, status history) and an outbox row per reserved transfer; in
   liquidity-saving mode a transfer refused with AM04 is queued instead (QUEUED / PDNG, see
   gateway/lsm_store.py). Rows go in as reserved, so only those refused or queued are
   updated; the clearing store's writes, the outcomes and the audit records are one
   statement, so the payer's position rows are held for two round trips (it and the commit);
4. commit once, then answer every caller.

Nothing is acknowledged before the commit, so an acknowledged transfer survives a crash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from clearing.model import Transfer, TransferState, TxStatus
from clearing.reasons import Reason, Rejection
from gateway import audit, lsm_store, transfer_json
from gateway.clearing_sql import WRITTEN_POSITIONS, Ctes, statement

CANDIDATES_PER_BATCH_MAX = 2_000


@dataclass(frozen=True, slots=True)
class Candidate:
    transfer: Transfer  # id assigned; destination scheme / creditor amount set when routed
    sender_id: str
    receiver_id: str | None
    payload_sha256: str
    rejection: Rejection | None  # decided before the database (routing, corridor pre-checks)
    reserve: Any | None  # the clearing store's ReserveRequest, None when rejected
    priority: str = "normal"  # "urgent" | "normal": order in the liquidity-saving queue
    # `transfer_json.payload(sent)[0]` when `transfer` is the sent one routed: the stored
    # JSON reuses it (transfer_json.stored_json) instead of encoding the transfer again.
    payload_json: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    transfer_id: str | None
    end_to_end_id: str
    tx_id: str | None
    status: TxStatus
    reason: Reason | None = None
    message: str | None = None
    replay: bool = False


_INSERT = """
INSERT INTO transfers (id, sender_id, receiver_id, source_scheme, destination_scheme, msg_id,
    end_to_end_id, payload_sha256, state, tx_status, reason, reason_message, amount_minor, currency,
    creditor_amount_minor, creditor_currency, quote_id, transfer, created_at, updated_at, expires_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[],
    $14::text[], $15::bigint[], $16::text[], $17::text[], $18::jsonb[], $19::timestamptz[],
    $19::timestamptz[], $20::timestamptz[])
ON CONFLICT (sender_id, end_to_end_id) DO NOTHING
RETURNING id
"""

_EXISTING = """
SELECT t.id, t.sender_id, t.end_to_end_id, t.payload_sha256, t.tx_status, t.reason, t.reason_message
FROM transfers t JOIN unnest($1::text[], $2::text[]) AS k(sender_id, e2e)
  ON t.sender_id = k.sender_id AND t.end_to_end_id = k.e2e
"""

# The outcome of every inserted row whose decision changed what it was inserted with
# (`changed`), the history event of every one and, for a reservation, its delivery outbox
# row: CTEs, run in one statement with the clearing store's writes and the audit
# records (`clearing_sql.statement`): one round trip while the position rows are locked.
_RECORD = """
acc_u AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $7::text[],
                         $8::bool[])
                  AS u(id, state, tx_status, reason, msg, detail, changed)
), acc_updated AS (
    UPDATE transfers t SET state = u.state, tx_status = u.tx_status, reason = u.reason,
        reason_message = u.msg, updated_at = $6
    FROM acc_u u WHERE u.changed AND t.id = u.id
), acc_events AS (
    INSERT INTO transfer_events (transfer_id, at, state, tx_status, reason, detail)
    SELECT id, $6, state, tx_status, reason, detail FROM acc_u
), acc_outbox AS (
    INSERT INTO outbox (transfer_id, kind, next_attempt_at, created_at)
    SELECT id, 'deliver', $6, $6 FROM acc_u WHERE acc_u.state = 'RESERVED'
    ON CONFLICT (transfer_id, kind) DO NOTHING
)
"""
_RECORDED = "SELECT NULL, (SELECT seq FROM audit_moved), (SELECT hash FROM audit_moved)"
_RECORDED_WITH_WRITES = _RECORDED.replace("NULL", WRITTEN_POSITIONS, 1)


def _row(c: Candidate, now: datetime, expires_at: datetime) -> tuple[Any, ...]:
    t = c.transfer
    rej = c.rejection
    return (
        t.id,
        c.sender_id,
        c.receiver_id,
        t.source_scheme,
        t.destination_scheme,
        t.msg_id,
        t.end_to_end_id,
        c.payload_sha256,
        # Inserted as reserved, the usual outcome: after the decision only the transfers it
        # refused or queued are updated (an update rewrites the whole row, JSON included).
        TransferState.REJECTED if rej else TransferState.RESERVED,
        TxStatus.RJCT if rej else TxStatus.ACSP,
        str(rej.code) if rej else None,
        rej.message if rej else None,
        t.amount.minor,
        t.amount.currency,
        t.creditor_amount.minor if t.creditor_amount else None,
        t.creditor_amount.currency if t.creditor_amount else None,
        t.quote_id,
        transfer_json.dumps(t)
        if c.payload_json is None
        else transfer_json.stored_json(c.payload_json, t),
        now,
        None if rej else expires_at,
    )


async def accept_batch(
    conn: asyncpg.Connection,
    candidates: Sequence[Candidate],
    clearing: Any,
    now: datetime,
    transfer_timeout_s: float,
    *,
    queue_ttl_s: float = lsm_store.QUEUE_TTL_S_DEFAULT,
    queue_close_at: datetime | None = None,
) -> list[Outcome]:
    """Record, deduplicate and reserve a batch in the caller's transaction; one outcome each.

    A queued transfer waits at most `queue_ttl_s`, and never past `queue_close_at` (the next
    scheduled window close, when there is one)."""
    assert len(candidates) <= CANDIDATES_PER_BATCH_MAX
    expires_at = now + timedelta(seconds=transfer_timeout_s)
    # Within one batch, the first copy of a (sender, e2e) wins; later copies are judged
    # against it like any other existing row.
    first: dict[tuple[str, str], Candidate] = {}
    for c in candidates:
        first.setdefault((c.sender_id, c.transfer.end_to_end_id), c)
    fresh = list(first.values())
    # Rows go in in key order: concurrent batches that share keys then wait on each other's
    # unique-index entries in one order, never in a cycle (a deadlock).
    keyed = sorted(fresh, key=lambda c: (c.sender_id, c.transfer.end_to_end_id))
    rows = [_row(c, now, expires_at) for c in keyed]
    cols = list(zip(*rows, strict=True)) if rows else [()] * 20
    inserted_ids = {r["id"] for r in await conn.fetch(_INSERT, *[list(col) for col in cols])}
    # Everything not inserted is a replay or a duplicate of a stored row.
    others = [c for c in candidates if c.transfer.id not in inserted_ids]
    existing: dict[tuple[str, str], asyncpg.Record] = {}
    if others:
        recs = await conn.fetch(
            _EXISTING, [c.sender_id for c in others], [c.transfer.end_to_end_id for c in others]
        )
        existing = {(r["sender_id"], r["end_to_end_id"]): r for r in recs}

    to_reserve = [c for c in fresh if c.transfer.id in inserted_ids and c.rejection is None]
    decisions, writes = await _reserve(conn, clearing, to_reserve)
    decided: dict[str, Rejection | None] = {
        d.transfer_id: (None if d.ok else d.rejection) for d in decisions
    }
    queued = await _to_queue(conn, to_reserve, decided, clearing)
    if queued:
        until = lsm_store.queue_expiry(now, queue_ttl_s, queue_close_at)
        await lsm_store.enqueue(conn, list(queued.values()), now, until)
    await _record(conn, fresh, inserted_ids, decided, now, queued, writes)

    out: list[Outcome] = []
    for c in candidates:
        t = c.transfer
        if t.id in inserted_ids:
            out.append(_decided(c, decided, queued))
            continue
        # A copy of a payment recorded by this very batch gets that payment's decided answer,
        # not the row as it stood before the decision.
        twin = first.get((c.sender_id, t.end_to_end_id))
        if twin is not None and twin.transfer.id in inserted_ids:
            if twin.payload_sha256 == c.payload_sha256:
                o = _decided(twin, decided, queued)
                out.append(
                    Outcome(
                        o.transfer_id,
                        t.end_to_end_id,
                        t.tx_id,
                        o.status,
                        o.reason,
                        o.message,
                        replay=True,
                    )
                )
            else:
                out.append(
                    Outcome(
                        None,
                        t.end_to_end_id,
                        t.tx_id,
                        TxStatus.RJCT,
                        Reason.DUPL,
                        f"end-to-end id {t.end_to_end_id} was already used for a different payment",
                    )
                )
            continue
        rec = existing.get((c.sender_id, t.end_to_end_id))
        if rec is not None and rec["payload_sha256"] == c.payload_sha256:
            status = TxStatus(rec["tx_status"])
            reason = Reason(rec["reason"]) if rec["reason"] else None
            out.append(
                Outcome(
                    rec["id"],
                    t.end_to_end_id,
                    t.tx_id,
                    status,
                    reason,
                    rec["reason_message"],
                    replay=True,
                )
            )
        else:
            out.append(
                Outcome(
                    None,
                    t.end_to_end_id,
                    t.tx_id,
                    TxStatus.RJCT,
                    Reason.DUPL,
                    f"end-to-end id {t.end_to_end_id} was already used for a different payment",
                )
            )
    return out


async def _reserve(
    conn: asyncpg.Connection, clearing: Any, to_reserve: Sequence[Candidate]
) -> tuple[list[Any], Any]:
    """Decisions, and the clearing store's writes when it can leave them to `_record`'s
    statement (`ClearingStore.decide_batch`); other clearing ports write themselves."""
    if not to_reserve:
        return [], None
    requests = [c.reserve for c in to_reserve]
    decide = getattr(clearing, "decide_batch", None)
    if decide is None:
        return await clearing.reserve_batch(conn, requests), None
    return await decide(conn, requests)


def _decided(c: Candidate, decided: dict[str, Rejection | None], queued: Any) -> Outcome:
    t = c.transfer
    assert t.id is not None, "candidates carry their gateway id"
    rej = c.rejection if c.rejection is not None else decided.get(t.id)
    if t.id in queued:
        return Outcome(t.id, t.end_to_end_id, t.tx_id, TxStatus.PDNG)
    if rej is None:
        return Outcome(t.id, t.end_to_end_id, t.tx_id, TxStatus.ACSP)
    return Outcome(t.id, t.end_to_end_id, t.tx_id, TxStatus.RJCT, rej.code, rej.message)


async def _to_queue(
    conn: asyncpg.Connection,
    to_reserve: Sequence[Candidate],
    decided: dict[str, Rejection | None],
    clearing: Any,
) -> dict[str, lsm_store.ToQueue]:
    """The AM04 refusals to queue instead: queueable, and the payer's limits in saving mode."""
    rules = getattr(clearing, "rules", None)
    maybe: list[tuple[str, Candidate]] = []
    for c in to_reserve:
        tid = c.transfer.id
        assert tid is not None, "candidates carry their gateway id"
        rej = decided.get(tid)
        if rej is not None and rej.code == Reason.AM04 and lsm_store.queueable(c.reserve, rules):
            maybe.append((tid, c))
    if not maybe:
        return {}
    legs = {tid: c.reserve.legs[0] for tid, c in maybe if c.reserve is not None}
    on = await lsm_store.saving_enabled(conn, {(g.payer, g.amount.currency) for g in legs.values()})
    out: dict[str, lsm_store.ToQueue] = {}
    for tid, c in maybe:
        g = legs[tid]
        if (g.payer, g.amount.currency) in on and c.reserve is not None:
            out[tid] = lsm_store.ToQueue(
                tid, g.payer, g.payee, g.amount, c.reserve.source_scheme,
                c.reserve.destination_scheme, c.priority,
            )  # fmt: skip
    return out


async def _record(
    conn: asyncpg.Connection,
    fresh: Sequence[Candidate],
    inserted_ids: set[str],
    decided: dict[str, Rejection | None],
    now: datetime,
    queued: Mapping[str, Any],
    writes: Any,
) -> None:
    ids: list[str] = []
    states: list[str] = []
    statuses: list[str] = []
    reasons: list[str | None] = []
    msgs: list[str | None] = []
    details: list[str] = []
    changed: list[bool] = []  # refused or queued by the decision: not as inserted (`_row`)
    for c in fresh:
        tid = c.transfer.id
        if tid is None or tid not in inserted_ids:
            continue
        rej = c.rejection if c.rejection is not None else decided.get(tid)
        ids.append(tid)
        changed.append(c.rejection is None and rej is not None)
        if tid in queued and rej is not None:
            states.append(TransferState.QUEUED)
            statuses.append(TxStatus.PDNG)
            reasons.append(None)
            msgs.append(None)
            details.append(f"queued for liquidity: {rej.message}"[:200])
        elif rej is None:
            states.append(TransferState.RESERVED)
            statuses.append(TxStatus.ACSP)
            reasons.append(None)
            msgs.append(None)
            details.append("reserved; queued for delivery")
        else:
            states.append(TransferState.REJECTED)
            statuses.append(TxStatus.RJCT)
            reasons.append(str(rej.code))
            msgs.append(rej.message)
            details.append(json.dumps({"path": rej.path})[:200])
    if not ids:
        assert writes is None, "reservations are only made for inserted transfers"
        return
    by_id = {c.transfer.id: c for c in fresh}
    events = [
        audit.AuditEvent(
            audit.KIND_MESSAGE_ACCEPTED,
            tid,
            now,
            {
                "sender": by_id[tid].sender_id,
                "msg_id": by_id[tid].transfer.msg_id,
                "end_to_end_id": by_id[tid].transfer.end_to_end_id,
                "payload_sha256": by_id[tid].payload_sha256,
                "state": st,
                "status": sts,
                "reason": rs,
            },
        )
        for tid, st, sts, rs in zip(ids, states, statuses, reasons, strict=True)
    ]
    # The clearing store's writes, the outcomes and the journal (last: appenders queue on the
    # chain head until this transaction commits) in one statement.
    parts = [
        Ctes(_RECORD, (ids, states, statuses, reasons, msgs, now, details, changed)),
        audit.append_ctes(events),
    ]
    if writes is not None:
        parts.insert(0, writes.ctes)
    sql, args = statement(parts, _RECORDED if writes is None else _RECORDED_WITH_WRITES)
    row = await conn.fetchrow(sql, *args)
    if writes is not None:
        writes.check(row[0])
    audit.moved_head(row[1:])
