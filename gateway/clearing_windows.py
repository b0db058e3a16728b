"""Settlement windows and settlements on PostgreSQL (used through `ClearingStore`).

Closing a window never touches transfers or positions: it swaps the open window under the
`clearing_window_current` row (commit batches hold it FOR SHARE; the close locks the table in
EXCLUSIVE mode, so it waits only for batches already running and batches starting after it
queue behind it and see the next window), then nets the
running totals of the closed window and of any window whose settlement was aborted. Cost:
O(participants x currencies). The pure rules are in `clearing.netting` and
`clearing.settlement`; operator actions are serialized by one advisory lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from clearing import settlement as st
from clearing.ledger import settlement_entries
from clearing.netting import DEFAULT_SETTLEMENT_SYSTEMS, BilateralNet, net_by_currency
from clearing.netting import bilateral as bilateral_nets
from clearing.ports import (
    ClearingError,
    SettlementEvent,
    SettlementLine,
    SettlementState,
    SettlementView,
    WindowClose,
    WindowTotal,
)
from gateway import clearing_sql as q


async def open_window(conn: asyncpg.Connection) -> tuple[int, datetime]:
    r = await conn.fetchrow(
        "SELECT w.id, w.opened_at FROM clearing_window_current c"
        " JOIN clearing_windows w ON w.id = c.window_id"
    )
    return r[0], r[1]


async def window_totals(conn: asyncpg.Connection, window_ids: Sequence[int]) -> list[WindowTotal]:
    rows = await conn.fetch(
        """SELECT participant_id, currency, sum(debits)::bigint, sum(credits)::bigint
             FROM clearing_window_totals WHERE window_id = ANY($1::bigint[])
            GROUP BY participant_id, currency ORDER BY participant_id, currency""",
        list(window_ids),
    )
    return [WindowTotal(r[0], r[1], r[2], r[3]) for r in rows]


async def _systems(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch("SELECT currency, name FROM settlement_systems")
    return {**DEFAULT_SETTLEMENT_SYSTEMS, **{r[0]: r[1] for r in rows}}


async def close_window(pool: asyncpg.Pool, now: datetime, actor: str) -> WindowClose:
    st.check_actor(actor)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", q.OPS_LOCK_KEY)
        # A table lock queues fairly: commit batches arriving after this wait behind the close
        # instead of overtaking it for ever (row share locks could), those running finish first.
        await conn.execute("LOCK TABLE clearing_window_current IN EXCLUSIVE MODE")
        old = await conn.fetchval("SELECT window_id FROM clearing_window_current")
        new = await conn.fetchval("SELECT max(id) + 1 FROM clearing_windows")
        await conn.execute(
            "UPDATE clearing_windows SET state = 'CLOSED', closed_at = $2, closed_by = $3"
            " WHERE id = $1",
            old, now, actor,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO clearing_windows (id, state, opened_at) VALUES ($1, 'OPEN', $2)", new, now
        )
        await conn.execute("UPDATE clearing_window_current SET window_id = $1", new)
        aborted = [
            r[0]
            for r in await conn.fetch("SELECT id FROM clearing_windows WHERE state = 'ABORTED'")
        ]
        wids = tuple(sorted({old, *aborted}))
        totals = await window_totals(conn, wids)
        netting = tuple(net_by_currency(totals, await _systems(conn)))
        lines = st.lines_from_totals(totals)
        if not lines:
            await conn.execute("UPDATE clearing_windows SET state = 'SETTLED' WHERE id = $1", old)
            return WindowClose(old, new, now, None, (old,), netting)
        sid = await _create_settlement(conn, now, actor, wids, netting)
        if st.settles_at_once(lines):
            view = await load_settlement(conn, sid, lock=True)
            await _settle(conn, view, actor, now, "nothing to pay")
    return WindowClose(old, new, now, sid, wids, netting)


async def _create_settlement(
    conn: asyncpg.Connection, now: datetime, actor: str, wids: tuple[int, ...], netting: tuple
) -> int:
    sid = await conn.fetchval(
        "INSERT INTO clearing_settlements (state, created_at, updated_at)"
        " VALUES ('PENDING_SETTLEMENT', $1, $1) RETURNING id",
        now,
    )
    await conn.execute(
        "INSERT INTO clearing_settlement_windows (settlement_id, window_id)"
        " SELECT $1, unnest($2::bigint[])",
        sid, list(wids),
    )  # fmt: skip
    await conn.execute(
        "UPDATE clearing_windows SET state = 'CLOSED', settlement_id = $1"
        " WHERE id = ANY($2::bigint[])",
        sid, list(wids),
    )  # fmt: skip
    lines = [ln for cn in netting for ln in cn.lines]
    await conn.execute(
        """INSERT INTO clearing_settlement_lines
               (settlement_id, participant_id, currency, debits, credits, net)
           SELECT $1, l.p, l.c, l.d, l.cr, l.cr - l.d
             FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS l(p, c, d, cr)""",
        sid, [ln.participant_id for ln in lines], [ln.currency for ln in lines],
        [ln.debits for ln in lines], [ln.credits for ln in lines],
    )  # fmt: skip
    await _event(conn, sid, st.created(actor, now, wids))
    return sid


async def _event(conn: asyncpg.Connection, sid: int, ev: SettlementEvent) -> None:
    await conn.execute(
        "INSERT INTO clearing_settlement_events (settlement_id, state, actor, at, detail)"
        " VALUES ($1, $2, $3, $4, $5)",
        sid, ev.state, ev.actor, ev.at, ev.detail,
    )  # fmt: skip


_SETTLEMENT = "SELECT state FROM clearing_settlements WHERE id = $1"
_SETTLEMENT_FOR_UPDATE = "SELECT state FROM clearing_settlements WHERE id = $1 FOR UPDATE"


async def load_settlement(conn: asyncpg.Connection, sid: int, lock: bool = False) -> SettlementView:
    sql = _SETTLEMENT_FOR_UPDATE if lock else _SETTLEMENT
    state = await conn.fetchval(sql, sid)
    if state is None:
        raise ClearingError(f"unknown settlement {sid}")
    wids = await conn.fetch(
        "SELECT window_id FROM clearing_settlement_windows WHERE settlement_id = $1"
        " ORDER BY window_id",
        sid,
    )
    lines = await conn.fetch(
        """SELECT participant_id, currency, net, reference, confirmed_by, confirmed_at
             FROM clearing_settlement_lines WHERE settlement_id = $1
            ORDER BY participant_id, currency""",
        sid,
    )
    events = await conn.fetch(
        "SELECT state, actor, at, detail FROM clearing_settlement_events"
        " WHERE settlement_id = $1 ORDER BY id",
        sid,
    )
    return SettlementView(
        sid,
        SettlementState(state),
        tuple(r[0] for r in wids),
        tuple(SettlementLine(*r.values()) for r in lines),
        tuple(SettlementEvent(*r.values()) for r in events),
    )


async def _settle(
    conn: asyncpg.Connection, view: SettlementView, actor: str, now: datetime, detail: str
) -> None:
    """SETTLED: take the settled nets out of positions and post the settlement journal."""
    await conn.execute(
        "UPDATE clearing_settlements SET state = 'SETTLED', updated_at = $2 WHERE id = $1",
        view.id, now,
    )  # fmt: skip
    deltas = sorted(st.position_deltas(view.lines).items())
    if deltas:
        done = await conn.fetch(
            q.APPLY_POSITIONS, [k[0] for k, _ in deltas], [k[1] for k, _ in deltas],
            [d for _, d in deltas], [0] * len(deltas),
        )  # fmt: skip
        # Every line comes from committed legs, which created their position rows.
        assert len(done) == len(deltas), "a settled participant has no position row"
        entries = settlement_entries(view.id, view.lines)
        await conn.copy_records_to_table(
            "clearing_ledger_entries",
            records=[
                (e.journal_id, e.leg_no, e.participant_id, e.currency, e.amount, None, now)
                for e in entries
            ],
            columns=q.LEDGER_COLUMNS,
        )
    await conn.execute(
        "UPDATE clearing_windows SET state = 'SETTLED' WHERE id = ANY($1::bigint[])",
        list(view.window_ids),
    )
    if detail:
        await _event(
            conn, view.id, SettlementEvent(SettlementState.SETTLED.value, actor, now, detail)
        )


async def confirm_settlement(
    pool: asyncpg.Pool, now: datetime, actor: str, sid: int, participant_id: str, currency: str,
    reference: str,
) -> SettlementView:  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", q.OPS_LOCK_KEY)
        view = await load_settlement(conn, sid, lock=True)
        change = st.confirm(view, participant_id, currency, reference, actor, now)
        if change.event is None:
            return view
        await conn.execute(
            """UPDATE clearing_settlement_lines
                  SET reference = $4, confirmed_by = $5, confirmed_at = $6
                WHERE settlement_id = $1 AND participant_id = $2 AND currency = $3""",
            sid, participant_id, currency, reference, actor, now,
        )  # fmt: skip
        await _event(conn, sid, change.event)
        if change.settled:
            await _settle(conn, change.view, actor, now, "")
        return change.view


async def abort_settlement(
    pool: asyncpg.Pool, now: datetime, actor: str, sid: int, reason: str
) -> SettlementView:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", q.OPS_LOCK_KEY)
        view = await load_settlement(conn, sid, lock=True)
        change = st.abort(view, actor, now, reason)
        if change.event is None:
            return view
        await conn.execute(
            "UPDATE clearing_settlements SET state = 'ABORTED', updated_at = $2 WHERE id = $1",
            sid, now,
        )  # fmt: skip
        await conn.execute(
            "UPDATE clearing_windows SET state = 'ABORTED' WHERE id = ANY($1::bigint[])",
            list(view.window_ids),
        )
        await _event(conn, sid, change.event)
        return change.view


async def bilateral(conn: asyncpg.Connection, window_id: int) -> list[BilateralNet]:
    """Pairwise nets of a window, for reports: reads the window's legs (O(transfers))."""
    rows = await conn.fetch(
        """SELECT payer, payee, currency, sum(amount)::bigint FROM clearing_legs
            WHERE window_id = $1 GROUP BY payer, payee, currency""",
        window_id,
    )
    return bilateral_nets(tuple(r.values()) for r in rows)
