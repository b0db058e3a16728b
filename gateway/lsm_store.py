"""Liquidity-saving queue on PostgreSQL: enqueue, snapshot, apply a release, expire.

The pure resolver (`clearing.lsm`) decides; this module reads what it needs and writes what
it decided. Three writers touch the queue, each in one transaction:

- acceptance (`enqueue`): a single-leg transfer refused with AM04 whose payer's limits carry
  `liquidity_saving` is recorded QUEUED / PDNG with a row in `lsm_queue`, in the acceptance
  transaction itself, so the PDNG answer and the queue row commit together;
- the runner (`apply`): lock the released queue rows, move the transfers to RESERVED, insert
  their clearing_transfers rows, lock the involved position rows in (participant, currency)
  order, re-check the release against those locked rows with `clearing.lsm.check_release`,
  and only then add the reserved amounts. Any problem rolls the whole transaction back: a
  stale release changes nothing and is recomputed on the next run;
- expiry (`expire_due`): queued transfers past `expires_at` end REJECTED / RJCT AM04 with a
  callback to the sender.

Lock order (see also gateway/clearing_sql.py, which this follows): lsm_queue rows by
transfer id -> transfers rows -> clearing_transfers -> clearing_positions by (participant,
currency). Expiry takes queue rows with SKIP LOCKED, so it never waits on a release.

Positions are seen as the reservation path sees them: exposure = net + reserved, so a
participant's resolver position is -(net + reserved) and its cap the lower of net debit cap
and liquidity cover. Credits of transfers still in flight are not counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from clearing import lsm
from clearing.corridors import CorridorRules
from clearing.model import TransferState, TxStatus
from clearing.money import Money
from clearing.ports import ReserveRequest
from clearing.reasons import Reason
from gateway import audit, metrics
from gateway import clearing_sql as cq

QUEUE_TTL_S_DEFAULT = 600.0
RELEASE_MAX = 8_000  # transfers applied in one transaction (the audit journal takes 8,192)
# One resolver run looks at most this many queued transfers per currency (the first in
# priority and arrival order), so that any release fits one transaction: a part of a
# feasible set may break a floor, so a release is never split.
SNAPSHOT_MAX = RELEASE_MAX
EXPIRE_BATCH_MAX = 1_000

Clock = Callable[[], datetime]
PosKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A queued transfer as the resolver and the apply step need it."""

    transfer: lsm.QueuedTransfer
    queued_at: datetime
    source_scheme: str
    destination_scheme: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    currency: str
    entries: list[QueueEntry]
    balances: dict[PosKey, lsm.PositionSnapshot]


@dataclass(frozen=True, slots=True)
class ApplyResult:
    applied: bool
    released: tuple[str, ...] = ()
    value_minor: int = 0
    problems: tuple[lsm.Problem, ...] = ()
    delays_s: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class QueueView:
    participant_id: str
    currency: str
    depth: int
    value_minor: int
    oldest_queued_at: datetime


@dataclass(frozen=True, slots=True)
class ToQueue:
    """A refused transfer to queue instead, decided at acceptance."""

    transfer_id: str
    payer: str
    payee: str
    amount: Money
    source_scheme: str
    destination_scheme: str
    priority: str = lsm.Priority.NORMAL


class _Stale(Exception):
    def __init__(self, problems: Sequence[lsm.Problem] = ()) -> None:
        super().__init__("stale release")
        self.problems = tuple(problems)


# -- acceptance side ---------------------------------------------------------------------


def queueable(req: ReserveRequest | None, rules: CorridorRules | None) -> bool:
    """Only single-currency, single-leg transfers outside per-debtor corridor limits queue.

    A conversion holds an FX quote that expires, and a corridor usage count would have to
    be re-checked at release: both keep AM04 (see docs/decisions/0009)."""
    if req is None or len(req.legs) != 1:
        return False
    rule = rules.lookup(req.source_scheme, req.destination_scheme) if rules else None
    return rule is None or not rule.counts_usage


