"""The periodic state collector, and the scheduled window close.

Theory of operation
- State gauges (positions, the open window, settlements, the outbox, the pool) describe the
  database, not events of this process, so `StateCollector` reads them every `interval_s`
  and hands one `metrics.Snapshot` to `metrics.set_snapshot()`. A scrape never touches the
  database. A pass that fails publishes nothing (the snapshot timestamp stops moving, which
  `BaygateSnapshotStale` watches) and marks the database not ready; the loop goes on.
- Every read is cheap and bounded. Positions and limits are O(participants x currencies);
  the open window is one row; settlements one row per closed window; the outbox query reads
  only undelivered rows through its partial index. No read scans `transfers` or
  `clearing_transfers`.
- Transfers in the open window are counted over the append-only ledger
  (`OpenWindowCounter`): each transfer has exactly one entry with `leg_no = 1` and a
  positive amount, and ledger ids grow with commit order across windows (a close waits for
  the commit batches of the old window; batches of the new window allocate ids after it).
  An entry is counted for good once it is older than `lag_s` (a commit batch allocates its
  ids and commits within that time); only the younger tail is recounted at each pass. The
  cost per pass is the entries of the last `lag_s` plus those committed since the last pass;
  the whole window is read once, when a process first meets it mid-way.
- `close_on_schedule` runs `clearing_tasks.run_close_schedule` through
  `Gateway.close_window("scheduler")`, so a scheduled close journals, settles and exports its
  files exactly like an operator's close.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from clearing.ports import WindowClose
from clearing.windows import CloseSchedule
from gateway import metrics
from gateway.clearing_tasks import run_close_schedule
from gateway.logging import get_logger

MANUAL_SCHEDULE_S = 86_400.0  # a window closed by hand is expected to close once a day
LEDGER_LAG_S = 30.0
COLLECT_TIMEOUT_S_MIN = 10.0
SEARCH_STEPS_MAX = 64  # ledger ids are BIGINT: 63 halvings find any start
CLOSE_POLL_S = 1.0
_log = get_logger("baygate.collector")

_OPEN_WINDOW = """
SELECT w.id, w.opened_at, (SELECT max(id) FROM clearing_ledger_entries) AS max_id
  FROM clearing_window_current c JOIN clearing_windows w ON w.id = c.window_id
"""
_COUNT = """
SELECT count(*) FROM clearing_ledger_entries
 WHERE id > $1 AND id <= $2 AND window_id = $3 AND leg_no = 1 AND amount > 0
"""
_FIRST_TRANSFER_ENTRY = """
SELECT window_id FROM clearing_ledger_entries WHERE id >= $1 AND leg_no > 0 ORDER BY id LIMIT 1
"""
_SETTLEMENTS = """
SELECT state, count(*) AS n,
       count(*) FILTER (WHERE state = 'PENDING_SETTLEMENT' AND created_at < $1) AS overdue
  FROM clearing_settlements GROUP BY state
