"""The clearing store: the clearing port on PostgreSQL (asyncpg).

Decisions are the pure core's (`clearing.reserve`, `clearing.twophase`, `clearing.effects`,
`clearing.settlement`); this module loads and locks what a batch needs, calls the core, and
writes the results with set-based statements. Throughput comes from batching: the gateway
reserves a whole batch of concurrent requests inside one transaction (`reserve_batch`), and
commits/aborts go through an internal micro-batcher, so a hot payer's position row is locked
and written once per batch, never once per transfer. Every transaction takes its locks in the
order listed in `gateway.clearing_sql`, so batches never deadlock each other.

Windows and settlements are in `gateway.clearing_windows`, reached through this class.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import asyncpg

from clearing.corridors import DEFAULT_RULES, CorridorRules
from clearing.effects import Effects, Ending, effects
from clearing.fx import QUOTE_TTL_S_DEFAULT, Rate, make_quote
from clearing.ledger import LegTuple
from clearing.model import TransferState
from clearing.netting import BilateralNet
from clearing.ports import (
    ClearingError,
    Outcome,
    PositionView,
    Quote,
    ReserveDecision,
    ReserveRequest,
    SettlementView,
    WindowClose,
    WindowTotal,
)
from clearing.positions import Position, check_limits
from clearing.reserve import (
    BatchPlan,
    BatchState,
    Participant,
    PosKey,
    Prepared,
    UsageKey,
    decide,
    keys_needed,
    prepare,
)
from clearing.twophase import Event
from gateway import clearing_sql as q
from gateway import clearing_windows as cw
from gateway.batcher import MicroBatcher

Clock = Callable[[], datetime]
W = TypeVar("W")  # what a caller of `end_with` writes beside the endings
EXPIRE_LIMIT_MAX = 10_000
_END_ATTEMPTS_MAX = 3
_STATE = {s.value: s for s in TransferState}  # a dict lookup is much cheaper than the Enum call


class _MissingPositions(Exception):
    """Position rows a batch needs do not exist yet: roll back, create them, run again."""

    def __init__(self, keys: list[PosKey]) -> None:
        super().__init__(f"missing position rows {keys}")
        self.keys = keys


def _cols(rows: Iterable[tuple[Any, ...]], n: int) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(n)]
    for row in rows:
        for i, v in enumerate(row):
            cols[i].append(v)
    return cols


def _legs(r: asyncpg.Record) -> tuple[LegTuple, ...]:
    first = (r["payer"], r["payee"], r["currency"], r["amount"])
    if r["payee2"] is None:
        return (first,)
    return first, (r["payee"], r["payee2"], r["currency2"], r["amount2"])


class ClearingStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Clock,
        *,
        identity_key: bytes,
        rules: CorridorRules = DEFAULT_RULES,
        quote_ttl_s: int = QUOTE_TTL_S_DEFAULT,
        end_batch_max: int = 2_000,
        end_linger_ms: float = 1.0,
        end_queue_depth_max: int = 100_000,
        end_concurrency: int = 3,
    ) -> None:
        if not identity_key:
            raise ValueError("identity_key must not be empty")
        self.pool = pool
        self.clock = clock
        self.identity_key = identity_key
        self.rules = rules
        self.quote_ttl_s = quote_ttl_s
        self._ender: MicroBatcher[tuple[Event, str, str | None], Outcome] = MicroBatcher(
            self._end_batch,
            batch_max=end_batch_max,
            linger_ms=end_linger_ms,
            queue_depth_max=end_queue_depth_max,
            concurrency=end_concurrency,
            name="clearing-end",
        )

    async def aclose(self) -> None:
        """Finish queued commits and aborts, then stop the batcher."""
        await self._ender.aclose()

    # -- reservations ---------------------------------------------------------------------

    async def reserve_batch(
        self, conn: asyncpg.Connection, requests: Sequence[ReserveRequest]
    ) -> list[ReserveDecision]:
        """Reserve a batch inside the caller's open transaction on `conn`.

        Position rows stay locked until the caller commits: commit soon after. Do not wait on
        `commit`/`abort` of this store while that transaction is open.
        """
        decisions, writes = await self.decide_batch(conn, requests)
        if writes is not None:
            sql, args = q.statement([writes.ctes], f"SELECT {q.WRITTEN_POSITIONS}")
            writes.check(await conn.fetchval(sql, *args))
        return decisions

    async def decide_batch(
        self, conn: asyncpg.Connection, requests: Sequence[ReserveRequest]
    ) -> tuple[list[ReserveDecision], PendingWrites | None]:
        """`reserve_batch` up to the decision: the rows are locked and the decisions made, and
        what they change is returned as CTEs for the caller to run in its next statement
        (`clearing_sql.statement`, with `PendingWrites.check` on `WRITTEN_POSITIONS`), so
        that the outcome records and the reservations cost one round trip under the locks.
        The transaction must not commit before the writes ran."""
        assert conn.is_in_transaction(), "reserve_batch runs inside the caller's transaction"
        if not requests:
            return [], None
        now = self.clock()
        prepared = prepare(requests, rules=self.rules, identity_key=self.identity_key, now=now)
        pos_keys, usage_keys, quote_ids, part_ids = keys_needed(prepared)
        parts = await self._participants(conn, part_ids)
        quotes = await self._quotes(conn, quote_ids)
        # Rows first, locks last: hot position rows are held only for the decision itself.
        inserted, clashed = await self._insert(conn, prepared, now)
        positions, usage = await self._lock(
            conn, [k for k in pos_keys if k[0] in parts], usage_keys
        )
        plan = decide(prepared, BatchState(positions, parts, usage, quotes, clashed), now)
        accepted = {r.request.transfer_id for r in plan.accepted}
        refused = [tid for tid in inserted if tid not in accepted]
        return plan.decisions, _writes(plan, refused)

    async def reserve(self, requests: Sequence[ReserveRequest]) -> list[ReserveDecision]:
        """`reserve_batch` in a transaction of its own (tools and tests)."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await self.reserve_batch(conn, requests)

    async def _participants(
        self, conn: asyncpg.Connection, ids: set[str]
    ) -> dict[str, Participant]:
        rows = await conn.fetch(q.PARTICIPANTS, list(ids)) if ids else []
        return {r["id"]: Participant(r["id"], r["status"], r["role"]) for r in rows}

    async def _lock(
        self, conn: asyncpg.Connection, pos_keys: Iterable[PosKey], usage_keys: set[UsageKey]
    ) -> tuple[dict[PosKey, Position], dict[UsageKey, int]]:
        """Lock the position rows, then the corridor usage rows, in one round trip."""
        pids, ccys = _cols(sorted(pos_keys), 2)
        g, h, p = _cols(sorted(usage_keys), 3)
        if not pids and not g:
            return {}, {}
        found: dict[PosKey, Position] = {}
        usage: dict[UsageKey, int] = {}
        for r in await conn.fetch(q.LOCK_POSITIONS_USAGE, pids, ccys, g, h, p):
            if r[0] == 0:
                found[(r[1], r[2])] = Position(r[4], r[5], r[6], r[7])
            else:
                usage[(r[1], r[2], r[3])] = r[4]
        # No row: no limits, so a zero cap (see migrations/0003_clearing_positions.sql).
        return {k: found.get(k) or Position() for k in zip(pids, ccys, strict=True)}, usage

    async def _quotes(self, conn: asyncpg.Connection, ids: set[str]) -> dict[str, Quote]:
        if not ids:
            return {}
        return {r["id"]: Quote(*r.values()) for r in await conn.fetch(q.QUOTES, list(ids))}

    async def _insert(
        self, conn: asyncpg.Connection, prepared: Sequence[Prepared], now: datetime
    ) -> tuple[list[str], set[str]]:
        """Insert every request that may be accepted; return (inserted ids, ids already known).
        A repeated id in the batch is refused by `decide`, so only its first row is inserted.
        Rows go in in id order (the lock order of clearing_transfers)."""
        rows: dict[str, tuple[Any, ...]] = {}
        for p in prepared:
            if p.rejection is None:
                rows.setdefault(p.request.transfer_id, _transfer_row(p, now))
        if not rows:
            return [], set()
        ordered = [rows[tid] for tid in sorted(rows)]
        inserted = [r[0] for r in await conn.fetch(q.INSERT_TRANSFERS, *_cols(ordered, 19))]
        known = set(rows).difference(inserted)
        return inserted, known

    # -- commit, abort, expiry --------------------------------------------------------------

    async def commit(self, transfer_id: str) -> Outcome:
        """Commit a reserved transfer (the receiving provider accepted). Idempotent."""
        return await self._ender.submit((Event.COMMIT, transfer_id, None))

    async def abort(self, transfer_id: str, reason: str) -> Outcome:
        """Abort a reserved transfer (the receiving provider rejected it). Idempotent."""
        return await self._ender.submit((Event.ABORT, transfer_id, reason[:140]))

    async def expire_due(self, now: datetime | None = None, limit: int = 1_000) -> list[str]:
        """Expire up to `limit` reservations due at `now`; returns the ids this call expired."""
        now = now or self.clock()
        limit = max(1, min(limit, EXPIRE_LIMIT_MAX))
        async with self.pool.acquire() as conn:
            ids = [r[0] for r in await conn.fetch(q.DUE, now, limit)]
        if not ids:
            return []
        outs = await self._end_batch([(Event.EXPIRE, i, None) for i in ids], now)
        return [o.transfer_id for o in outs if o.changed]

    async def _end_batch(
        self, items: Sequence[tuple[Event, str, str | None]], now: datetime | None = None
    ) -> list[Outcome]:
        first: dict[str, tuple[Event, str | None]] = {}
        for ev, tid, reason in items:
            first.setdefault(tid, (ev, reason))
        final, _ = await self.end_with(first, now or self.clock(), _no_records, _nothing_last)
        return _outcomes(items, final)

    async def end_with(
        self, first: dict[str, tuple[Event, str | None]], now: datetime,
        records: Callable[[asyncpg.Connection, dict[str, Outcome]], Awaitable[W]],
        last: Callable[[asyncpg.Connection, W], Awaitable[None]],
    ) -> tuple[dict[str, Outcome], W]:  # fmt: skip
        """Commit, abort or expire transfers (`first`: id -> (event, reason)) in one
        transaction of their own, with the caller's writes: the transfers' rows are moved and
        locked, `records(conn, final states)` writes rows that take no lock after them in
        lock order (clearing_sql), the effects follow (ledger, window totals, positions,
        corridor usage), and `last(conn, what records returned)` takes what comes after the
        position rows (the audit journal's head). A payee's first credit in a currency finds
        no position row: its row is created in a short transaction of its own, holding no
        other lock (creating it inside the batch would take it out of lock order), and the
        whole batch runs again. Returns the final states and what `records` returned."""
        for _ in range(_END_ATTEMPTS_MAX):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    final, endings, window_id = await self._end_rows(conn, first, now)
                    written = await records(conn, final)
                    if endings:
                        await self._apply(conn, endings, window_id, now)
                    await last(conn, written)
                return final, written
            except _MissingPositions as missing:
                async with self.pool.acquire() as conn:
                    await conn.execute(
                        q.ENSURE_POSITIONS,
                        [k[0] for k in missing.keys],
                        [k[1] for k in missing.keys],
                    )
        raise ClearingError("position rows missing after creating them")

    async def _end_rows(
        self, conn: asyncpg.Connection, first: dict[str, tuple[Event, str | None]],
        now: datetime,
    ) -> tuple[dict[str, Outcome], list[Ending], int | None]:  # fmt: skip
        """Move the requested transfers' rows (the open window taken in the same statement
        when the batch commits); every one's final state, the transitions, and the window."""
        commits = any(ev is Event.COMMIT for ev, _ in first.values())
        ids, events, reasons = _cols(((t, ev.value, r) for t, (ev, r) in first.items()), 3)
        rows = await conn.fetch(q.END_TRANSFERS, ids, events, reasons, now, commits)
        final: dict[str, Outcome] = {}
        endings: list[Ending] = []
        window_id = None
        for r in rows:
            window_id = window_id or r["window_id"]
            tid, new = r["id"], _STATE[r["state"]]
            final[tid] = Outcome(tid, new, True, r["window_id"], r["reason"])
            keys = () if r["limit_group"] is None else (
                (r["limit_group"], r["identity_hash"], r["usage_day"]),
                (r["limit_group"], r["identity_hash"], r["usage_year"]),
            )  # fmt: skip
            endings.append(Ending(tid, _legs(r), new, keys, r["counted"]))
        rest = [tid for tid in first if tid not in final]
        for r in await conn.fetch(q.STATES, rest) if rest else ():
            final[r[0]] = Outcome(r[0], _STATE[r[1]], False, r[2], r[3])
        return final, endings, window_id

    async def _apply(
        self, conn: asyncpg.Connection, endings: list[Ending], window_id: int | None,
        now: datetime,
    ) -> None:  # fmt: skip
        """Write the effects of a batch of endings: the ledger entries, then the hot rows in
        lock order in one statement (`clearing_sql.APPLY_EFFECTS`)."""
        fx: Effects = effects(endings)
        if fx.entries:
            assert window_id is not None
            await conn.copy_records_to_table(
                "clearing_ledger_entries",
                records=[(*e, window_id, now) for e in fx.entries],
                columns=q.LEDGER_COLUMNS,
            )
        tkeys = fx.totals_keys() if fx.entries else []
        keys = fx.position_keys()
        usage = sorted((k, d) for k, d in fx.usage.items() if d)
        g, h, p = _cols((k for k, _ in usage), 3)
        positions, _ = await conn.fetchrow(
            q.APPLY_EFFECTS, window_id,
            [k[0] for k in tkeys], [k[1] for k in tkeys],
            [fx.debits.get(k, 0) for k in tkeys], [fx.credits.get(k, 0) for k in tkeys],
            [fx.debit_count.get(k, 0) for k in tkeys], [fx.credit_count.get(k, 0) for k in tkeys],
            [k[0] for k in keys], [k[1] for k in keys],
            [fx.net.get(k, 0) for k in keys], [fx.reserved.get(k, 0) for k in keys],
            g, h, p, [d for _, d in usage],
        )  # fmt: skip
        if positions != len(keys):
            found = await conn.fetch(
                q.EXISTING_POSITIONS, [k[0] for k in keys], [k[1] for k in keys]
            )
            raise _MissingPositions(sorted(set(keys) - {(r[0], r[1]) for r in found}))

    async def transfer_state(self, transfer_id: str) -> Outcome:
        async with self.pool.acquire() as conn:
            r = await conn.fetchrow(q.TRANSFER_STATE, transfer_id)
        if r is None:
            return Outcome(transfer_id, None, False)
        return Outcome(transfer_id, _STATE[r["state"]], False, r["window_id"], r["reason"])

    # -- positions, limits, FX ------------------------------------------------------------

    async def positions(self, participant_id: str | None = None) -> list[PositionView]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(q.POSITIONS, participant_id)
        return [PositionView(*r.values()) for r in rows]

    async def set_limits(
        self, participant_id: str, currency: str, net_debit_cap: int, liquidity_cover: int
    ) -> PositionView:
        """Change a cap and cover at once. Never waits for transfers: reservations read caps
        without locking them, and apply the new values from their next batch on."""
        check_limits(net_debit_cap, liquidity_cover)
        async with self.pool.acquire() as conn:
            await conn.execute(
                q.SET_LIMITS, participant_id, currency, net_debit_cap, liquidity_cover, self.clock()
            )
        views = [p for p in await self.positions(participant_id) if p.currency == currency]
        return views[0]

    async def quote(self, quote_id: str) -> Quote | None:
        """A quote by id, as created (expired or not: the decision judges that)."""
        async with self.pool.acquire() as conn:
            return (await self._quotes(conn, {quote_id})).get(quote_id)

    async def set_rate(self, rate: Rate) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO clearing_fx_rates AS r
                       (source_currency, target_currency, mid_rate, spread_bps, updated_at)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (source_currency, target_currency) DO UPDATE
                      SET mid_rate = EXCLUDED.mid_rate, spread_bps = EXCLUDED.spread_bps,
                          updated_at = EXCLUDED.updated_at""",
                rate.source, rate.target, rate.mid, rate.spread_bps, self.clock(),
            )  # fmt: skip

    async def create_quote(
        self, source_currency: str, target_currency: str, *, fx_provider: str | None = None,
        ttl_s: int | None = None,
    ) -> Quote:  # fmt: skip
        """Lock the current client rate of a pair for `ttl_s` seconds (default quote_ttl_s)."""
        async with self.pool.acquire() as conn:
            r = await conn.fetchrow(
                "SELECT mid_rate, spread_bps FROM clearing_fx_rates"
                " WHERE source_currency = $1 AND target_currency = $2",
                source_currency, target_currency,
            )  # fmt: skip
            if r is None:
                raise ClearingError(f"no rate for {source_currency}->{target_currency}")
            if fx_provider is None:
                fx_provider = await conn.fetchval(
                    "SELECT id FROM participants WHERE role = 'fx_provider' AND status = 'active'"
                    " ORDER BY id LIMIT 1"
                )
                if fx_provider is None:
                    raise ClearingError("no active FX provider")
            rate = Rate(source_currency, target_currency, r["mid_rate"], r["spread_bps"])
            quote = make_quote(
                str(uuid.uuid4()), rate, fx_provider, self.clock(), ttl_s or self.quote_ttl_s
            )
            await conn.execute(
                """INSERT INTO clearing_fx_quotes (id, source_currency, target_currency, rate,
                       mid_rate, spread_bps, fx_provider, created_at, expires_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
                quote.id, quote.source_currency, quote.target_currency, quote.rate,
                quote.mid_rate, quote.spread_bps, quote.fx_provider, quote.created_at,
                quote.expires_at,
            )  # fmt: skip
        return quote

    async def purge_usage(self, before: date) -> int:
        """Drop daily corridor counters older than `before` (yearly ones are kept)."""
        async with self.pool.acquire() as conn:
            res = await conn.execute(
                "DELETE FROM clearing_corridor_usage WHERE period LIKE 'D%' AND period < $1",
                f"D{before.isoformat()}",
            )
        return int(res.split()[-1])

    # -- windows and settlement (gateway.clearing_windows) ----------------------------------

    async def close_window(self, actor: str) -> WindowClose:
        return await cw.close_window(self.pool, self.clock(), actor)

    async def settlement(self, settlement_id: int) -> SettlementView:
        async with self.pool.acquire() as conn:
            return await cw.load_settlement(conn, settlement_id)

    async def confirm_settlement(
        self, actor: str, settlement_id: int, participant_id: str, currency: str, reference: str
    ) -> SettlementView:
        return await cw.confirm_settlement(
            self.pool, self.clock(), actor, settlement_id, participant_id, currency, reference
        )

    async def abort_settlement(
        self, actor: str, settlement_id: int, reason: str = ""
    ) -> SettlementView:
        return await cw.abort_settlement(self.pool, self.clock(), actor, settlement_id, reason)

    async def open_window(self) -> tuple[int, datetime]:
        async with self.pool.acquire() as conn:
            return await cw.open_window(conn)

    async def window_totals(self, window_id: int) -> list[WindowTotal]:
        async with self.pool.acquire() as conn:
            return await cw.window_totals(conn, [window_id])

    async def bilateral(self, window_id: int) -> list[BilateralNet]:
        async with self.pool.acquire() as conn:
            return await cw.bilateral(conn, window_id)