_SAVING = """
SELECT l.participant_id, l.currency
  FROM unnest($1::text[], $2::text[]) AS k(participant_id, currency)
  JOIN participant_limits l ON l.participant_id = k.participant_id AND l.currency = k.currency
 WHERE l.liquidity_saving
"""

_ENQUEUE = """
INSERT INTO lsm_queue (transfer_id, payer, payee, currency, amount, priority, source_scheme,
                       destination_scheme, queued_at, expires_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                     $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[])
"""


async def saving_enabled(conn: asyncpg.Connection, keys: set[PosKey]) -> set[PosKey]:
    """The (participant, currency) pairs among `keys` in liquidity-saving mode."""
    if not keys:
        return set()
    ks = sorted(keys)
    rows = await conn.fetch(_SAVING, [k[0] for k in ks], [k[1] for k in ks])
    return {(r[0], r[1]) for r in rows}


def queue_expiry(now: datetime, ttl_s: float, close_at: datetime | None) -> datetime:
    """`ttl_s` from now, but never past the next scheduled window close."""
    until = now + timedelta(seconds=ttl_s)
    if close_at is not None and now < close_at < until:
        return close_at
    return until


async def enqueue(
    conn: asyncpg.Connection, items: Sequence[ToQueue], now: datetime, expires_at: datetime
) -> None:
    """Insert queue rows inside the acceptance transaction (the transfers rows exist)."""
    if not items:
        return
    await conn.execute(
        _ENQUEUE,
        [i.transfer_id for i in items], [i.payer for i in items], [i.payee for i in items],
        [i.amount.currency for i in items], [i.amount.minor for i in items],
        [str(i.priority) for i in items], [i.source_scheme for i in items],
        [i.destination_scheme for i in items], [now] * len(items), [expires_at] * len(items),
    )  # fmt: skip


# -- the runner's side -------------------------------------------------------------------

_CURRENCIES = "SELECT DISTINCT currency FROM lsm_queue ORDER BY currency"

# Queued transfers whose payer and payee are both active; (priority, arrival) order.
_QUEUE = """
SELECT q.transfer_id, q.seq, q.payer, q.payee, q.currency, q.amount, q.priority,
       q.source_scheme, q.destination_scheme, q.queued_at
  FROM lsm_queue q
  JOIN participants a ON a.id = q.payer AND a.status = 'active'
  JOIN participants b ON b.id = q.payee AND b.status = 'active'
 WHERE q.currency = $1
 ORDER BY (q.priority = 'normal'), q.seq
 LIMIT $2
"""

_BALANCES = """
SELECT p.participant_id, p.currency, p.net, p.reserved,
       coalesce(l.net_debit_cap, 0) AS net_debit_cap,
       coalesce(l.liquidity_cover, 0) AS liquidity_cover
  FROM clearing_positions p
  LEFT JOIN participant_limits l
         ON l.participant_id = p.participant_id AND l.currency = p.currency
 WHERE p.currency = $1 AND p.participant_id = ANY($2::text[])
"""

_LOCK_QUEUE = """
SELECT q.transfer_id FROM unnest($1::text[]) AS k(id) JOIN lsm_queue q ON q.transfer_id = k.id
 ORDER BY q.transfer_id
   FOR UPDATE OF q
"""

_RELEASE_TRANSFERS = """
UPDATE transfers t SET state = 'RESERVED', tx_status = 'ACSP', updated_at = $2, expires_at = $3
  FROM unnest($1::text[]) AS k(id)
 WHERE t.id = k.id AND t.state = 'QUEUED'
"""

_EVENTS = """
INSERT INTO transfer_events (transfer_id, at, state, tx_status, reason, detail)
SELECT id, $2, $3, $4, $5, $6 FROM unnest($1::text[]) AS e(id)
"""

_OUTBOX = """
INSERT INTO outbox (transfer_id, kind, next_attempt_at, created_at)
SELECT id, $2, $3, $3 FROM unnest($1::text[]) AS o(id)
ON CONFLICT (transfer_id, kind) DO NOTHING
"""

_DEQUEUE = "DELETE FROM lsm_queue q USING unnest($1::text[]) AS k(id) WHERE q.transfer_id = k.id"