"""
_OUTBOX = """
SELECT count(*) AS depth, min(created_at) AS oldest FROM outbox WHERE done_at IS NULL
"""


class OpenWindowCounter:
    """Committed transfers in the open window, counted without rereading the whole window.

    Holds `settled`: the count of the window's entries with id <= `settled_id`, all older
    than `lag_s`; each pass adds the count of (settled_id, newest id]. A transaction that
    commits entries more than `lag_s` after allocating their ids would be missed until the
    next window; commit batches last milliseconds, bounded by the pool's command timeout.
    """

    def __init__(
        self, lag_s: float = LEDGER_LAG_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lag_s = lag_s
        self._clock = clock
        self._window_id: int | None = None
        self._settled_id = 0
        self._settled = 0
        self._last_max_id = 0
        self._marks: deque[tuple[float, int]] = deque()  # (seen at, newest id then)

    async def count(self, conn: asyncpg.Connection, window_id: int, max_id: int) -> int:
        """Transfers committed in `window_id`; `max_id` is the newest ledger id, read in the
        same statement as the open window."""
        if window_id != self._window_id:
            start = await self._start_of(conn, window_id)
            self._window_id, self._settled_id, self._settled = window_id, start, 0
            self._marks.clear()
        now = self._clock()
        self._marks.append((now, max_id))
        self._last_max_id = max_id
        horizon = None
        while self._marks and now - self._marks[0][0] >= self.lag_s:
            horizon = self._marks.popleft()[1]
        if horizon is not None and horizon > self._settled_id:
            self._settled += await conn.fetchval(_COUNT, self._settled_id, horizon, window_id)
            self._settled_id = horizon
        tail = await conn.fetchval(_COUNT, self._settled_id, max_id, window_id)
        return self._settled + tail

    async def _start_of(self, conn: asyncpg.Connection, window_id: int) -> int:
        """An id below every entry of `window_id` and above every entry of earlier windows.

        After a close seen by this counter, the newest id read while the old window was open
        is such an id. Otherwise (first pass, or the window went back) a binary search on the
        primary key finds it: the window of the first transfer entry at or after an id never
        decreases as the id grows.
        """
        if self._window_id is not None and window_id > self._window_id:
            return self._last_max_id
        lo, hi = 0, (await conn.fetchval("SELECT max(id) FROM clearing_ledger_entries")) or 0
        for _ in range(SEARCH_STEPS_MAX):  # invariant: entries <= lo are of earlier windows
            if lo >= hi:
                break
            mid = (lo + hi + 1) // 2
            w = await conn.fetchval(_FIRST_TRANSFER_ENTRY, mid)
            if w is not None and w < window_id:
                lo = mid
            else:
                hi = mid - 1
        return lo


class StateCollector:
    """Reads the state gauges every `interval_s` and publishes them as one snapshot."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        clearing: Any,
        clock: Callable[[], datetime],
        *,
        window_close_interval_s: float = 0,
        settlement_deadline_s: float = 7200,
        interval_s: float = 5.0,
        counter: OpenWindowCounter | None = None,
    ) -> None:
        self.pool = pool
        self.clearing = clearing
        self.clock = clock
        self.schedule_s = float(window_close_interval_s) or MANUAL_SCHEDULE_S
        self.settlement_deadline_s = settlement_deadline_s
        self.interval_s = interval_s
        self.timeout_s = max(COLLECT_TIMEOUT_S_MIN, 2 * interval_s)
        self.counter = counter or OpenWindowCounter()
        self._task: asyncio.Task[None] | None = None

    async def collect(self) -> metrics.Snapshot:
        """One pass over the database; raises what the database raises."""
        views = await self.clearing.positions(None)
        now = self.clock()
        async with self.pool.acquire() as conn:
            w = await conn.fetchrow(_OPEN_WINDOW)
            open_transfers = await self.counter.count(conn, w["id"], w["max_id"] or 0)
            settlements = await conn.fetch(_SETTLEMENTS, _ago(now, self.settlement_deadline_s))
            ob = await conn.fetchrow(_OUTBOX)
        size = self.pool.get_size()
        return metrics.Snapshot(
            positions=tuple(_position_row(v) for v in views),
            window=metrics.WindowRow(
                open_age_s=max((now - w["opened_at"]).total_seconds(), 0.0),
                open_transfers=open_transfers,
                schedule_s=self.schedule_s,
            ),
            settlements=metrics.SettlementRow(
                by_state={r["state"]: int(r["n"]) for r in settlements},
                overdue=sum(int(r["overdue"]) for r in settlements),
            ),
            outbox=metrics.OutboxRow(
                int(ob["depth"]),
                max((now - ob["oldest"]).total_seconds(), 0.0) if ob["oldest"] else 0.0,
            ),
            db_pool=metrics.DbPoolRow(
                size, size - self.pool.get_idle_size(), self.pool.get_max_size()
            ),
        )

    async def run(self) -> None:
        """Collect and publish until cancelled; a failed pass is logged and retried."""
        while True:
            try:
                async with asyncio.timeout(self.timeout_s):
                    snapshot = await self.collect()
                metrics.set_snapshot(snapshot)
                metrics.set_db_ready(True)
            except Exception as exc:  # the collector must never stop; readiness shows the cause
                metrics.set_db_ready(False)
                _log.warning("collect_failed", error=type(exc).__name__, detail=str(exc)[:200])
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="metrics-collector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _position_row(v: Any) -> metrics.PositionRow:
    return metrics.PositionRow(
        v.participant_id, v.currency, v.net, v.reserved, v.net_debit_cap, v.liquidity_cover
    )


def _ago(now: datetime, seconds: float) -> datetime:
    return now - timedelta(seconds=seconds)


class _GatewayWindows:
    """The window side of `Gateway` in the shape `run_close_schedule` drives."""

    def __init__(self, gateway: Any) -> None:
        self._gw = gateway

    async def open_window(self) -> tuple[int, datetime]:
        return await self._gw.clearing.open_window()  # type: ignore[no-any-return]

    async def close_window(self, actor: str) -> WindowClose:
        close, _head = await self._gw.close_window(actor)
        return close  # type: ignore[no-any-return]


class ScheduledClose:
    """Closes the open window every `interval_s` through `Gateway.close_window("scheduler")`."""

    def __init__(
        self,
        gateway: Any,
        interval_s: int,
        clock: Callable[[], datetime],
        poll_s: float = CLOSE_POLL_S,
    ) -> None:
        self.schedule = CloseSchedule(interval_s=interval_s)
        self._gateway = gateway
        self._clock = clock
        self._poll_s = poll_s
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(
            run_close_schedule(
                _GatewayWindows(self._gateway), self.schedule, self._clock, self._stop,
                actor="scheduler", poll_s=self._poll_s, on_close=_closed, on_error=_close_failed,
            ),
            name="window-close-schedule",
        )  # fmt: skip

    async def stop(self) -> None:
        """Let a close in progress finish, then end the loop."""
        if self._task is not None:
            self._stop.set()
            await self._task
            self._task = None


def _closed(close: WindowClose) -> None:
    _log.info("window_closed_on_schedule", window_id=close.window_id,
              next_window_id=close.next_window_id, settlement_id=close.settlement_id)  # fmt: skip


def _close_failed(exc: Exception) -> None:
    _log.error("scheduled_close_failed", error=type(exc).__name__, detail=str(exc)[:200])