@dataclass(frozen=True, slots=True)
class PendingWrites:
    """A decided batch's writes (`clearing_sql.WRITE_DECISIONS`) and how many position rows
    they must update: every delta is on a row locked by the batch."""

    ctes: q.Ctes
    positions: int

    def check(self, written: int) -> None:
        if written != self.positions:
            raise ClearingError(f"reserved {written} of {self.positions} locked position rows")


def _writes(plan: BatchPlan, refused: list[str]) -> PendingWrites | None:
    deltas = sorted((k, d) for k, d in plan.reserved_delta.items() if d)
    usage = sorted((k, d) for k, d in plan.usage_delta.items() if d)
    if not (refused or deltas or usage):
        return None
    g, h, p = _cols((k for k, _ in usage), 3)
    args = (
        refused, [k[0] for k, _ in deltas], [k[1] for k, _ in deltas], [d for _, d in deltas],
        g, h, p, [d for _, d in usage],
    )  # fmt: skip
    return PendingWrites(q.Ctes(q.WRITE_DECISIONS, args), len(deltas))


async def _no_records(conn: asyncpg.Connection, final: dict[str, Outcome]) -> None:
    return None


async def _nothing_last(conn: asyncpg.Connection, written: None) -> None:
    return None


def _transfer_row(p: Prepared, now: datetime) -> tuple[Any, ...]:
    """A clearing_transfers row in `clearing_sql.TRANSFER_COLUMNS` order."""
    req = p.request
    a = req.legs[0]
    b = req.legs[1] if len(req.legs) == 2 else None
    day, year = (p.usage_keys[0][2], p.usage_keys[1][2]) if p.usage_keys else (None, None)
    return (
        req.transfer_id, "RESERVED", req.source_scheme, req.destination_scheme, a.payer, a.payee,
        a.amount.currency, a.amount.minor,
        b.payee if b else None, b.amount.currency if b else None, b.amount.minor if b else None,
        req.quote_id if b else None, p.rule.group if p.usage_keys and p.rule else None,
        p.identity_hash if p.usage_keys else None, day, year, p.counted if p.usage_keys else 0,
        now, req.expires_at,
    )  # fmt: skip


def _outcomes(
    items: Sequence[tuple[Event, str, str | None]], final: dict[str, Outcome]
) -> list[Outcome]:
    """One outcome per item; only the first request for an id can carry `changed`."""
    seen: set[str] = set()
    out = []
    for _, tid, _ in items:
        o = final.get(tid) or Outcome(tid, None, False)
        if tid in seen and o.changed:
            o = Outcome(o.transfer_id, o.state, False, o.window_id, o.reason)
        seen.add(tid)
        out.append(o)
    return out