_DUE = """
SELECT transfer_id FROM lsm_queue WHERE expires_at <= $1
 ORDER BY transfer_id LIMIT $2
   FOR UPDATE SKIP LOCKED
"""

_EXPIRE_TRANSFERS = """
UPDATE transfers t SET state = 'REJECTED', tx_status = 'RJCT', reason = 'AM04',
       reason_message = $3, updated_at = $2
  FROM unnest($1::text[]) AS k(id)
 WHERE t.id = k.id AND t.state = 'QUEUED'
RETURNING t.id, t.source_scheme, t.destination_scheme
"""

_VIEW = """
SELECT payer, currency, count(*) AS depth, sum(amount)::bigint AS value_minor,
       min(queued_at) AS oldest
  FROM lsm_queue GROUP BY payer, currency ORDER BY payer, currency
"""

EXPIRED_MESSAGE = "queued for liquidity and not released before the queue time limit"


def balances_from(rows: Sequence[Any]) -> dict[PosKey, lsm.PositionSnapshot]:
    """Resolver balances from position rows (net, reserved: debits positive)."""
    return {
        (r["participant_id"], r["currency"]): lsm.PositionSnapshot.from_limits(
            -(r["net"] + r["reserved"]), r["net_debit_cap"], r["liquidity_cover"]
        )
        for r in rows
    }


@dataclass
class LsmStore:
    pool: asyncpg.Pool
    clock: Clock
    transfer_timeout_s: float
    snapshot_max: int = SNAPSHOT_MAX

    def __post_init__(self) -> None:
        self.snapshot_max = max(1, min(self.snapshot_max, RELEASE_MAX))

    async def currencies(self) -> list[str]:
        async with self.pool.acquire() as conn:
            return [r[0] for r in await conn.fetch(_CURRENCIES)]

    async def snapshot(self, currency: str) -> Snapshot:
        """The queue of one currency and the balances of everyone in it (read-only)."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            rows = await conn.fetch(_QUEUE, currency, self.snapshot_max)
            names = sorted({r["payer"] for r in rows} | {r["payee"] for r in rows})
            bal = await conn.fetch(_BALANCES, currency, names) if names else []
        entries = [
            QueueEntry(
                lsm.QueuedTransfer(
                    r["transfer_id"],
                    r["payer"],
                    r["payee"],
                    Money(r["amount"], r["currency"]),
                    r["priority"],
                    r["seq"],
                ),
                r["queued_at"],
                r["source_scheme"],
                r["destination_scheme"],
            )
            for r in rows
        ]
        return Snapshot(currency, entries, balances_from(bal))

    async def apply(
        self, entries: Sequence[QueueEntry], released_by: Mapping[str, str] | None = None
    ) -> ApplyResult:
        """Reserve `entries` together, all or nothing, after a re-check under lock."""
        if not entries:
            return ApplyResult(True)
        if len(entries) > RELEASE_MAX:
            raise ValueError(f"at most {RELEASE_MAX} transfers per release, got {len(entries)}")
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                now = await self._apply(conn, entries, released_by or {})
        except _Stale as stale:
            return ApplyResult(False, problems=stale.problems)
        txs = [e.transfer for e in entries]
        return ApplyResult(
            True, tuple(t.id for t in txs), sum(t.amount.minor for t in txs),
            delays_s=tuple(max(0.0, (now - e.queued_at).total_seconds()) for e in entries),
        )  # fmt: skip

    async def _apply(
        self, conn: asyncpg.Connection, entries: Sequence[QueueEntry], by: Mapping[str, str]
    ) -> datetime:
        now = self.clock()
        expires_at = now + timedelta(seconds=self.transfer_timeout_s)
        ids = sorted(e.transfer.id for e in entries)
        if len(await conn.fetch(_LOCK_QUEUE, ids)) != len(ids):
            raise _Stale()  # some expired (or were released) since the snapshot
        if await conn.execute(_RELEASE_TRANSFERS, ids, now, expires_at) != f"UPDATE {len(ids)}":
            raise _Stale()
        await conn.copy_records_to_table(
            "clearing_transfers", columns=cq.TRANSFER_COLUMNS,
            records=[_clearing_row(e, now, expires_at) for e in entries],
        )  # fmt: skip
        txs = [e.transfer for e in entries]
        keys = sorted({(t.payer, t.currency) for t in txs} | {(t.payee, t.currency) for t in txs})
        locked = await conn.fetch(cq.LOCK_POSITIONS, [k[0] for k in keys], [k[1] for k in keys])
        problems = lsm.check_release(txs, balances_from(locked))
        if problems:
            raise _Stale(problems)
        out: dict[PosKey, int] = defaultdict(int)
        for t in txs:
            out[(t.payer, t.currency)] += t.amount.minor
        deltas = sorted(out.items())
        status = await conn.execute(
            cq.ADD_RESERVED, [k[0] for k, _ in deltas], [k[1] for k, _ in deltas],
            [d for _, d in deltas],
        )  # fmt: skip
        if status != f"UPDATE {len(deltas)}":
            raise _Stale()  # a payer without a position row has no limits: cannot happen
        await conn.execute(
            _EVENTS, ids, now, TransferState.RESERVED.value, TxStatus.ACSP.value, None,
            "released by liquidity-saving offsetting; queued for delivery",
        )  # fmt: skip
        await conn.execute(_OUTBOX, ids, "deliver", now)
        await conn.execute(_DEQUEUE, ids)
        await audit.append(conn, [
            audit.AuditEvent(audit.KIND_TRANSFER_STATE, t.id, now, {
                "state": TransferState.RESERVED.value, "status": TxStatus.ACSP.value,
                "reason": None, "released_by": str(by.get(t.id, lsm.Pass.FIFO)),
            })
            for t in sorted(txs, key=lsm.queue_order_key)
        ])  # fmt: skip
        return now

    async def expire_due(
        self, now: datetime | None = None, limit: int = EXPIRE_BATCH_MAX
    ) -> list[str]:
        """Reject queued transfers past their time limit (RJCT AM04, callback to the sender)."""
        now = now or self.clock()
        limit = max(1, min(limit, EXPIRE_BATCH_MAX))
        async with self.pool.acquire() as conn, conn.transaction():
            ids = [r[0] for r in await conn.fetch(_DUE, now, limit)]
            if not ids:
                return []
            await conn.execute(_DEQUEUE, ids)
            done = await conn.fetch(_EXPIRE_TRANSFERS, ids, now, EXPIRED_MESSAGE)
            ended = sorted(r["id"] for r in done)
            if ended:
                await conn.execute(
                    _EVENTS, ended, now, TransferState.REJECTED.value, TxStatus.RJCT.value,
                    Reason.AM04.value, EXPIRED_MESSAGE,
                )  # fmt: skip
                await conn.execute(_OUTBOX, ended, "callback", now)
                await audit.append(conn, [
                    audit.AuditEvent(audit.KIND_TRANSFER_STATE, tid, now, {
                        "state": TransferState.REJECTED.value, "status": TxStatus.RJCT.value,
                        "reason": Reason.AM04.value,
                    })
                    for tid in ended
                ])  # fmt: skip
        for r in done:
            metrics.record_rejection(Reason.AM04.value, r["source_scheme"])
            metrics.record_transfer(
                r["source_scheme"], r["destination_scheme"], TxStatus.RJCT.value
            )
        return ended

    async def queue_view(self) -> list[QueueView]:
        """Depth and value waiting per payer and currency (operator view)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_VIEW)
        return [QueueView(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def _clearing_row(e: QueueEntry, now: datetime, expires_at: datetime) -> tuple[Any, ...]:
    """A clearing_transfers row (`clearing_sql.TRANSFER_COLUMNS` order) for a single leg."""
    t = e.transfer
    return (
        t.id, "RESERVED", e.source_scheme, e.destination_scheme, t.payer, t.payee,
        t.currency, t.amount.minor, None, None, None, None, None, None, None, None, 0,
        now, expires_at,
    )  # fmt: skip
